/**
 * Tests of how the dev server process ends (src/dev_server/process_exit.ts), run under all three runtimes:
 *
 *   deno test -A tests/dev_server_process_exit.test.ts
 *   bun test ./tests/dev_server_process_exit.test.ts
 *   node --import tsx --test tests/dev_server_process_exit.test.ts
 *
 * Each case ends a child process of the runtime running this file; tests/cli.test.ts covers the same paths
 * through the CLI (signals while starting and stopping, a start stuck on a FIFO).
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath, pathToFileURL } from "node:url";
import { SIGNALS } from "../src/dev_server/process_exit.ts";
import { detectRuntime } from "../src/transport/detect.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const MODULE = pathToFileURL(join(ROOT, "src", "dev_server", "process_exit.ts")).href;
const runtime = detectRuntime();
const TEST_OPTIONS = { timeout: 30_000 };

/** How a child process ended, and what it wrote to stderr. */
interface Ending {
  status: number | null;
  signal: string | null;
  stderr: string;
}

/**
 * Runs `body` (JavaScript with the module's exports in scope) in a child process of this runtime, from the
 * project root (where Node finds tsx).
 */
function runChild(body: string): Ending {
  const dir = mkdtempSync(join(tmpdir(), "midi-exit-"));
  try {
    const script = join(dir, "child.mjs");
    writeFileSync(
      script,
      `import process from "node:process";\n` +
        `import { endBySignal, exitDespiteStuckIo, exitProcess, SIGNALS } from ${JSON.stringify(MODULE)};\n` +
        body,
    );
    const args = runtime === "deno"
      ? ["run", "-A", script]
      : runtime === "bun"
      ? [script]
      : ["--import", "tsx", script];
    const result = spawnSync(process.execPath, args, { encoding: "utf8", timeout: 25_000, cwd: ROOT });
    return { status: result.status, signal: result.signal, stderr: result.stderr };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe("process_exit", () => {
  it("SIGNALS are SIGINT and SIGTERM", () => {
    assert.deepEqual([...SIGNALS], ["SIGINT", "SIGTERM"]);
  });

  it("exitProcess exits with the status, despite our own signal handlers", TEST_OPTIONS, () => {
    const ending = runChild(`for (const s of SIGNALS) process.on(s, () => {});\nexitProcess(3);\n`);
    assert.equal(ending.status, 3, JSON.stringify(ending));
  });

  it("endBySignal ends the process as the signal would, saying so", TEST_OPTIONS, () => {
    // Our handler is in place, as in runCli: endBySignal must take it away, or the signal would do nothing.
    const ending = runChild(
      `for (const s of SIGNALS) process.on(s, () => {});\nendBySignal("SIGTERM", "while starting");\n`,
    );
    assert.ok(ending.signal === "SIGTERM" || ending.status === 143, JSON.stringify(ending));
    assert.equal(ending.stderr, "midi-smtp-server: SIGTERM received while starting, exiting\n");
  });

  it("exitDespiteStuckIo exits with the status", TEST_OPTIONS, () => {
    const ending = runChild(`exitDespiteStuckIo(4);\n`);
    assert.equal(ending.status, 4, JSON.stringify(ending));
  });

  it(
    "exitDespiteStuckIo ends the process while a read is stuck in the kernel (a FIFO nobody writes to)",
    { ...TEST_OPTIONS, skip: process.platform === "win32" },
    () => {
      const dir = mkdtempSync(join(tmpdir(), "midi-exit-fifo-"));
      try {
        const fifo = join(dir, "stuck.fifo");
        execFileSync("mkfifo", [fifo]);
        const started = Date.now();
        const ending = runChild(
          `import { open } from "node:fs/promises";\n` +
            `open(${JSON.stringify(fifo)}, "r").catch(() => {});\n` +
            `setTimeout(() => exitDespiteStuckIo(1), 200);\n`,
        );
        // Node may hang in process.exit() until the watchdog's SIGKILL; elsewhere the exit is plain.
        assert.ok(ending.status === 1 || ending.signal === "SIGKILL", JSON.stringify(ending));
        assert.ok(Date.now() - started < 20_000, "ended well before the test's own timeout");
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );
});
