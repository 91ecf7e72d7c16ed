/**
 * The measurements: per workload a fresh process of every target, the load
 * generator as separate child processes (never sharing a server's event
 * loop), server CPU from /proc around each run and peak RSS at the end; then,
 * optionally, the smtp-source cross-check against the same server processes.
 * Also the idle connection measurement.
 *
 * @module
 */
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { rssBytes, serverCpuSeconds, serverPeakRssBytes, total } from "./proc.ts";
import { spread } from "./stats.ts";
import { run, start } from "./spawn.ts";
import { type RunningTarget, startTarget, stopTarget, type Target, type Toolchain } from "./targets.ts";
import type { Library } from "./library.ts";
import type { Workload } from "./workloads.ts";
import type { CellResult, IdleResult } from "./report.ts";
import { smtpSourceBench } from "./smtp_source.ts";

/** How a cell is measured. */
export interface CellPlan {
  /** Measured runs. */
  readonly runs: number;
  /** Messages per run. */
  readonly messages: number;
  /** Warm-up messages (0: none). */
  readonly warmup: number;
  /** The smtp-source wrapper, when it should run too. */
  readonly smtpSourceWrapper?: string;
}

/** What the load generator prints with `--json` (the fields used here). */
interface LoadJson {
  okMessages: number;
  failures: number;
  firstFailure?: string;
  timedOut: boolean;
  msgsPerSec: number;
  mbPerSec: number;
  genCpuSec: number;
  machineBusySec: number;
}

/** Seconds a single load-generator run may take before it gives up. */
const RUN_TIMEOUT_SECS = 180;

/**
 * Runs scripts/bench/loadgen.ts once under Node against `server` of `target`
 * (with a PROXY header on every connection when the target wants one, built
 * by the frozen library copy's writers).
 */
async function loadgen(
  tools: Toolchain,
  lib: Library,
  target: Target,
  port: number,
  w: Workload,
  messages: number,
): Promise<LoadJson> {
  const args = [
    "--import",
    "tsx",
    join(tools.repo, "scripts", "bench", "loadgen.ts"),
    "--port",
    String(port),
    "--sessions",
    String(w.sessions),
    "--messages",
    String(messages),
    "--per-conn",
    String(w.perConnection),
    "--size",
    String(w.size),
    "--rcpts",
    String(w.recipients),
    "--timeout",
    String(RUN_TIMEOUT_SECS),
    ...(target.proxy ? ["--proxy", target.proxy, "--proxy-lib", lib.sourceEntry] : []),
    ...(w.bdat ? ["--bdat", String(w.bdat.chunkSize)] : []),
    "--json",
  ];
  const out = await run(tools.node, args, tools.repo);
  const last = out.stdout.trim().split("\n").pop() ?? "";
  try {
    return JSON.parse(last) as LoadJson;
  } catch {
    throw new Error(`loadgen exited ${out.code} without a result: ${(out.stderr || out.stdout).trim().slice(-500)}`);
  }
}

/** One target's measurements within a workload. */
interface Accumulator {
  readonly target: Target;
  server?: RunningTarget;
  error?: string;
  readonly msgs: number[];
  readonly mb: number[];
  readonly cpu: number[];
  readonly gen: number[];
  readonly other: number[];
  failures: number;
  firstFailure?: string;
}

/**
 * The order of the targets in measured round `round`: a target and its twins
 * (the `-proxy` and `-workers2` variants name it in `twin`) form a group that
 * is measured back to back, the plain one first in even rounds and last in
 * odd ones; the groups (and the targets without a twin) rotate by one place
 * per round.
 */
function roundOrder(all: readonly Accumulator[], round: number): Accumulator[] {
  const groups = new Map<string, Accumulator[]>();
  for (const a of all) {
    const base = a.target.twin ?? a.target.name;
    const group = groups.get(base);
    if (group) group.push(a);
    else groups.set(base, [a]);
  }
  const list = [...groups.values()];
  const order: Accumulator[] = [];
  for (let k = 0; k < list.length; k++) {
    const group = list[(round + k) % list.length];
    order.push(...(round % 2 === 0 ? group : [...group].reverse()));
  }
  return order;
}

/**
 * Measures workload `w` on every target; never throws (errors land in the
 * results). All targets run at once, idle while another is measured; after
 * each one's warm-up the measured runs go round-robin (one run per target per
 * round, the order rotating), so a slow spell of this shared machine hits
 * every target alike instead of one target's whole series. A `-proxy` target
 * runs right next to its plain twin in every round (see {@link roundOrder}).
 */
export async function measureWorkload(
  targets: readonly Target[],
  w: Workload,
  plan: CellPlan,
  tools: Toolchain,
  lib: Library,
  progress: (msg: string) => void,
): Promise<CellResult[]> {
  const all: Accumulator[] = targets.map((target) => ({
    target,
    msgs: [],
    mb: [],
    cpu: [],
    gen: [],
    other: [],
    failures: 0,
  }));
  try {
    for (const a of all) {
      try {
        a.server = await startTarget(a.target, tools, lib);
      } catch (err) {
        a.error = `start failed: ${(err as Error).message}`;
        continue;
      }
      if (plan.warmup === 0) continue;
      progress(`  warm-up on ${a.target.name}`);
      try {
        const warm = await loadgen(tools, lib, a.target, a.server.port, w, plan.warmup);
        if (warm.failures > 0 || warm.timedOut) a.error = `warm-up failed: ${warm.firstFailure ?? "timed out"}`;
      } catch (err) {
        a.error = (err as Error).message;
      }
    }
    for (let round = 0; round < plan.runs; round++) {
      for (const a of roundOrder(all, round)) {
        if (!a.server || a.error) continue;
        try {
          const split = await measureRun(a, a.server, w, plan, tools, lib);
          progress(`  run ${round + 1}/${plan.runs} ${a.target.name}: ${a.msgs.at(-1)!.toFixed(1)} msgs/s${split}`);
        } catch (err) {
          a.error = (err as Error).message;
        }
      }
    }
    const results: CellResult[] = [];
    for (const a of all) {
      const base = {
        workload: w.name,
        target: a.target.name,
        messages: plan.messages,
        ...(a.target.proxy ? { proxy: a.target.proxy } : {}),
        ...(a.target.workers ? { workers: a.target.workers } : {}),
      };
      if (!a.server || a.error) {
        results.push({ ...base, ...empty(spread([])), error: a.error ?? "not started" });
        continue;
      }
      // A supervisor and its workers: the sum of their peaks (each at its own time).
      const peaks = serverPeakRssBytes(a.server.pid);
      const peak = total(peaks);
      if (peaks.size > 1) {
        const each = [...peaks.values()].map((b) => (b / 1024 / 1024).toFixed(1)).join(" + ");
        progress(`  ${a.target.name}: peak RSS ${each} MiB (supervisor + workers)`);
      }
      let smtpSource;
      // smtp-source cannot send a PROXY header (a -proxy target would wait for one and close the connection),
      // nor BDAT (a workload without an smtp-source twin).
      if (plan.smtpSourceWrapper && !a.target.proxy && w.smtpSource) {
        smtpSource = await smtpSourceBench(plan.smtpSourceWrapper, a.server.port, w.smtpSource, {
          messages: plan.messages,
          runs: plan.runs,
          // The server is warm already: our runs just went through it.
          warmup: 0,
          timeoutSecs: RUN_TIMEOUT_SECS,
          cwd: tools.repo,
        });
        progress(`  smtp-source on ${a.target.name}: ${smtpSource.status} ${smtpSource.msgsPerSec} msgs/s`);
      }
      results.push({
        ...base,
        msgsPerSec: spread(a.msgs),
        mbPerSec: spread(a.mb),
        serverCpuSec: spread(a.cpu),
        genCpuSec: spread(a.gen),
        otherCpuSec: spread(a.other),
        peakRssBytes: peak,
        perRun: { msgsPerSec: a.msgs, serverCpuSec: a.cpu },
        failures: a.failures,
        firstFailure: a.firstFailure,
        smtpSource,
      });
    }
    return results;
  } finally {
    for (const a of all) if (a.server) await stopTarget(a.server);
  }
}

/**
 * One measured run of the load generator against `server`, added to `a`.
 * The server's CPU is summed over its processes (a supervisor and its
 * workers). Returns the CPU seconds of the run for the progress line:
 * server (for several processes also split, supervisor first), generator
 * and other processes.
 */
async function measureRun(
  a: Accumulator,
  server: RunningTarget,
  w: Workload,
  plan: CellPlan,
  tools: Toolchain,
  lib: Library,
): Promise<string> {
  const before = serverCpuSeconds(server.pid);
  const r = await loadgen(tools, lib, a.target, server.port, w, plan.messages);
  const after = serverCpuSeconds(server.pid);
  // A process that started during the run (a restarted worker) counts from 0; one that ended is lost.
  const each = [...after].map(([pid, s]) => s - (before.get(pid) ?? 0));
  const cpu = each.reduce((sum, s) => sum + s, 0);
  a.cpu.push(cpu);
  a.msgs.push(r.msgsPerSec);
  a.mb.push(r.mbPerSec);
  a.gen.push(r.genCpuSec);
  // The server is idle outside the generator's measured window, so its CPU delta fits that window.
  a.other.push(Math.max(0, r.machineBusySec - cpu - r.genCpuSec));
  a.failures += r.failures + (r.timedOut ? 1 : 0);
  a.firstFailure ??= r.firstFailure ?? (r.timedOut ? "timed out" : undefined);
  const split = each.length > 1 ? ` (${each.map((s) => s.toFixed(2)).join(" + ")}: supervisor + workers)` : "";
  return `; CPU s: server ${cpu.toFixed(2)}${split}, loadgen ${r.genCpuSec.toFixed(2)}, other ${
    a.other.at(-1)!.toFixed(2)
  }`;
}

function empty(none: ReturnType<typeof spread>) {
  return {
    msgsPerSec: none,
    mbPerSec: none,
    serverCpuSec: none,
    genCpuSec: none,
    otherCpuSec: none,
    peakRssBytes: NaN,
    failures: 0,
  };
}

/**
 * Opens `count` idle connections to a fresh `target` (held by
 * scripts/bench/idle.ts in its own process) and reads the server's RSS
 * before and with them.
 */
export async function measureIdle(
  target: Target,
  count: number,
  tools: Toolchain,
  lib: Library,
): Promise<IdleResult> {
  const base = { target: target.name, count, held: 0, rssBefore: NaN, rssAfter: NaN };
  let server;
  try {
    server = await startTarget(target, tools, lib);
  } catch (err) {
    return { ...base, error: `start failed: ${(err as Error).message}` };
  }
  let holder;
  try {
    // Let the runtime finish its start-up allocations before the baseline.
    await sleep(1000);
    const rssBefore = rssBytes(server.pid);
    // stdin "pipe": the holder exits when we close it.
    holder = start(
      tools.node,
      [
        "--import",
        "tsx",
        join(tools.repo, "scripts", "bench", "idle.ts"),
        "--port",
        String(server.port),
        "--count",
        String(count),
      ],
      tools.repo,
      "pipe",
    );
    const line = await holder.waitForLine("IDLE ", 180_000);
    const held = Number(/ok=(\d+)/.exec(line)?.[1] ?? 0);
    await sleep(1000);
    const rssAfter = rssBytes(server.pid);
    return { ...base, held, rssBefore, rssAfter };
  } catch (err) {
    return { ...base, error: (err as Error).message };
  } finally {
    holder?.process.stdin?.end();
    await holder?.stop();
    await stopTarget(server);
  }
}
