/**
 * The soak's report: one markdown table with a column per runtime, the
 * refusals by reply, what clients saw go wrong, the target's log lines by
 * kind, and the PASS/FAIL line of every check.
 *
 * @module
 */
import type { Machine } from "../bench/lib/machine.ts";
import type { TargetStats } from "./plan.ts";
import type { Tally } from "./tally.ts";

/** What one measurement of the target found. */
export interface Resources {
  rss: number;
  fds: number;
  /** Live heap after a forced GC. */
  heapUsed: number;
}

/** The server's accepted ids against the ones the clients got a 250 for. */
export interface Integrity {
  /** Ids the server kept (lines of its file). */
  accepted: number;
  /** Ids the clients got a 250 for. */
  acked: number;
  /** Ids a client got a 250 for twice. */
  ackedTwice: number;
  /** Ids the server kept more than once. */
  duplicates: string[];
  /** Ids with a 250 that the server did not keep. */
  lost: string[];
  /** Ids the server kept without a 250 reaching the client. */
  extra: string[];
  /** `extra` by phase and population. */
  extraByPopulation: Record<string, number>;
}

/** One check's outcome. */
export interface Check {
  name: string;
  ok: boolean;
  detail: string;
}

/** Everything measured on one runtime. */
export interface RuntimeResult {
  runtime: string;
  version: string;
  seconds: number;
  pid?: number;
  error?: string;
  alive?: boolean;
  exitCode?: number;
  stderrTail?: string;
  loadElapsed?: number;
  /** The target's event-loop lag over the load phase and the clients' end. */
  loopLag?: TargetStats["loopLag"];
  /** CPU seconds over the load phase and the clients' end: the target's, and the whole machine's (busy). */
  cpu?: { target: number; machine: number };
  start?: Resources;
  peak?: {
    rss: number;
    fds: number;
    connections: number;
    processings: number;
    plainConnections: number;
    plainProcessings: number;
    overloadedSamples: number;
    samples: number;
    /** The plain listener's kernel accept queue, sampled: the largest, and sum and count for the mean. */
    acceptQueueMax: number;
    acceptQueueSum: number;
    acceptQueueSamples: number;
    /** ListenOverflows of the network namespace during the load (other processes' listeners count too). */
    listenOverflows: number;
  };
  end?: Resources;
  endStats?: TargetStats;
  finalStats?: TargetStats;
  warmup?: Tally;
  load?: Tally;
  probe?: Tally;
  integrity?: Integrity;
  checks: Check[];
}

/** The whole run. */
export interface SoakReport {
  date: string;
  command: string;
  library: string;
  machine: Machine;
  results: RuntimeResult[];
}

const MiB = (b: number | undefined) => b === undefined || Number.isNaN(b) ? "–" : (b / 1048576).toFixed(1);
const sum = (m: Record<string, number> | undefined) => Object.values(m ?? {}).reduce((a, b) => a + b, 0);

function row(cells: Array<string | number>): string {
  return `| ${cells.join(" | ")} |`;
}

/** A table of keyed counts, one column per runtime, rows sorted by their total. */
function countsTable(
  title: string,
  results: RuntimeResult[],
  pick: (r: RuntimeResult) => Record<string, number>,
): string[] {
  const keys = new Map<string, number>();
  for (const r of results) for (const [k, n] of Object.entries(pick(r))) keys.set(k, (keys.get(k) ?? 0) + n);
  if (keys.size === 0) return [`${title}: none.`, ""];
  const sorted = [...keys].sort((a, b) => b[1] - a[1]).map(([k]) => k);
  return [
    row([title, ...results.map((r) => r.runtime)]),
    row(["---", ...results.map(() => "---:")]),
    ...sorted.map((k) => row([k.replace(/\|/g, "\\|"), ...results.map((r) => pick(r)[k] ?? 0)])),
    "",
  ];
}

/** Renders the report as markdown. */
export function renderReport(report: SoakReport): string {
  const { results, machine } = report;
  const v = machine.versions;
  const out: string[] = [
    `## Soak run of ${report.date}`,
    "",
    `\`${report.command}\` on ${report.library}; ${machine.cpus} × ${machine.cpuModel}, ${
      machine.memoryGiB.toFixed(0)
    } GiB, ` +
    `Linux ${machine.kernel}; Deno ${v.deno}, Bun ${v.bun}, Node ${v.node}. Load phase ${
      results[0]?.seconds ?? "?"
    } s per runtime.`,
    "",
  ];
  const col = (f: (r: RuntimeResult) => string | number) => results.map((r) => (r.load ? f(r) : "–"));
  const windows = (r: RuntimeResult) => {
    const w = r.load!.deliveredPerWindow.slice(0, Math.floor(r.seconds / 10));
    return w.length ? `${Math.min(...w)}–${Math.max(...w)}` : "–";
  };
  out.push(
    row(["", ...results.map((r) => `${r.runtime} ${r.version}`)]),
    row(["---", ...results.map(() => "---:")]),
    row([
      "messages kept by the server (via PROXY)",
      ...col((r) => `${r.integrity?.accepted} (${r.finalStats?.acceptedProxy})`),
    ]),
    row(["messages the clients got 250 for", ...col((r) => r.integrity?.acked ?? "–")]),
    row([
      "lost / kept without 250 / kept twice",
      ...col((r) => `${r.integrity?.lost.length} / ${r.integrity?.extra.length} / ${r.integrity?.duplicates.length}`),
    ]),
    row(["well-behaved messages per 10 s (min–max)", ...col(windows)]),
    row(["data hooks given up by the session (ctx.signal aborted)", ...col((r) => r.finalStats?.abortedHooks ?? "–")]),
    row(["client connections (load phase)", ...col((r) => sum(r.load!.connections))]),
    row(["refusals (4xx/5xx replies)", ...col((r) => sum(r.load!.refusals))]),
    row(["unexpected replies", ...col((r) => sum(r.load!.unexpected) + sum(r.probe?.unexpected))]),
    row(["hangs (no reply, no close in time)", ...col((r) => sum(r.load!.hangs) + r.load!.openAtHardStop)]),
    row([
      "client socket errors / connect errors",
      ...col((r) => `${sum(r.load!.socketErrors)} / ${sum(r.load!.connectErrors)}`),
    ]),
    row([
      "peak connections / sessions, plain listener (both)",
      ...col((r) =>
        `${r.peak?.plainConnections} / ${r.peak?.plainProcessings} (${r.peak?.connections} / ${r.peak?.processings})`
      ),
    ]),
    row([
      "accept queue mean / max (ListenOverflows, whole machine)",
      ...col((r) =>
        r.peak?.acceptQueueSamples
          ? `${
            (r.peak.acceptQueueSum / r.peak.acceptQueueSamples).toFixed(1)
          } / ${r.peak.acceptQueueMax} (${r.peak.listenOverflows})`
          : "–"
      ),
    ]),
    row([
      "greeting after, well-behaved clients: p50 / p99 / max ms",
      ...col((r) => `${r.load!.greetingMs.p50} / ${r.load!.greetingMs.p99} / ${r.load!.greetingMs.max}`),
    ]),
    row([
      "overloaded (share of samples)",
      ...col((r) => r.peak?.samples ? `${((100 * r.peak.overloadedSamples) / r.peak.samples).toFixed(0)}%` : "–"),
    ]),
    row([
      "CPU s during the load: target / whole machine (of cores × s)",
      ...col((r) =>
        `${r.cpu?.target.toFixed(1)} / ${r.cpu?.machine.toFixed(1)} (of ${
          (machine.cpus * (r.loadElapsed ?? 0)).toFixed(0)
        })`
      ),
    ]),
    row([
      "target event-loop lag: max ms (100 ms ticks late by > 200 ms)",
      ...col((r) => r.loopLag ? `${r.loopLag.maxMs} (${r.loopLag.over200} of ${r.loopLag.samples})` : "–"),
    ]),
    row([
      "RSS MiB start / peak / end",
      ...col((r) => `${MiB(r.start?.rss)} / ${MiB(r.peak?.rss)} / ${MiB(r.end?.rss)}`),
    ]),
    row(["open fds start / peak / end", ...col((r) => `${r.start?.fds} / ${r.peak?.fds} / ${r.end?.fds}`)]),
    row(["heap after GC MiB start / end", ...col((r) => `${MiB(r.start?.heapUsed)} / ${MiB(r.end?.heapUsed)}`)]),
    row(["checks passed", ...results.map((r) => `${r.checks.filter((c) => c.ok).length}/${r.checks.length}`)]),
    "",
  );
  out.push(...countsTable("client connections by population (load phase)", results, (r) => r.load?.connections ?? {}));
  out.push(...countsTable("refusals by reply (load phase)", results, (r) => r.load?.refusals ?? {}));
  out.push(...countsTable("messages the clients got 250 for, by population", results, (r) => r.load?.delivered ?? {}));
  out.push(...countsTable("client socket errors (population, error)", results, (r) => r.load?.socketErrors ?? {}));
  out.push(...countsTable("connect errors (population, error)", results, (r) => r.load?.connectErrors ?? {}));
  out.push(
    ...countsTable(
      "unexpected (population, step: what)",
      results,
      (r) => ({ ...r.load?.unexpected, ...r.probe?.unexpected }),
    ),
  );
  out.push(...countsTable("hangs (population, step)", results, (r) => ({ ...r.load?.hangs, ...r.probe?.hangs })));
  out.push(...countsTable("data hook runs by mode", results, (r) => r.finalStats?.hookModes ?? {}));
  out.push(...countsTable("target log lines by kind", results, (r) => r.finalStats?.logs ?? {}));
  out.push("Checks:", "", "```");
  for (const r of results) {
    for (const c of r.checks) out.push(`${c.ok ? "PASS" : "FAIL"} ${r.runtime} ${c.name}: ${c.detail}`);
  }
  out.push("```", "");
  for (const r of results) {
    const examples = [...(r.load?.unexpectedExamples ?? []), ...(r.probe?.unexpectedExamples ?? [])];
    if (examples.length) out.push(`First unexpected events on ${r.runtime}:`, "", ...examples.map((e) => `- ${e}`), "");
    if (r.integrity?.extra.length) {
      out.push(`Kept without a 250 on ${r.runtime}: ${r.integrity.extra.slice(0, 10).join(", ")}`, "");
    }
    if (r.integrity?.lost.length) out.push(`Lost on ${r.runtime}: ${r.integrity.lost.slice(0, 10).join(", ")}`, "");
    if (r.finalStats?.errorLogs.length) {
      out.push(
        `Error log lines on ${r.runtime}:`,
        "",
        ...r.finalStats.errorLogs.map((e) => `- ${e}`),
        "",
      );
    }
    if (r.stderrTail) out.push(`Target stderr on ${r.runtime} (it exited):`, "", "```", r.stderrTail, "```", "");
  }
  return out.join("\n");
}
