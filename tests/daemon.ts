/**
 * A long-running program a test starts as a child process and must stop
 * (HAProxy, Postfix's master): its output kept for error texts, its exit
 * noticed, stopped with SIGTERM and then SIGKILL, and never left behind when
 * the test runner's process ends early.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import process from "node:process";

/** How a daemon ended: its exit code or signal (both null when it could not be started). */
export interface DaemonExit {
  code: number | null;
  signal: string | null;
}

/** A started daemon. */
export interface Daemon {
  readonly child: ChildProcess;
  /** Everything it wrote to stdout and stderr so far. */
  output(): string;
  /** How it ended, or undefined while it runs. */
  exited(): DaemonExit | undefined;
  /**
   * Resolves once its output is complete (its pipes closed), or after
   * `ms`: programs whose children share its stdout (Postfix's daemons) may
   * hold the pipes open after it exited.
   */
  outputSettled(ms?: number): Promise<void>;
  /** Why it could not be started (spawn's error), if so. */
  spawnError(): Error | undefined;
  /**
   * SIGTERM, then SIGKILL (its whole process group when `detached`) after
   * the grace time; resolves once it has exited. Calls after the first share it.
   */
  stop(): Promise<void>;
}

/** How {@link startDaemon} runs the program. */
export interface DaemonOptions {
  /** Environment on top of this process's. */
  env?: Record<string, string>;
  /** Its own process group (see spawn's `detached`). */
  detached?: boolean;
  /** How long {@link Daemon.stop} waits after SIGTERM before SIGKILL. */
  graceMs: number;
  /** What it gets if this process exits while it runs: SIGTERM where it must stop its own children. */
  exitSignal: "SIGTERM" | "SIGKILL";
}

/** Starts `command` with `args`, stdin closed, stdout and stderr kept. */
export function startDaemon(command: string, args: string[], options: DaemonOptions): Daemon {
  let output = "";
  let exited: DaemonExit | undefined;
  let spawnError: Error | undefined;
  const child: ChildProcess = spawn(command, args, {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, ...options.env },
    detached: options.detached ?? false,
  });
  const gone = new Promise<void>((resolve) => {
    child.once("exit", (code, signal) => {
      exited = { code, signal };
      resolve();
    });
    child.once("error", (err) => {
      spawnError = err;
      exited ??= { code: null, signal: null };
      resolve();
    });
  });
  let pipesClosed = false;
  const closed = new Promise<void>((resolve) =>
    child.once("close", () => {
      pipesClosed = true;
      resolve();
    })
  );
  const outputSettled = async (ms = 1000) => {
    if (pipesClosed || spawnError) return;
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([closed, new Promise<void>((r) => timer = setTimeout(r, ms))]);
    clearTimeout(timer);
  };
  child.stdout!.setEncoding("utf8");
  child.stderr!.setEncoding("utf8");
  child.stdout!.on("data", (d: string) => output += d);
  child.stderr!.on("data", (d: string) => output += d);
  const killOnExit = () => {
    if (!exited) child.kill(options.exitSignal);
  };
  process.once("exit", killOnExit);

  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopped ??= (async () => {
      if (!exited) {
        child.kill("SIGTERM");
        let timer: ReturnType<typeof setTimeout> | undefined;
        await Promise.race([gone, new Promise<void>((r) => timer = setTimeout(r, options.graceMs))]);
        clearTimeout(timer);
        if (!exited) {
          if (options.detached && child.pid !== undefined) {
            try {
              process.kill(-child.pid, "SIGKILL"); // the group: a master's daemons too
            } catch {
              child.kill("SIGKILL");
            }
          } else {
            child.kill("SIGKILL");
          }
          await gone;
        }
      }
      process.removeListener("exit", killOnExit);
    })();
    return stopped;
  };
  return { child, output: () => output, exited: () => exited, outputSettled, spawnError: () => spawnError, stop };
}

/**
 * Whether process `pid` listens on 127.0.0.1:`port`: a LISTEN row of
 * /proc/net/tcp (Linux) whose socket is one of the process's open files. So
 * waiting for a daemon opens no connection (a probe through a proxy would
 * reach the server behind it as a session of its own), and another process
 * on the same port is not taken for the daemon. `undefined` where /proc
 * cannot be read; false while `pid` is unknown (not started yet).
 */
export function listensOnLoopback(pid: number | undefined, port: number): boolean | undefined {
  if (pid === undefined) return false;
  let table: string;
  const sockets = new Set<string>();
  let fds: string[];
  try {
    table = readFileSync("/proc/net/tcp", "latin1");
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return undefined;
  }
  for (const fd of fds) {
    // A file closed since the listing is no longer there (a daemon starting up opens and closes many): skipped.
    // (Taking this for "cannot tell" sent callers to a probe connection, which HAProxy passed on as a session.)
    let target: string;
    try {
      target = readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch {
      continue;
    }
    if (target.startsWith("socket:[")) sockets.add(target.slice(8, -1));
  }
  // local_address is the IPv4 address as a little-endian hex word, then the port; state 0A is LISTEN; then the inode.
  const local = `0100007F:${port.toString(16).toUpperCase().padStart(4, "0")}`;
  return table.split("\n").some((row) => {
    const cols = row.trim().split(/\s+/);
    return cols[1] === local && cols[3] === "0A" && sockets.has(cols[9]);
  });
}
