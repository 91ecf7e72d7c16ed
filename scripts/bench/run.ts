/**
 * The benchmark in one command: our server on Deno, Bun and Node (npm build)
 * against nodemailer's smtp-server on Node, measured in the same run.
 *
 *   deno task bench [options]          (= ./node_modules/.bin/deno run -A scripts/bench/run.ts)
 *   npm run bench -- [options]
 *
 * Options:
 *   --quick            small counts, one run, no warm-up, 1000 idle connections (a smoke run, < 2 min)
 *   --runs N           measured runs per cell, reported as median (min–max) [3; 1 with --quick]
 *   --write            also replace the results section of BENCHMARKS.md
 *   --ref REF          measure a git ref (e.g. HEAD) instead of the working tree
 *   --targets a,b      only these targets (ours-deno, ours-bun, ours-node, ours-*-proxy (w1, w1-conn only),
 *                      ours-*-workers2 (w3 only), ours-*-stream (w2 only), ours-deno-semi16 (w3 only),
 *                      ours-deno-stream-semi16 (w2 only), postfix-smtp-sink (where installed), smtp-server-node)
 *   --workloads a,b    only these workloads (w1, w1-conn, w2, w2-bdat, w2-bdat64k, w3); the BDAT ones
 *                      (w2-bdat*) run on the targets that offer CHUNKING (ours) and are compared with w2
 *   --idle N           idle connections for the memory test; 0 skips it [5000]
 *   --no-smtp-source   skip the Postfix smtp-source cross-check
 *   --help             print the options and exit
 *
 * `ours-*-proxy` run ours with `proxyExtension` on; the load generator sends
 * them a PROXY v2 header first on every connection. Each is measured right
 * next to its plain twin in every round, and the report has a table of the
 * ratios between the two (msgs/s and server CPU per message).
 *
 * `ours-*-workers2` run ours in two worker processes (`runWorkers`: a
 * supervisor and two workers on one port; SO_REUSEPORT on Deno, Bun and
 * Node >= 22.12, `node:cluster` on Node 20), each measured right next to its
 * one-process twin; their server CPU and peak RSS are summed over the
 * supervisor and the workers.
 *
 * Steps: copy the library into a temporary directory and build its npm
 * package there (so edits during the run change nothing); then for each
 * workload and target, one after the other: start the target, warm it up,
 * measure with scripts/bench/loadgen.ts (a separate Node process per run),
 * read the server's CPU and peak RSS from /proc, cross-check with
 * smtp-source where installed, stop the target. Progress goes to stderr,
 * the markdown result to stdout.
 *
 * @module
 */
import { mkdtempSync, rmSync } from "node:fs";
import { findNode } from "./lib/spawn.ts";
import os from "node:os";
import { join, resolve } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { intOption, UsageError } from "./lib/args.ts";
import { prepareLibrary } from "./lib/library.ts";
import { describeMachine } from "./lib/machine.ts";
import { measureIdle, measureWorkload } from "./lib/measure.ts";
import { type BenchReport, type CellResult, type IdleResult, renderMarkdown, writeSection } from "./lib/report.ts";
import { findSmtpSourceBench } from "./lib/smtp_source.ts";
import { REFERENCE, runsWorkload, TARGETS, type Toolchain } from "./lib/targets.ts";
import { WORKLOADS } from "./lib/workloads.ts";

const REPO = resolve(fileURLToPath(new URL("../..", import.meta.url)));

const USAGE = `usage: deno task bench [options]   (or: deno run -A scripts/bench/run.ts [options])
  --quick            small counts, one run, no warm-up, 1000 idle connections (a smoke run)
  --runs N           measured runs per cell, reported as median (min–max) [3; 1 with --quick]
  --write            also replace the results section of BENCHMARKS.md
  --ref REF          measure a git ref (e.g. HEAD) instead of the working tree
  --targets a,b      only these targets: ${TARGETS.map((t) => t.name).join(", ")}
  --workloads a,b    only these workloads: ${WORKLOADS.map((w) => w.name).join(", ")}
  --idle N           idle connections for the memory test; 0 skips it [5000]
  --no-smtp-source   skip the Postfix smtp-source cross-check
  --help             print this and exit
A target made for some workloads only runs on those: ${
  TARGETS.filter((t) => t.onlyWorkloads).map((t) => `${t.name} (${t.onlyWorkloads!.join(", ")})`).join(", ")
}.
BDAT workloads (${
  WORKLOADS.filter((w) => w.bdat).map((w) => w.name).join(", ")
}) run only on targets that offer CHUNKING: ${TARGETS.filter((t) => t.chunking).map((t) => t.name).join(", ")}.
Progress goes to stderr, the markdown result to stdout.`;

interface Options {
  help: boolean;
  quick: boolean;
  runs: number;
  write: boolean;
  ref: string | undefined;
  targets: string[];
  workloads: string[];
  idle: number;
  smtpSource: boolean;
}

function pick(name: string, value: string | undefined, known: readonly string[]): string[] {
  if (value === undefined) return [...known];
  const list = value.split(",").map((s) => s.trim()).filter(Boolean);
  const unknown = list.filter((s) => !known.includes(s));
  if (unknown.length > 0 || list.length === 0) {
    throw new UsageError(`--${name}: unknown ${unknown.join(", ") || "(empty)"}; known: ${known.join(", ")}`);
  }
  return known.filter((k) => list.includes(k));
}

function parse(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: "boolean" },
      runs: { type: "string" },
      write: { type: "boolean" },
      ref: { type: "string" },
      targets: { type: "string" },
      workloads: { type: "string" },
      idle: { type: "string" },
      "no-smtp-source": { type: "boolean" },
      help: { type: "boolean" },
    },
    strict: true,
  });
  const quick = values.quick ?? false;
  return {
    help: values.help ?? false,
    quick,
    runs: intOption("runs", values.runs, quick ? 1 : 3, 1),
    write: values.write ?? false,
    ref: values.ref,
    targets: pick("targets", values.targets, TARGETS.map((t) => t.name)),
    workloads: pick("workloads", values.workloads, WORKLOADS.map((w) => w.name)),
    idle: intOption("idle", values.idle, quick ? 1000 : 5000),
    smtpSource: !values["no-smtp-source"],
  };
}

function progress(msg: string): void {
  process.stderr.write(`bench: ${msg}\n`);
}

async function main(): Promise<number> {
  let opts: Options;
  try {
    opts = parse(process.argv.slice(2));
  } catch (err) {
    console.error(`bench: ${(err as Error).message}`);
    console.error(USAGE);
    return 2;
  }
  if (opts.help) {
    console.log(USAGE);
    return 0;
  }
  const began = Date.now();
  const bin = (name: string) => join(REPO, "node_modules", ".bin", name);
  const tools: Toolchain = { repo: REPO, deno: bin("deno"), bun: bin("bun"), node: findNode() };
  const tmp = mkdtempSync(join(os.tmpdir(), "midi-bench-"));
  try {
    progress(`building the npm package of ${opts.ref ?? "the working tree"} in ${tmp}`);
    const lib = await prepareLibrary(REPO, tmp, opts.ref, tools.node);
    const wrapper = opts.smtpSource ? findSmtpSourceBench(REPO) : undefined;
    const smtpSourceNote = wrapper
      ? `Postfix smtp-source via ${wrapper}, one command at a time, same counts and runs, no warm-up (it runs right after ours, on the same server process)`
      : opts.smtpSource
      ? "skipped (smtp-source or shared/tools/smtp-source-bench.sh not found)"
      : "skipped (--no-smtp-source)";
    const targets = TARGETS.filter((t) => opts.targets.includes(t.name) && (t.available?.() ?? true));
    for (const t of TARGETS) {
      if (opts.targets.includes(t.name) && !(t.available?.() ?? true)) progress(`${t.name}: not installed, skipped`);
    }
    const workloads = WORKLOADS.filter((w) => opts.workloads.includes(w.name));
    const cells: CellResult[] = [];
    for (const w of workloads) {
      const here = targets.filter((t) => runsWorkload(t, w));
      if (w.bdat) {
        const skipped = targets.filter((t) => !t.chunking && (!t.onlyWorkloads || t.onlyWorkloads.includes(w.name)));
        if (skipped.length > 0) progress(`${w.name}: ${skipped.map((t) => t.name).join(", ")} skipped (no CHUNKING)`);
      }
      if (here.length === 0) {
        progress(`${w.name}: no target to run it on`);
        continue;
      }
      progress(`${w.name} on ${here.map((t) => t.name).join(", ")}`);
      const t0 = Date.now();
      const results = await measureWorkload(
        here,
        w,
        {
          runs: opts.runs,
          messages: opts.quick ? w.quickMessages : w.messages,
          warmup: opts.quick ? 0 : w.warmup,
          smtpSourceWrapper: wrapper,
        },
        tools,
        lib,
        progress,
      );
      for (const cell of results) if (cell.error) progress(`  error on ${cell.target}: ${cell.error}`);
      progress(`  (${((Date.now() - t0) / 1000).toFixed(0)} s)`);
      cells.push(...results);
    }
    const idle: IdleResult[] = [];
    if (opts.idle > 0) {
      for (const target of targets) {
        if (target.onlyWorkloads) continue;
        progress(`${opts.idle} idle connections on ${target.name}`);
        const result = await measureIdle(target, opts.idle, tools, lib);
        if (result.error) progress(`  error: ${result.error}`);
        idle.push(result);
      }
    }
    const report: BenchReport = {
      date: new Date(began).toISOString().replace(/\.\d+Z$/, "Z"),
      command: ["deno task bench", ...process.argv.slice(2)].join(" "),
      library: lib.label,
      machine: describeMachine(REPO, tools),
      runs: opts.runs,
      quick: opts.quick,
      workloads,
      reference: REFERENCE,
      smtpSource: smtpSourceNote,
      cells,
      idle,
    };
    const markdown = renderMarkdown(report);
    process.stdout.write(markdown);
    if (opts.write) {
      writeSection(join(REPO, "BENCHMARKS.md"), markdown);
      progress("BENCHMARKS.md updated");
    }
    progress(`done in ${((Date.now() - began) / 1000).toFixed(0)} s`);
    return cells.some((c) => c.error || c.failures > 0) ? 1 : 0;
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

main().then((code) => process.exit(code), (err) => {
  console.error(`bench: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
