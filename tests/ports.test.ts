/**
 * tests/ports.ts: the ports handed to daemons are free and outside the kernel's ephemeral range; the machine-wide
 * lock has one holder, across processes on every Node `npm test` uses.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import net from "node:net";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath, pathToFileURL } from "node:url";
import { freePort, takePortLock } from "./ports.ts";

test("freePort: below the ephemeral range, and a server can listen on it", async () => {
  let ephemeralLow = 32768;
  try {
    ephemeralLow = Number(readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/)[0]);
  } catch { /* not Linux: the default is assumed */ }
  const picked = new Set<number>();
  for (let i = 0; i < 20; i++) {
    const port = await freePort();
    assert.ok(Number.isInteger(port) && port >= 1024 && port < ephemeralLow, `port ${port}`);
    picked.add(port);
    const server = net.createServer();
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, "127.0.0.1", resolve);
    });
    await new Promise((resolve) => server.close(resolve));
  }
  assert.ok(picked.size > 1, "picked at random, not one fixed port");
});

const ROOT = fileURLToPath(new URL("..", import.meta.url));
/** The Nodes `npm test` runs the suite on, those installed: they run at the same time and must share one lock. */
const NODES = [
  process.env.npm_node_execpath ?? "node",
  ...["node22", "node24", "node-min"].map((name) => join(ROOT, "node_modules", name, "bin", "node")).filter(existsSync),
];

/** Tries the lock on `port` from another process under `node`: "taken" or "busy". */
function tryLockFrom(node: string, port: number): Promise<string> {
  const probe = `import { takePortLock } from ${JSON.stringify(pathToFileURL(join(ROOT, "tests", "ports.ts")).href)};
try {
  const lock = await takePortLock(${port}, 0, "a test");
  console.log("taken");
  await lock.release();
} catch (err) {
  console.log(/still held/.test(String(err)) ? "busy" : String(err));
}`;
  return new Promise((resolve, reject) => {
    execFile(
      node,
      ["--import", "tsx", "--input-type=module", "--eval", probe],
      { cwd: ROOT, timeout: 30_000 },
      (err, stdout, stderr) => err ? reject(new Error(`${node}: ${err.message}\n${stderr}`)) : resolve(stdout.trim()),
    );
  });
}

test("takePortLock: one holder machine-wide, whatever Node each process runs on", async () => {
  const port = await freePort();
  const lock = await takePortLock(port, 0, "a test");
  try {
    await assert.rejects(
      takePortLock(port, 300, "a test"),
      new RegExp(`^Error: the lock for a test \\(127\\.0\\.0\\.1:${port}\\) is still held after 300 ms`),
    );
    for (const node of NODES) assert.equal(await tryLockFrom(node, port), "busy", node);
  } finally {
    await lock.release();
  }
  for (const node of NODES) assert.equal(await tryLockFrom(node, port), "taken", node);
  const again = await takePortLock(port, 0, "a test");
  await again.release();
});
