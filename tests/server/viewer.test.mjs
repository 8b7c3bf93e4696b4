// The trace viewer in a real browser: Debian's chromium, headless, driven by
// playwright-core. Screenshots go to build/test-tmp/serve-out/.
//
// Chromium runs as root here, so without its sandbox (--no-sandbox, which
// playwright passes by default); background networking is off because the
// machine has no network beyond loopback.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { startServer, waitFor, BIN, VISION_MODEL, OUT_DIR, testPicture } from "./harness.mjs";

let server, browser;
const picture = join(OUT_DIR, "picture.png");

before(async () => {
  mkdirSync(OUT_DIR, { recursive: true });
  writeFileSync(picture, testPicture(96, 64));
  server = await startServer(VISION_MODEL);
  browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: ["--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking", "--disable-component-update",
      "--disable-sync", "--no-first-run", "--disable-quic"],
  });
});

after(async () => {
  await browser?.close();
  if (server) assert.equal(await server.stop(), 0);
});

// A page on the viewer, collecting every script error and console error.
async function openViewer() {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.setDefaultTimeout(120000);  // a shared, loaded machine can be slow
  const problems = [];
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("console", (m) => { if (m.type() === "error") problems.push(`console: ${m.text()}`); });
  await page.goto(`${server.url}/`);
  await page.waitForFunction(() => document.getElementById("model-name").textContent.includes("vision"));
  return { page, problems };
}

async function shownError(page) {
  return page.$eval("#error", (e) => (e.hidden ? "" : e.textContent));
}

async function waitUntilSettled(page) {
  await page.waitForFunction(() => ["done", "error", "idle"].includes(document.body.dataset.state) &&
    document.getElementById("ask").disabled === false, null, { timeout: 120000 });
}

test("asks a question and shows the agents live, their confidence, the vote, the zooms and the answer", async () => {
  const { page, problems } = await openViewer();
  await page.fill("#question", "How many red squares are there?");
  await page.selectOption("#mode", "thinking");
  await page.selectOption("#effort", "minimal");
  await page.fill("#agents", "3");
  await page.fill("#thinking-tokens", "24");
  await page.fill("#seed", "7");
  await page.fill("#prefix", "<zoom>(100,100),(600,700)</zoom>");
  await page.setInputFiles("#image", picture);
  await page.waitForSelector("#image-panel:not([hidden])");
  // Count the agent cards seen while the answer is still being worked out.
  await page.evaluate(() => {
    window.agentsSeenLive = 0;
    new MutationObserver(() => {
      if (document.body.dataset.state === "running")
        window.agentsSeenLive = Math.max(window.agentsSeenLive, document.querySelectorAll(".agent").length);
    }).observe(document.body, { subtree: true, childList: true, attributes: true });
  });
  await page.click("#ask");
  await waitUntilSettled(page);
  await page.screenshot({ path: join(OUT_DIR, "viewer-live.png"), fullPage: true });

  assert.equal(await shownError(page), "");
  assert.equal(await page.getAttribute("body", "data-state"), "done");
  assert.equal(await page.evaluate(() => window.agentsSeenLive), 3, "the agents appear while they work");
  assert.equal(await page.locator(".agent").count(), 3);
  assert.notEqual((await page.textContent("#final-answer")).trim(), "");
  assert.ok(await page.locator(".vote-row").count() >= 1, "the vote is shown");
  const lines = await page.$$eval(".agent polyline", (ps) => ps.map((p) => p.getAttribute("points").split(" ").length));
  assert.ok(lines.every((n) => n >= 10), `a confidence line per agent (${lines})`);
  assert.equal(await page.locator("#image-view rect.zoom").count(), 3, "each agent's zoom is drawn on the image");
  assert.ok(await page.isVisible("#save-trace"));
  assert.deepEqual(problems, []);
  await page.close();
});

test("opens a saved trace (musespark ask --json) and shows it the same way", async () => {
  const traceFile = join(OUT_DIR, "saved-trace.json");
  const json = execFileSync(BIN, ["ask", "--model", VISION_MODEL, "--threads", "1", "--image", picture, "--mode", "thinking",
    "--agents", "4", "--max-thinking-tokens", "16", "--max-answer-tokens", "6", "--seed", "3", "--token-confidence",
    "--prefix", "<zoom>(0,0),(500,500)</zoom>", "--quiet", "--json", "What is red?"], { env: { ...process.env, OMP_NUM_THREADS: "1" } });
  writeFileSync(traceFile, json);
  const trace = JSON.parse(json);

  const { page, problems } = await openViewer();
  await page.setInputFiles("#image", picture);  // to draw the zooms on
  await page.waitForSelector("#image-panel:not([hidden])");
  await page.setInputFiles("#trace-file", traceFile);
  await page.waitForFunction(() => document.body.dataset.state === "done");
  await page.screenshot({ path: join(OUT_DIR, "viewer-saved.png"), fullPage: true });

  assert.equal(await shownError(page), "");
  assert.equal(await page.locator(".agent").count(), trace.agents.length);
  assert.equal((await page.textContent("#final-answer")).trim(), (trace.final_text || trace.final_answer || "(no answer)").trim());
  assert.equal(await page.locator(".vote-row").count(), trace.votes.length);
  assert.equal(await page.inputValue("#question"), "What is red?");
  assert.equal(await page.locator("#image-view rect").count(), trace.visual_actions.length);
  for (const a of trace.agents) {
    const card = page.locator(`.agent[data-agent="${a.id}"]`);
    assert.equal(await card.locator(".state").textContent(), a.stop_reason);
    assert.equal(await card.locator("pre.thinking").textContent(), a.thinking);
  }
  const winner = await page.getAttribute(".agent.winner", "data-agent").catch(() => null);
  assert.equal(winner === null ? -1 : Number(winner), trace.final_agent);

  // Something that is not a trace is an error on the page, not a crash.
  const notATrace = join(OUT_DIR, "not-a-trace.json");
  writeFileSync(notATrace, '{"hello": 1}');
  await page.setInputFiles("#trace-file", notATrace);
  await page.waitForSelector("#error:not([hidden])");
  assert.match(await shownError(page), /not a musespark trace/);
  assert.deepEqual(problems, []);
  await page.close();
});

test("the Stop button cancels the agents on the server", async () => {
  const { page, problems } = await openViewer();
  await page.fill("#question", "Think for a long time.");
  await page.selectOption("#mode", "thinking");
  // Long enough that the page sees its first agent while the agents still
  // run, even when the browser gets little CPU beside the server (4 agents
  // of this 151,680-token model now take only a few seconds: with ctest -j2
  // the page sometimes drew its first card after the answer had come).
  await page.fill("#agents", "16");
  await page.fill("#thinking-tokens", "1500");
  await page.click("#ask");
  await page.waitForSelector(".agent");
  await page.click("#stop");
  await waitUntilSettled(page);
  assert.equal(await page.getAttribute("body", "data-state"), "idle");
  assert.equal(await shownError(page), "");
  await waitFor(async () => { const h = await server.health(); return h.running === 0 && h.cancelled === 1; }, 30000,
    "the server to cancel the request");
  assert.deepEqual(problems, []);
  await page.close();
});

test("on a server started with --api-key the page asks for the key and sends it", async () => {
  const keyed = await startServer(VISION_MODEL, ["--api-key", "viewer-secret"]);
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    page.setDefaultTimeout(120000);
    const problems = [];
    page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
    // The browser logs each 401 it gets as a console error: those are expected here.
    page.on("console", (m) => { if (m.type() === "error" && !m.text().includes("401")) problems.push(`console: ${m.text()}`); });
    await page.goto(`${keyed.url}/`);
    await page.waitForSelector("#api-key-label:not([hidden])");
    assert.match(await page.textContent("#status"), /wants an API key/);
    assert.equal(await page.textContent("#model-name"), "");

    await page.fill("#api-key", "wrong");
    await page.dispatchEvent("#api-key", "change");
    await page.waitForFunction(() => document.getElementById("status").textContent.includes("refused"));
    assert.equal(await page.textContent("#model-name"), "");

    await page.fill("#api-key", "viewer-secret");
    await page.dispatchEvent("#api-key", "change");
    await page.waitForFunction(() => document.getElementById("model-name").textContent.includes("vision"));
    await page.fill("#question", "How many red squares are there?");
    await page.selectOption("#mode", "instant");
    await page.selectOption("#effort", "minimal");
    await page.click("#ask");
    await waitUntilSettled(page);
    assert.equal(await shownError(page), "");
    assert.equal(await page.getAttribute("body", "data-state"), "done");
    assert.deepEqual(problems, []);
    await page.close();
  } finally {
    assert.equal(await keyed.stop(), 0);
  }
});
