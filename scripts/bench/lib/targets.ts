/**
 * The servers measured: ours on Deno, Bun and Node (the npm build), and
 * nodemailer's smtp-server on Node. Each runs as its own process from
 * scripts/bench/targets/ and says `READY <port>` when it listens.
 *
 * @module
 */
import { join } from "node:path";
import { type Child, start } from "./spawn.ts";
import type { Library } from "./library.ts";

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
}

/** The V8 flag of the `-semi16` variants. */
const SEMI_SPACE_16 = "--v8-flags=--max-semi-space-size=16";

const script = (tools: Toolchain, name: string) => join(tools.repo, "scripts", "bench", "targets", name);

/** The targets, in table order; the reference (smtp-server) last. */
export const TARGETS: readonly Target[] = [
  {
    name: "ours-deno",
    ours: true,
    command: (t, lib, port) => ({
      command: t.deno,
      args: ["run", "-A", script(t, "ours.ts"), "--port", String(port), "--lib", lib.sourceEntry],
    }),
  },
  {
    name: "ours-bun",
    ours: true,
    command: (t, lib, port) => ({
      command: t.bun,
      args: ["run", script(t, "ours.ts"), "--port", String(port), "--lib", lib.sourceEntry],
    }),
  },
  {
    name: "ours-node",
    ours: true,
    command: (t, lib, port) => ({
      command: t.node,
      args: ["--import", "tsx", script(t, "ours.ts"), "--port", String(port), "--lib", lib.npmEntry],
    }),
  },
  // The streaming mode (onMessageDataStreamEvent) on the large-message workload, where it keeps memory flat.
  {
    name: "ours-deno-stream",
    ours: true,
    onlyWorkloads: ["w2"],
    command: (t, lib, port) => ({
      command: t.deno,
      args: ["run", "-A", script(t, "ours.ts"), "--port", String(port), "--lib", lib.sourceEntry, "--stream"],
    }),
  },
  {
    name: "ours-bun-stream",
    ours: true,
    onlyWorkloads: ["w2"],
    command: (t, lib, port) => ({
      command: t.bun,
      args: ["run", script(t, "ours.ts"), "--port", String(port), "--lib", lib.sourceEntry, "--stream"],
    }),
  },
  {
    name: "ours-node-stream",
    ours: true,
    onlyWorkloads: ["w2"],
    command: (t, lib, port) => ({
      command: t.node,
      args: ["--import", "tsx", script(t, "ours.ts"), "--port", String(port), "--lib", lib.npmEntry, "--stream"],
    }),
  },
  // Deno with V8's young generation capped at 16 MiB per semi-space, the default of Node 20's V8 (Deno's newer
  // V8 lets it grow to 32 MiB here): peak RSS under load is mostly young-generation garbage, not live data.
  {
    name: "ours-deno-semi16",
    ours: true,
    onlyWorkloads: ["w3"],
    command: (t, lib, port) => ({
      command: t.deno,
      args: ["run", "-A", SEMI_SPACE_16, script(t, "ours.ts"), "--port", String(port), "--lib", lib.sourceEntry],
    }),
  },
  {
    name: "ours-deno-stream-semi16",
    ours: true,
    onlyWorkloads: ["w2"],
    command: (t, lib, port) => ({
      command: t.deno,
      args: [
        "run",
        "-A",
        SEMI_SPACE_16,
        script(t, "ours.ts"),
        "--port",
        String(port),
        "--lib",
        lib.sourceEntry,
        "--stream",
      ],
    }),
  },
  {
    name: "smtp-server-node",
    ours: false,
    command: (t, _lib, port) => ({
      command: t.node,
      args: ["--import", "tsx", script(t, "smtp-server.ts"), "--port", String(port)],
    }),
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
  const { command, args } = target.command(tools, lib, port);
  const child = start(command, args, lib.root);
  try {
    const line = await child.waitForLine("READY ", 60_000);
    const listening = Number(line.slice("READY ".length).trim());
    if (!Number.isInteger(listening) || listening <= 0) throw new Error(`${target.name}: bad READY line ${line}`);
    return { child, pid: child.process.pid!, port: listening };
  } catch (err) {
    await child.stop();
    throw err;
  }
}
