// Shared by the server tests: start `musespark serve` on a free loopback port,
// wait until it is healthy, stop it; and make small PNG images.
import { spawn } from "node:child_process";
import { once } from "node:events";
import { deflateSync } from "node:zlib";

export const BIN = process.env.MUSESPARK_BIN;
export const TEXT_MODEL = process.env.MUSESPARK_SERVE_MODEL;
export const VISION_MODEL = process.env.MUSESPARK_SERVE_VISION_MODEL;
export const OUT_DIR = process.env.MUSESPARK_SERVE_OUT;
for (const [name, value] of Object.entries({ BIN, TEXT_MODEL, VISION_MODEL, OUT_DIR }))
  if (!value) throw new Error(`${name} is not set: run these tests through ctest (tests/server/CMakeLists.txt)`);

// Starts a server (port 0: the server picks a free one and prints it).
// `env` adds to the environment. Returns {url, port, child, log(), stop()}.
export async function startServer(model, args = [], env = {}) {
  const child = spawn(BIN, ["serve", "--model", model, "--host", "127.0.0.1", "--port", "0", "--threads", "1", ...args], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, OMP_NUM_THREADS: "1", ...env },
  });
  let stdout = "", stderr = "";
  child.stderr.on("data", (d) => { stderr += d; });
  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the server did not start:\n${stdout}\n${stderr}`)), 120000);
    child.stdout.on("data", (d) => {
      stdout += d;
      const m = stdout.match(/listening on http:\/\/127\.0\.0\.1:(\d+)\//);
      if (m) { clearTimeout(timer); resolve(Number(m[1])); }
    });
    child.on("exit", (code) => { clearTimeout(timer); reject(new Error(`the server exited (${code}):\n${stderr}`)); });
  });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; ; ++i) {
    try {
      const r = await fetch(`${url}/health`);
      if (r.ok && (await r.json()).status === "ok") break;
    } catch (err) {
      if (i > 100) throw err;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    url,
    port,
    child,
    log: () => stderr,
    health: async () => (await fetch(`${url}/health`)).json(),
    async stop() {
      if (child.exitCode !== null) return child.exitCode;
      child.kill("SIGTERM");
      const [code] = await once(child, "exit");
      return code;
    },
  };
}

// Polls `check` (async, returns truthy when done) every 20 ms for up to `ms`.
export async function waitFor(check, ms = 10000, what = "condition") {
  const end = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

// ---- PNG -----------------------------------------------------------------

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; ++k) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(bytes) {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type, data) {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, "latin1");
  data.copy(out, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
  return out;
}

// An RGB PNG of `width` x `height` whose pixel (x, y) is pixel(x, y) -> [r, g, b].
export function png(width, height, pixel) {
  const raw = Buffer.alloc(height * (1 + 3 * width));
  for (let y = 0; y < height; ++y) {
    raw[y * (1 + 3 * width)] = 0;  // filter: none
    for (let x = 0; x < width; ++x) raw.set(pixel(x, y), y * (1 + 3 * width) + 1 + 3 * x);
  }
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header.set([8, 2, 0, 0, 0], 8);  // 8-bit RGB
  return Buffer.concat([Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]), chunk("IHDR", header),
    chunk("IDAT", deflateSync(raw)), chunk("IEND", Buffer.alloc(0))]);
}

// A test picture: a red square on white, with a blue bar.
export function testPicture(width = 64, height = 48) {
  return png(width, height, (x, y) =>
    x > 8 && x < 28 && y > 8 && y < 28 ? [220, 30, 30] : y > 36 && x > 30 ? [40, 60, 200] : [255, 255, 255]);
}

export function dataUrl(pngBytes) { return `data:image/png;base64,${pngBytes.toString("base64")}`; }
