/**
 * Runs the whole test suite on Deno, Bun and Node, one after the other, and
 * ends with one summary line: `N passed, N failed`. Used by `npm test` and
 * `deno task test`. Binaries come from node_modules (the npm packages `deno`
 * and `bun`), so nothing but Node.js and npm is needed.
 *
 * Usage: tsx scripts/test_all.ts [deno|bun|node ...]
 */
import { spawn } from "node:child_process";
import { readdirSync } from "node:fs";
import { join } from "node:path";

const root = new URL("..", import.meta.url).pathname;
const bin = (name: string) => join(root, "node_modules", ".bin", name);
const testFiles = readdirSync(join(root, "tests")).filter((f) => f.endsWith(".test.ts")).sort().map((f) =>
  join("tests", f)
);

interface Run {
  runtime: string;
  command: string;
  args: string[];
  /** Reads passed/failed/skipped counts from the runner's own closing lines. */
  count(output: string): Counts | undefined;
}

/** What a runner reported. A skip is counted and shown, never folded into "passed". */
interface Counts {
  passed: number;
  failed: number;
  skipped: number;
}

const nodeTestCount = (output: string): Counts | undefined => {
  const pass = /^# pass (\d+)/m.exec(output) ?? /^ℹ pass (\d+)/m.exec(output);
  const fail = /^# fail (\d+)/m.exec(output) ?? /^ℹ fail (\d+)/m.exec(output);
  const skip = /^# skipped (\d+)/m.exec(output) ?? /^ℹ skipped (\d+)/m.exec(output);
  return pass && fail
    ? { passed: Number(pass[1]), failed: Number(fail[1]), skipped: Number(skip?.[1] ?? 0) }
    : undefined;
};

const runs: Run[] = [
  {
    runtime: "deno",
    command: bin("deno"),
    args: ["test", "-A", "--no-check", ...testFiles],
    count(output) {
      const m = /(?:ok|FAILED) \| (\d+) passed(?: \((\d+) steps?\))? \| (\d+) failed(?: \((\d+) steps?\))?/.exec(
        output,
      );
      const ignored = /\| (\d+) ignored(?: \((\d+) steps?\))?/.exec(output);
      const skipped = ignored ? Number(ignored[2] ?? ignored[1]) : 0;
      return m ? { passed: Number(m[2] ?? m[1]), failed: Number(m[4] ?? m[3]), skipped } : undefined;
    },
  },
  {
    runtime: "bun",
    command: bin("bun"),
    args: ["test", "--timeout", "60000", ...testFiles.map((f) => "./" + f)],
    count(output) {
      const pass = /^\s*(\d+) pass/m.exec(output);
      const fail = /^\s*(\d+) fail/m.exec(output);
      const skip = /^\s*(\d+) skip/m.exec(output);
      return pass && fail
        ? { passed: Number(pass[1]), failed: Number(fail[1]), skipped: Number(skip?.[1] ?? 0) }
        : undefined;
    },
  },
  {
    runtime: "node",
    command: process.execPath,
    args: ["--import", "tsx", "--test", "--test-reporter", "spec", "--test-concurrency", "1", ...testFiles],
    count: nodeTestCount,
  },
];

function runOne(run: Run): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(run.command, run.args, {
      cwd: root,
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, NO_COLOR: "1" },
    });
    let output = "";
    const tee = (stream: NodeJS.WriteStream) => (chunk: Buffer) => {
      output += chunk.toString();
      stream.write(chunk);
    };
    child.stdout.on("data", tee(process.stdout));
    child.stderr.on("data", tee(process.stderr));
    child.on("close", (code) => resolve({ code: code ?? 1, output }));
  });
}

function skips(n: number): string {
  return n > 0 ? `, ${n} skipped` : "";
}

const wanted = process.argv.slice(2);
let passed = 0;
let failed = 0;
let skipped = 0;
const summary: string[] = [];
for (const run of runs) {
  if (wanted.length > 0 && !wanted.includes(run.runtime)) continue;
  const version = await runOne({ ...run, args: ["--version"], count: () => undefined });
  const versionText = version.output.split("\n")[0].trim();
  console.log(`\n===== ${run.runtime} (${versionText}): ${testFiles.length} test files =====`);
  const { code, output } = await runOne(run);
  const counts = run.count(output);
  if (!counts) {
    failed++;
    summary.push(`${run.runtime} ${versionText}: runner output not understood (exit ${code})`);
    continue;
  }
  // A runner that exits non-zero with no failed test still failed (e.g. a file that did not load).
  const runFailed = counts.failed + (code !== 0 && counts.failed === 0 ? 1 : 0);
  passed += counts.passed;
  failed += runFailed;
  skipped += counts.skipped;
  summary.push(`${run.runtime} ${versionText}: ${counts.passed} passed, ${runFailed} failed${skips(counts.skipped)}`);
}
console.log("\n===== summary =====");
for (const line of summary) console.log(line);
if (skipped > 0) console.log("(skipped tests say why above, e.g. a system package that is not installed)");
console.log(`${passed} passed, ${failed} failed${skips(skipped)}`);
process.exit(failed > 0 ? 1 : 0);
