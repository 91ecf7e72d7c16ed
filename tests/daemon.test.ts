/**
 * tests/daemon.ts: listensOnLoopback tells a daemon listening without
 * connecting to it, also while the daemon opens and closes files (as HAProxy
 * does starting up). When it could not tell, the HAProxy harness fell back to
 * a probe connection, which HAProxy passed on to the server behind it as a
 * session of its own: the stray sessions some proxy tests saw.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import process from "node:process";
import { listensOnLoopback } from "./daemon.ts";
import { freePort } from "./ports.ts";

const CHURN = `
const net = require("node:net");
const fs = require("node:fs");
net.createServer().listen(Number(process.argv[1]), "127.0.0.1", () => {
  console.log("listening");
  const churn = () => { for (let i = 0; i < 50; i++) fs.closeSync(fs.openSync("/dev/null", "r")); setImmediate(churn); };
  churn();
});
`;

test("listensOnLoopback: true all along for a listener that keeps opening and closing files", {
  skip: process.platform !== "linux" ? "reads /proc (Linux)" : false,
  timeout: 60_000,
}, async () => {
  const port = await freePort();
  const child = spawn("node", ["-e", CHURN, String(port)], { stdio: ["ignore", "pipe", "inherit"] });
  try {
    await once(child.stdout!, "data");
    const other = await freePort();
    let notTrue = 0;
    for (let i = 0; i < 1000; i++) {
      if (listensOnLoopback(child.pid, port) !== true) notTrue++;
      if (i % 100 === 0) await new Promise((r) => setImmediate(r));
    }
    assert.equal(notTrue, 0, "polls that did not answer true");
    assert.equal(listensOnLoopback(child.pid, other), false, "another port");
    assert.equal(listensOnLoopback(process.pid, port), false, "another process on that port");
    assert.equal(listensOnLoopback(undefined, port), false, "no process yet");
  } finally {
    child.kill("SIGKILL");
  }
});
