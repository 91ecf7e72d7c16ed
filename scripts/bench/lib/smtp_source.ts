/**
 * The independent second load generator: Postfix's `smtp-source` through the
 * shared wrapper (shared/tools/smtp-source-bench.sh), used only where both
 * are installed. It sends one command at a time (no PIPELINING), so it also
 * shows the lock-step view of each server.
 *
 * @module
 */
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import process from "node:process";
import { run } from "./spawn.ts";

/** One smtp-source measurement. */
export interface SmtpSourceResult {
  /** `OK`, `PARTIAL`, `FAIL` or `UNREACHABLE` as the wrapper says. */
  readonly status: string;
  /** Median msgs/s over the runs (NaN when none succeeded). */
  readonly msgsPerSec: number;
  /** Lowest msgs/s of the runs. */
  readonly min: number;
  /** Highest msgs/s of the runs. */
  readonly max: number;
  /** The wrapper's whole output line (or its error output). */
  readonly line: string;
}

/** Where smtp-source lives, if installed. */
function smtpSourceBinary(): string | undefined {
  const dirs = [...(process.env.PATH ?? "").split(":"), "/usr/sbin", "/usr/bin", "/usr/local/sbin"];
  return dirs.filter((d) => d.startsWith("/")).map((d) => join(d, "smtp-source")).find((p) => existsSync(p));
}

/**
 * Finds the wrapper: `$SMTP_SOURCE_BENCH`, then shared/tools/ beside the
 * repository (`../shared`) or in any parent directory. Undefined when it or
 * smtp-source itself is missing.
 */
export function findSmtpSourceBench(repo: string): string | undefined {
  if (!smtpSourceBinary()) return undefined;
  const candidates = [process.env.SMTP_SOURCE_BENCH ?? ""];
  for (let dir = resolve(repo);; dir = dirname(dir)) {
    candidates.push(
      join(dir, "shared", "tools", "smtp-source-bench.sh"),
      join(dir, "..", "shared", "tools", "smtp-source-bench.sh"),
    );
    if (dirname(dir) === dir) break;
  }
  return candidates.find((p) => p !== "" && existsSync(p));
}

/** Reads `key=value` pairs of the wrapper's output line. */
function fields(line: string): Map<string, string> {
  const map = new Map<string, string>();
  for (const m of line.matchAll(/(\w+)=("[^"]*"|\S*)/g)) map.set(m[1], m[2]);
  return map;
}

/** Runs one workload of the wrapper against `127.0.0.1:port`. */
export async function smtpSourceBench(
  wrapper: string,
  port: number,
  workload: string,
  opts: { messages: number; runs: number; warmup: number; timeoutSecs: number; cwd: string },
): Promise<SmtpSourceResult> {
  const args = [
    wrapper,
    "-n",
    String(opts.messages),
    "-R",
    String(opts.runs),
    "-W",
    String(opts.warmup),
    "-t",
    String(opts.timeoutSecs),
    `127.0.0.1:${port}`,
    workload,
  ];
  const out = await run("bash", args, opts.cwd);
  const line = out.stdout.trim().split("\n").pop() ?? "";
  const f = fields(line);
  const num = (key: string) => (f.has(key) ? Number(f.get(key)) : NaN);
  return {
    status: f.get("status") ?? `exit ${out.code}`,
    msgsPerSec: num("msgs_s"),
    min: num("min_msgs_s"),
    max: num("max_msgs_s"),
    line: line || out.stderr.trim(),
  };
}
