// The trace viewer. Two sources, one view:
//  - live: POST /v1/musespark/ask streams the engine's events (docs/server.md);
//  - saved: a trace JSON document (docs/trace.md), e.g. `musespark ask --json`.
// Model output is shown with textContent only, never as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";

let view = null;        // what is on screen (newView())
let controller = null;  // the live request, to stop it
let model = null;       // GET /v1/models' entry
let image = null;       // {url, width, height} of the chosen image

function newView() {
  return {
    agents: new Map(),   // id -> agent (below)
    actions: [],         // visual actions: {agent, kind, relative?, box?}
    window: 32,          // confidence window, for series made from token_confidence
    threshold: null,
    trace: null,
    started: performance.now(),
    tokens: 0,
  };
}

function agentColor(id) { return `hsl(${(id * 137.508) % 360}, 62%, 42%)`; }

function setState(state) { document.body.dataset.state = state; }

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = false;
  setState("error");
}

function setStatus(text) { $("status").textContent = text; }

// The Authorization header for a server started with --api-key: the key the
// user typed (shown only once the server has asked for one), kept for this
// tab in sessionStorage.
function authHeaders() {
  const key = $("api-key").value.trim();
  return key ? { Authorization: `Bearer ${key}` } : {};
}

// ---- agents -------------------------------------------------------------

function agentCard(id, round, role) {
  let a = view.agents.get(id);
  if (a) return a;
  const card = document.createElement("article");
  card.className = "agent";
  card.dataset.agent = id;
  card.style.setProperty("--agent-color", agentColor(id));
  card.innerHTML = `<header><span class="name"></span><span class="state running">thinking</span></header>
    <div class="facts"></div>
    <svg class="chart" viewBox="0 0 100 100" preserveAspectRatio="none"><title>group confidence (nats, higher is surer) over the agent's tokens, on one scale for all agents; dashed: the early-stop threshold</title><polyline></polyline></svg>
    <pre class="thinking"></pre>
    <div class="answer"></div>`;
  const label = role && role !== "agent" ? ` · ${role}` : round > 1 ? ` · round ${round}` : "";
  card.querySelector(".name").textContent = `agent ${id}${label}`;
  $("agent-grid").append(card);
  a = {
    id, round, role, card, tokens: 0, confidence: 0, series: [], thinking: "", answer: "", stop: null,
    el: {
      state: card.querySelector(".state"), facts: card.querySelector(".facts"), chart: card.querySelector("svg"),
      line: card.querySelector("polyline"), thinking: card.querySelector("pre.thinking"), answer: card.querySelector(".answer"),
    },
  };
  view.agents.set(id, a);
  return a;
}

function setAgentState(a, state) {
  a.el.state.textContent = state;
  a.el.state.className = `state ${state === "thinking" || state === "answering" ? "running" : state}`;
  a.card.classList.toggle("stopped", ["low_confidence", "consensus", "cancelled", "deadline"].includes(state));
}

function agentFacts(a) {
  a.el.facts.textContent = `${a.tokens} tokens · confidence ${a.confidence.toFixed(2)}`;
}

function appendThinking(a, text) {
  const pre = a.el.thinking;
  const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
  a.thinking += text;
  pre.append(text);
  if (atBottom) pre.scrollTop = pre.scrollHeight;
}

// Group confidence after each sampled token: the mean over the last `window`
// token confidences, as the engine computes it live.
function groupSeries(tokenConfidence, window) {
  const out = [];
  let sum = 0;
  tokenConfidence.forEach((c, i) => {
    sum += c;
    if (i >= window) sum -= tokenConfidence[i - window];
    out.push([i + 1, sum / Math.min(i + 1, window)]);
  });
  return out;
}

// Every chart shares one scale, so agents can be compared at a glance.
let chartsQueued = false;
function drawCharts() {
  if (chartsQueued) return;
  chartsQueued = true;
  requestAnimationFrame(() => {
    chartsQueued = false;
    let maxX = 1, lo = Infinity, hi = -Infinity;
    for (const a of view.agents.values())
      for (const [x, y] of a.series) { maxX = Math.max(maxX, x); lo = Math.min(lo, y); hi = Math.max(hi, y); }
    if (view.threshold != null) { lo = Math.min(lo, view.threshold); hi = Math.max(hi, view.threshold); }
    if (!isFinite(lo)) return;
    const pad = Math.max((hi - lo) * 0.1, 0.01);
    lo -= pad; hi += pad;
    const px = (x) => (100 * x / maxX).toFixed(2);
    const py = (y) => (100 - 100 * (y - lo) / (hi - lo)).toFixed(2);
    for (const a of view.agents.values()) {
      a.el.line.setAttribute("points", a.series.map(([x, y]) => `${px(x)},${py(y)}`).join(" "));
      let t = a.el.chart.querySelector("line.threshold");
      if (view.threshold != null) {
        if (!t) { t = document.createElementNS(SVG, "line"); t.setAttribute("class", "threshold"); a.el.chart.append(t); }
        t.setAttribute("x1", 0); t.setAttribute("x2", 100);
        t.setAttribute("y1", py(view.threshold)); t.setAttribute("y2", py(view.threshold));
      }
    }
  });
}

// ---- votes, escalations, the answer --------------------------------------

function renderVotes(votes) {
  const box = $("votes");
  box.replaceChildren();
  box.classList.toggle("muted", votes.length === 0);
  if (votes.length === 0) { box.textContent = "no votes yet"; return; }
  for (const v of votes) {
    const row = document.createElement("div");
    row.className = "vote-row";
    row.innerHTML = `<div class="label"><span class="display"></span><span class="count muted"></span></div>
      <div class="vote-bar"><div></div></div>`;
    row.querySelector(".display").textContent = v.display || v.answer;
    row.querySelector(".count").textContent =
      `${v.votes} vote${v.votes === 1 ? "" : "s"} · ${(100 * v.share).toFixed(0)}% · agents ${v.agents.join(", ")}`;
    row.querySelector(".vote-bar > div").style.width = `${(100 * v.share).toFixed(1)}%`;
    box.append(row);
  }
}

function addEscalation(e) {
  $("escalation-panel").hidden = false;
  const li = document.createElement("li");
  li.textContent = `${e.from} → ${e.to}: ${e.reason} (${fmt(e.value)}, needed ${fmt(e.threshold)})`;
  $("escalations").append(li);
}

function fmt(x) { return x == null ? "–" : Number(x).toPrecision(3); }

function showFinal(trace) {
  view.trace = trace;
  view.threshold = trace.early_stop_threshold;
  view.window = trace.request?.confidence_window || view.window;
  $("final").hidden = false;
  $("final-answer").textContent = (trace.final_text || trace.final_answer || "(no answer)").trim();
  const u = trace.usage || {};
  $("final-meta").textContent =
    `${trace.mode_used} · ${trace.agents.length} agent${trace.agents.length === 1 ? "" : "s"} · ` +
    `${u.generated_tokens} tokens in ${fmt(u.total_seconds)} s (${fmt(u.tokens_per_second)} tok/s) · ` +
    `prompt ${u.prompt_tokens} tokens · seed ${trace.request?.seed}`;
  renderVotes(trace.votes || []);
  for (const a of view.agents.values()) a.card.classList.toggle("winner", a.id === trace.final_agent);
  view.actions = (trace.visual_actions || []).map((v) => ({ ...v }));
  drawActions();
  drawCharts();
  const blob = new Blob([JSON.stringify(trace, null, 2)], { type: "application/json" });
  const link = $("save-trace");
  if (link.href.startsWith("blob:")) URL.revokeObjectURL(link.href);
  link.href = URL.createObjectURL(blob);
  link.hidden = false;
}

function finishAgent(t) {
  const a = agentCard(t.id, t.round, t.role);
  a.stop = t.stop_reason;
  a.tokens = t.thinking_tokens + t.answer_tokens;
  a.confidence = t.confidence.mean;
  if (a.thinking !== t.thinking) { a.thinking = ""; a.el.thinking.replaceChildren(); appendThinking(a, t.thinking); }
  a.el.answer.textContent = t.answer ? `answer: ${t.answer}` : t.answer_text ? t.answer_text : "";
  a.el.answer.title = t.answer_text;
  if (t.token_confidence) a.series = groupSeries(t.token_confidence, view.window);
  setAgentState(a, t.stop_reason);
  agentFacts(a);
  a.el.facts.textContent += ` · ${t.stop_reason}${t.budget_closed ? " (thought closed at budget)" : ""}` +
    (t.vote_weight ? ` · vote weight ${fmt(t.vote_weight)}` : "");
  drawCharts();
}

// ---- the image and where agents looked -----------------------------------

const TAG = /<(box|zoom)>\s*\(\s*(-?[\d.]+)\s*,\s*(-?[\d.]+)\s*\)\s*,\s*\(\s*(-?[\d.]+)\s*,\s*(-?[\d.]+)\s*\)\s*<\/\1>/g;

// Live, the boxes come from the agents' text (0-1000 coordinates); the
// final trace then gives them in pixels.
function scanActions(a) {
  const found = [...a.thinking.matchAll(TAG)].map((m) => ({
    agent: a.id, kind: m[1], relative: [m[2], m[3], m[4], m[5]].map(Number),
  }));
  const others = view.actions.filter((v) => v.agent !== a.id);
  if (found.length !== view.actions.length - others.length) { view.actions = others.concat(found); drawActions(); }
}

function drawActions() {
  const list = $("visual-list");
  list.replaceChildren();
  $("visual-panel").hidden = view.actions.length === 0;
  for (const v of view.actions) {
    const li = document.createElement("li");
    const where = v.box ? `pixels ${v.box.join(", ")}` : `(${v.relative.join(", ")}) of 1000`;
    li.textContent = `agent ${v.agent} ${v.kind} ${where}${v.applied ? ` · crop ${v.crop_width}×${v.crop_height} seen` : ""}`;
    li.style.color = agentColor(v.agent);
    list.append(li);
  }
  const svg = $("image-view");
  svg.querySelectorAll("rect").forEach((r) => r.remove());
  if (!image) return;
  for (const v of view.actions) {
    const [x0, y0, x1, y1] = v.box ||
      v.relative.map((c, i) => (Math.max(0, Math.min(1000, c)) / 1000) * (i % 2 ? image.height : image.width));
    const r = document.createElementNS(SVG, "rect");
    r.setAttribute("class", `visual ${v.kind}`);
    r.setAttribute("x", Math.min(x0, x1)); r.setAttribute("y", Math.min(y0, y1));
    r.setAttribute("width", Math.abs(x1 - x0)); r.setAttribute("height", Math.abs(y1 - y0));
    r.setAttribute("stroke", agentColor(v.agent));
    svg.append(r);
  }
}

function showImage() {
  const svg = $("image-view");
  svg.replaceChildren();
  $("image-panel").hidden = !image;
  if (!image) return;
  svg.setAttribute("viewBox", `0 0 ${image.width} ${image.height}`);
  const img = document.createElementNS(SVG, "image");
  img.setAttribute("href", image.url);
  img.setAttribute("width", image.width);
  img.setAttribute("height", image.height);
  svg.append(img);
  $("image-caption").textContent = `${image.width} × ${image.height} px; boxes solid, zooms dashed, one colour per agent`;
  drawActions();
}

$("image").addEventListener("change", () => {
  const file = $("image").files[0];
  if (!file) { image = null; showImage(); return; }
  const reader = new FileReader();
  reader.onload = () => {
    const probe = new Image();
    probe.onload = () => { image = { url: reader.result, width: probe.naturalWidth, height: probe.naturalHeight }; showImage(); };
    probe.onerror = () => showError(`${file.name}: not an image this browser can read`);
    probe.src = reader.result;
  };
  reader.readAsDataURL(file);
});

// ---- live: the event stream ----------------------------------------------

function reset() {
  view = newView();
  $("agent-grid").replaceChildren();
  $("error").hidden = true;
  $("final").hidden = true;
  $("escalations").replaceChildren();
  $("escalation-panel").hidden = true;
  $("save-trace").hidden = true;
  renderVotes([]);
  showImage();
}

function onEvent(e) {
  switch (e.type) {
    case "agent_started": {
      const a = agentCard(e.agent, e.round);
      setAgentState(a, "thinking");
      break;
    }
    case "text_delta": {
      const a = agentCard(e.agent, e.round);
      a.tokens = e.tokens;
      a.confidence = e.confidence;
      view.tokens += 1;
      if (e.in_thinking) { appendThinking(a, e.text); if (e.text.includes(">")) scanActions(a); }
      else { a.answer += e.text; a.el.answer.textContent = a.answer; }
      setAgentState(a, e.in_thinking ? "thinking" : "answering");
      const last = a.series[a.series.length - 1];
      if (!last || last[0] !== e.tokens) a.series.push([e.tokens, e.confidence]);
      agentFacts(a);
      drawCharts();
      break;
    }
    case "agent_finished": finishAgent(e.agent_trace); break;
    case "vote_update": renderVotes(e.votes); break;
    case "escalation": addEscalation(e.escalation); break;
    case "final": showFinal(e.trace); break;
    case "error": throw new Error(e.error.message);
  }
  const seconds = ((performance.now() - view.started) / 1000).toFixed(1);
  if (document.body.dataset.state === "running")
    setStatus(`running · ${view.agents.size} agents · ${view.tokens} tokens · ${seconds} s`);
}

function requestBody() {
  const question = $("question").value.trim();
  const content = image
    ? [{ type: "image_url", image_url: { url: image.url } }, { type: "text", text: question }]
    : question;
  const body = {
    messages: [{ role: "user", content }],
    mode: $("mode").value,
    reasoning_effort: $("effort").value,
    musespark: { token_confidence: true },
  };
  if (model) body.model = model.id;
  const number = (id) => ($(id).value === "" ? null : Number($(id).value));
  if (number("agents")) body.musespark.agents = number("agents");
  if (number("thinking-tokens")) body.musespark.max_thinking_tokens = number("thinking-tokens");
  if (number("seed") != null) body.seed = number("seed");
  if ($("prefix").value) body.musespark.assistant_prefix = $("prefix").value;
  return body;
}

async function ask(event) {
  event.preventDefault();
  if (controller) return;
  reset();
  setState("running");
  setStatus("waiting for the server…");
  $("ask").disabled = true;
  $("stop").disabled = false;
  controller = new AbortController();
  try {
    const response = await fetch("v1/musespark/ask", {
      method: "POST",
      headers: { "Content-Type": "application/json", ...authHeaders() },
      body: JSON.stringify(requestBody()),
      signal: controller.signal,
    });
    if (!response.ok) {
      const text = await response.text();
      let message = `${response.status} ${response.statusText}`;
      try { message = `${response.status}: ${JSON.parse(text).error.message}`; } catch { /* not JSON */ }
      throw new Error(message);
    }
    await readEvents(response.body, onEvent);
    if (!view.trace) throw new Error("the stream ended without a final answer");
    setState("done");
    setStatus(`done in ${((performance.now() - view.started) / 1000).toFixed(1)} s`);
  } catch (err) {
    if (err.name === "AbortError") { setState("idle"); setStatus("stopped: the server cancelled the agents"); }
    else showError(err.message);
  } finally {
    controller = null;
    $("ask").disabled = false;
    $("stop").disabled = true;
  }
}

// Server-sent events from a fetch body: "data: <json>" lines, blank-line separated.
async function readEvents(stream, handle) {
  const reader = stream.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    buffer += decoder.decode(value || new Uint8Array(), { stream: !done });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = block.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trimStart()).join("\n");
      if (data && data !== "[DONE]") handle(JSON.parse(data));
    }
    if (done) return;
  }
}

$("ask-form").addEventListener("submit", ask);
$("question").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) $("ask-form").requestSubmit();
});
$("stop").addEventListener("click", () => controller && controller.abort());

// ---- saved: a trace document ---------------------------------------------

function showTrace(trace) {
  if (!trace || trace.schema_version !== 1 || !Array.isArray(trace.agents))
    throw new Error("not a musespark trace (schema_version 1 with agents)");
  reset();
  view.window = trace.request?.confidence_window || view.window;
  $("question").value = trace.request?.question || "";
  for (const e of trace.escalations || []) addEscalation(e);
  for (const t of trace.agents) {
    const a = agentCard(t.id, t.round, t.role);
    if (!t.token_confidence) a.series = [[0, t.confidence.mean], [t.thinking_tokens + t.answer_tokens, t.confidence.mean]];
    finishAgent(t);
  }
  showFinal(trace);
  setState("done");
  setStatus(`trace of "${trace.request?.question ?? ""}" (${trace.request?.mode} → ${trace.mode_used})` +
    (trace.agents.some((a) => a.token_confidence) ? "" : "; no per-token confidence in it: the charts show each agent's mean"));
}

$("trace-file").addEventListener("change", async () => {
  const file = $("trace-file").files[0];
  if (!file) return;
  try {
    showTrace(JSON.parse(await file.text()));
  } catch (err) {
    showError(`${file.name}: ${err.message}`);
  }
  $("trace-file").value = "";
});

// ---- start ---------------------------------------------------------------

view = newView();
// The model's name; a server that wants an API key answers 401 until the
// key is typed in.
function loadModel() {
  fetch("v1/models", { headers: authHeaders() })
    .then((r) => {
      if (r.status === 401) {
        $("api-key-label").hidden = false;
        setStatus($("api-key").value ? "the server refused this API key" : "this server wants an API key");
        return null;
      }
      return r.json();
    })
    .then((list) => {
      if (!list) return;
      model = list.data[0];
      $("model-name").textContent = `· ${model.id}`;
      if ($("api-key").value) setStatus("");
      if (!model.musespark?.vision) $("image").title = "this model has no vision encoder: an image can only be drawn on";
    })
    .catch(() => setStatus("no server: open a saved trace"));
}
$("api-key").value = sessionStorage.getItem("musespark-api-key") ?? "";
$("api-key").addEventListener("change", () => {
  sessionStorage.setItem("musespark-api-key", $("api-key").value.trim());
  loadModel();
});
loadModel();
