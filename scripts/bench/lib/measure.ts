/**
 * One measurement: a fresh target process, the load generator as separate
 * child processes (never sharing the server's event loop), server CPU from
 * /proc around each run and peak RSS at the end; then, optionally, the
 * smtp-source cross-check against the same server process. Also the idle
 * connection measurement.
 *
 * @module
 */
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { cpuSeconds, peakRssBytes, rssBytes } from "./proc.ts";
import { spread } from "./stats.ts";
import { run, start } from "./spawn.ts";
import { startTarget, type Target, type Toolchain } from "./targets.ts";
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

/** Runs scripts/bench/loadgen.ts once under Node against `port`. */
async function loadgen(tools: Toolchain, port: number, w: Workload, messages: number): Promise<LoadJson> {
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

/** Measures workload `w` on `target`; never throws (errors land in the result). */
export async function measureCell(
  target: Target,
  w: Workload,
  plan: CellPlan,
  tools: Toolchain,
  lib: Library,
  progress: (msg: string) => void,
): Promise<CellResult> {
  const base = { workload: w.name, target: target.name, messages: plan.messages };
  const none = spread([]);
  let server;
  try {
    server = await startTarget(target, tools, lib);
  } catch (err) {
    return { ...base, ...empty(none), error: `start failed: ${(err as Error).message}` };
  }
  try {
    if (plan.warmup > 0) {
      const warm = await loadgen(tools, server.port, w, plan.warmup);
      if (warm.failures > 0 || warm.timedOut) {
        return { ...base, ...empty(none), error: `warm-up failed: ${warm.firstFailure ?? "timed out"}` };
      }
    }
    const msgs: number[] = [], mb: number[] = [], cpu: number[] = [], gen: number[] = [], other: number[] = [];
    let failures = 0;
    let firstFailure: string | undefined;
    for (let i = 0; i < plan.runs; i++) {
      const cpu0 = cpuSeconds(server.pid);
      const r = await loadgen(tools, server.port, w, plan.messages);
      cpu.push(cpuSeconds(server.pid) - cpu0);
      msgs.push(r.msgsPerSec);
      mb.push(r.mbPerSec);
      gen.push(r.genCpuSec);
      // The server is idle outside the generator's measured window, so its CPU delta fits that window.
      other.push(Math.max(0, r.machineBusySec - cpu[cpu.length - 1] - r.genCpuSec));
      failures += r.failures + (r.timedOut ? 1 : 0);
      firstFailure ??= r.firstFailure ?? (r.timedOut ? "timed out" : undefined);
      progress(`  run ${i + 1}/${plan.runs}: ${r.msgsPerSec.toFixed(1)} msgs/s, failures ${r.failures}`);
    }
    const peak = peakRssBytes(server.pid);
    let smtpSource;
    if (plan.smtpSourceWrapper) {
      smtpSource = await smtpSourceBench(plan.smtpSourceWrapper, server.port, w.smtpSource, {
        messages: plan.messages,
        runs: plan.runs,
        // The server is warm already: our runs just went through it.
        warmup: 0,
        timeoutSecs: RUN_TIMEOUT_SECS,
        cwd: tools.repo,
      });
      progress(`  smtp-source: ${smtpSource.status} ${smtpSource.msgsPerSec} msgs/s`);
    }
    return {
      ...base,
      msgsPerSec: spread(msgs),
      mbPerSec: spread(mb),
      serverCpuSec: spread(cpu),
      genCpuSec: spread(gen),
      otherCpuSec: spread(other),
      peakRssBytes: peak,
      failures,
      firstFailure,
      smtpSource,
    };
  } catch (err) {
    return { ...base, ...empty(none), error: (err as Error).message };
  } finally {
    await server.child.stop();
  }
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
    await server.child.stop();
  }
}
