/**
 * How worker processes are made on the runtime we run on: which way they
 * share the ports ({@link workerMechanism}), and the command line that runs
 * this same program again as a worker ({@link workerCommand}).
 *
 * @module
 */
import process from "node:process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { detectRuntime, type RuntimeName, runtimeVersion } from "../transport/detect.ts";
import { nodeNetHasReusePort } from "../transport/reuse_port.ts";
import type { WorkerMechanism } from "./types.ts";

/**
 * The way workers share the ports here: SO_REUSEPORT where the runtime's
 * sockets have it (Deno, Bun; Node >= 22.12 / 23.1), else `node:cluster`
 * (Node 20). On Node only on Linux, the one system where SO_REUSEPORT spreads
 * connections over the processes (elsewhere node:cluster works as well).
 *
 * @example
 * ```ts
 * workerMechanism("node", "20.20.2", "linux"); // => "cluster"
 * workerMechanism("node", "22.12.0", "linux"); // => "reuseport"
 * workerMechanism("deno", "2.9.6", "linux"); // => "reuseport"
 * ```
 */
export function workerMechanism(
  runtime: RuntimeName = detectRuntime(),
  version: string = runtimeVersion(runtime),
  platform: string = process.platform,
): WorkerMechanism {
  if (runtime !== "node") return "reuseport";
  return platform === "linux" && nodeNetHasReusePort("node", version) ? "reuseport" : "cluster";
}

/** A program and its arguments. */
export interface CommandLine {
  /** The executable. */
  readonly command: string;
  /** Its arguments. */
  readonly args: readonly string[];
}

/**
 * The command line that runs this program again (as a worker): the same
 * runtime, its flags (`execArgv` if given), the same script and arguments.
 * For the `node:cluster` mechanism `node:cluster` builds it instead.
 */
export function workerCommand(execArgv?: readonly string[], runtime: RuntimeName = detectRuntime()): CommandLine {
  if (runtime === "deno") return denoWorkerCommand(execArgv, denoNamespace());
  return {
    command: process.execPath,
    args: [...(execArgv ?? process.execArgv), process.argv[1], ...process.argv.slice(2)],
  };
}

/** The parts of the `Deno` namespace used here. */
export interface DenoProgram {
  execPath(): string;
  readonly mainModule: string;
  readonly args: readonly string[];
  readonly permissions: { querySync(descriptor: { name: string }): { state: string } };
}

function denoNamespace(): DenoProgram {
  return (globalThis as unknown as { Deno: DenoProgram }).Deno;
}

/** Every kind of Deno permission: with all of them granted, `-A` reproduces them. */
const DENO_PERMISSIONS = ["read", "write", "net", "env", "run", "sys", "ffi", "import"] as const;

/**
 * The Deno command line of a worker. Deno keeps no `execArgv`, so the
 * runtime flags come from `execArgv`, else from /proc/self/cmdline (whatever
 * this process was started with: permissions, `--config`, `--v8-flags`...),
 * which Deno lets only `--allow-all` programs read; else from the permissions
 * granted in full (a scoped one, `--allow-net=:25`, cannot be read back).
 * `--unstable-net` is added: `Deno.listen` needs it for `reusePort`.
 */
export function denoWorkerCommand(
  execArgv: readonly string[] | undefined,
  deno: DenoProgram,
  cmdline: () => string[] | undefined = readCmdline,
): CommandLine {
  const granted = DENO_PERMISSIONS.filter((name) => {
    try {
      return deno.permissions.querySync({ name }).state === "granted";
    } catch {
      return false; // a kind this Deno does not know
    }
  });
  const all = granted.length === DENO_PERMISSIONS.length;
  let flags = execArgv;
  if (flags === undefined && all) {
    const fromCmdline = denoRuntimeFlags(cmdline(), deno.args);
    // A `deno compile` binary has its flags built in: it only needs the arguments again.
    if (fromCmdline === "compiled") return { command: deno.execPath(), args: [...deno.args] };
    flags = fromCmdline;
  }
  flags ??= ["run", ...(all ? ["-A"] : granted.map((name) => `--allow-${name}`))];
  const main = deno.mainModule;
  const script = main.startsWith("file:") ? fileURLToPath(main) : main;
  return { command: deno.execPath(), args: [...withUnstableNet(flags), script, ...deno.args] };
}

/**
 * The runtime flags in a Deno command line (`deno run -A main.js a b` with
 * arguments `a b` gives `run -A`): what stands between the executable and
 * the script, which is followed by exactly `args`. `"compiled"` when nothing
 * stands before the arguments (a `deno compile` binary); `undefined` when
 * the command line does not end with `args`.
 *
 * @example
 * ```ts
 * denoRuntimeFlags(["/usr/bin/deno", "run", "-A", "main.js", "--workers", "2"], ["--workers", "2"]); // => ["run", "-A"]
 * denoRuntimeFlags(["/opt/app", "--workers", "2"], ["--workers", "2"]); // => "compiled"
 * ```
 */
export function denoRuntimeFlags(
  cmdline: readonly string[] | undefined,
  args: readonly string[],
): string[] | "compiled" | undefined {
  if (cmdline === undefined || cmdline.length < args.length + 1) return undefined;
  const script = cmdline.length - args.length - 1;
  if (args.some((arg, i) => cmdline[script + 1 + i] !== arg)) return undefined;
  return script === 0 ? "compiled" : cmdline.slice(1, script);
}

/** `flags` with `--unstable-net` (after `run`, where there is one). */
function withUnstableNet(flags: readonly string[]): string[] {
  if (flags.includes("--unstable-net")) return [...flags];
  return flags[0] === "run" ? ["run", "--unstable-net", ...flags.slice(1)] : ["--unstable-net", ...flags];
}

/** This process's command line, from Linux's /proc; `undefined` elsewhere, or where it cannot be read. */
function readCmdline(): string[] | undefined {
  try {
    const parts = readFileSync("/proc/self/cmdline", "utf8").split("\0");
    parts.pop(); // every argument ends with a NUL
    return parts;
  } catch {
    return undefined;
  }
}
