// Soak for benchmarks/serve_soak.sh: one `musespark serve` on loopback, and
// `--clients` loops that send `--requests` requests of mixed kinds between
// them — chat completions plain and streamed (reasoning_effort none / low,
// some with n: 2), /v1/musespark/ask, GET /health and /v1/models; ~15% cut off
// by the client mid-stream or mid-wait, ~15% malformed (each with its own 4xx
// status and OpenAI error code). Checks every status, a per-request deadline
// (nothing may hang), the server's memory (VmRSS) over the run, that it drains
// to running 0 / queued 0, and that /health's counters add up. Prints a table
// and `soak: PASS` or `soak: FAIL (reasons)` (exit 1). A benchmark, not a test:
// ctest never runs it.
//
//   node benchmarks/serve_soak.mjs --model DIR [--bin build/bin/musespark] [--requests 1000] [--clients 16]
//        [--parallel 2] [--max-queue 8] [--threads 1] [--deadline 120] [--seed 1] [--warmup 20]
//        [--think-ms auto|MS] [--target-503 0.1] [--sample 10] [--max-late-growth-mib 16] [--only KIND,GROUP,...]
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import http from "node:http";
import OpenAI from "openai";

const argv = process.argv.slice(2);
const option = (name, fallback) => { const i = argv.indexOf(name); return i >= 0 ? argv[i + 1] : fallback; };
const BIN = option("--bin", "build/bin/musespark");
const MODEL = option("--model", "models/musespark-mini");
const REQUESTS = Number(option("--requests", "1000"));
const CLIENTS = Number(option("--clients", "16"));
const PARALLEL = Number(option("--parallel", "2"));
const MAX_QUEUE = Number(option("--max-queue", "8"));
const THREADS = Number(option("--threads", "1"));
const DEADLINE_MS = 1000 * Number(option("--deadline", "120"));
const SEED = Number(option("--seed", "1"));
const WARMUP = Number(option("--warmup", "20"));
const SAMPLE_MS = 1000 * Number(option("--sample", "10"));
// Each client pauses a random 0 to `pace.ms` ms before each request. `auto`:
// the pause follows the 503s, longer after one, a little shorter after each
// completion request that was let in, so that about --target-503 of the
// completion requests find the queue full, whatever the model's speed.
const THINK = option("--think-ms", "auto");
const TARGET_503 = Number(option("--target-503", "0.1"));
const pace = { ms: THINK === "auto" ? 200 : Number(THINK), sum: 0, n: 0 };
const PACE_UP = 1.2, PACE_DOWN = Math.exp((-Math.log(PACE_UP) * TARGET_503) / (1 - TARGET_503));
function adjustPace(r) {
  if (THINK !== "auto" || !KINDS[r.kind].completion) return;
  pace.ms = r.result === "refused" ? Math.min(5000, Math.max(20, pace.ms * PACE_UP)) : pace.ms * PACE_DOWN;
}
const ONLY = option("--only", "");  // comma-separated kinds (or groups): a soak of just those, to find what grows
// What the RSS may grow in the second half of the run (the first has the warm-up's tail).
const MAX_LATE_GROWTH_MIB = Number(option("--max-late-growth-mib", "16"));
const MAX_BODY_MB = 1;
const API_KEY = "sk-soak-0123456789";
for (const [name, v] of Object.entries({ REQUESTS, CLIENTS, PARALLEL, MAX_QUEUE, THREADS, DEADLINE_MS, SEED, WARMUP, SAMPLE_MS }))
  if (!Number.isFinite(v) || v < 0) throw new Error(`bad ${name}: ${v}`);

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const now = () => performance.now();

// ---- the server ------------------------------------------------------------

const serverArgs = ["serve", "--model", MODEL, "--host", "127.0.0.1", "--port", "0", "--threads", String(THREADS),
  "--parallel", String(PARALLEL), "--max-queue", String(MAX_QUEUE), "--max-body-mb", String(MAX_BODY_MB),
  "--api-key", API_KEY, "--quiet"];
// The server limits glibc to two allocation arenas itself (cmd_serve.cpp:
// one per busy thread kept growing RSS without a leak); MALLOC_ARENA_MAX in
// the environment is passed through and overrides it.
const ARENAS = process.env.MALLOC_ARENA_MAX ?? "unset (the server's 2)";
const child = spawn(BIN, serverArgs, { stdio: ["ignore", "pipe", "pipe"],
  env: { ...process.env, OMP_NUM_THREADS: String(THREADS) } });
let serverOut = "", serverExit = null;
const keepTail = (d) => { serverOut = (serverOut + d).slice(-8000); };
child.stderr.on("data", keepTail);
const exited = new Promise((resolve) => child.on("exit", (code, signal) => { serverExit = { code, signal }; resolve(serverExit); }));
process.on("exit", () => { if (serverExit === null) child.kill("SIGKILL"); });
const port = await new Promise((resolve, reject) => {
  const timer = setTimeout(() => reject(new Error(`the server did not start in 180 s:\n${serverOut}`)), 180_000);
  let out = "";
  child.stdout.on("data", (d) => {
    keepTail(d);
    out += d;
    const m = out.match(/listening on http:\/\/127\.0\.0\.1:(\d+)\//);
    if (m) { clearTimeout(timer); resolve(Number(m[1])); }
  });
  exited.then(() => { clearTimeout(timer); reject(new Error(`the server exited at start (${JSON.stringify(serverExit)}):\n${serverOut}`)); });
});
const URL_BASE = `http://127.0.0.1:${port}`;

function rssMiB() {
  try {
    const m = readFileSync(`/proc/${child.pid}/status`, "utf8").match(/VmRSS:\s+(\d+) kB/);
    return m ? Number(m[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
}

// /health on a connection of its own (closed after), so that it counts as one open connection.
async function health() {
  const r = await raw({ method: "GET", path: "/health", agent: false, headers: { Connection: "close" } }, { deadlineMs: 10_000 });
  if (r.status !== 200) throw new Error(`/health: ${r.status ?? r.error}`);
  return JSON.parse(r.text);
}
for (let i = 0; ; ++i) {
  try { if ((await health()).status === "ok") break; } catch (err) { if (i > 200) throw err; }
  await sleep(50);
}

// ---- requests --------------------------------------------------------------

// A raw request with node:http. Resolves (never rejects) with {status, text,
// ms, firstChunkMs, aborted, hung, error}: `abortAfterMs` cuts it off that long
// after it was sent unless it has ended; the deadline cuts it off as hung.
function raw({ method, path, body, headers = {}, agent, key = API_KEY }, { abortAfterMs, abortOnFirstChunk, deadlineMs = DEADLINE_MS } = {}) {
  return new Promise((resolve) => {
    const t0 = now();
    const out = { status: null, text: "", ms: 0, firstChunkMs: null, aborted: false, hung: false, error: null };
    let settled = false, req = null;
    const timers = [];
    const finish = () => {
      if (settled) return;
      settled = true;
      for (const t of timers) clearTimeout(t);
      out.ms = now() - t0;
      resolve(out);
    };
    const cut = (why) => {
      if (settled) return;
      out[why] = true;
      req.destroy();
      finish();
    };
    const h = { ...headers };
    if (key !== null && h.Authorization === undefined) h.Authorization = `Bearer ${key}`;
    if (body !== undefined) {
      h["Content-Type"] ??= "application/json";
      h["Content-Length"] = Buffer.byteLength(body);
    }
    req = http.request(`${URL_BASE}${path}`, { method, agent, headers: h }, (res) => {
      out.status = res.statusCode;
      res.setEncoding("utf8");
      res.on("data", (d) => {
        if (out.firstChunkMs === null) out.firstChunkMs = now() - t0;
        out.text += d;
        if (abortOnFirstChunk) cut("aborted");
      });
      res.on("end", finish);
      res.on("aborted", () => { out.error ??= "response aborted"; });
      res.on("error", (err) => { out.error ??= err.message; finish(); });
      res.on("close", () => { if (!res.complete) out.error ??= "connection closed before the response ended"; finish(); });
    });
    req.on("error", (err) => {
      // A 413 may come back while the rest of the body is still being written:
      // the write then fails, but the answer is what counts.
      if (out.status !== null) return;
      out.error ??= err.message;
      finish();
    });
    timers.push(setTimeout(() => cut("hung"), deadlineMs));
    if (abortAfterMs !== undefined) timers.push(setTimeout(() => cut("aborted"), abortAfterMs));
    req.end(body);
  });
}

// `data:` events of a server-sent event stream; `done` when it ended with [DONE].
function sse(text) {
  const events = [];
  let done = false;
  for (const block of text.split("\n\n")) {
    const line = block.split("\n").find((l) => l.startsWith("data: "));
    if (!line) continue;
    const data = line.slice(6);
    if (data === "[DONE]") { done = true; continue; }
    try { events.push(JSON.parse(data)); } catch { events.push({ unparsable: data }); }
  }
  return { events, done };
}

function errorOf(text) {
  try { return JSON.parse(text).error ?? null; } catch { return null; }
}

const isRefusal = (status, code) => status === 503 && (code === "queue_full" || code === "queue_timeout");

// Outcomes: ok (the right status and a well-formed body), refused (503
// queue_full / queue_timeout, fine for a valid request), aborted (cut off by
// the client, as planned), hung (past the deadline), bad (anything else).
// `server` is how /health must have counted it: served, rejected or null
// (not known: cut off, or wrong).
const outcome = (result, server, extra = {}) => ({ result, server, ...extra });

// A valid request sent raw: 200 and `check(text)` returning null (fine) or what is wrong.
function judgeValid(r, check, completion = true) {
  if (r.hung) return outcome("hung", null, { note: "no answer within the deadline" });
  if (r.aborted) return outcome("aborted", null);
  if (r.error) return outcome("bad", null, { note: `${r.status ?? "no status"}: ${r.error}` });
  const e = r.status !== 200 ? errorOf(r.text) : null;
  if (completion && isRefusal(r.status, e?.code)) return outcome("refused", "rejected", { status: 503, code: e.code });
  if (r.status !== 200) return outcome("bad", null, { status: r.status, note: `${r.status} ${e?.code}: ${e?.message ?? r.text.slice(0, 200)}` });
  const wrong = check(r.text);
  return wrong ? outcome("bad", null, { status: 200, note: wrong }) : outcome("ok", completion ? "served" : null, { status: 200 });
}

function judgeError(r, status, code, completion) {
  if (r.hung) return outcome("hung", null, { note: "no answer within the deadline" });
  if (r.error && r.status === null) return outcome("bad", null, { note: `no status: ${r.error}` });
  const e = errorOf(r.text);
  if (r.status === status && e?.code === code && e?.type === "invalid_request_error" && typeof e?.message === "string")
    return outcome("ok", completion ? "rejected" : null, { status });
  return outcome("bad", null, { status: r.status, note: `expected ${status} ${code}, got ${r.status} ${e?.code} (${e?.type}): ${e?.message ?? r.text.slice(0, 200)}` });
}

function checkCompletion(text, n) {
  let j;
  try { j = JSON.parse(text); } catch { return "not JSON"; }
  if (j.object !== "chat.completion") return `object ${j.object}`;
  if (!Array.isArray(j.choices) || j.choices.length !== n) return `${j.choices?.length} choices, asked ${n}`;
  for (const [i, c] of j.choices.entries()) {
    if (c.index !== i || c.message?.role !== "assistant" || typeof c.message.content !== "string") return `choice ${i} malformed`;
    if (!["stop", "length"].includes(c.finish_reason)) return `finish_reason ${c.finish_reason}`;
  }
  const u = j.usage;
  if (!u || u.total_tokens !== u.prompt_tokens + u.completion_tokens || !(u.completion_tokens > 0)) return "usage does not add up";
  return null;
}

function checkAsk(text) {
  const { events, done } = sse(text);
  if (!done) return "no [DONE]";
  const error = events.find((e) => e.type === "error" || e.error);
  if (error) return `error event: ${JSON.stringify(error.error)}`;
  const last = events[events.length - 1];
  if (last?.type !== "final" || typeof last.answer !== "string" || !last.trace) return `last event ${last?.type}`;
  if (!events.some((e) => e.type === "agent_started")) return "no agent_started";
  return null;
}

// The official client, one per soak client; deadline and cut-offs by AbortSignal.
async function viaSdk(api, body, { abortOnFirstChunk } = {}) {
  const controller = new AbortController();
  let hung = false, aborted = false;
  const timer = setTimeout(() => { hung = true; controller.abort(); }, DEADLINE_MS);
  const t0 = now();
  try {
    if (!body.stream) {
      const r = await api.chat.completions.create(body, { signal: controller.signal });
      const wrong = checkCompletion(JSON.stringify(r), body.n ?? 1);
      return wrong ? outcome("bad", null, { status: 200, note: wrong }) : outcome("ok", "served", { status: 200, ms: now() - t0 });
    }
    const stream = await api.chat.completions.create(body, { signal: controller.signal });
    const finished = new Set();
    let chunks = 0, usage = null, firstChunkMs = null;
    for await (const chunk of stream) {
      if (firstChunkMs === null) firstChunkMs = now() - t0;
      ++chunks;
      if (chunk.object !== "chat.completion.chunk") return outcome("bad", null, { status: 200, note: `chunk object ${chunk.object}` });
      if (chunk.usage) usage = chunk.usage;
      for (const c of chunk.choices) if (c.finish_reason) finished.add(c.index);
      if (abortOnFirstChunk) { aborted = true; controller.abort(); break; }
    }
    // The official client's stream ends quietly when its signal aborts it.
    if (hung) return outcome("hung", null, { note: "no answer within the deadline" });
    if (aborted) return outcome("aborted", null);
    const n = body.n ?? 1;
    if (finished.size !== n) return outcome("bad", null, { status: 200, note: `${finished.size} of ${n} choices finished (${chunks} chunks)` });
    if (body.stream_options?.include_usage && !(usage?.completion_tokens > 0)) return outcome("bad", null, { status: 200, note: "no usage chunk" });
    return outcome("ok", "served", { status: 200, ms: now() - t0, firstChunkMs });
  } catch (err) {
    if (hung) return outcome("hung", null, { note: "no answer within the deadline" });
    if (aborted) return outcome("aborted", null);
    if (err instanceof OpenAI.APIError && err.status !== undefined) {
      if (isRefusal(err.status, err.code)) return outcome("refused", "rejected", { status: 503, code: err.code });
      return outcome("bad", null, { status: err.status, note: `${err.status} ${err.code}: ${err.message}` });
    }
    return outcome("bad", null, { note: `${err.constructor?.name}: ${err.message}` });
  } finally {
    clearTimeout(timer);
  }
}

// ---- the mix ---------------------------------------------------------------

function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const between = (rand, lo, hi) => lo + Math.floor(rand() * (hi - lo + 1));

let MODEL_ID = null, MAX_CONTEXT = null;

const question = (i, rand) => [{ role: "user", content: `Soak ${i}: what is ${between(rand, 2, 99)} plus ${between(rand, 2, 99)}?` }];
const instantBody = (i, rand, extra = {}) => ({ model: MODEL_ID, messages: question(i, rand), reasoning_effort: "none",
  max_completion_tokens: between(rand, 8, 32), seed: i, ...extra });
const lowBody = (i, rand, extra = {}) => ({ model: MODEL_ID, messages: question(i, rand), reasoning_effort: "low",
  max_completion_tokens: between(rand, 16, 32), seed: i, musespark: { agents: 2 }, ...extra });
// Work that takes long enough to be cut off: 2 agents, up to 600 tokens, no early stops.
const longBody = (i, rand, extra = {}) => ({ model: MODEL_ID, messages: question(i, rand), mode: "thinking", reasoning_effort: "low",
  max_completion_tokens: 600, seed: i, musespark: { agents: 2, early_stop: false, consensus_stop: false }, ...extra });
const post = (path, body, more = {}) => ({ method: "POST", path, body: typeof body === "string" ? body : JSON.stringify(body), ...more });

// group: valid / cancel / malformed; weight: per cent of the requests; completion:
// counted by /health (the two POST routes). run(client, i, rand) -> outcome.
const KINDS = {
  chat_none: { group: "valid", weight: 14, completion: true, plain: true,
    run: (c, i, rand) => viaSdk(c.api, instantBody(i, rand)) },
  chat_low: { group: "valid", weight: 10, completion: true, plain: true,
    run: (c, i, rand) => viaSdk(c.api, lowBody(i, rand)) },
  chat_n2: { group: "valid", weight: 6, completion: true, plain: true,
    run: async (c, i, rand) => {
      const body = rand() < 0.5 ? instantBody(i, rand, { n: 2 }) : lowBody(i, rand, { n: 2 });
      if (rand() < 0.5) return viaSdk(c.api, body);
      const r = await raw(post("/v1/chat/completions", body, { agent: c.agent }));
      return { ...judgeValid(r, (t) => checkCompletion(t, 2)), ms: r.ms };
    } },
  stream_none: { group: "valid", weight: 8, completion: true,
    run: (c, i, rand) => viaSdk(c.api, instantBody(i, rand, { stream: true, ...(rand() < 0.5 ? { stream_options: { include_usage: true } } : {}) })) },
  stream_low: { group: "valid", weight: 8, completion: true,
    run: (c, i, rand) => viaSdk(c.api, lowBody(i, rand, { stream: true, stream_options: { include_usage: true }, ...(rand() < 0.25 ? { n: 2 } : {}) })) },
  ask: { group: "valid", weight: 8, completion: true,
    run: async (c, i, rand) => {
      const r = await raw(post("/v1/musespark/ask", lowBody(i, rand, { max_completion_tokens: between(rand, 16, 32) }), { agent: c.agent }));
      return { ...judgeValid(r, checkAsk), ms: r.ms };
    } },
  health: { group: "valid", weight: 8, completion: false,
    run: async (c) => {
      const r = await raw({ method: "GET", path: "/health", agent: c.agent, key: null });
      return judgeValid(r, (t) => (JSON.parse(t).status === "ok" ? null : `status ${t.slice(0, 100)}`), false);
    } },
  models: { group: "valid", weight: 8, completion: false,
    run: async (c, i, rand) => {
      const one = rand() < 0.3;
      const r = await raw({ method: "GET", path: one ? `/v1/models/${MODEL_ID}` : "/v1/models", agent: c.agent });
      return judgeValid(r, (t) => {
        const j = JSON.parse(t);
        return (one ? j.id : j.data?.[0]?.id) === MODEL_ID ? null : `model list ${t.slice(0, 100)}`;
      }, false);
    } },

  // Cut off by the client: after the first chunk of a stream (the official
  // client's stream, aborted), or a random 5-400 ms after sending (raw).
  cancel_first_chunk: { group: "cancel", weight: 5, completion: true,
    run: (c, i, rand) => viaSdk(c.api, longBody(i, rand, { stream: true }), { abortOnFirstChunk: true }) },
  cancel_stream_late: { group: "cancel", weight: 5, completion: true,
    run: async (c, i, rand) => {
      const ask = rand() < 0.4;
      const r = await raw(post(ask ? "/v1/musespark/ask" : "/v1/chat/completions", longBody(i, rand, ask ? {} : { stream: true }), { agent: c.agent }),
        { abortAfterMs: between(rand, 5, 400) });
      return judgeValid(r, ask ? checkAsk : (t) => (sse(t).done ? null : "no [DONE]"));
    } },
  cancel_plain_late: { group: "cancel", weight: 5, completion: true,
    run: async (c, i, rand) => {
      const r = await raw(post("/v1/chat/completions", longBody(i, rand), { agent: c.agent }), { abortAfterMs: between(rand, 5, 400) });
      return judgeValid(r, (t) => checkCompletion(t, 1));
    } },

  // Malformed: each with its status and code.
  bad_json: { group: "malformed", weight: 1.5, completion: true,
    run: async (c, i, rand) => judgeError(await raw(post("/v1/chat/completions",
      ['{"messages": [', '{"messages": [{"role": "user", "content": "hi"}],}', "not json", ""][between(rand, 0, 3)], { agent: c.agent })),
      400, "invalid_json", true) },
  unknown_parameter: { group: "malformed", weight: 1.5, completion: true,
    run: async (c, i, rand) => judgeError(await raw(post("/v1/chat/completions", instantBody(i, rand, { frobnicate: i }), { agent: c.agent })),
      400, "unknown_parameter", true) },
  wrong_type: { group: "malformed", weight: 1.5, completion: true,
    run: async (c, i, rand) => {
      const wrong = [{ temperature: "hot" }, { messages: "hi" }, { n: "two" }, { max_completion_tokens: "8" }, { stream: 1 }][between(rand, 0, 4)];
      return judgeError(await raw(post("/v1/chat/completions", instantBody(i, rand, wrong), { agent: c.agent })), 400, "invalid_type", true);
    } },
  invalid_value: { group: "malformed", weight: 1.5, completion: true,
    run: async (c, i, rand) => {
      const ask = rand() < 0.5;  // ask answers one choice only
      const body = ask ? instantBody(i, rand, { n: 2 }) : instantBody(i, rand, [{ n: 0 }, { reasoning_effort: "extreme" }, { max_completion_tokens: -1 }][between(rand, 0, 2)]);
      return judgeError(await raw(post(ask ? "/v1/musespark/ask" : "/v1/chat/completions", body, { agent: c.agent })), 400, "invalid_value", true);
    } },
  missing_messages: { group: "malformed", weight: 1.5, completion: true,
    run: async (c, i, rand) => {
      const { messages, ...body } = instantBody(i, rand);
      return judgeError(await raw(post("/v1/chat/completions", body, { agent: c.agent })), 400, "missing_required_parameter", true);
    } },
  context_exceeded: { group: "malformed", weight: 1.5, completion: true,
    run: async (c, i, rand) => {
      const body = instantBody(i, rand, { messages: [{ role: "user", content: " seven".repeat(MAX_CONTEXT + 10) }], ...(rand() < 0.5 ? { stream: true } : {}) });
      return judgeError(await raw(post("/v1/chat/completions", body, { agent: c.agent })), 400, "context_length_exceeded", true);
    } },
  wrong_model: { group: "malformed", weight: 1.5, completion: true,
    run: async (c, i, rand) => judgeError(await raw(post("/v1/chat/completions", instantBody(i, rand, { model: "gpt-4o" }), { agent: c.agent })),
      404, "model_not_found", true) },
  too_large: { group: "malformed", weight: 1.5, completion: true,
    // A fresh connection: the server answers before reading the whole body, then closes it.
    run: async (c, i, rand) => judgeError(await raw(post("/v1/chat/completions",
      instantBody(i, rand, { messages: [{ role: "user", content: "x".repeat(MAX_BODY_MB * 1048576 + between(rand, 1, 200_000)) }] }), { agent: false })),
      413, "request_too_large", true) },
  wrong_key: { group: "malformed", weight: 1.5, completion: true,
    run: async (c, i, rand) => {
      const key = [`${API_KEY}x`, API_KEY.slice(0, -1), "sk-wrong", null][between(rand, 0, 3)];
      return judgeError(await raw(post("/v1/chat/completions", instantBody(i, rand), { agent: c.agent, key })), 401, "invalid_api_key", true);
    } },
  wrong_key_models: { group: "malformed", weight: 0.75, completion: false,
    run: async (c) => judgeError(await raw({ method: "GET", path: "/v1/models", agent: c.agent, key: "sk-wrong" }), 401, "invalid_api_key", false) },
  unknown_route: { group: "malformed", weight: 0.75, completion: false,
    run: async (c) => judgeError(await raw(post("/v1/embeddings", { input: "hi" }, { agent: c.agent })), 404, "not_found", false) },
};

// The plan: each kind its share of `n` (rounded, the rest to chat_none), shuffled.
function plan(n, rand) {
  const wanted = ONLY ? ONLY.split(",") : null;
  const names = Object.keys(KINDS).filter((k) => !wanted || wanted.includes(k) || wanted.includes(KINDS[k].group));
  if (!names.length) throw new Error(`--only ${ONLY}: no such kind or group`);
  const total = names.reduce((s, k) => s + KINDS[k].weight, 0);
  const list = [];
  for (const k of names) for (let j = 0; j < Math.round((n * KINDS[k].weight) / total); ++j) list.push(k);
  while (list.length > n) list.splice(list.lastIndexOf(names[0]), 1);
  while (list.length < n) list.push(names[0]);
  for (let i = list.length - 1; i > 0; --i) {
    const j = Math.floor(rand() * (i + 1));
    [list[i], list[j]] = [list[j], list[i]];
  }
  return list;
}

function makeClient() {
  return {
    agent: new http.Agent({ keepAlive: true, maxSockets: 1 }),
    api: new OpenAI({ baseURL: `${URL_BASE}/v1`, apiKey: API_KEY, maxRetries: 0, timeout: DEADLINE_MS + 10_000 }),
  };
}

// Each client sends one request at a time, pausing (with `paced`) 0 to pace.ms ms, at random, before each.
async function runAll(kinds, clients, firstIndex, { paced = false, onDone = () => {} } = {}) {
  const results = new Array(kinds.length);
  let next = 0;
  await Promise.all(clients.map(async (c, ci) => {
    const pause = mulberry32(SEED * 7919 + ci + firstIndex);
    while (next < kinds.length) {
      if (paced) {
        pace.sum += pace.ms;
        ++pace.n;
        await sleep(pause() * pace.ms);
      }
      if (next >= kinds.length) break;
      const k = next++, i = firstIndex + k;
      const t0 = now();
      let o;
      try {
        o = await KINDS[kinds[k]].run(c, i, mulberry32(SEED * 1_000_003 + i));
      } catch (err) {
        o = outcome("bad", null, { note: `threw: ${err.stack ?? err}` });
      }
      results[k] = { kind: kinds[k], i, ms: now() - t0, ...o };
      if (paced) adjustPace(results[k]);
      onDone(results[k]);
    }
  }));
  return results;
}

// ---- the run ---------------------------------------------------------------

const models = await raw({ method: "GET", path: "/v1/models", agent: false });
const model0 = JSON.parse(models.text).data[0];
MODEL_ID = model0.id;
MAX_CONTEXT = model0.musespark.max_context;
console.log(`soak: ${REQUESTS} requests from ${CLIENTS} clients; ${BIN} serve --model ${MODEL} (${MODEL_ID}, context ${MAX_CONTEXT}) ` +
  `--parallel ${PARALLEL} --max-queue ${MAX_QUEUE} --threads ${THREADS} --max-body-mb ${MAX_BODY_MB} --api-key; pid ${child.pid}, MALLOC_ARENA_MAX=${ARENAS}`);

const clients = Array.from({ length: CLIENTS }, makeClient);
const valid = ["chat_none", "chat_low", "chat_n2", "stream_none", "stream_low", "ask", "health", "models"];
const warm = await runAll(Array.from({ length: WARMUP }, (_, k) => valid[k % valid.length]), clients, 1_000_000);
const warmBad = warm.filter((r) => r.result === "bad" || r.result === "hung");
await waitDrained(30_000);
const before = await health();
const rss = [{ t: 0, mib: rssMiB() }];

const kinds = plan(REQUESTS, mulberry32(SEED));
let done = 0;
const t0 = now();
const sampler = setInterval(async () => {
  const t = (now() - t0) / 1000, mib = rssMiB();
  rss.push({ t, mib });
  try {
    const h = await health();
    console.log(`  t=${t.toFixed(0).padStart(4)} s  done ${String(done).padStart(5)}/${REQUESTS}  rss ${mib.toFixed(1)} MiB  ` +
      `running ${h.running} queued ${h.queued}  connections ${h.connections.open}  pause ≤ ${pace.ms.toFixed(0)} ms`);
  } catch (err) {
    console.log(`  t=${t.toFixed(0).padStart(4)} s  done ${done}/${REQUESTS}  rss ${mib.toFixed(1)} MiB  /health: ${err.message}`);
  }
}, SAMPLE_MS);
const results = await runAll(kinds, clients, 0, { paced: true, onDone: () => { ++done; } });
const wall = (now() - t0) / 1000;
clearInterval(sampler);

// Until nothing runs or waits and the counters add up (a cut-off request
// counts once its handler has noticed); then the open connections once our
// own are closed (the official client's idle ones close on their keep-alive timeout).
async function waitDrained(ms) {
  const t = now();
  for (;;) {
    let h;
    try { h = await health(); } catch { return { h: null, seconds: (now() - t) / 1000 }; }  // the server is gone
    const sum = h.served + h.rejected + h.cancelled + h.failed;
    if ((h.running === 0 && h.queued === 0 && sum === h.received) || now() - t > ms) return { h, seconds: (now() - t) / 1000 };
    await sleep(100);
  }
}
const drained = await waitDrained(60_000);
const openAtEnd = drained.h?.connections.open;
for (const c of clients) c.agent.destroy();
let settled = drained.h;
const settleStart = now();
while (settled && settled.connections.open > 1 && now() - settleStart < 15_000) {
  await sleep(250);
  settled = await health().catch(() => null);
}
const after = settled;
rss.push({ t: (now() - t0) / 1000, mib: rssMiB() });

// The server stops cleanly on SIGTERM.
const aliveAtEnd = serverExit === null;
if (aliveAtEnd) child.kill("SIGTERM");
const stop = await Promise.race([exited, sleep(30_000).then(() => null)]);

// ---- the report ------------------------------------------------------------

const quantile = (xs, q) => {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
};
const fmtMs = (x) => (Number.isFinite(x) ? x.toFixed(0) : "-");
const pad = (s, n) => String(s).padStart(n);

console.log("");
console.log("kind                group       sent    ok   503  cancelled  unexpected   p50 ms   p95 ms");
const totals = { sent: 0, ok: 0, refused: 0, aborted: 0, bad: 0 };
for (const [name, k] of Object.entries(KINDS)) {
  const rs = results.filter((r) => r.kind === name);
  if (!rs.length && ONLY) continue;
  const count = (x) => rs.filter((r) => r.result === x).length;
  const row = { sent: rs.length, ok: count("ok"), refused: count("refused"), aborted: count("aborted"), bad: count("bad") + count("hung") };
  for (const key of Object.keys(totals)) totals[key] += row[key];
  const ms = rs.filter((r) => r.result === "ok").map((r) => r.ms);
  console.log(`${name.padEnd(19)} ${k.group.padEnd(9)} ${pad(row.sent, 6)} ${pad(row.ok, 5)} ${pad(row.refused, 5)} ${pad(row.aborted, 10)} ` +
    `${pad(row.bad, 11)} ${pad(fmtMs(quantile(ms, 0.5)), 8)} ${pad(fmtMs(quantile(ms, 0.95)), 8)}`);
}
console.log(`${"total".padEnd(19)} ${"".padEnd(9)} ${pad(totals.sent, 6)} ${pad(totals.ok, 5)} ${pad(totals.refused, 5)} ${pad(totals.aborted, 10)} ${pad(totals.bad, 11)}`);

const plainMs = results.filter((r) => KINDS[r.kind].plain && r.result === "ok").map((r) => r.ms);
const rssValues = rss.map((s) => s.mib).filter(Number.isFinite);
const rssStart = rss[0].mib, rssEnd = rss[rss.length - 1].mib, rssMax = Math.max(...rssValues);
// The sample nearest the middle of the run, against the end.
const rssMid = rss.reduce((best, x) => (Math.abs(x.t - wall / 2) < Math.abs(best.t - wall / 2) ? x : best), rss[0]);
const d = (key) => after[key] - before[key];
const counters = (h) => `received ${h.received} = served ${h.served} + rejected ${h.rejected} + cancelled ${h.cancelled} + failed ${h.failed}`;

console.log("");
console.log(`valid non-streamed chat (200): ${plainMs.length}, latency p50 ${fmtMs(quantile(plainMs, 0.5))} ms, p95 ${fmtMs(quantile(plainMs, 0.95))} ms`);
console.log(`wall ${wall.toFixed(1)} s, ${(results.length / wall).toFixed(1)} requests/s (${(totals.ok / wall).toFixed(1)} answered as expected/s), ` +
  `slowest request ${(Math.max(...results.map((r) => r.ms)) / 1000).toFixed(1)} s (deadline ${DEADLINE_MS / 1000} s); ` +
  `clients paused up to ${(pace.sum / Math.max(1, pace.n)).toFixed(0)} ms on average before a request (${THINK === "auto" ? `auto, aiming at ${100 * TARGET_503}% 503s` : "fixed"})`);
console.log(`rss MiB: start ${rssStart.toFixed(1)}, max ${rssMax.toFixed(1)}, end ${rssEnd.toFixed(1)}, growth ${(rssEnd - rssStart).toFixed(1)}, ` +
  `in the second half ${(rssEnd - rssMid.mib).toFixed(1)} (from t=${rssMid.t.toFixed(0)} s; ${rss.length} samples` +
  `, server's MALLOC_ARENA_MAX=${ARENAS})`);
console.log(`rss samples (s: MiB): ${rss.map((x) => `${x.t.toFixed(0)}: ${x.mib.toFixed(0)}`).join(", ")}`);
if (after) {
  console.log(`drained: running ${drained.h.running}, queued ${drained.h.queued} after ${drained.seconds.toFixed(1)} s; ` +
    `connections open ${openAtEnd} at the end, ${after.connections.open} once idle (refused ${after.connections.refused}, timed out ${after.connections.timed_out})`);
  console.log(`/health at the end: ${counters(after)}`);
  console.log(`/health during the soak: received ${d("received")}, served ${d("served")}, rejected ${d("rejected")}, cancelled ${d("cancelled")}, failed ${d("failed")}`);
} else console.log("/health: no answer after the run");

// What the client knows of each completion request: answered in full (the
// server counts it served), refused (rejected), or not known (cut off: served
// if it ended first, cancelled, or rejected if a 503 was on its way).
const completions = results.filter((r) => KINDS[r.kind].completion);
const known = { served: completions.filter((r) => r.server === "served").length, rejected: completions.filter((r) => r.server === "rejected").length };
const unknown = completions.length - known.served - known.rejected;
console.log(`client's view of the ${completions.length} completion requests: served ${known.served}, rejected ${known.rejected}, cut off or wrong ${unknown}`);
console.log(`server: ${aliveAtEnd ? `stopped on SIGTERM: ${stop ? `exit ${stop.code}${stop.signal ? ` signal ${stop.signal}` : ""}` : "did not exit in 30 s"}`
  : `DIED during the run: ${JSON.stringify(serverExit)}`}`);

const failures = [];
const bad = results.filter((r) => r.result === "bad" || r.result === "hung");
if (warmBad.length) failures.push(`${warmBad.length} warm-up requests went wrong`);
if (bad.length) failures.push(`${bad.length} unexpected outcomes`);
const hung = results.filter((r) => r.result === "hung").length;
if (hung) failures.push(`${hung} requests hung past ${DEADLINE_MS / 1000} s`);
if (!aliveAtEnd) failures.push("the server died during the run");
else if (!stop) failures.push("the server did not stop in 30 s on SIGTERM");
else if (stop.code !== 0) failures.push(`the server exited ${stop.code ?? stop.signal} on SIGTERM`);
if (!after) failures.push("/health did not answer after the run");
else {
  if (drained.h.running !== 0 || drained.h.queued !== 0) failures.push(`still running ${drained.h.running} / queued ${drained.h.queued} 60 s after the last answer`);
  if (after.served + after.rejected + after.cancelled + after.failed !== after.received) failures.push(`counters do not add up: ${counters(after)}`);
  if (after.failed !== 0) failures.push(`failed ${after.failed}`);
  if (after.connections.open > 2) failures.push(`${after.connections.open} connections still open when idle`);
  if (d("received") < known.served + known.rejected || d("received") > completions.length) failures.push(`received ${d("received")} for ${completions.length} sent, ${known.served + known.rejected} of them answered`);
  if (d("served") < known.served || d("served") > known.served + unknown) failures.push(`served ${d("served")}: the client saw ${known.served} (+ ${unknown} not known)`);
  if (d("rejected") < known.rejected || d("rejected") > known.rejected + unknown) failures.push(`rejected ${d("rejected")}: the client saw ${known.rejected} (+ ${unknown} not known)`);
  if (d("cancelled") > unknown) failures.push(`cancelled ${d("cancelled")} > ${unknown} cut off`);
}
if (aliveAtEnd && !(rssEnd - rssMid.mib <= MAX_LATE_GROWTH_MIB))
  failures.push(`rss grew ${(rssEnd - rssMid.mib).toFixed(1)} MiB in the second half of the run (> ${MAX_LATE_GROWTH_MIB})`);

if (bad.length || warmBad.length) {
  console.log("");
  console.log("unexpected (first 15):");
  for (const r of [...warmBad, ...bad].slice(0, 15)) console.log(`  #${r.i} ${r.kind}: ${r.result} ${r.note ?? ""}`);
}
if (failures.length && serverOut.trim()) console.log(`\nserver output (tail):\n${serverOut.trim().split("\n").slice(-20).join("\n")}`);
console.log("");
console.log(failures.length ? `soak: FAIL (${failures.join("; ")})` : "soak: PASS");
process.exit(failures.length ? 1 : 0);
