/** tests/ports.ts: the ports handed to daemons are free and outside the kernel's ephemeral range. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import net from "node:net";
import { freePort } from "./ports.ts";

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
