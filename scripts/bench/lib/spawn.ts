/**
 * Child processes for the benchmark: every one runs under `bash -c 'ulimit -n
 * ...; exec "$@"'` (Node has no setrlimit, and 5000 idle connections need
 * more than the usual 1024 descriptors on both ends), so the child's pid is
 * the program's own and /proc readings are about the program itself.
 *
 * @module
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import type { Buffer } from "node:buffer";

/** Descriptors asked for; capped at the hard limit when that is lower. */
const NOFILE = 20000;
const ULIMIT_EXEC = `ulimit -n ${NOFILE} 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec "$@"`;
/** Output kept per child for error messages. */
const KEEP_OUTPUT = 16 * 1024;

/** A started child with its output collected. */
export interface Child {
  /** The process (its pid is the program's, thanks to `exec`). */
  readonly process: ChildProcess;
  /** Resolves with the exit code (-1 when killed by a signal) once it has exited and its output is read. */
  readonly exited: Promise<number>;
  /** Everything on stdout so far (the last 16 KiB). */
  stdout(): string;
  /** Everything on stderr so far (the last 16 KiB). */
  stderr(): string;
  /** Resolves with the first stdout line starting with `prefix`; rejects on exit or after `timeoutMs`. */
  waitForLine(prefix: string, timeoutMs: number): Promise<string>;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once it has exited. */
  stop(graceMs?: number): Promise<void>;
}

/** Starts `command args` with a raised descriptor limit, in `cwd`. */
export function start(
  command: string,
  args: readonly string[],
  cwd: string,
  stdin: "ignore" | "pipe" = "ignore",
): Child {
  const proc = spawn("bash", ["-c", ULIMIT_EXEC, "bench-child", command, ...args], {
    cwd,
    stdio: [stdin, "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  let lineWaiters: Array<() => void> = [];
  proc.stdout!.on("data", (chunk: Buffer) => {
    out = (out + chunk.toString("utf8")).slice(-KEEP_OUTPUT);
    for (const wake of lineWaiters) wake();
  });
  proc.stderr!.on("data", (chunk: Buffer) => {
    err = (err + chunk.toString("utf8")).slice(-KEEP_OUTPUT);
  });
  const exited = new Promise<number>((resolve) => {
    proc.on("error", (e) => {
      err += `\nspawn failed: ${e.message}`;
      resolve(-1);
    });
    // 'close' (not 'exit'): by then stdout and stderr are fully read.
    proc.on("close", (code) => resolve(code ?? -1));
  });
  let hasExited = false;
  exited.then(() => {
    hasExited = true;
    for (const wake of lineWaiters) wake();
  });
  return {
    process: proc,
    exited,
    stdout: () => out,
    stderr: () => err,
    waitForLine(prefix, timeoutMs) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => finish(new Error(`no "${prefix}" line after ${timeoutMs} ms`)), timeoutMs);
        const check = () => {
          const lines = out.split("\n");
          // The last piece is a line still being written (a pipe may split it), unless the child has exited.
          if (!hasExited) lines.pop();
          const line = lines.find((l) => l.startsWith(prefix));
          if (line !== undefined) finish(undefined, line);
          else if (hasExited) finish(new Error(`exited before printing "${prefix}"`));
        };
        const finish = (error?: Error, line?: string) => {
          clearTimeout(timer);
          lineWaiters = lineWaiters.filter((w) => w !== check);
          if (error) reject(new Error(`${command}: ${error.message}; stderr: ${err.trim().slice(-2000)}`));
          else resolve(line!);
        };
        lineWaiters.push(check);
        check();
      });
    },
    async stop(graceMs = 3000) {
      if (hasExited) return;
      proc.kill("SIGTERM");
      const timer = setTimeout(() => proc.kill("SIGKILL"), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Runs `command args` to its end; resolves with its exit code and output. */
export async function run(
  command: string,
  args: readonly string[],
  cwd: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = start(command, args, cwd);
  const code = await child.exited;
  return { code, stdout: child.stdout(), stderr: child.stderr() };
}

/** `node` from PATH: the bench and soak scripts usually run under Deno, whose execPath is deno. */
export function findNode(): string {
  try {
    return execFileSync("bash", ["-c", "command -v node"], { encoding: "utf8" }).trim() || "node";
  } catch {
    return "node";
  }
}
