/**
 * The servers measured: ours on Deno, Bun and Node (the npm build), and
 * nodemailer's smtp-server on Node. Each runs as its own process from
 * scripts/bench/targets/ and says `READY <port>` when it listens.
 *
 * `ours-*-proxy` are `ours-*` with `proxyExtension` on, fed a PROXY header
 * at the start of every connection: next to their plain twin in the list,
 * so the interleaved runs measure the two one right after the other.
 *
 * `ours-*-workers2` are `ours-*` in two worker processes under a `runWorkers`
 * supervisor (targets/ours.ts `--workers 2`), on w3 only, measured right
 * after (or before) their one-process twin in every round. Deno, Bun and
 * Node >= 22.12 share the port with SO_REUSEPORT; on Node 20 the workers are
 * `node:cluster` workers, fed by the supervisor in turn. Their CPU and peak
 * RSS are summed over the supervisor and the workers (lib/proc.ts).
 *
 * @module
 */
import { existsSync } from "node:fs";
import net from "node:net";
import { join } from "node:path";
import process from "node:process";
import { type Child, start } from "./spawn.ts";
import { processStartTime, serverProcesses } from "./proc.ts";
import type { Library } from "./library.ts";
import type { ProxyVersion } from "./proxy.ts";

/** Where the programs are. */
export interface Toolchain {
  /** The repository root (scripts/bench lives there). */
  readonly repo: string;
  /** `deno` binary. */
  readonly deno: string;
  /** `bun` binary. */
  readonly bun: string;
  /** `node` binary. */
  readonly node: string;
}

/** A runtime a TypeScript script runs on. */
export type Runtime = "deno" | "bun" | "node";

/** The runtimes, in table order. */
export const RUNTIMES: readonly Runtime[] = ["deno", "bun", "node"];

/**
 * The command line that runs the TypeScript file `script` with `args` on
 * `runtime`; `flags` go to the runtime (e.g. V8 flags), before the script.
 */
export function scriptCommand(
  tools: Toolchain,
  runtime: Runtime,
  script: string,
  args: readonly string[],
  flags: readonly string[] = [],
): { command: string; args: string[] } {
  switch (runtime) {
    case "deno":
      return { command: tools.deno, args: ["run", "-A", ...flags, script, ...args] };
    case "bun":
      return { command: tools.bun, args: ["run", ...flags, script, ...args] };
    case "node":
      // `--import tsx` compiles in-process, so the pid is the script's own (the tsx CLI would fork).
      return { command: tools.node, args: [...flags, "--import", "tsx", script, ...args] };
  }
}

/** One server to measure. */
export interface Target {
  /** Column name, e.g. `ours-deno`. */
  readonly name: string;
  /** Whether it is our library (the idle-connection test and the ratios are about ours). */
  readonly ours: boolean;
  /** The command line that starts it on `port` (0: any free port). */
  command(tools: Toolchain, lib: Library, port: number): { command: string; args: string[] };
  /** Only these workloads (and no idle test): for variants that matter for one workload. */
  readonly onlyWorkloads?: readonly string[];
  /** It offers CHUNKING (RFC 3030), so it runs the BDAT workloads too (default: no, they skip it). */
  readonly chunking?: boolean;
  /** Whether it can run on this machine (default: yes); targets that need a system package check for it. */
  available?(): boolean;
  /** It cannot listen on port 0 and report the port: it gets a free port chosen beforehand. */
  readonly needsPort?: boolean;
  /**
   * It expects a PROXY protocol header first on every connection: the load generator sends one of this version
   * (and smtp-source, which cannot, is skipped). The report compares it with the target named without `-proxy`.
   */
  readonly proxy?: ProxyVersion;
  /** It runs this many worker processes under a supervisor (its CPU and memory are summed over all of them). */
  readonly workers?: number;
  /** The target it is compared with: the two are measured back to back in every round (see measure.ts). */
  readonly twin?: string;
}

/** Postfix's test server (Debian package postfix). */
const SMTP_SINK = "/usr/sbin/smtp-sink";

/** The V8 flag of the `-semi16` variants. */
const SEMI_SPACE_16 = "--v8-flags=--max-semi-space-size=16";

const script = (tools: Toolchain, name: string) => join(tools.repo, "scripts", "bench", "targets", name);

/**
 * A target that runs our targets/ours.ts on `runtime` (Node: the npm build, else the source) with `extra` arguments
 * and `flags` for the runtime.
 */
function ours(runtime: Runtime, extra: readonly string[] = [], flags: readonly string[] = []): Target["command"] {
  return (t, lib, port) =>
    scriptCommand(t, runtime, script(t, "ours.ts"), [
      "--port",
      String(port),
      "--lib",
      runtime === "node" ? lib.npmEntry : lib.sourceEntry,
      ...extra,
    ], flags);
}

/** The suffix of a PROXY variant's name: `ours-node-proxy` is `ours-node` behind a (simulated) proxy. */
export const PROXY_SUFFIX = "-proxy";

/** Workloads of the PROXY variants: one message per connection (the header's cost is largest) and kept connections. */
const PROXY_WORKLOADS = ["w1", "w1-conn"];

/**
 * `base` with `--proxy` (proxyExtension on) and a v2 header from the load generator on every connection:
 * the same command line otherwise, so the pair differs in PROXY alone.
 */
function proxyTwin(base: Target, version: ProxyVersion = "v2"): Target {
  return {
    name: base.name + PROXY_SUFFIX,
    ours: base.ours,
    chunking: base.chunking,
    onlyWorkloads: PROXY_WORKLOADS,
    proxy: version,
    twin: base.name,
    command: (t, lib, port) => {
      const { command, args } = base.command(t, lib, port);
      return { command, args: [...args, "--proxy"] };
    },
  };
}

/** The suffix of a worker-process variant's name: `ours-deno-workers2` is `ours-deno` in 2 worker processes. */
export const WORKERS_SUFFIX = "-workers";

/** Workloads of the worker-process variants: many sessions on kept connections, where a second core can help. */
const WORKERS_WORKLOADS = ["w3"];

/**
 * `base` in `workers` worker processes (`--workers N`: a `runWorkers` supervisor and N workers sharing one port),
 * on a free port picked beforehand: SO_REUSEPORT cannot share port 0, every worker would get a port of its own.
 */
function workersTwin(base: Target, workers: number): Target {
  return {
    name: `${base.name}${WORKERS_SUFFIX}${workers}`,
    ours: base.ours,
    chunking: base.chunking,
    onlyWorkloads: WORKERS_WORKLOADS,
    needsPort: true,
    workers,
    twin: base.name,
    command: (t, lib, port) => {
      const { command, args } = base.command(t, lib, port);
      return { command, args: [...args, "--workers", String(workers)] };
    },
  };
}

const OURS_DENO: Target = { name: "ours-deno", ours: true, chunking: true, command: ours("deno") };
const OURS_BUN: Target = { name: "ours-bun", ours: true, chunking: true, command: ours("bun") };
const OURS_NODE: Target = { name: "ours-node", ours: true, chunking: true, command: ours("node") };

/** The large-message workloads, DATA and BDAT: where the streaming mode matters. */
const LARGE_WORKLOADS = ["w2", "w2-bdat", "w2-bdat64k"];

/** Whether `target` runs workload `w`: one made for some workloads only runs those, BDAT needs CHUNKING. */
export function runsWorkload(target: Target, w: { readonly name: string; readonly bdat?: unknown }): boolean {
  if (target.onlyWorkloads && !target.onlyWorkloads.includes(w.name)) return false;
  return w.bdat === undefined || target.chunking === true;
}

/** The targets, in table order; the reference (smtp-server) last. */
export const TARGETS: readonly Target[] = [
  OURS_DENO,
  proxyTwin(OURS_DENO),
  workersTwin(OURS_DENO, 2),
  OURS_BUN,
  proxyTwin(OURS_BUN),
  workersTwin(OURS_BUN, 2),
  OURS_NODE,
  proxyTwin(OURS_NODE),
  // Node 20: node:cluster (the supervisor accepts and hands the connections out in turn); Node >= 22.12: SO_REUSEPORT.
  workersTwin(OURS_NODE, 2),
  // The streaming mode (onMessageDataStreamEvent) on the large-message workload, where it keeps memory flat.
  ...RUNTIMES.map((runtime): Target => ({
    name: `ours-${runtime}-stream`,
    ours: true,
    chunking: true,
    onlyWorkloads: LARGE_WORKLOADS,
    command: ours(runtime, ["--stream"]),
  })),
  // Deno with V8's young generation capped at 16 MiB per semi-space, the default of Node 20's V8 (Deno's newer
  // V8 lets it grow to 32 MiB here): peak RSS under load is mostly young-generation garbage, not live data.
  {
    name: "ours-deno-semi16",
    ours: true,
    chunking: true,
    onlyWorkloads: ["w3"],
    command: ours("deno", [], [SEMI_SPACE_16]),
  },
  {
    name: "ours-deno-stream-semi16",
    ours: true,
    chunking: true,
    onlyWorkloads: ["w2"],
    command: ours("deno", ["--stream"], [SEMI_SPACE_16]),
  },
  // The stretch reference: Postfix's smtp-sink (C, one process), where the Debian postfix package is installed.
  // It offers no CHUNKING (Postfix 3.7), so the BDAT workloads skip it.
  // smtp-sink prints nothing when it listens, so a background subshell waits for the port and prints READY;
  // `exec` keeps the pid smtp-sink's own. As root it must drop privileges (-u).
  {
    name: "postfix-smtp-sink",
    ours: false,
    onlyWorkloads: ["w1", "w1-conn", "w2", "w3"],
    available: () => existsSync(SMTP_SINK),
    needsPort: true,
    command: (_t, _lib, port) => ({
      command: "bash",
      args: [
        "-c",
        `(until (exec 3<>/dev/tcp/127.0.0.1/${port}) 2>/dev/null; do sleep 0.05; done; echo "READY ${port}") & ` +
        `exec ${SMTP_SINK} ${process.getuid?.() === 0 ? "-u nobody " : ""}127.0.0.1:${port} 1024`,
      ],
    }),
  },
  {
    name: "smtp-server-node",
    ours: false,
    command: (t, _lib, port) => scriptCommand(t, "node", script(t, "smtp-server.ts"), ["--port", String(port)]),
  },
];

/** The name of the reference target the ratios compare with. */
export const REFERENCE = "smtp-server-node";

/** A running target. */
export interface RunningTarget {
  /** The child process. */
  readonly child: Child;
  /** Its pid (the server's own: the ulimit wrapper execs it). */
  readonly pid: number;
  /** The port it listens on. */
  readonly port: number;
}

/**
 * Starts `target` and waits for its `READY <port>` line. The working
 * directory is the library copy, so Deno finds that copy's deno.json (import
 * map) and every runtime finds node_modules.
 */
export async function startTarget(target: Target, tools: Toolchain, lib: Library, port = 0): Promise<RunningTarget> {
  if (port === 0 && target.needsPort) port = await freePort();
  const { command, args } = target.command(tools, lib, port);
  const child = start(command, args, lib.root);
  try {
    const line = await child.waitForLine("READY ", 60_000);
    const listening = Number(line.slice("READY ".length).trim());
    if (!Number.isInteger(listening) || listening <= 0) throw new Error(`${target.name}: bad READY line ${line}`);
    return { child, pid: child.process.pid!, port: listening };
  } catch (err) {
    await stopChild(child);
    throw err;
  }
}

/** Stops a running target and every process of it (see {@link stopChild}). */
export function stopTarget(server: RunningTarget): Promise<void> {
  return stopChild(server.child);
}

/** How long a target's worker processes get to exit after their supervisor was stopped, before SIGKILL. */
const WORKER_GRACE_MS = 6000;

/**
 * Stops `child` (SIGTERM, SIGKILL after 3 s) and the worker processes it
 * started: those still alive {@link WORKER_GRACE_MS} after the SIGTERM (a
 * supervisor killed before it could stop them) get SIGKILL, by pid, if the
 * pid is still the same process.
 */
async function stopChild(child: Child): Promise<void> {
  const pid = child.process.pid;
  let workers: { pid: number; started: string | undefined }[] = [];
  try {
    if (pid !== undefined) {
      workers = serverProcesses(pid).slice(1).map((p) => ({ pid: p, started: processStartTime(p) }));
    }
  } catch {
    // /proc unreadable: nothing more to do than stopping the child
  }
  const killLeft = () => {
    for (const w of workers) {
      if (w.started === undefined || processStartTime(w.pid) !== w.started) continue;
      try {
        process.kill(w.pid, "SIGKILL");
      } catch {
        // exited meanwhile
      }
    }
  };
  const timer = workers.length > 0 ? setTimeout(killLeft, WORKER_GRACE_MS) : undefined;
  await child.stop();
  clearTimeout(timer);
  // The child's pipes closed, so its workers (which share them) are gone or closing: none may outlive the run.
  if (workers.length > 0) {
    const until = Date.now() + WORKER_GRACE_MS;
    while (
      Date.now() < until && workers.some((w) => w.started !== undefined && processStartTime(w.pid) === w.started)
    ) {
      await new Promise((r) => setTimeout(r, 100));
    }
    killLeft();
  }
}

/** A loopback port that was free a moment ago (for targets that cannot report the port they took). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const { port } = probe.address() as net.AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}
