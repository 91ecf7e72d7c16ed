/**
 * The soak: MidiSmtpServer under mixed good and hostile traffic for a while
 * on each runtime, then checked for lost or doubled mail, wrong replies,
 * hung sessions, and resources that do not come back.
 *
 *   npm run soak [-- --seconds 60] [--runtime deno,bun,node]
 *   deno run -A scripts/soak.ts [--seconds N] [--runtime deno|bun|node ...] [--settle N]
 *
 * Options:
 *   --seconds N     load phase per runtime [60]; the whole run is about N + 35 s per runtime
 *   --runtime R     deno, bun, node; repeatable or comma-separated [all three]
 *   --settle N      seconds to wait, once every client has gone, before the end measurement [5]
 *
 * Everything runs on loopback. Per runtime: the library is frozen into a
 * temporary copy (and its npm build, for Node) as the benchmark does; the
 * target (scripts/soak/target.ts) starts on that runtime with two listeners
 * (plain, and PROXY-protocol); a warm-up; the baseline (RSS, open
 * descriptors, heap after a forced GC); the load phase from a separate Node
 * process (scripts/soak/loadgen.ts) while RSS, descriptors, connections and
 * sessions are sampled; the clients' sessions run out; the settle period;
 * the end measurement; a probe of every client address and of both
 * listeners; then the accepted message ids are compared with the ones the
 * clients got a 250 for. Progress goes to stderr; the report, with a PASS or
 * FAIL line per check, to stdout. Exit status 1 on any FAIL, 2 on bad usage.
 *
 * @module
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import { join, resolve } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { setTimeout as sleep } from "node:timers/promises";
import { intOption, UsageError } from "./bench/lib/args.ts";
import { type Library, prepareLibrary } from "./bench/lib/library.ts";
import { describeMachine } from "./bench/lib/machine.ts";
import { cpuSeconds, machineBusySeconds, peakRssBytes, resetPeakRss, rssBytes } from "./bench/lib/proc.ts";
import { type Child, findNode, start } from "./bench/lib/spawn.ts";
import type { Toolchain } from "./bench/lib/targets.ts";
import type { TargetStats } from "./soak/plan.ts";
import type { Tally } from "./soak/tally.ts";
import { type Check, type Integrity, renderReport, type Resources, type RuntimeResult } from "./soak/report.ts";

const REPO = resolve(fileURLToPath(new URL("..", import.meta.url)));
const RUNTIMES = ["deno", "bun", "node"] as const;
type Runtime = typeof RUNTIMES[number];

// ---- the checks' tolerances ----------------------------------------------------------------

/** Descriptors the target may hold at the end beyond its baseline (the runtime's own, opened lazily). */
const FD_SLACK = 5;
/**
 * Most RSS the target may reach under the soak's load (about 300 connections at once). RSS is a bound, not the
 * leak check: V8 and the runtimes keep freed pages for a while (Deno held 167 MiB after a 60 s run and 119 MiB after
 * a 120 s run with twice the load, its live heap 8 MiB both times), so "back to the start" would fail without a
 * leak. The leak checks are the live heap after a forced GC, the open descriptors and the drained counters.
 */
const RSS_CEILING_BYTES = 256 * 1024 * 1024;
/** Live heap (after a forced GC) the target may hold at the end beyond its baseline. */
const HEAP_SLACK_BYTES = 4 * 1024 * 1024;
/**
 * Mean of the plain listener's kernel accept queue (sampled every 0.5 s) above which the server counts as
 * not keeping up with accepting: connections then wait before the server even sees them, and once the
 * queue is full the kernel drops SYNs (clients retry after 1 s, 3 s...). Node and Bun stay at 0–1 here.
 */
const ACCEPT_QUEUE_MEAN_MAX = 5;
/** Seconds of the load phase per window in the progress check: each must have well-behaved deliveries. */
const WINDOW_SECONDS = 10;
/** The longest the clients' sessions may take to end after the load phase, and the settle wait for connections. */
const DRAIN_TIMEOUT_MS = 30_000;

interface Options {
  seconds: number;
  runtimes: Runtime[];
  settle: number;
}

function parse(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      seconds: { type: "string" },
      runtime: { type: "string", multiple: true },
      settle: { type: "string" },
    },
    strict: true,
  });
  const runtimes = (values.runtime ?? [...RUNTIMES]).flatMap((r) => r.split(",")).map((r) => r.trim()).filter(Boolean);
  const unknown = runtimes.filter((r) => !(RUNTIMES as readonly string[]).includes(r));
  if (unknown.length > 0 || runtimes.length === 0) {
    throw new UsageError(`--runtime: unknown ${unknown.join(", ") || "(empty)"}; known: ${RUNTIMES.join(", ")}`);
  }
  return {
    seconds: intOption("seconds", values.seconds, 60, 10),
    runtimes: RUNTIMES.filter((r) => runtimes.includes(r)),
    settle: intOption("settle", values.settle, 5, 1),
  };
}

function progress(msg: string): void {
  process.stderr.write(`soak: ${msg}\n`);
}

const MiB = (b: number) => (b / 1048576).toFixed(1);

// ---- the target and its control channel ----------------------------------------------------

function targetCommand(
  runtime: Runtime,
  tools: Toolchain,
  lib: Library,
  ids: string,
): { command: string; args: string[] } {
  const script = join(REPO, "scripts", "soak", "target.ts");
  switch (runtime) {
    case "deno":
      return {
        command: tools.deno,
        args: ["run", "-A", "--v8-flags=--expose-gc", script, "--lib", lib.sourceEntry, "--ids", ids],
      };
    case "bun":
      return { command: tools.bun, args: ["run", script, "--lib", lib.sourceEntry, "--ids", ids] };
    case "node":
      // Node runs the npm build, what npm users get.
      return {
        command: tools.node,
        args: ["--expose-gc", "--import", "tsx", script, "--lib", lib.npmEntry, "--ids", ids],
      };
  }
}

/** Commands to the target over its stdin, one at a time; answers are read from its stdout. */
class Control {
  #n = 0;
  #queue: Promise<unknown> = Promise.resolve();

  constructor(readonly child: Child) {}

  ask(command: "stats" | "gc" | "dump" | "reset-lag", timeoutMs = 15_000): Promise<string> {
    const asked = this.#queue.then(async () => {
      const n = ++this.#n;
      const prefix = `${{ stats: "STATS", gc: "GC", dump: "DUMPED", "reset-lag": "RESET" }[command]} ${n} `;
      this.child.process.stdin!.write(`${command} ${n}\n`);
      const until = Date.now() + timeoutMs;
      for (;;) {
        // A whole line only (the answer may arrive in pieces).
        const out = this.child.stdout();
        const at = out.startsWith(prefix) ? 0 : out.indexOf(`\n${prefix}`) + 1 || -1;
        const end = at >= 0 ? out.indexOf("\n", at) : -1;
        if (end >= 0) return out.slice(at + prefix.length, end);
        if (this.child.process.exitCode !== null || this.child.process.signalCode !== null) {
          throw new Error(`target exited (stderr: ${this.child.stderr().trim().slice(-1500)})`);
        }
        if (Date.now() > until) throw new Error(`target did not answer "${command}" within ${timeoutMs} ms`);
        await sleep(10);
      }
    });
    this.#queue = asked.catch(() => {});
    return asked;
  }

  async stats(): Promise<TargetStats> {
    return JSON.parse(await this.ask("stats")) as TargetStats;
  }
}

/**
 * Connections the kernel has queued for the listener on 127.0.0.1:`port` that
 * the server has not accepted yet (the rx_queue of its LISTEN line in
 * /proc/net/tcp); NaN where unreadable.
 */
function acceptQueue(port: number): number {
  try {
    const local = `0100007F:${port.toString(16).toUpperCase().padStart(4, "0")}`;
    for (const line of readFileSync("/proc/net/tcp", "latin1").split("\n")) {
      const f = line.trim().split(/\s+/);
      if (f[1] === local && f[3] === "0A") return parseInt(f[4].split(":")[1], 16);
    }
  } catch {
    // not Linux
  }
  return NaN;
}

/** The kernel's count of listen-queue overflows (SYNs dropped because an accept queue was full), this network namespace. */
function listenOverflows(): number {
  try {
    const lines = readFileSync("/proc/net/netstat", "latin1").split("\n").filter((l) => l.startsWith("TcpExt:"));
    const keys = lines[0].split(/\s+/);
    const values = lines[1].split(/\s+/);
    return Number(values[keys.indexOf("ListenOverflows")]);
  } catch {
    return NaN;
  }
}

function fdCount(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** Resources after a forced GC, once no connection is left (or after `DRAIN_TIMEOUT_MS`). */
async function measureQuiet(
  control: Control,
  pid: number,
  settleMs: number,
): Promise<Resources & { stats: TargetStats }> {
  const until = Date.now() + DRAIN_TIMEOUT_MS;
  let stats = await control.stats();
  while ((stats.connections > 0 || stats.processings > 0) && Date.now() < until) {
    await sleep(250);
    stats = await control.stats();
  }
  await sleep(settleMs);
  await control.ask("gc");
  await sleep(1000);
  stats = await control.stats();
  return { rss: rssBytes(pid), fds: fdCount(pid), heapUsed: stats.memory.heapUsed, stats };
}

/** Runs the load generator once; resolves with its tally and the ids it got a 250 for. */
async function loadgen(
  tools: Toolchain,
  tmp: string,
  tag: string,
  ports: { port: number; proxyPort: number },
  phase: "warmup" | "load" | "probe",
  seconds: number,
): Promise<{ tally: Tally; acked: string[] }> {
  const out = join(tmp, `${tag}-${phase}.json`);
  const ids = join(tmp, `${tag}-${phase}-acked.txt`);
  const child = start(tools.node, [
    "--import",
    "tsx",
    join(REPO, "scripts", "soak", "loadgen.ts"),
    "--port",
    String(ports.port),
    "--proxy-port",
    String(ports.proxyPort),
    "--phase",
    phase,
    "--seconds",
    String(seconds),
    "--out",
    out,
    "--ids",
    ids,
  ], REPO);
  const code = await child.exited;
  if (code !== 0 || !existsSync(out)) {
    throw new Error(`loadgen (${phase}) exited ${code}: ${(child.stderr() || child.stdout()).trim().slice(-1500)}`);
  }
  return {
    tally: JSON.parse(readFileSync(out, "utf8")) as Tally,
    acked: readFileSync(ids, "utf8").split("\n").filter(Boolean),
  };
}

/** The population an id belongs to (`<phase><nonce>-<population>-<n>`). */
function populationOf(id: string): string {
  const m = /^([a-z])[a-z0-9]+-(.+)-\d+$/.exec(id);
  return m ? `${{ w: "warmup", l: "load", p: "probe" }[m[1]] ?? m[1]} ${m[2]}` : id;
}

function compareIds(accepted: string[], acked: string[]): Integrity {
  const seen = new Map<string, number>();
  for (const id of accepted) seen.set(id, (seen.get(id) ?? 0) + 1);
  const ackedSet = new Set(acked);
  const duplicates = [...seen].filter(([, n]) => n > 1).map(([id, n]) => `${id} (${n} times)`);
  const lost = [...ackedSet].filter((id) => !seen.has(id));
  const extra = [...seen.keys()].filter((id) => !ackedSet.has(id));
  const extraByPopulation: Record<string, number> = {};
  for (const id of extra) extraByPopulation[populationOf(id)] = (extraByPopulation[populationOf(id)] ?? 0) + 1;
  return {
    accepted: accepted.length,
    acked: acked.length,
    ackedTwice: acked.length - ackedSet.size,
    duplicates,
    lost,
    extra,
    extraByPopulation,
  };
}

// ---- one runtime ---------------------------------------------------------------------------

async function soakRuntime(
  runtime: Runtime,
  version: string,
  opts: Options,
  tools: Toolchain,
  lib: Library,
  tmp: string,
): Promise<RuntimeResult> {
  const ids = join(tmp, `${runtime}-accepted.txt`);
  const { command, args } = targetCommand(runtime, tools, lib, ids);
  const child = start(command, args, lib.root, "pipe");
  let exited: number | undefined;
  child.exited.then((code) => exited = code);
  const control = new Control(child);
  const result: RuntimeResult = { runtime, version, seconds: opts.seconds, checks: [] };
  try {
    const ready = await child.waitForLine("READY ", 60_000);
    const [port, proxyPort] = ready.slice("READY ".length).trim().split(/\s+/).map(Number);
    const ports = { port, proxyPort };
    const pid = child.process.pid!;
    result.pid = pid;
    progress(`${runtime}: target pid ${pid} on 127.0.0.1:${port} (PROXY listener :${proxyPort}); warm-up`);
    const warmup = await loadgen(tools, tmp, runtime, ports, "warmup", 3);
    const startRes = await measureQuiet(control, pid, 1000);
    result.start = { rss: startRes.rss, fds: startRes.fds, heapUsed: startRes.heapUsed };
    resetPeakRss(pid);
    await control.ask("reset-lag");
    progress(
      `${runtime}: baseline RSS ${MiB(startRes.rss)} MiB, ${startRes.fds} fds, heap ${MiB(startRes.heapUsed)} MiB; ` +
        `load for ${opts.seconds} s`,
    );

    // The load phase, sampled.
    const peak = {
      rss: startRes.rss,
      fds: startRes.fds,
      connections: 0,
      processings: 0,
      plainConnections: 0,
      plainProcessings: 0,
      overloadedSamples: 0,
      samples: 0,
      acceptQueueMax: 0,
      acceptQueueSum: 0,
      acceptQueueSamples: 0,
      listenOverflows: 0,
    };
    let sampling = true;
    const began = Date.now();
    const sampler = (async () => {
      let lastReport = 0;
      while (sampling && exited === undefined) {
        try {
          peak.rss = Math.max(peak.rss, rssBytes(pid));
          peak.fds = Math.max(peak.fds, fdCount(pid));
          const queued = acceptQueue(port);
          if (!Number.isNaN(queued)) {
            peak.acceptQueueMax = Math.max(peak.acceptQueueMax, queued);
            peak.acceptQueueSum += queued;
            peak.acceptQueueSamples++;
          }
          const s = await control.stats();
          peak.connections = Math.max(peak.connections, s.connections);
          peak.processings = Math.max(peak.processings, s.processings);
          peak.plainConnections = Math.max(peak.plainConnections, s.listeners.plain.connections);
          peak.plainProcessings = Math.max(peak.plainProcessings, s.listeners.plain.processings);
          peak.samples++;
          if (s.overloaded) peak.overloadedSamples++;
          const t = Math.round((Date.now() - began) / 1000);
          if (t - lastReport >= 10) {
            lastReport = t;
            progress(
              `${runtime}: t=${t}s RSS ${MiB(rssBytes(pid))} MiB, ${fdCount(pid)} fds, ${s.connections} connections, ` +
                `${s.processings} sessions${s.overloaded ? " (overloaded)" : ""}, ${s.accepted} accepted`,
            );
          }
        } catch {
          // the target died: the checks below say so
        }
        await sleep(500);
      }
    })();
    const overflows0 = listenOverflows();
    const cpu0 = cpuSeconds(pid);
    const busy0 = machineBusySeconds();
    let load;
    try {
      load = await loadgen(tools, tmp, runtime, ports, "load", opts.seconds);
    } finally {
      sampling = false;
      await sampler;
    }
    result.loadElapsed = load.tally.elapsedSec;
    result.loopLag = (await control.stats()).loopLag;
    peak.listenOverflows = listenOverflows() - overflows0;
    result.cpu = { target: cpuSeconds(pid) - cpu0, machine: machineBusySeconds() - busy0 };
    peak.rss = Math.max(peak.rss, peakRssBytes(pid));
    result.peak = peak;
    progress(`${runtime}: clients done after ${load.tally.elapsedSec.toFixed(0)} s; settling`);

    const endRes = await measureQuiet(control, pid, opts.settle * 1000);
    result.end = { rss: endRes.rss, fds: endRes.fds, heapUsed: endRes.heapUsed };
    result.endStats = endRes.stats;
    progress(`${runtime}: end RSS ${MiB(endRes.rss)} MiB, ${endRes.fds} fds, heap ${MiB(endRes.heapUsed)} MiB; probe`);

    const probe = await loadgen(tools, tmp, runtime, ports, "probe", 1);
    await control.ask("dump");
    result.finalStats = await control.stats();
    result.warmup = warmup.tally;
    result.load = load.tally;
    result.probe = probe.tally;
    const accepted = readFileSync(ids, "utf8").split("\n").filter(Boolean);
    result.integrity = compareIds(accepted, [...warmup.acked, ...load.acked, ...probe.acked]);
  } catch (err) {
    result.error = (err as Error).message;
  } finally {
    result.alive = exited === undefined;
    result.exitCode = exited;
    if (!result.alive) result.stderrTail = child.stderr().trim().slice(-3000);
    await child.stop();
  }
  result.checks = checks(result);
  return result;
}

function checks(r: RuntimeResult): Check[] {
  const list: Check[] = [];
  const add = (name: string, ok: boolean, detail: string) => list.push({ name, ok, detail });
  const s = r.finalStats;
  add(
    "alive",
    r.alive === true && r.error === undefined && (s?.uncaught.length ?? 0) === 0,
    r.error
      ? `soak aborted: ${r.error}`
      : !r.alive
      ? `target exited with ${r.exitCode} during the soak`
      : s && s.uncaught.length > 0
      ? `uncaught in the target: ${s.uncaught[0]}`
      : "target ran to the end; no uncaught exception or unhandled rejection",
  );
  if (!r.integrity || !r.load || !r.start || !r.end || !r.endStats || !s || !r.probe) return list;
  const i = r.integrity;
  add(
    "delivery",
    i.lost.length === 0 && i.extra.length === 0 && i.duplicates.length === 0 && i.ackedTwice === 0,
    `server kept ${i.accepted}, clients got 250 for ${i.acked}; lost ${i.lost.length}, kept without a 250 ${i.extra.length}` +
      `${
        Object.keys(i.extraByPopulation).length
          ? ` (${Object.entries(i.extraByPopulation).map(([p, n]) => `${p}: ${n}`).join(", ")})`
          : ""
      }` +
      `, kept twice ${i.duplicates.length}${i.duplicates.length ? ` (${i.duplicates.slice(0, 3).join(", ")})` : ""}`,
  );
  const windows = Math.floor(r.seconds / WINDOW_SECONDS);
  const perWindow = r.load.deliveredPerWindow.slice(0, windows);
  while (perWindow.length < windows) perWindow.push(0);
  add(
    "progress",
    perWindow.every((n) => n > 0),
    `well-behaved messages per ${WINDOW_SECONDS} s: ${perWindow.join(", ")}`,
  );
  const unexpected = sum(r.load.unexpected) + sum(r.warmup?.unexpected ?? {}) + sum(r.probe.unexpected);
  add(
    "replies",
    unexpected === 0,
    unexpected === 0
      ? "every reply was one its step allows; every 221/421/554 was followed by the close"
      : `${unexpected} unexpected: ${
        [...r.load.unexpectedExamples, ...r.probe.unexpectedExamples].slice(0, 3).join(" | ")
      }`,
  );
  const hangs = sum(r.load.hangs) + sum(r.probe.hangs);
  add(
    "no hangs",
    hangs === 0 && r.load.openAtHardStop === 0,
    hangs === 0 && r.load.openAtHardStop === 0
      ? `every idle, trickling or refused client was answered or closed in time; clients done ${
        (r.load.elapsedSec - r.seconds).toFixed(0)
      } s after the load phase`
      : `${hangs} waits past their deadline (${
        Object.keys(r.load.hangs).slice(0, 4).join(", ")
      }), ${r.load.openAtHardStop} connections open at the hard stop`,
  );
  const p = r.peak;
  if (p && p.acceptQueueSamples > 0) {
    const mean = p.acceptQueueSum / p.acceptQueueSamples;
    add(
      "accepting",
      mean <= ACCEPT_QUEUE_MEAN_MAX,
      `connections waiting in the kernel to be accepted (plain listener, every 0.5 s): mean ${mean.toFixed(1)}, ` +
        `max ${p.acceptQueueMax} (allowed: mean <= ${ACCEPT_QUEUE_MEAN_MAX}); well-behaved clients' greeting after ` +
        `p50 ${r.load.greetingMs.p50} ms, p99 ${r.load.greetingMs.p99} ms (greetingDelay 200 ms)`,
    );
  }
  const e = r.endStats;
  add(
    "drained",
    e.connections === 0 && e.processings === 0 && e.connects === e.disconnects,
    `after the clients left: connections() ${e.connections}, processings() ${e.processings}; ` +
      `onConnectEvent ${e.connects}, onDisconnectEvent ${e.disconnects}`,
  );
  add(
    "fds",
    r.end.fds <= r.start.fds + FD_SLACK,
    `open descriptors start ${r.start.fds}, peak ${r.peak?.fds}, end ${r.end.fds} (allowed: start + ${FD_SLACK})`,
  );
  const peakRss = Math.max(r.peak?.rss ?? 0, r.end.rss);
  add(
    "rss",
    peakRss <= RSS_CEILING_BYTES,
    `RSS start ${MiB(r.start.rss)} MiB, peak ${MiB(peakRss)}, end ${MiB(r.end.rss)} ` +
      `(allowed: at most ${MiB(RSS_CEILING_BYTES)} at any time)`,
  );
  add(
    "heap",
    r.end.heapUsed <= r.start.heapUsed + HEAP_SLACK_BYTES,
    `live heap after a forced GC: start ${MiB(r.start.heapUsed)} MiB, end ${MiB(r.end.heapUsed)} ` +
      `(allowed: start + ${MiB(HEAP_SLACK_BYTES)})${s.gc ? "" : " (no forced GC available)"}`,
  );
  add(
    "released",
    r.probe.probeFailures.length === 0,
    r.probe.probeFailures.length === 0
      ? `all ${r.probe.probes} client addresses let in again; a message through each listener accepted`
      : r.probe.probeFailures.slice(0, 3).join(" | "),
  );
  add(
    "no internal errors",
    s.errorLogs.length === 0 && s.proxyMismatches === 0,
    s.errorLogs.length === 0 && s.proxyMismatches === 0
      ? "no error-severity log line from the library; every proxied client had the address its header gave"
      : [...s.errorLogs.slice(0, 2), ...s.proxyMismatchExamples.slice(0, 2)].join(" | "),
  );
  return list;
}

function sum(map: Record<string, number>): number {
  return Object.values(map).reduce((a, b) => a + b, 0);
}

// ---- main ----------------------------------------------------------------------------------

async function main(): Promise<number> {
  let opts: Options;
  try {
    opts = parse(process.argv.slice(2));
  } catch (err) {
    console.error(`soak: ${(err as Error).message}`);
    return 2;
  }
  const began = Date.now();
  const bin = (name: string) => join(REPO, "node_modules", ".bin", name);
  const tools: Toolchain = { repo: REPO, deno: bin("deno"), bun: bin("bun"), node: findNode() };
  const tmp = mkdtempSync(join(os.tmpdir(), "midi-soak-"));
  try {
    progress(`freezing the library (and building its npm package for Node) in ${tmp}`);
    const lib = await prepareLibrary(REPO, tmp, undefined, tools.node);
    const machine = describeMachine(REPO, tools);
    const results: RuntimeResult[] = [];
    for (const runtime of opts.runtimes) {
      const r = await soakRuntime(runtime, machine.versions[runtime], opts, tools, lib, tmp);
      for (const c of r.checks) progress(`${runtime}: ${c.ok ? "PASS" : "FAIL"} ${c.name}: ${c.detail}`);
      results.push(r);
    }
    process.stdout.write(renderReport({
      date: new Date(began).toISOString().replace(/\.\d+Z$/, "Z"),
      command: ["npm run soak --", ...process.argv.slice(2)].join(" "),
      library: lib.label,
      machine,
      results,
    }));
    progress(`done in ${((Date.now() - began) / 1000).toFixed(0)} s`);
    return results.every((r) => r.checks.every((c) => c.ok)) ? 0 : 1;
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

main().then((code) => process.exit(code), (err) => {
  console.error(`soak: ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
  process.exit(1);
});
