/**
 * How the dev server process ends: with a status ({@link exitProcess}), even
 * while file work is stuck in the kernel ({@link exitDespiteStuckIo}), or as
 * a signal would have ended it ({@link endBySignal}).
 *
 * @module
 */
import process from "node:process";
import { spawn } from "node:child_process";
import { detectRuntime } from "../transport/detect.ts";

/** The signals that stop the dev server. */
export const SIGNALS = ["SIGINT", "SIGTERM"] as const;
/** One of {@link SIGNALS}. */
export type Signal = typeof SIGNALS[number];
/** Exit status by the shell's convention for death by a signal (128 + its number). */
const SIGNAL_STATUS: Record<Signal, number> = { SIGINT: 130, SIGTERM: 143 };

/**
 * Ends the process as `signal` would have, had we not handled it: nothing is
 * running yet that could need a clean stop, and start-up may be stuck where
 * process.exit() cannot end the process (see {@link exitProcess}). `when`
 * completes the line on stderr ("SIGINT received while starting, exiting").
 */
export function endBySignal(signal: Signal, when: string): never {
  process.stderr.write(`midi-smtp-server: ${signal} received ${when}, exiting\n`);
  for (const name of SIGNALS) process.removeAllListeners(name);
  process.kill(process.pid, signal);
  // Where the runtime keeps its own handler, the signal may not end us: exit as if it had.
  process.exit(SIGNAL_STATUS[signal]);
}

/**
 * Exits with `status`. Our signal handlers go first: on Node, process.exit()
 * joins libuv's worker threads, so a file operation stuck in the kernel (a
 * dead network mount, a FIFO) can hold it up; then the next SIGINT or
 * SIGTERM, with its default action back, ends the process at once.
 */
export function exitProcess(status: number): never {
  for (const name of SIGNALS) process.removeAllListeners(name);
  process.exit(status);
}

/** How long the watchdog of {@link exitDespiteStuckIo} gives process.exit(). */
const EXIT_WATCHDOG_MS = 3000;

/**
 * Exits with `status` although work may still be stuck in the kernel (a file
 * on a dead network mount, a FIFO nobody writes to). Node's process.exit()
 * first joins libuv's worker threads, so it would wait for that work forever:
 * there a watchdog child process ends us with SIGKILL if we are still alive
 * after {@link EXIT_WATCHDOG_MS}. It goes away by itself once we are gone.
 */
export function exitDespiteStuckIo(status: number): never {
  if (detectRuntime() === "node") startExitWatchdog();
  exitProcess(status);
}

/** The watchdog of {@link exitDespiteStuckIo}: its stdin ends when we exit, which stops it. */
function startExitWatchdog(): void {
  const script = `const t = setTimeout(() => { try { process.kill(${process.pid}, "SIGKILL"); } catch {} }, ` +
    `${EXIT_WATCHDOG_MS}); process.stdin.on("end", () => clearTimeout(t)).on("error", () => {}).resume();`;
  try {
    spawn(process.execPath, ["-e", script], { stdio: ["pipe", "ignore", "ignore"] }).on("error", () => {});
  } catch {
    // Without a watchdog the exit may wait; SIGINT or SIGTERM still ends it (see exitProcess).
  }
}
