/**
 * Turns the measurements into markdown (one table per question) and puts it
 * into BENCHMARKS.md between two marker comments, leaving the rest of the
 * file (the reading of the numbers) alone.
 *
 * @module
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { type Spread, spread } from "./stats.ts";
import type { Machine } from "./machine.ts";
import type { SmtpSourceResult } from "./smtp_source.ts";
import type { Workload } from "./workloads.ts";
import type { ProxyVersion } from "./proxy.ts";

/** The suffix of a PROXY variant's target name (as in targets.ts): `ours-node-proxy` is `ours-node` with PROXY on. */
const PROXY_SUFFIX = "-proxy";

/** One workload on one target. */
export interface CellResult {
  /** Workload name. */
  readonly workload: string;
  /** Target name. */
  readonly target: string;
  /** Accepted msgs/s over the measured runs. */
  readonly msgsPerSec: Spread;
  /** MB/s (10^6 payload bytes per second) over the runs. */
  readonly mbPerSec: Spread;
  /** Server CPU seconds per run. */
  readonly serverCpuSec: Spread;
  /** Load generator CPU seconds per run. */
  readonly genCpuSec: Spread;
  /** CPU seconds per run that neither server nor generator used (other processes, steal): the noise. */
  readonly otherCpuSec: Spread;
  /** Server peak RSS (VmHWM) over warm-up and runs, bytes. */
  readonly peakRssBytes: number;
  /** Messages per run. */
  readonly messages: number;
  /** The PROXY header version the target was sent on every connection (its twin without PROXY: the name minus `-proxy`). */
  readonly proxy?: ProxyVersion;
  /** Worker processes the target ran under a supervisor (its one-process twin: the name without `-workersN`). */
  readonly workers?: number;
  /** Every measured run's msgs/s and server CPU seconds, in round order (for ratios between twins, round by round). */
  readonly perRun?: { readonly msgsPerSec: readonly number[]; readonly serverCpuSec: readonly number[] };
  /** Failures summed over the runs (the warm-up must have none). */
  readonly failures: number;
  /** The first failure, if any. */
  readonly firstFailure?: string;
  /** Why the cell has no numbers, if it has none. */
  readonly error?: string;
  /** The smtp-source cross-check, when it ran. */
  readonly smtpSource?: SmtpSourceResult;
}

/** Idle connections held against one target. */
export interface IdleResult {
  /** Target name. */
  readonly target: string;
  /** Connections asked for. */
  readonly count: number;
  /** Connections that got their 220 and were held. */
  readonly held: number;
  /** Server RSS before the connections, bytes. */
  readonly rssBefore: number;
  /** Server RSS with the connections open, bytes. */
  readonly rssAfter: number;
  /** Why there are no numbers, if there are none. */
  readonly error?: string;
}

/** Everything one run of the benchmark produced. */
export interface BenchReport {
  /** When it started (ISO 8601). */
  readonly date: string;
  /** The command line. */
  readonly command: string;
  /** Which library code was measured. */
  readonly library: string;
  /** The machine. */
  readonly machine: Machine;
  /** Measured runs per cell. */
  readonly runs: number;
  /** Whether `--quick` counts were used. */
  readonly quick: boolean;
  /** The workloads, as run. */
  readonly workloads: readonly Workload[];
  /** Reference target for the ratios. */
  readonly reference: string;
  /** Whether smtp-source ran, or why not. */
  readonly smtpSource: string;
  /** Results in table order. */
  readonly cells: readonly CellResult[];
  /** The idle-connection measurements. */
  readonly idle: readonly IdleResult[];
}

/** Where the generated section of BENCHMARKS.md starts. */
export const BEGIN_MARK = "<!-- bench:results:begin (written by `deno task bench --write`; do not edit by hand) -->";
/** Where the generated section of BENCHMARKS.md ends. */
export const END_MARK = "<!-- bench:results:end -->";

const MiB = 1024 * 1024;

function fixed(n: number, digits: number): string {
  return Number.isFinite(n) ? n.toFixed(digits) : "n/a";
}

/** Digits that suit the magnitude: 12345, 1234, 123.4, 12.35, 1.235. */
function num(n: number): string {
  if (!Number.isFinite(n)) return "n/a";
  const a = Math.abs(n);
  return a >= 1000 ? n.toFixed(0) : a >= 100 ? n.toFixed(1) : a >= 10 ? n.toFixed(2) : n.toFixed(3);
}

function rate(s: Spread): string {
  if (!Number.isFinite(s.median)) return "n/a";
  return s.min === s.max ? num(s.median) : `${num(s.median)} (${num(s.min)}–${num(s.max)})`;
}

function ratio(value: number, reference: number | undefined): string {
  if (reference === undefined || !Number.isFinite(value) || !(reference > 0)) return "n/a";
  return `${(value / reference).toFixed(2)}x`;
}

function machineLines(r: BenchReport): string[] {
  const m = r.machine;
  const v = m.versions;
  return [
    `- Date: ${r.date}; library: ${r.library}`,
    `- Machine: ${m.cpus} CPUs (${m.cpuModel}), ${fixed(m.memoryGiB, 1)} GiB RAM, Linux ${m.kernel}; ` +
    "server and load generator share these cores, so every number includes the generator's share.",
    `- Runtimes: Deno ${v.deno}, Bun ${v.bun}, Node ${v.node}; smtp-server ${v["smtp-server"]}; Postfix ${v.postfix}`,
    `- Command: \`${r.command}\`; ${r.runs} measured run(s) per cell${r.quick ? " (--quick counts)" : ""}, ` +
    "each in a fresh load-generator process; every target restarted per workload.",
  ];
}

function workloadLines(r: BenchReport): string[] {
  return r.workloads.map((w) => {
    const count = r.quick ? w.quickMessages : w.messages;
    const warm = r.quick ? 0 : w.warmup;
    const source = w.smtpSource
      ? `smtp-source workload \`${w.smtpSource}\``
      : "no smtp-source twin (it cannot send BDAT)";
    const chunking = w.bdat ? "; only on targets that offer CHUNKING" : "";
    return `- **${w.name}**: ${w.description}; ${count} messages per run, ${warm} warm-up; ${source}${chunking}`;
  });
}

function mainTable(r: BenchReport): string[] {
  const lines = [
    "| workload | target | msgs/s median (min–max) | MB/s | vs smtp-server | server CPU s/run | server CPU µs/msg " +
    "| peak RSS MiB | loadgen CPU s/run | other CPU s/run | smtp-source msgs/s (vs smtp-server) | failures |",
    "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
  ];
  for (const w of r.workloads) {
    const cells = r.cells.filter((c) => c.workload === w.name);
    const ref = cells.find((c) => c.target === r.reference);
    for (const c of cells) {
      if (c.error) {
        lines.push(`| ${w.name} | ${c.target} | error: ${c.error.replaceAll("|", "/").slice(0, 160)} ||||||||||`);
        continue;
      }
      const s = c.smtpSource;
      const source = s === undefined
        ? "–"
        : Number.isFinite(s.msgsPerSec)
        ? `${num(s.msgsPerSec)} (${ratio(s.msgsPerSec, ref?.smtpSource?.msgsPerSec)})`
        : s.status;
      lines.push(
        [
          w.name,
          c.target,
          rate(c.msgsPerSec),
          num(c.mbPerSec.median),
          c.target === r.reference
            ? "1.00x (ref)"
            : !ref && w.bdat
            ? "– (no BDAT)"
            : ratio(c.msgsPerSec.median, ref?.msgsPerSec.median),
          fixed(c.serverCpuSec.median, 2),
          fixed((c.serverCpuSec.median / c.messages) * 1e6, 0),
          fixed(c.peakRssBytes / MiB, 1),
          fixed(c.genCpuSec.median, 2),
          fixed(c.otherCpuSec.median, 2),
          source,
          c.failures === 0 ? "0" : `${c.failures} (${(c.firstFailure ?? "").replaceAll("|", "/")})`,
        ].join(" | ").replace(/^/, "| ").concat(" |"),
      );
    }
  }
  return lines;
}

function legend(): string[] {
  return [
    "Columns: msgs/s = messages accepted per second (median of the runs, min–max); MB/s = message bytes, " +
    "10^6 B/s; vs smtp-server = ratio of the msgs/s medians in this run; server CPU = utime + stime of the " +
    "server process (all threads; for `-workersN` summed over the supervisor and its workers) over a run, and " +
    "that divided by the messages; peak RSS = VmHWM of the server (warm-up and runs; a fresh process per " +
    "workload; for `-workersN` the sum of every process's own peak); loadgen CPU = the generator's own CPU in the measured " +
    "window; other CPU = busy CPU of the whole machine in that window minus server and generator (other " +
    "processes, hypervisor steal: the noise); smtp-source = the same workload driven by Postfix's generator.",
  ];
}

/** `a / b` per round (as many rounds as both have). */
function perRound(a: readonly number[] | undefined, b: readonly number[] | undefined, scaleA = 1, scaleB = 1) {
  const n = Math.min(a?.length ?? 0, b?.length ?? 0);
  return Array.from({ length: n }, (_, i) => (a![i] / scaleA) / (b![i] / scaleB));
}

/** A ratio of the medians, with the range of the per-round ratios when there are several rounds. */
function twinRatio(value: number, reference: number, rounds: readonly number[]): string {
  const main = ratio(value, reference);
  if (main === "n/a" || rounds.length < 2) return main;
  const s = spread(rounds);
  return `${main} (${s.min.toFixed(2)}–${s.max.toFixed(2)})`;
}

/** Each `-proxy` target against its plain twin, measured back to back in the same rounds. */
function proxyTable(r: BenchReport): string[] {
  const rows: string[] = [];
  for (const w of r.workloads) {
    const cells = r.cells.filter((c) => c.workload === w.name);
    for (const c of cells) {
      if (!c.proxy || !c.target.endsWith(PROXY_SUFFIX) || c.error) continue;
      const plain = cells.find((p) => p.target === c.target.slice(0, -PROXY_SUFFIX.length));
      if (!plain || plain.error) continue;
      const cpuPerMsg = (x: CellResult) => (x.serverCpuSec.median / x.messages) * 1e6;
      rows.push(
        "| " + [
          w.name,
          `${c.target} (${c.proxy})`,
          plain.target,
          num(plain.msgsPerSec.median),
          num(c.msgsPerSec.median),
          twinRatio(
            c.msgsPerSec.median,
            plain.msgsPerSec.median,
            perRound(c.perRun?.msgsPerSec, plain.perRun?.msgsPerSec),
          ),
          fixed(cpuPerMsg(plain), 0),
          fixed(cpuPerMsg(c), 0),
          twinRatio(
            cpuPerMsg(c),
            cpuPerMsg(plain),
            perRound(c.perRun?.serverCpuSec, plain.perRun?.serverCpuSec, c.messages, plain.messages),
          ),
        ].join(" | ") + " |",
      );
    }
  }
  if (rows.length === 0) return [];
  return [
    "PROXY protocol cost: each `-proxy` target runs with `proxyExtension` on and gets a PROXY header (version in " +
    "brackets) as the first bytes of every connection; it is measured right next to its plain twin in every round " +
    "(their order alternating). Ratios are proxy / plain of the medians; in brackets the range of the same ratio " +
    "taken round by round.",
    "",
    "| workload | target | vs | msgs/s plain | msgs/s proxy | msgs/s proxy/plain | server CPU µs/msg plain " +
    "| server CPU µs/msg proxy | CPU/msg proxy/plain |",
    "|---|---|---|--:|--:|--:|--:|--:|--:|",
    ...rows,
  ];
}

/** Each `-workersN` target against its one-process twin, measured back to back in the same rounds. */
function workersTable(r: BenchReport): string[] {
  const rows: string[] = [];
  const cpuPerMsg = (x: CellResult) => (x.serverCpuSec.median / x.messages) * 1e6;
  for (const w of r.workloads) {
    const cells = r.cells.filter((c) => c.workload === w.name);
    for (const c of cells) {
      if (!c.workers || c.error) continue;
      const one = cells.find((p) => p.target === c.target.replace(/-workers\d+$/, ""));
      if (!one || one.error) continue;
      rows.push(
        "| " + [
          w.name,
          c.target,
          one.target,
          num(one.msgsPerSec.median),
          num(c.msgsPerSec.median),
          twinRatio(
            c.msgsPerSec.median,
            one.msgsPerSec.median,
            perRound(c.perRun?.msgsPerSec, one.perRun?.msgsPerSec),
          ),
          fixed(cpuPerMsg(one), 0),
          fixed(cpuPerMsg(c), 0),
          fixed(one.peakRssBytes / MiB, 1),
          fixed(c.peakRssBytes / MiB, 1),
        ].join(" | ") + " |",
      );
    }
  }
  if (rows.length === 0) return [];
  return [
    "Worker processes: each `-workersN` target is its one-process twin run by a `runWorkers` supervisor in N worker " +
    "processes on one port (SO_REUSEPORT; `node:cluster` on Node 20), measured right next to it in every round. CPU " +
    "and peak RSS are summed over the supervisor and the workers. Ratios are N / 1 of the medians; in brackets the " +
    "range of the same ratio taken round by round.",
    "",
    "| workload | target | vs | msgs/s 1 process | msgs/s workers | msgs/s workers/1 | server CPU µs/msg 1 " +
    "| server CPU µs/msg workers | peak RSS MiB 1 | peak RSS MiB workers (sum) |",
    "|---|---|---|--:|--:|--:|--:|--:|--:|--:|",
    ...rows,
  ];
}

/**
 * Each BDAT workload against its DATA twin (same shape), target by target.
 * The two are different workload passes (every target restarted between
 * them), so a ratio also holds whatever the machine did in between.
 */
function bdatTable(r: BenchReport): string[] {
  const rows: string[] = [];
  const cpuPerMsg = (x: CellResult) => (x.serverCpuSec.median / x.messages) * 1e6;
  for (const w of r.workloads) {
    if (!w.bdat) continue;
    for (const c of r.cells.filter((x) => x.workload === w.name && !x.error)) {
      const data = r.cells.find((x) => x.workload === w.bdat!.twin && x.target === c.target && !x.error);
      if (!data) continue;
      rows.push(
        "| " + [
          w.name,
          c.target,
          w.bdat.twin,
          num(data.msgsPerSec.median),
          num(c.msgsPerSec.median),
          ratio(c.msgsPerSec.median, data.msgsPerSec.median),
          fixed(cpuPerMsg(data), 0),
          fixed(cpuPerMsg(c), 0),
          ratio(cpuPerMsg(c), cpuPerMsg(data)),
          fixed(data.peakRssBytes / MiB, 1),
          fixed(c.peakRssBytes / MiB, 1),
        ].join(" | ") + " |",
      );
    }
  }
  if (rows.length === 0) return [];
  return [
    "BDAT against DATA: each BDAT workload next to its DATA twin of the same shape, on the same target (smtp-server " +
    "and smtp-sink offer no CHUNKING, so the comparison is within a runtime). Ratios are BDAT / DATA of the medians; " +
    "the two are separate workload passes, so drift of the machine between them is in the ratio too.",
    "",
    "| workload | target | vs | msgs/s DATA | msgs/s BDAT | msgs/s BDAT/DATA | server CPU µs/msg DATA " +
    "| server CPU µs/msg BDAT | CPU/msg BDAT/DATA | peak RSS MiB DATA | peak RSS MiB BDAT |",
    "|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|",
    ...rows,
  ];
}

function idleTable(r: BenchReport): string[] {
  if (r.idle.length === 0) return [];
  const count = r.idle[0].count;
  const lines = [
    `Idle connections: ${count} clients connect, read the 220 greeting and stay silent; server RSS before and ` +
    "after (VmRSS, about 1 s after the last one connected).",
    "",
    "| target | connections held | RSS before MiB | RSS with connections MiB | KiB per connection |",
    "|---|--:|--:|--:|--:|",
  ];
  for (const i of r.idle) {
    if (i.error) {
      lines.push(`| ${i.target} | error: ${i.error.replaceAll("|", "/").slice(0, 160)} ||||`);
      continue;
    }
    const per = i.held > 0 ? (i.rssAfter - i.rssBefore) / i.held / 1024 : NaN;
    lines.push(
      `| ${i.target} | ${i.held} | ${fixed(i.rssBefore / MiB, 1)} | ${fixed(i.rssAfter / MiB, 1)} | ${fixed(per, 1)} |`,
    );
  }
  return lines;
}

/** `lines` followed by an empty line, or nothing when there are none. */
function paragraph(lines: string[]): string[] {
  return lines.length === 0 ? [] : [...lines, ""];
}

/** The results as markdown (what goes between the markers). */
export function renderMarkdown(r: BenchReport): string {
  return [
    ...machineLines(r),
    "",
    "Workloads (our load generator, scripts/bench/loadgen.ts: PIPELINING on, every reply code checked):",
    "",
    ...workloadLines(r),
    "",
    `smtp-source cross-check: ${r.smtpSource}.`,
    "",
    ...mainTable(r),
    "",
    ...legend(),
    "",
    ...paragraph(proxyTable(r)),
    ...paragraph(workersTable(r)),
    ...paragraph(bdatTable(r)),
    ...idleTable(r),
  ].join("\n").trimEnd() + "\n";
}

/** Replaces the generated section of `path` (creating the file or the section when missing). */
export function writeSection(path: string, markdown: string): void {
  const section = `${BEGIN_MARK}\n\n${markdown}\n${END_MARK}`;
  const old = existsSync(path) ? readFileSync(path, "utf8") : "# Benchmarks\n";
  const begin = old.indexOf(BEGIN_MARK);
  const end = old.indexOf(END_MARK);
  const next = begin >= 0 && end > begin
    ? old.slice(0, begin) + section + old.slice(end + END_MARK.length)
    : `${old.trimEnd()}\n\n## Results\n\n${section}\n`;
  writeFileSync(path, next);
}
