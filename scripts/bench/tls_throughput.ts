/**
 * Message throughput over TLS, per runtime, next to the same traffic in
 * plaintext: how much STARTTLS and implicit TLS (RFC 8314) cost the server on
 * Deno, Bun and Node.
 *
 *   node_modules/.bin/deno run -A scripts/bench/tls_throughput.ts [--quick] [options]
 *   (or: node --import tsx scripts/bench/tls_throughput.ts ...; bun scripts/bench/tls_throughput.ts ...)
 *
 * What it does:
 * - makes one self-signed certificate with the openssl CLI in a temporary
 *   directory (P-256 by default, `--key-type rsa` for RSA 2048), removed at the end;
 * - for each runtime and mode starts a fresh `tls_target.ts` (a
 *   discarding sink), sends one warm-up round (not counted, so the JIT and the
 *   TLS code paths are hot), then measures `--runs` rounds;
 * - a round is one client process (always Node, this file with `--client`, so
 *   the client side is identical for every server runtime) running `--sessions`
 *   concurrent SMTP sessions that together send `--messages` messages of
 *   `--size` bytes, with PIPELINING (MAIL, RCPT, DATA in one write), over
 *   STARTTLS, implicit TLS or plaintext: the load generator's engine
 *   (lib/client.ts) with its connections opened by lib/tls.ts; every reply
 *   code is checked and the server certificate is verified against the
 *   generated one;
 * - reports MB/s (payload, 10^6 bytes/s), messages/s, server CPU seconds
 *   (utime + stime of /proc/PID/stat, all threads) and peak RSS (VmHWM, reset
 *   through /proc/PID/clear_refs before each round), the median of the rounds,
 *   each metric on its own.
 *
 * The elapsed time of a round runs from the first connect to the last `221`,
 * so it includes the TCP and TLS handshakes; with 10 sessions carrying 100 MiB
 * they are a negligible share. Client and server share the machine's cores:
 * on a small machine the client's own encryption limits the TLS figures too
 * (its CPU seconds are logged per round on stderr).
 *
 * Output: progress on stderr, the machine and one markdown table (mode x
 * runtime) on stdout. Exit code 1 if any round failed, 2 on bad usage.
 *
 * @module
 */
import process from "node:process";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { intOption, listOption, UsageError } from "./lib/args.ts";
import { describeMachine, type Machine } from "./lib/machine.ts";
import { cpuSeconds, peakRssBytes, resetPeakRss } from "./lib/proc.ts";
import { start } from "./lib/spawn.ts";
import { spread } from "./lib/stats.ts";
import { type Runtime, RUNTIMES, scriptCommand, type Toolchain } from "./lib/targets.ts";
import { type KeyType, makeCertificate, tlsConnector, type TlsMode } from "./lib/tls.ts";
import { measure as runLoad } from "./loadgen.ts";

const SELF = fileURLToPath(import.meta.url);
const REPO = join(dirname(SELF), "..", "..");
const TARGET = join(REPO, "scripts", "bench", "tls_target.ts");
const HOST = "127.0.0.1";
const TOOLS: Toolchain = {
  repo: REPO,
  deno: join(REPO, "node_modules", ".bin", "deno"),
  bun: join(REPO, "node_modules", ".bin", "bun"),
  node: "node",
};

/** How the client reaches TLS (or not). */
type Mode = TlsMode | "plain";

const MODES: readonly Mode[] = ["starttls", "implicit", "plain"];
const MODE_LABEL: Record<Mode, string> = { starttls: "STARTTLS", implicit: "implicit TLS", plain: "plaintext" };

/** What one client process is asked to do (passed as JSON on its command line). */
interface ClientJob {
  readonly port: number;
  readonly mode: Mode;
  readonly sessions: number;
  readonly messages: number;
  readonly size: number;
  /** PEM file of the (self-signed) server certificate, trusted as the only CA. */
  readonly caPath: string;
  /** The round fails after this long, so a stuck server cannot stall the whole benchmark. */
  readonly timeoutMs: number;
}

/** What one client process reports back (one `RESULT {...}` line on stdout). */
interface ClientResult {
  readonly seconds: number;
  readonly messages: number;
  readonly payloadBytes: number;
  /** CPU seconds of the client process during the round. */
  readonly clientCpu: number;
  /** CPU seconds the whole machine spent during the round (/proc/stat), to tell how busy other processes kept it. */
  readonly machineCpu?: number;
  /** Negotiated protocol and cipher (from the first session), `undefined` in plaintext. */
  readonly tls?: string;
}

/** Runs one round in this (Node) process; throws unless every message went through. */
async function runClient(job: ClientJob): Promise<ClientResult> {
  let negotiated: string | undefined;
  const connect = job.mode === "plain"
    ? undefined
    : tlsConnector(job.mode, readFileSync(job.caPath, "utf8"), (info) => negotiated ??= info, "client.test");
  const r = await runLoad({
    host: HOST,
    port: job.port,
    sessions: job.sessions,
    messages: job.messages,
    perConnection: 0,
    size: job.size,
    recipients: 1,
    pipelining: true,
    timeoutMs: job.timeoutMs,
    ...(connect ? { connect } : {}),
  });
  const first = r.firstFailure ? ` (first failure: ${r.firstFailure})` : "";
  if (r.timedOut) throw new Error(`round not done after ${job.timeoutMs} ms${first}`);
  if (r.failures > 0) throw new Error(`${r.failures} failure(s)${first}`);
  if (r.pipeliningUnavailable > 0) throw new Error("PIPELINING is not advertised");
  return {
    seconds: r.elapsedMs / 1000,
    messages: r.okMessages,
    payloadBytes: r.payloadBytes,
    clientCpu: r.genCpuSec,
    machineCpu: Number.isFinite(r.machineBusySec) ? r.machineBusySec : undefined,
    tls: negotiated,
  };
}

/** Runs one client process (Node) against `job`; rejects with its last stderr line when it fails. */
async function round(job: ClientJob): Promise<ClientResult> {
  const { command, args } = scriptCommand(TOOLS, "node", SELF, ["--client", JSON.stringify(job)]);
  const client = start(command, args, REPO);
  try {
    // The client enforces job.timeoutMs itself; the extra 30 s cover its start-up and a client that hangs anyway.
    const line = await client.waitForLine("RESULT ", job.timeoutMs + 30_000);
    return JSON.parse(line.slice("RESULT ".length)) as ClientResult;
  } catch (err) {
    throw new Error(`client failed: ${client.stderr().trim().split("\n").pop() || (err as Error).message}`);
  } finally {
    await client.stop();
  }
}

/** One measured round as the table sees it. */
interface Sample {
  readonly mbps: number;
  readonly msgps: number;
  readonly serverCpu: number;
  readonly peakRss: number;
}

/** A table cell: the medians, or why there are none. */
type Cell = {
  readonly ok: true;
  readonly median: Sample;
  readonly tls?: string;
  /** Per round: cores that processes other than this server and client kept busy (a noisy machine shows here). */
  readonly otherCores: readonly number[];
} | {
  readonly ok: false;
  readonly error: string;
};

interface Config {
  readonly sessions: number;
  readonly messages: number;
  readonly size: number;
  readonly runs: number;
  readonly warmup: number;
  readonly runtimes: readonly Runtime[];
  readonly modes: readonly Mode[];
  readonly keyType: KeyType;
  readonly timeoutMs: number;
}

function log(text: string): void {
  process.stderr.write(`${text}\n`);
}

/** Measures one runtime in one mode, on a fresh server so that no mode inherits another's heap. */
async function measure(config: Config, runtime: Runtime, mode: Mode, certPath: string, keyPath: string): Promise<Cell> {
  const { command, args } = scriptCommand(TOOLS, runtime, TARGET, ["--cert", certPath, "--key", keyPath]);
  const server = start(command, args, REPO);
  const pid = server.process.pid!;
  try {
    // Generous: the first start of a runtime may compile or cache (tsx, Deno's module graph).
    const ready = await server.waitForLine("READY ", 60_000).catch((err: Error) => {
      throw new Error(`${runtime} target did not start (${err.message})`);
    });
    const [plainPort, tlsPort] = ready.split(" ").slice(1).map(Number);
    const job = (messages: number): ClientJob => ({
      port: mode === "implicit" ? tlsPort : plainPort,
      mode,
      sessions: config.sessions,
      messages,
      size: config.size,
      caPath: certPath,
      timeoutMs: config.timeoutMs,
    });
    if (config.warmup > 0) await round(job(config.warmup));
    const samples: Sample[] = [];
    let tlsInfo: string | undefined;
    const otherCores: number[] = [];
    for (let run = 1; run <= config.runs; run++) {
      const resetOk = resetPeakRss(pid);
      const cpu0 = cpuSeconds(pid);
      const result = await round(job(config.messages));
      const serverCpu = cpuSeconds(pid) - cpu0;
      const sample = {
        mbps: result.payloadBytes / result.seconds / 1e6,
        msgps: result.messages / result.seconds,
        serverCpu,
        peakRss: peakRssBytes(pid),
      };
      samples.push(sample);
      tlsInfo ??= result.tls;
      // The server used next to nothing outside the client's window, so its whole delta can be subtracted.
      const other = result.machineCpu === undefined
        ? undefined
        : Math.max(0, result.machineCpu - result.clientCpu - serverCpu) / result.seconds;
      if (other !== undefined) otherCores.push(other);
      log(
        `  ${runtime.padEnd(4)} ${mode.padEnd(8)} run ${run}/${config.runs}: ${sample.mbps.toFixed(1)} MB/s, ` +
          `${sample.msgps.toFixed(1)} msg/s, server CPU ${serverCpu.toFixed(2)} s, client CPU ` +
          `${result.clientCpu.toFixed(2)} s, peak RSS ${(sample.peakRss / 2 ** 20).toFixed(0)} MiB` +
          `${resetOk ? "" : " (since start: clear_refs refused)"}` +
          `${other === undefined ? "" : `, other processes ${other.toFixed(2)} cores`}${
            result.tls ? `, ${result.tls}` : ""
          }`,
      );
    }
    const median = (metric: keyof Sample) => spread(samples.map((s) => s[metric])).median;
    return {
      ok: true,
      tls: tlsInfo,
      otherCores,
      median: {
        mbps: median("mbps"),
        msgps: median("msgps"),
        serverCpu: median("serverCpu"),
        peakRss: median("peakRss"),
      },
    };
  } catch (err) {
    const error = (err as Error).message;
    log(`  ${runtime} ${mode}: FAILED: ${error}`);
    return { ok: false, error };
  } finally {
    await server.stop();
  }
}

/** `OpenSSL 3.0.19`, the openssl CLI that made the certificate. */
function opensslVersion(): string {
  try {
    return execFileSync("openssl", ["version"], { encoding: "utf8" }).trim().split(" ").slice(0, 2).join(" ");
  } catch {
    return "openssl n/a";
  }
}

function machineLines(config: Config, machine: Machine): string[] {
  const versions = config.runtimes.map((r) => `${r} ${machine.versions[r]}`).join(", ");
  return [
    `Machine: ${machine.cpus} CPUs (${machine.cpuModel}), ${machine.memoryGiB.toFixed(1)} GiB, Linux ${machine.kernel}`,
    `Runtimes: ${versions}; client: Node ${machine.versions.node}; certificate: ${
      config.keyType === "ec" ? "EC P-256" : "RSA 2048"
    } (${opensslVersion()})`,
    `Load: ${config.sessions} concurrent sessions, ${config.messages} messages of ${config.size} bytes per round ` +
    `(PIPELINING), ${config.warmup} warm-up messages, median of ${config.runs} round${config.runs === 1 ? "" : "s"}`,
  ];
}

function table(config: Config, cells: Map<string, Cell>): string[] {
  const rows = [
    `| mode | ${config.runtimes.join(" | ")} |`,
    `| --- | ${config.runtimes.map(() => "---").join(" | ")} |`,
  ];
  for (const mode of config.modes) {
    const row = config.runtimes.map((runtime) => {
      const cell = cells.get(`${runtime}/${mode}`)!;
      if (!cell.ok) return "failed";
      const m = cell.median;
      return `${m.mbps.toFixed(1)} MB/s · ${m.msgps.toFixed(1)} msg/s · ${m.serverCpu.toFixed(2)} s CPU · ` +
        `${(m.peakRss / 2 ** 20).toFixed(0)} MiB`;
    });
    rows.push(`| ${MODE_LABEL[mode]} | ${row.join(" | ")} |`);
  }
  return rows;
}

const HELP = `Usage: deno run -A scripts/bench/tls_throughput.ts [options]

  --sessions N     concurrent SMTP sessions per round (default 10)
  --messages N     messages per round, over all sessions (default 100; --quick: 20)
  --size BYTES     message size (default 1048576)
  --runs N         measured rounds per cell; the table shows the medians (default 3; --quick: 1)
  --warmup N       messages sent before measuring, not counted (default: --sessions)
  --runtimes LIST  comma-separated of deno,bun,node (default all)
  --modes LIST     comma-separated of starttls,implicit,plain (default all)
  --key-type T     ec (P-256, default) or rsa (2048)
  --timeout S      seconds a round may take before it fails (default 120)
  --quick          a fast smoke run: 20 messages, 1 round
`;

function parseConfig(argv: string[]): Config | undefined {
  const { values } = parseArgs({
    args: argv,
    options: {
      sessions: { type: "string" },
      messages: { type: "string" },
      size: { type: "string" },
      runs: { type: "string" },
      warmup: { type: "string" },
      runtimes: { type: "string" },
      modes: { type: "string" },
      "key-type": { type: "string" },
      timeout: { type: "string" },
      quick: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
    strict: true,
  });
  if (values.help) return undefined;
  const keyType = values["key-type"] ?? "ec";
  if (keyType !== "ec" && keyType !== "rsa") throw new UsageError(`--key-type must be ec or rsa, got "${keyType}"`);
  const sessions = intOption("sessions", values.sessions, 10, 1);
  return {
    sessions,
    messages: intOption("messages", values.messages, values.quick ? 20 : 100, 1),
    // Room for the headers and at least one body line.
    size: intOption("size", values.size, 1048576, 1024),
    runs: intOption("runs", values.runs, values.quick ? 1 : 3, 1),
    warmup: intOption("warmup", values.warmup, sessions, 0),
    runtimes: listOption("runtimes", values.runtimes, RUNTIMES),
    modes: listOption("modes", values.modes, MODES),
    keyType,
    timeoutMs: intOption("timeout", values.timeout, 120, 1) * 1000,
  };
}

async function main(): Promise<number> {
  const argv = process.argv.slice(2);
  if (argv[0] === "--client") {
    try {
      const result = await runClient(JSON.parse(argv[1]) as ClientJob);
      process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
      return 0;
    } catch (err) {
      // One line, the last of stderr: the orchestrator quotes it in the failed cell's message.
      process.stderr.write(`client: ${(err as Error).message}\n`);
      return 1;
    }
  }
  let config: Config | undefined;
  try {
    config = parseConfig(argv);
  } catch (err) {
    process.stderr.write(`tls_throughput: ${(err as Error).message}\n${HELP}`);
    return 2;
  }
  if (!config) {
    process.stdout.write(HELP);
    return 0;
  }
  const started = performance.now();
  const dir = mkdtempSync(join(os.tmpdir(), "midi-smtp-tls-bench-"));
  try {
    const { certPath, keyPath } = makeCertificate(dir, config.keyType, HOST);
    const cells = new Map<string, Cell>();
    for (const runtime of config.runtimes) {
      for (const mode of config.modes) {
        log(`${runtime} / ${MODE_LABEL[mode]}`);
        cells.set(`${runtime}/${mode}`, await measure(config, runtime, mode, certPath, keyPath));
      }
    }
    const machine = describeMachine(REPO, TOOLS);
    const tlsUsed = config.runtimes.flatMap((runtime) => {
      const cell = [...config.modes].filter((m) => m !== "plain").map((m) => cells.get(`${runtime}/${m}`)!)
        .find((c) => c.ok && c.tls);
      return cell?.ok && cell.tls ? [`${runtime} ${cell.tls}`] : [];
    });
    const others = spread([...cells.values()].flatMap((c) => c.ok ? c.otherCores : []));
    const lines = [
      ...machineLines(config, machine),
      ...(tlsUsed.length ? [`Negotiated: ${tlsUsed.join("; ")}`] : []),
      ...(Number.isFinite(others.median)
        ? [
          `Other processes kept a median ${others.median.toFixed(2)} (max ${others.max.toFixed(2)}) of ` +
          `${machine.cpus} cores busy during the rounds${others.median > 0.2 ? ": the machine was not quiet" : ""}`,
        ]
        : []),
      "",
      "Each cell: payload MB/s (10^6 bytes/s) · messages/s · server CPU seconds per round · server peak RSS.",
      "",
      ...table(config, cells),
      "",
      `Total time ${((performance.now() - started) / 1000).toFixed(0)} s.`,
    ];
    process.stdout.write(lines.join("\n") + "\n");
    return [...cells.values()].every((c) => c.ok) ? 0 : 1;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().then((code) => process.exit(code), (err: Error) => {
  process.stderr.write(`${err.stack ?? err.message}\n`);
  process.exit(1);
});
