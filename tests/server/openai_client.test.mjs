// `musespark serve` through the official `openai` npm client: chat, streaming,
// reasoning effort, images as data URLs, errors, concurrency, the queue and
// cancellation. The model is a tiny random one: answers are gibberish, but
// the same request and seed always give the same answer, which is what the
// tests compare.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import OpenAI from "openai";
import { startServer, waitFor, TEXT_MODEL, VISION_MODEL, testPicture, dataUrl } from "./harness.mjs";

let server, client;

before(async () => {
  server = await startServer(TEXT_MODEL, ["--parallel", "2", "--max-queue", "32", "--max-body-mb", "1"]);
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "unused", maxRetries: 0 });
});

after(async () => {
  assert.equal(await server.stop(), 0, "the server stops cleanly on SIGTERM");
});

// A small Thinking request (3 agents, short budgets) with `extra` on top.
function thinking(question, extra = {}) {
  return {
    model: "text",
    messages: [{ role: "user", content: question }],
    mode: "thinking",
    reasoning_effort: "minimal",
    ...extra,
    musespark: { agents: 3, max_thinking_tokens: 12, max_answer_tokens: 6, ...(extra.musespark || {}) },
  };
}

function instant(question, extra = {}) {
  return { model: "text", messages: [{ role: "user", content: question }], mode: "instant", ...extra,
           musespark: { max_answer_tokens: 12, ...(extra.musespark || {}) } };
}

// Runs a streamed request; returns what its deltas add up to, and the chunks.
async function collect(stream) {
  const out = { reasoning: "", content: "", finish: null, usage: null, trace: null, chunks: [], reasoningDeltas: 0, contentDeltas: 0 };
  for await (const chunk of stream) {
    out.chunks.push(chunk);
    assert.equal(chunk.object, "chat.completion.chunk");
    if (chunk.usage) out.usage = chunk.usage;
    for (const c of chunk.choices) {
      if (c.delta.reasoning_content) { out.reasoning += c.delta.reasoning_content; out.reasoningDeltas++; }
      if (c.delta.content) { out.content += c.delta.content; out.contentDeltas++; }
      if (c.finish_reason) out.finish = c.finish_reason;
      if (c.musespark_trace) out.trace = c.musespark_trace;
    }
  }
  return out;
}

async function expectError(promise, status, code, param) {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof OpenAI.APIError, `an APIError, got ${err}`);
    assert.equal(err.status, status, err.message);
    if (code !== undefined) assert.equal(err.code, code, err.message);
    if (param !== undefined) assert.equal(err.param, param, err.message);
    assert.equal(typeof err.error.message, "string");
    assert.ok(["invalid_request_error", "server_error"].includes(err.type));
    return err;
  }
  assert.fail(`expected a ${status} error`);
}

test("lists its one model and reports health", async () => {
  const models = await client.models.list();
  assert.equal(models.data.length, 1);
  const m = models.data[0];
  assert.equal(m.id, "text");
  assert.equal(m.object, "model");
  assert.equal(m.musespark.vision, false);
  assert.equal((await client.models.retrieve("text")).id, "text");
  await expectError(client.models.retrieve("nope"), 404, "model_not_found");
  const health = await server.health();
  assert.equal(health.status, "ok");
  assert.equal(health.parallel, 2);
});

test("answers a chat completion with reasoning apart, usage and the trace", async () => {
  const r = await client.chat.completions.create(thinking("What is 2+2?", { seed: 11, musespark: { trace: true } }));
  assert.equal(r.object, "chat.completion");
  assert.match(r.id, /^chatcmpl-/);
  assert.equal(r.model, "text");
  assert.equal(r.choices.length, 1);
  const [choice] = r.choices;
  assert.equal(choice.message.role, "assistant");
  assert.equal(typeof choice.message.content, "string");
  assert.match(choice.message.reasoning_content, /^agent \d/);
  assert.match(choice.message.reasoning_content, /vote: /);
  assert.ok(["stop", "length"].includes(choice.finish_reason));

  const t = choice.musespark_trace;
  assert.equal(t.schema_version, 1);
  assert.equal(t.request.mode, "thinking");
  assert.equal(t.request.agents, 3);
  assert.equal(t.request.seed, 11);
  assert.equal(t.agents.length, 3);
  if (t.final_agent >= 0) assert.equal(choice.message.content, t.final_text.trim());
  const winner = t.agents.find((a) => a.id === t.final_agent);
  assert.equal(r.usage.prompt_tokens, t.usage.prompt_tokens);
  assert.equal(r.usage.completion_tokens, t.usage.generated_tokens);
  assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);
  assert.equal(r.usage.completion_tokens_details.reasoning_tokens,
    r.usage.completion_tokens - (winner ? winner.answer_tokens : 0));

  // The same request and seed: the same message. n: more choices, the first the same.
  const again = await client.chat.completions.create(thinking("What is 2+2?", { seed: 11 }));
  assert.equal(again.choices[0].message.content, choice.message.content);
  assert.equal(again.choices[0].message.reasoning_content, choice.message.reasoning_content);
  assert.equal(again.choices[0].musespark_trace, undefined);
  const two = await client.chat.completions.create(thinking("What is 2+2?", { seed: 11, n: 2 }));
  assert.deepEqual(two.choices.map((c) => c.index), [0, 1]);
  assert.equal(two.choices[0].message.reasoning_content, choice.message.reasoning_content);
  assert.notEqual(two.choices[1].message.reasoning_content, choice.message.reasoning_content);
  assert.ok(two.usage.completion_tokens > r.usage.completion_tokens);
});

test("streams reasoning_content and content deltas, then usage: the same message as without streaming", async () => {
  const request = thinking("Why is the sky blue?", { seed: 5 });
  const streamed = await collect(await client.chat.completions.create(
    { ...request, stream: true, stream_options: { include_usage: true } }));
  const first = streamed.chunks[0].choices[0];
  assert.equal(first.delta.role, "assistant");
  assert.ok(streamed.reasoningDeltas >= 4, "the agents' reasoning arrives as it happens");
  const last = streamed.chunks[streamed.chunks.length - 1];
  assert.deepEqual(last.choices, []);
  assert.ok(last.usage.completion_tokens > 0);
  assert.ok(streamed.chunks.slice(0, -1).every((c) => c.usage === null));

  const whole = await client.chat.completions.create(request);
  assert.equal(streamed.reasoning, whole.choices[0].message.reasoning_content);
  assert.equal(streamed.content, whole.choices[0].message.content);
  assert.equal(streamed.finish, whole.choices[0].finish_reason);
  assert.deepEqual(streamed.usage, whole.usage);

  // Instant: one agent, its answer streamed token by token.
  const live = await collect(await client.chat.completions.create({ ...instant("Say hi."), stream: true }));
  assert.ok(live.contentDeltas >= 3, `content arrives token by token (${live.contentDeltas} deltas)`);
  const plain = await client.chat.completions.create(instant("Say hi."));
  assert.equal(live.content, plain.choices[0].message.content);
  assert.equal(plain.usage.completion_tokens_details.reasoning_tokens, 0);

  // The trace comes with the last chunk of the choice.
  const traced = await collect(await client.chat.completions.create({ ...request, stream: true, musespark: { ...request.musespark, trace: true } }));
  assert.equal(traced.trace.request.seed, 5);
  assert.equal(traced.content, streamed.content);
});

test("stop strings cut the content", async () => {
  const full = (await client.chat.completions.create(instant("Tell me a story."))).choices[0].message.content;
  assert.ok(full.length >= 6, `need some text to cut: "${full}"`);
  const stop = full.slice(3, 5);
  const expected = full.slice(0, full.indexOf(stop)).trim();
  const cut = await client.chat.completions.create(instant("Tell me a story.", { stop: [stop, "never-there"] }));
  assert.equal(cut.choices[0].message.content, expected);
  assert.equal(cut.choices[0].finish_reason, "stop");
  const streamed = await collect(await client.chat.completions.create(instant("Tell me a story.", { stop, stream: true })));
  assert.equal(streamed.content, expected);
});

test("reasoning_effort and max_completion_tokens set the engine's budgets", async () => {
  const trace = async (extra) =>
    (await client.chat.completions.create({
      model: "text", messages: [{ role: "user", content: "2+2?" }], seed: 3, ...extra,
      musespark: { trace: true, max_answer_tokens: 3, ...(extra.musespark || {}) },
    })).choices[0].musespark_trace;
  const minimal = await trace({ mode: "thinking", reasoning_effort: "minimal", musespark: { max_thinking_tokens: 4 } });
  assert.equal(minimal.request.effort, "minimal");
  assert.equal(minimal.request.agents, 2);
  const low = await trace({ mode: "thinking", reasoning_effort: "low", musespark: { max_thinking_tokens: 4 } });
  assert.equal(low.request.effort, "low");
  assert.equal(low.request.agents, 4);
  const byEffort = await trace({ mode: "thinking", reasoning_effort: "minimal", musespark: { agents: 1, early_stop: false } });
  assert.equal(byEffort.request.max_thinking_tokens, 128);
  const none = await trace({ reasoning_effort: "none" });
  assert.equal(none.request.mode, "instant");
  const capped = await trace({ mode: "thinking", max_completion_tokens: 20, musespark: { agents: 2 } });
  assert.equal(capped.request.max_total_tokens, 20);
  const legacy = await trace({ mode: "instant", max_tokens: 7 });
  assert.equal(legacy.request.max_total_tokens, 7);
});

test("takes an image as a data URL, and the agents can zoom into it", async () => {
  const vision = await startServer(VISION_MODEL);
  try {
    const v = new OpenAI({ baseURL: `${vision.url}/v1`, apiKey: "unused", maxRetries: 0 });
    const picture = testPicture(64, 48);
    const withImage = (text, extra = {}) => ({
      messages: [{ role: "user", content: [{ type: "image_url", image_url: { url: dataUrl(picture) } }, { type: "text", text }] }],
      mode: "thinking", seed: 2, ...extra,
      musespark: { agents: 2, max_thinking_tokens: 10, max_answer_tokens: 4, trace: true, ...(extra.musespark || {}) },
    });
    const r = await v.chat.completions.create(withImage("What is in the picture?",
      { musespark: { assistant_prefix: "<zoom>(0,0),(500,500)</zoom>" } }));
    const t = r.choices[0].musespark_trace;
    const zooms = t.visual_actions.filter((a) => a.kind === "zoom");
    assert.equal(zooms.length, 2, "each agent zoomed once");
    for (const z of zooms) {
      assert.deepEqual(z.box, [0, 0, 32, 24]);
      assert.equal(z.applied, true);
    }
    const textOnly = await v.chat.completions.create({ messages: [{ role: "user", content: "What is in the picture?" }],
      mode: "instant", musespark: { max_answer_tokens: 2 } });
    assert.ok(r.usage.prompt_tokens > textOnly.usage.prompt_tokens, "the image is in the prompt");

    // Bad images: not base64, not an image, a URL to fetch.
    const bad = (url) => v.chat.completions.create({ messages: [{ role: "user", content: [{ type: "image_url", image_url: { url } }] }] });
    await expectError(bad("data:image/png;base64,%%%"), 400, "invalid_value", "messages[0].content[0].image_url.url");
    await expectError(bad("data:image/png;base64,aGVsbG8gd29ybGQ="), 400, "invalid_image", "messages[0].content[0].image_url.url");
    await expectError(bad("https://example.com/cat.png"), 400, "unsupported_value");
  } finally {
    assert.equal(await vision.stop(), 0);
  }
});

test("bad requests get OpenAI error objects and status codes, and the server goes on", async () => {
  await expectError(client.chat.completions.create({ ...thinking("hi"), frobnicate: 1 }), 400, "unknown_parameter", "frobnicate");
  await expectError(client.chat.completions.create({ ...thinking("hi"), temperature: "hot" }), 400, "invalid_type", "temperature");
  await expectError(client.chat.completions.create({ ...thinking("hi"), n: 0 }), 400, "invalid_value", "n");
  await expectError(client.chat.completions.create({ ...thinking("hi"), logprobs: true }), 400, "unsupported_parameter", "logprobs");
  await expectError(client.chat.completions.create({ ...thinking("hi"), reasoning_effort: "extreme" }), 400, "invalid_value");
  await expectError(client.chat.completions.create({ ...thinking("hi"), messages: [{ role: "tool", content: "x" }] }), 400,
    "unsupported_parameter", "messages[0].role");
  await expectError(client.chat.completions.create({ ...thinking("hi"), model: "gpt-4o" }), 404, "model_not_found", "model");
  await expectError(client.chat.completions.create({ ...thinking("hi"), messages: [{ role: "user", content: [
    { type: "text", text: "What is this?" }, { type: "image_url", image_url: { url: dataUrl(testPicture(8, 8)) } }] }] }),
    400, "unsupported_value", "messages[0].content[1]");
  await expectError(client.chat.completions.create({ ...thinking("hi"), stream: true, mode: "sideways" }), 400, "invalid_value", "mode");
  await expectError(client.chat.completions.create(thinking("x".repeat(1_200_000))), 413, "request_too_large");

  const raw = async (path, init) => {
    const r = await fetch(`${server.url}${path}`, init);
    return { status: r.status, body: await r.json() };
  };
  const malformed = await raw("/v1/chat/completions", { method: "POST", body: '{"messages": [', headers: { "Content-Type": "application/json" } });
  assert.equal(malformed.status, 400);
  assert.equal(malformed.body.error.code, "invalid_json");
  assert.equal(malformed.body.error.type, "invalid_request_error");
  assert.ok("param" in malformed.body.error);
  const nested = await raw("/v1/chat/completions", { method: "POST", body: "[".repeat(100000) });
  assert.equal(nested.status, 400);
  const route = await raw("/v1/embeddings", { method: "POST", body: "{}" });
  assert.equal(route.status, 404);
  assert.equal(route.body.error.code, "not_found");

  // A prompt longer than the model's context: OpenAI's code, and a message
  // that names the prompt's tokens and the limit.
  const models = await client.models.list();
  const maxContext = models.data[0].musespark.max_context;
  const overflow = await expectError(client.chat.completions.create(instant(" seven".repeat(maxContext + 10))), 400,
    "context_length_exceeded", "messages");
  assert.match(overflow.error.message, new RegExp(`the prompt is \\d+ tokens; this model's context is ${maxContext} tokens`));
  await expectError(client.chat.completions.create({ ...instant(" seven".repeat(maxContext + 10)), stream: true }), 400,
    "context_length_exceeded");

  const health = await server.health();
  assert.equal(health.status, "ok");
  assert.equal(health.failed, 0, "refusals are not failures");
  assert.ok(health.rejected >= 14, `every refusal counted (${health.rejected})`);
  assert.equal(health.served + health.rejected + health.cancelled + health.failed, health.received,
    `the counts add up: ${JSON.stringify(health)}`);
});

test("--api-key and MUSESPARK_API_KEY require the key on /v1/, compared whole; /health and the viewer stay open", async () => {
  for (const [args, env] of [[["--api-key", "sk-test-1234"], {}], [[], { MUSESPARK_API_KEY: "sk-test-1234" }]]) {
    const locked = await startServer(TEXT_MODEL, args, env);
    try {
      const right = new OpenAI({ baseURL: `${locked.url}/v1`, apiKey: "sk-test-1234", maxRetries: 0 });
      const reply = await right.chat.completions.create(instant("hi", { seed: 3 }));
      assert.equal(reply.choices.length, 1);
      assert.equal((await right.models.list()).data.length, 1);
      for (const key of ["sk-test-123", "sk-test-12345", "sk-test-1235", "x"]) {
        const wrong = new OpenAI({ baseURL: `${locked.url}/v1`, apiKey: key, maxRetries: 0 });
        const e = await expectError(wrong.chat.completions.create(instant("hi")), 401, "invalid_api_key");
        assert.equal(e.type, "invalid_request_error");
        await expectError(wrong.models.list(), 401, "invalid_api_key");
      }
      const bare = await fetch(`${locked.url}/v1/chat/completions`, { method: "POST", body: JSON.stringify(instant("hi")) });
      assert.equal(bare.status, 401);
      const body = await bare.json();
      assert.equal(body.error.code, "invalid_api_key");
      assert.match(body.error.message, /Bearer/);
      assert.equal((await fetch(`${locked.url}/health`)).status, 200);
      assert.equal((await fetch(`${locked.url}/`)).status, 200);
      // Refused requests leave the kept-alive connection usable: the next one on it is answered.
      const after = await right.chat.completions.create(instant("hi", { seed: 3 }));
      assert.equal(after.choices[0].message.content, reply.choices[0].message.content);
      const h = await locked.health();
      assert.equal(h.rejected, 5);
      assert.equal(h.served, 2);
      assert.equal(h.received, 7);
    } finally {
      assert.equal(await locked.stop(), 0);
    }
  }
});

test("concurrent requests from several clients each get their own answer", async () => {
  const requests = [];
  for (let c = 0; c < 4; ++c)
    for (let k = 0; k < 2; ++k)
      requests.push({ client: c, stream: (c + k) % 2 === 1,
        body: thinking(`Question ${k} from client ${c}: what is ${c} + ${k}?`, { seed: 100 + 10 * c + k }) });
  // One at a time first: what each request answers alone.
  const alone = [];
  for (const r of requests) alone.push((await client.chat.completions.create(r.body)).choices[0].message);

  const clients = [0, 1, 2, 3].map(() => new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "unused", maxRetries: 0 }));
  let watching = true, maxRunning = 0, maxQueued = 0;
  const watcher = (async () => {
    while (watching) {
      const h = await server.health();
      maxRunning = Math.max(maxRunning, h.running);
      maxQueued = Math.max(maxQueued, h.queued);
      await new Promise((r) => setTimeout(r, 10));
    }
  })();
  const together = await Promise.all(requests.map(async (r) => {
    const api = clients[r.client];
    if (!r.stream) return (await api.chat.completions.create(r.body)).choices[0].message;
    const s = await collect(await api.chat.completions.create({ ...r.body, stream: true }));
    return { content: s.content, reasoning_content: s.reasoning };
  }));
  watching = false;
  await watcher;
  requests.forEach((r, i) => {
    assert.equal(together[i].content, alone[i].content, `request ${i} (client ${r.client}): content`);
    assert.equal(together[i].reasoning_content, alone[i].reasoning_content, `request ${i} (client ${r.client}): reasoning`);
  });
  assert.equal(new Set(alone.map((m) => m.reasoning_content)).size, requests.length, "every request reasoned its own way");
  assert.ok(maxRunning <= 2, `at most --parallel requests run at once (saw ${maxRunning})`);
  assert.ok(maxQueued >= 1, "the others waited in the queue");
});

test("a full queue answers 503, and a client that goes away stops its work", async () => {
  const busy = await startServer(TEXT_MODEL, ["--parallel", "1", "--max-queue", "1"]);
  try {
    const api = new OpenAI({ baseURL: `${busy.url}/v1`, apiKey: "unused", maxRetries: 0 });
    // Minutes of work for this machine: 8 agents x 1500 tokens, no early stops.
    const long = thinking("Think for a long time.", { seed: 1, musespark: { agents: 8, max_thinking_tokens: 1500, max_answer_tokens: 200, early_stop: false, consensus_stop: false } });

    // A streaming client takes the only slot...
    const aborter = new AbortController();
    const stream = await api.chat.completions.create({ ...long, stream: true }, { signal: aborter.signal });
    const reader = stream[Symbol.asyncIterator]();
    assert.equal((await reader.next()).value.choices[0].delta.role, "assistant");
    await waitFor(async () => (await busy.health()).running === 1, 30000, "the stream to run");
    // ...a second waits in the queue, a third is refused.
    const queued = api.chat.completions.create(thinking("Short one.", { seed: 2 }));
    await waitFor(async () => (await busy.health()).queued === 1, 30000, "the second request to queue");
    const refused = await expectError(api.chat.completions.create(thinking("One too many.")), 503, "queue_full");
    assert.equal(refused.headers.get("retry-after"), "1", "a 503 says when to try again");
    assert.equal((await busy.health()).rejected, 1);
    assert.equal((await busy.health()).failed, 0, "a full queue is a refusal, not a failure");

    // The streaming client leaves: its agents stop and the queued request runs.
    const left = Date.now();
    aborter.abort();
    const answer = await queued;
    assert.equal(answer.choices.length, 1);
    assert.ok(Date.now() - left < 60000, "the abandoned stream stopped long before its budget (minutes)");
    await waitFor(async () => (await busy.health()).cancelled === 1, 30000, "the stream to count as cancelled");

    // The same for a client that is not streaming: the server notices the closed connection.
    const gone = new AbortController();
    const pending = fetch(`${busy.url}/v1/chat/completions`, { method: "POST", body: JSON.stringify(long), signal: gone.signal })
      .catch((err) => err.name);
    await waitFor(async () => (await busy.health()).running === 1, 30000, "the request to run");
    gone.abort();
    assert.equal(await pending, "AbortError");
    await waitFor(async () => { const h = await busy.health(); return h.running === 0 && h.cancelled === 2; }, 5000,
      "the server to stop the abandoned request");
  } finally {
    assert.equal(await busy.stop(), 0);
  }
});
