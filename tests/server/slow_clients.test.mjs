// Slow and half-open clients cannot starve the server: each connection has
// bounded header/body/idle times, connections past --max-connections are
// answered 503 at once, and /health keeps answering (serve/connections.hpp).
import { test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { once } from "node:events";

import { startServer, TEXT_MODEL } from "./harness.mjs";

// A raw connection: what it receives, and when the server closed it.
async function connect(port) {
  const socket = net.connect(port, "127.0.0.1");
  await once(socket, "connect");
  const c = { socket, received: "", closedAt: null, opened: Date.now() };
  socket.setEncoding("latin1");
  socket.on("data", (d) => { c.received += d; });
  socket.on("error", () => {});
  c.closed = new Promise((resolve) => socket.on("close", () => { c.closedAt = Date.now(); resolve(); }));
  return c;
}

const halfHeader = "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n";

// fetch with a deadline: a starved server fails the test instead of hanging it.
async function timedFetch(url, ms, init = {}) {
  const started = Date.now();
  const r = await fetch(url, { ...init, signal: AbortSignal.timeout(ms) });
  const body = await r.json();
  return { status: r.status, body, ms: Date.now() - started };
}

test("50 clients that send half a header do not keep /health or a completion from being answered", async () => {
  const server = await startServer(TEXT_MODEL, ["--header-timeout", "30"]);
  try {
    const slow = [];
    for (let i = 0; i < 50; ++i) {
      const c = await connect(server.port);
      c.socket.write(halfHeader);
      slow.push(c);
    }
    await new Promise((r) => setTimeout(r, 200));
    const health = await timedFetch(`${server.url}/health`, 5000);
    assert.equal(health.status, 200);
    assert.ok(health.ms < 2000, `/health took ${health.ms} ms`);
    assert.ok(health.body.connections.open >= 50, JSON.stringify(health.body.connections));
    const answer = await timedFetch(`${server.url}/v1/chat/completions`, 60000, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ messages: [{ role: "user", content: "hi" }], reasoning_effort: "none", max_completion_tokens: 8 }),
    });
    assert.equal(answer.status, 200);
    assert.equal(answer.body.object, "chat.completion");
    for (const c of slow) assert.equal(c.closedAt, null, "a slow client within its header time stays connected");
    for (const c of slow) c.socket.destroy();
  } finally {
    assert.equal(await server.stop(), 0);
  }
});

test("past --max-connections a client gets 503 too_many_connections at once; slow headers and bodies are cut off", async () => {
  const server = await startServer(TEXT_MODEL, [
    "--max-connections", "6", "--header-timeout", "1", "--read-timeout", "1", "--keep-alive-timeout", "0.5",
  ]);
  try {
    // Six connections hold every worker: two with half a header, two that
    // trickle a header byte every 100 ms (each read is quick, the header is
    // never done), two with a whole header and part of the body.
    const held = [];
    for (let i = 0; i < 2; ++i) {
      const c = await connect(server.port);
      c.socket.write(halfHeader);
      held.push(c);
    }
    const trickle = "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: " + "a".repeat(400);
    for (let i = 0; i < 2; ++i) {
      const c = await connect(server.port);
      let at = 0;
      c.timer = setInterval(() => { if (c.closedAt === null && at < trickle.length) c.socket.write(trickle[at++]); }, 100);
      held.push(c);
    }
    for (let i = 0; i < 2; ++i) {
      const c = await connect(server.port);
      c.socket.write(halfHeader + "Content-Length: 100\r\n\r\n{\"messages\":");
      held.push(c);
    }
    await new Promise((r) => setTimeout(r, 150));

    // The seventh is refused at once, in OpenAI's error shape.
    const refused = await timedFetch(`${server.url}/health`, 3000);
    assert.equal(refused.status, 503);
    assert.equal(refused.body.error.code, "too_many_connections");
    assert.equal(refused.body.error.type, "server_error");
    assert.ok(refused.ms < 1000, `the refusal took ${refused.ms} ms`);

    // Every held connection is closed by the server soon after its time.
    await Promise.all(held.map((c) => Promise.race([c.closed, new Promise((r) => setTimeout(r, 5000))])));
    for (const [i, c] of held.entries()) {
      clearInterval(c.timer);
      assert.notEqual(c.closedAt, null, `connection ${i} is still open after 5 s`);
      const lasted = c.closedAt - c.opened;
      assert.ok(lasted >= 800 && lasted < 3000, `connection ${i} was closed after ${lasted} ms`);
      assert.ok(!c.received.startsWith("HTTP/1.1 200"), `connection ${i} was answered: ${c.received.slice(0, 80)}`);
    }

    // Then the server answers again, and counts what happened.
    const health = await timedFetch(`${server.url}/health`, 3000);
    assert.equal(health.status, 200);
    const counts = health.body.connections;
    assert.equal(counts.max, 6);
    assert.ok(counts.refused >= 1, JSON.stringify(counts));
    assert.ok(counts.timed_out >= 6, JSON.stringify(counts));
    assert.ok(counts.open <= 1, JSON.stringify(counts));

    // A kept-alive connection left idle is closed after --keep-alive-timeout.
    const idle = await connect(server.port);
    idle.socket.write("GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    await Promise.race([idle.closed, new Promise((r) => setTimeout(r, 4000))]);
    assert.match(idle.received, /^HTTP\/1\.1 200/);
    assert.notEqual(idle.closedAt, null, "an idle kept-alive connection stays open");
    assert.ok(idle.closedAt - idle.opened < 2500, `idle connection closed after ${idle.closedAt - idle.opened} ms`);
  } finally {
    assert.equal(await server.stop(), 0);
  }
});

test("a kept-alive connection serves several requests in order, and the server stops with slow clients connected", async () => {
  const server = await startServer(TEXT_MODEL, ["--header-timeout", "60"]);
  const c = await connect(server.port);
  for (let i = 0; i < 3; ++i) c.socket.write("GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
  const deadline = Date.now() + 5000;
  while ((c.received.match(/HTTP\/1\.1 200/g) || []).length < 3 && Date.now() < deadline)
    await new Promise((r) => setTimeout(r, 20));
  assert.equal((c.received.match(/HTTP\/1\.1 200/g) || []).length, 3, c.received);
  const slow = await connect(server.port);
  slow.socket.write(halfHeader);
  await new Promise((r) => setTimeout(r, 100));
  const started = Date.now();
  assert.equal(await server.stop(), 0);
  assert.ok(Date.now() - started < 3000, `stopping took ${Date.now() - started} ms with a slow client connected`);
  c.socket.destroy();
  slow.socket.destroy();
});
