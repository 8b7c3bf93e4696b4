// Load for benchmarks/serve.sh: at each level, `clients` loops send
// chat completions to a musespark server until `requests` have been answered;
// prints requests per second and latency percentiles. Loopback only, bounded.
//
//   node benchmarks/serve_load.mjs http://127.0.0.1:PORT --clients 1,4,16 --requests 24
import http from "node:http";

const [url, ...rest] = process.argv.slice(2);
const option = (name, fallback) => { const i = rest.indexOf(name); return i >= 0 ? rest[i + 1] : fallback; };
const levels = option("--clients", "1,4,16").split(",").map(Number);
const requests = Number(option("--requests", "24"));
if (!/^http:\/\/(127\.\d+\.\d+\.\d+|localhost|\[::1\]):\d+/.test(url || "")) throw new Error("a loopback server URL first");

function body(seed) {
  return JSON.stringify({
    messages: [{ role: "user", content: `Question ${seed}: what is ${seed} times 7?` }],
    mode: "thinking", reasoning_effort: "minimal", seed,
    musespark: { agents: 2, max_thinking_tokens: 32, max_answer_tokens: 16, early_stop: false, trace: true },
  });
}

// node:http rather than fetch: fetch gives up on a response whose headers take
// over 300 s, which a queued request at 16 clients can.
const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
function post(path, data) {
  return new Promise((resolve, reject) => {
    const req = http.request(`${url}${path}`, { method: "POST", agent, headers: { "Content-Type": "application/json" } }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (d) => { text += d; });
      res.on("end", () => resolve({ status: res.statusCode, json: JSON.parse(text) }));
    });
    req.setTimeout(900_000, () => req.destroy(new Error("no answer in 900 s")));
    req.on("error", reject);
    req.end(data);
  });
}

async function one(seed) {
  const t0 = performance.now();
  const r = await post("/v1/chat/completions", body(seed));
  if (r.status !== 200) throw new Error(`${r.status}: ${r.json.error?.message}`);
  return { seconds: (performance.now() - t0) / 1000, tokens: r.json.usage.completion_tokens,
           engine: r.json.choices[0].musespark_trace.usage.total_seconds };
}

const quantile = (sorted, q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];

// Latency is the client's, from sending to the whole answer; "engine" is the
// time inside Engine::ask (the trace's usage.total_seconds): the rest is the
// queue and HTTP.
console.log("clients  requests  seconds  req/s   tok/s    p50 s   p95 s  engine p50 s  errors");
let seed = 1;
await one(seed++);  // warm-up
for (const clients of levels) {
  const latencies = [], engine = [];
  let next = 0, errors = 0, tokens = 0;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: clients }, async () => {
    while (next < requests) {
      ++next;
      try {
        const r = await one(seed++);
        latencies.push(r.seconds);
        engine.push(r.engine);
        tokens += r.tokens;
      } catch (err) {
        ++errors;
        console.error(err.message);
      }
    }
  }));
  const wall = (performance.now() - t0) / 1000;
  latencies.sort((a, b) => a - b);
  engine.sort((a, b) => a - b);
  console.log(`${String(clients).padStart(7)}  ${String(requests).padStart(8)}  ${wall.toFixed(1).padStart(7)}  ` +
    `${(latencies.length / wall).toFixed(2).padStart(5)}  ${(tokens / wall).toFixed(0).padStart(6)}  ` +
    `${quantile(latencies, 0.5).toFixed(2).padStart(7)}  ${quantile(latencies, 0.95).toFixed(2).padStart(6)}  ` +
    `${quantile(engine, 0.5).toFixed(2).padStart(12)}  ${String(errors).padStart(6)}`);
}
