/**
 * scripts/failure_report.ts against the real runners' output: a small test
 * file with a failing step, a failing test and a passing one, run by Node's
 * spec reporter, `deno test` and `bun test` (each as npm test runs them).
 * Reporters change between versions; this fails when one no longer matches.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { join } from "node:path";
import process from "node:process";
import { failureReport, formatFailureReport, type RunnerFamily } from "../scripts/failure_report.ts";
import { writeFileSync } from "node:fs";
import { scratchFolder } from "./scratch.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const scratch = scratchFolder("failure-report");
const FIXTURE = scratch.path("sample.test.mjs");
writeFileSync(
  FIXTURE,
  `import test from "node:test";
import assert from "node:assert/strict";
test("outer", async (t) => {
  await t.test("inner passes", () => {});
  await t.test("inner fails", () => assert.equal(1, 2));
});
test("throws boom", () => { throw new Error("boom-marker"); });
test("passes", () => {});
`,
);

/** Each runner as scripts/test_all.ts starts it (the machine's Node for the node family). */
const RUNNERS: Record<RunnerFamily, [string, string[]]> = {
  node: ["node", ["--test", "--test-reporter", "spec", FIXTURE]],
  deno: [join(ROOT, "node_modules", ".bin", "deno"), ["test", "-A", "--no-check", FIXTURE]],
  bun: [join(ROOT, "node_modules", ".bin", "bun"), ["test", FIXTURE]],
};

/**
 * The environment of a runner started from a shell: without the variables by which a runner tells it is a child of
 * another (NODE_TEST_CONTEXT: Node skips the file, Bun reports in a machine format).
 */
function shellEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: "1" };
  delete env.NODE_TEST_CONTEXT;
  return env;
}

function run(family: RunnerFamily): Promise<string> {
  const [command, args] = RUNNERS[family];
  return new Promise((resolve) => {
    execFile(command, args, { cwd: scratch.dir, env: shellEnv(), timeout: 60_000 }, (
      _err,
      stdout,
      stderr,
    ) => resolve(stdout + stderr));
  });
}

describe("failureReport, on each runner's real output", () => {
  for (const family of ["node", "deno", "bun"] as const) {
    test(`${family}: names the failing tests and keeps their errors`, async () => {
      const output = await run(family);
      const report = failureReport(family, output);
      const names = report.names.join("\n");
      // Bun lists the top-level test of a failing subtest (its error says which step failed); the others the step.
      assert.match(names, family === "bun" ? /\(fail\) outer/ : /inner fails/, output);
      assert.match(names, /throws boom/, output);
      assert.doesNotMatch(names, /inner passes|\bpasses\b(?! )/);
      const details = report.details.join("\n");
      assert.match(details, /boom-marker/);
      assert.match(details, /1 !== 2|Expected values to be strictly equal/);
      const printed = formatFailureReport(report);
      assert.equal(printed[0], "failed:");
    });
  }

  test("an output with no failure section gives nothing to print", () => {
    for (const family of ["node", "deno", "bun"] as const) {
      const report = failureReport(family, "ℹ tests 3\nℹ pass 3\nok | 3 passed | 0 failed\n 3 pass\n 0 fail\n");
      assert.deepEqual(report, { names: [], details: [] });
      assert.deepEqual(formatFailureReport(report), []);
    }
  });

  test("names are cut at maxNames, saying how many were left out", () => {
    const names = Array.from({ length: 45 }, (_, i) => `(fail) test ${i}`);
    const printed = formatFailureReport({ names, details: [] }, 60, 40);
    assert.equal(printed.length, 1 + 40 + 1);
    assert.equal(printed[40], "  (fail) test 39");
    assert.equal(printed.at(-1), "  ... and 5 more");
  });

  test("details are cut at maxDetailLines, saying how many were left out", () => {
    const details = Array.from({ length: 100 }, (_, i) => `line ${i}`);
    const printed = formatFailureReport({ names: ["(fail) x"], details }, 10);
    assert.deepEqual(printed.slice(0, 3), ["failed:", "  (fail) x", "first errors:"]);
    assert.equal(printed.length, 3 + 10 + 1);
    assert.equal(printed.at(-1), "  ... 90 more lines in the run's output above");
  });
});
