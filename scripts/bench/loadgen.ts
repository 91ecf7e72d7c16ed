/**
 * SMTP load generator (node:net only; runs on Node via tsx, Deno and Bun).
 *
 *   node --import tsx scripts/bench/loadgen.ts --port 2525 [options]
 *
 * Options (defaults in brackets):
 *   --host H            server address [127.0.0.1]
 *   --port P            server port (required)
 *   --sessions N        concurrent connections [20]
 *   --messages N        messages to send in total [10000]
 *   --per-conn N        messages per connection, then QUIT and reconnect; 0 = keep the connection [0]
 *   --size S            message size in bytes, headers included: 1024, 1k, 1m [1k]
 *   --rcpts N           recipients per message [1]
 *   --no-pipelining     one command at a time (default: MAIL+RCPTs+DATA in one write when offered)
 *   --bdat CHUNK        send each message with BDAT (RFC 3030) instead of DATA, in chunks of CHUNK bytes
 *                       (1024, 64k, 1m; 0: one `BDAT <size> LAST`); the server must offer CHUNKING. With
 *                       PIPELINING, MAIL+RCPTs+every chunk go in one write; else each chunk waits for its 250 [DATA]
 *   --warmup N          messages sent first, same shape, not measured [0]
 *   --timeout SECS      give up after this long [300]
 *   --proxy [v1|v2]     send a PROXY protocol header (v2 if no version is given) as the first bytes of every
 *                       connection, a made-up client 192.0.2.x with a varying port; the server needs
 *                       `proxyExtension: true` (scripts/bench/targets/ours.ts --proxy) [off]
 *   --proxy-lib PATH    the library whose PROXY header writers build the headers: its mod.ts, or an npm
 *                       build's esm/mod.js [this repository's mod.ts]
 *   --json              print the result as one JSON line
 *   --help              print this and exit
 *
 * Prints msgs/s, MB/s (accepted message bytes, 10^6 bytes/s), failures,
 * elapsed time and the generator's own CPU seconds (close to the elapsed
 * time means the generator, not the server, was the limit). Exit status: 0
 * when every reply was as expected, 1 on any failure or timeout, 2 on bad
 * usage.
 *
 * @module
 */
import process from "node:process";
import { parseArgs } from "node:util";
import { intOption, sizeOption, UsageError } from "./lib/args.ts";
import { buildWire } from "./lib/message.ts";
import { type LoadOptions, type LoadResult, runLoad } from "./lib/client.ts";
import { machineBusySeconds } from "./lib/proc.ts";
import { buildProxyHeaders, isProxyVersion, REPO_MOD } from "./lib/proxy.ts";

const USAGE = `usage: loadgen.ts --port P [--host H] [--sessions N] [--messages N] [--per-conn N] [--size S]
       [--rcpts N] [--no-pipelining] [--bdat CHUNK] [--warmup N] [--timeout SECS] [--proxy [v1|v2]] [--proxy-lib PATH]
       [--json]
See the top of scripts/bench/loadgen.ts for what each option does.`;

/** The JSON line printed with `--json`. */
export interface LoadReport extends LoadResult {
  /** Accepted messages per second. */
  msgsPerSec: number;
  /** Accepted message bytes per second, in 10^6 bytes. */
  mbPerSec: number;
  /** CPU seconds (user + system) the generator used during the measured run. */
  genCpuSec: number;
  /** Busy CPU seconds of the whole machine during the measured run (NaN off Linux). */
  machineBusySec: number;
  /** The options of the measured run. */
  options: LoadOptions & { size: number };
}

/** The parsed command line. */
interface Parsed {
  options: LoadOptions & { size: number };
  warmup: number;
  json: boolean;
  /** The library entry whose PROXY header writers are used. */
  proxyLib: string;
}

/** `--proxy` may come without a value (v2); parseArgs has no optional values, so a bare one is rewritten first. */
function withProxyDefault(argv: string[]): string[] {
  return argv.flatMap((arg, i) =>
    arg === "--proxy" && (argv[i + 1] === undefined || argv[i + 1].startsWith("--")) ? ["--proxy=v2"] : [arg]
  );
}

/** The command line, or `"help"` for `--help`. */
function parse(argv: string[]): Parsed | "help" {
  const { values } = parseArgs({
    args: withProxyDefault(argv),
    options: {
      host: { type: "string" },
      port: { type: "string" },
      sessions: { type: "string" },
      messages: { type: "string" },
      "per-conn": { type: "string" },
      size: { type: "string" },
      rcpts: { type: "string" },
      pipelining: { type: "boolean" },
      "no-pipelining": { type: "boolean" },
      bdat: { type: "string" },
      warmup: { type: "string" },
      timeout: { type: "string" },
      proxy: { type: "string" },
      "proxy-lib": { type: "string" },
      json: { type: "boolean" },
      help: { type: "boolean" },
    },
    strict: true,
  });
  if (values.help) return "help";
  const proxy = values.proxy;
  if (proxy !== undefined && !isProxyVersion(proxy)) {
    throw new UsageError(`--proxy must be v1 or v2, got ${JSON.stringify(proxy)}`);
  }
  if (values.port === undefined) throw new UsageError("--port is required");
  return {
    options: {
      host: values.host ?? "127.0.0.1",
      port: intOption("port", values.port, 0, 1),
      sessions: intOption("sessions", values.sessions, 20, 1),
      messages: intOption("messages", values.messages, 10000, 1),
      perConnection: intOption("per-conn", values["per-conn"], 0),
      size: sizeOption("size", values.size, 1024),
      recipients: intOption("rcpts", values.rcpts, 1, 1),
      pipelining: !values["no-pipelining"],
      ...(values.bdat !== undefined ? { bdatChunk: sizeOption("bdat", values.bdat, 0) } : {}),
      timeoutMs: intOption("timeout", values.timeout, 300, 1) * 1000,
      ...(proxy !== undefined ? { proxyHeader: proxy } : {}),
    },
    warmup: intOption("warmup", values.warmup, 0),
    json: values.json ?? false,
    proxyLib: values["proxy-lib"] ?? REPO_MOD,
  };
}

/**
 * Runs an optional warm-up and one measured load; returns the report. With
 * `options.proxyHeader`, the PROXY headers are built first with the writers
 * of the library at `proxyLib` (default: this repository's mod.ts).
 */
export async function measure(
  options: LoadOptions & { size: number },
  warmup = 0,
  proxyLib = REPO_MOD,
): Promise<LoadReport> {
  const wire = buildWire(options.size, options.recipients, undefined, options.bdatChunk);
  // At most one connection per message: as many headers as the larger of the two loads needs (up to the ring size).
  const proxyHeaders = options.proxyHeader === undefined
    ? []
    : await buildProxyHeaders(options.proxyHeader, Math.max(options.messages, warmup), proxyLib);
  if (warmup > 0) {
    const w = await runLoad({ ...options, messages: warmup }, wire, proxyHeaders);
    if (w.failures > 0 || w.timedOut) {
      throw new Error(`warm-up failed: ${w.failures} failures${w.timedOut ? ", timed out" : ""}: ${w.firstFailure}`);
    }
  }
  const cpu0 = process.cpuUsage();
  const busy0 = machineBusySeconds();
  const result = await runLoad(options, wire, proxyHeaders);
  const busy = machineBusySeconds() - busy0;
  const cpu = process.cpuUsage(cpu0);
  const secs = result.elapsedMs / 1000;
  return {
    ...result,
    msgsPerSec: secs > 0 ? result.okMessages / secs : 0,
    mbPerSec: secs > 0 ? result.payloadBytes / 1e6 / secs : 0,
    genCpuSec: (cpu.user + cpu.system) / 1e6,
    machineBusySec: busy,
    options,
  };
}

/** One human-readable line. */
function describe(r: LoadReport): string {
  const o = r.options;
  return [
    `msgs/s=${r.msgsPerSec.toFixed(1)}`,
    `MB/s=${r.mbPerSec.toFixed(3)}`,
    `ok=${r.okMessages}/${o.messages}`,
    `failures=${r.failures}`,
    `elapsed_s=${(r.elapsedMs / 1000).toFixed(3)}`,
    `gen_cpu_s=${r.genCpuSec.toFixed(2)}`,
    `machine_busy_s=${r.machineBusySec.toFixed(2)}`,
    `connections=${r.connections}`,
    `sessions=${o.sessions} per_conn=${o.perConnection} size=${o.size} rcpts=${o.recipients}`,
    `body=${
      o.bdatChunk === undefined ? "DATA" : `BDAT(${o.bdatChunk === 0 ? "one chunk" : `${o.bdatChunk}-byte chunks`})`
    }`,
    `proxy=${o.proxyHeader ?? "off"}`,
    `pipelining=${
      o.pipelining ? (r.pipeliningUnavailable ? `partly(${r.pipeliningUnavailable} refused)` : "on") : "off"
    }`,
    r.timedOut ? "TIMED-OUT" : "",
    r.firstFailure ? `first_failure="${r.firstFailure}"` : "",
  ].filter(Boolean).join(" ");
}

async function main(): Promise<number> {
  let parsed;
  try {
    parsed = parse(process.argv.slice(2));
  } catch (err) {
    console.error(`loadgen: ${(err as Error).message}`);
    console.error(USAGE);
    return 2;
  }
  if (parsed === "help") {
    console.log(USAGE);
    return 0;
  }
  const report = await measure(parsed.options, parsed.warmup, parsed.proxyLib);
  console.log(parsed.json ? JSON.stringify(report) : describe(report));
  return report.failures > 0 || report.timedOut ? 1 : 0;
}

if (import.meta.main ?? process.argv[1]?.endsWith("loadgen.ts")) {
  // Exit explicitly: sockets left half-closed by a failed run must not keep the process alive.
  main().then((code) => process.exit(code), (err) => {
    console.error(`loadgen: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  });
}
