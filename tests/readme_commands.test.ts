/**
 * The README's shell commands run, so that none of them can rot: every fenced
 * `sh` block marked runnable is executed, in README order, in a fresh copy of
 * the repository, as a reader with only Node.js and npm would type it.
 *
 * Marking (an HTML comment right before the block, invisible on GitHub and
 * kept by `deno fmt`):
 * - `<!-- runnable -->`: the block is one `sh -e` script; it must exit 0, and
 *   print, in order, a line for each `# => TEXT` comment it has.
 * - `<!-- runnable: until "TEXT" -->`: a server: the block is started, must
 *   print TEXT (stdout or stderr), and is then stopped with SIGINT to its
 *   process group, as Ctrl-C in a terminal would; everything it started must
 *   be gone soon after.
 * - `<!-- runnable: each line until "TEXT" -->`: each line is one such server,
 *   started and stopped in turn (a block listing alternatives).
 * Every block starts in the copy's root (the README's clone, named as
 * `git clone` names it, `midi-smtp-server-ts`); a `cd` lasts for its block.
 * An `sh` block that is not marked must be listed in {@link UNMARKED} with the
 * reason, so that a new block is a decision, not an oversight.
 *
 * The copy: the files git knows of plus the untracked ones it does not
 * ignore (what the next commit would hold; `git clone` of HEAD would miss
 * uncommitted work), and a copy of node_modules (`npm ci` would need the
 * network; a symlink would let the README's `npm install` write into this
 * repository's own node_modules).
 *
 * Node only: the commands start npm, `npx deno` and `npx bun` themselves, so
 * running them again from Deno's and Bun's test runners would only repeat the
 * same processes; on those runtimes the runnable blocks are reported as
 * skipped, and only the marking is checked.
 */
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import process from "node:process";
import { runtime } from "./helpers.ts";
import { takePortLock } from "./ports.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const README = readFileSync(join(ROOT, "README.md"), "utf8");

/**
 * The `sh` blocks left unmarked, by their first line, and why. Everything
 * else of the README that a reader runs is marked.
 */
const UNMARKED: Record<string, string> = {
  "npm install && npm test    # the whole test suite on Deno, Bun and Node":
    "the whole suite takes many minutes, and would run this test inside itself",
  "git clone https://github.com/midi-smtp-server/midi-smtp-server-ts.git":
    "needs the network; the test's fresh copy of the working tree stands in for the clone",
  "npm install midi-smtp-server      # Node and Bun": "not yet published: both registries answer 404",
  "npx deno run -A examples/rabbitmq/server.ts    # or: npx bun examples/rabbitmq/server.ts, npx tsx examples/rabbitmq/server.ts":
    "needs a RabbitMQ broker; tests/rabbitmq.test.ts runs both programs against one",
};

/** How a marked block is run. */
type Mode = { kind: "run" } | { kind: "until"; text: string } | { kind: "each"; text: string };

/** One fenced shell block of the README. */
interface ShellBlock {
  /** 1-based line of its opening fence. */
  readonly line: number;
  readonly code: string;
  /** Its marking; `undefined` if unmarked; a string if the marking cannot be read. */
  readonly mode: Mode | string | undefined;
}

const SHELL_LANGUAGES = new Set(["sh", "bash", "shell", "console", "zsh"]);

/** The README's shell blocks, in order, with their marking. */
function shellBlocks(markdown: string): ShellBlock[] {
  const lines = markdown.split("\n");
  const blocks: ShellBlock[] = [];
  for (let i = 0; i < lines.length; i++) {
    const fence = /^(`{3,})(\S*)/.exec(lines[i]);
    if (!fence) continue;
    const close = lines.findIndex((l, j) => j > i && l.startsWith(fence[1]) && l.trim() === fence[1]);
    assert.ok(close > i, `README line ${i + 1}: unclosed code fence`);
    if (SHELL_LANGUAGES.has(fence[2])) {
      let k = i - 1;
      while (k >= 0 && lines[k].trim() === "") k--;
      const marker = /^<!--\s*runnable(?::\s*(.*?))?\s*-->$/.exec(lines[k]?.trim() ?? "");
      blocks.push({
        line: i + 1,
        code: lines.slice(i + 1, close).join("\n"),
        mode: marker ? mode(marker[1]) : undefined,
      });
    }
    i = close;
  }
  return blocks;
}

/** A marking's options (the part after `runnable:`), or the text itself if it cannot be read. */
function mode(options: string | undefined): Mode | string {
  if (options === undefined || options === "") return { kind: "run" };
  const until = /^(each line )?until "([^"]+)"$/.exec(options);
  if (!until) return options;
  return until[1] ? { kind: "each", text: until[2] } : { kind: "until", text: until[2] };
}

const BLOCKS = shellBlocks(README);

describe("README shell blocks: marking", () => {
  it("every sh block is marked runnable, or listed as unmarked with its reason", () => {
    for (const block of BLOCKS) {
      const first = block.code.split("\n")[0];
      assert.notEqual(typeof block.mode, "string", `README line ${block.line}: unreadable marking "${block.mode}"`);
      if (block.mode === undefined) {
        assert.ok(first in UNMARKED, `README line ${block.line}: sh block neither marked runnable nor in UNMARKED`);
      } else {
        assert.ok(!(first in UNMARKED), `README line ${block.line}: marked runnable and also listed in UNMARKED`);
      }
    }
    const firstLines = new Set(BLOCKS.map((b) => b.code.split("\n")[0]));
    for (const first of Object.keys(UNMARKED)) {
      assert.ok(firstLines.has(first), `UNMARKED lists a gone block: ${first}`);
    }
  });

  it("only sh blocks run commands: no bash, shell or console fences", () => {
    assert.deepEqual(README.match(/^```(bash|shell|console|zsh)\b.*$/gm) ?? [], []);
  });

  it("an each-line block has no continued lines", () => {
    for (const block of BLOCKS) {
      if (typeof block.mode === "object" && block.mode.kind === "each") {
        assert.ok(!/\\$/m.test(block.code), `README line ${block.line}: a continued line in an each-line block`);
      }
    }
  });
});

const SKIP = runtime === "node" ? false : `the commands start npm, npx deno and npx bun themselves: run on Node only`;
/** Per command: a block that must exit, or a server that must print its line. */
const COMMAND_TIMEOUT = 90_000;
/** A stopped server's processes must all be gone by then. */
const STOP_TIMEOUT = 15_000;
/** Ports the README's servers use, checked free first: a dev server left running elsewhere would fail them. */
const PORTS = [2525, 4650];

/**
 * The lock that makes test processes take turns on {@link PORTS}, machine-wide
 * (two `npm test` runs, or `npm test` and a single file): see takePortLock.
 * 2524: next to the README's port, below where freePort picks.
 */
const PORTS_LOCK = 2524;
/** How long a test waits for another process's README commands, at most. */
const LOCK_WAIT = 3 * 60_000;
/** This process holds the lock (a test that timed out may still run, holding it). */
let lockHeld = false;

/** Runs `fn` holding {@link PORTS_LOCK}. */
async function withPortsLock<T>(fn: () => Promise<T>): Promise<T> {
  // Ours already: an earlier test of this file that timed out still runs; waiting for it would end the same way.
  assert.equal(lockHeld, false, `ports ${PORTS} still held by an earlier README test of this process (timed out?)`);
  const lock = await takePortLock(PORTS_LOCK, LOCK_WAIT, `the README's ports ${PORTS.join(" and ")}`);
  lockHeld = true;
  try {
    return await fn();
  } finally {
    lockHeld = false;
    await lock.release();
  }
}

let scratch: string | undefined;
let copy: string | undefined;

/** The fresh copy of the repository (made once, on first use); its path. */
function freshCopy(): string {
  copy ??= (() => {
    scratch = mkdtempSync(join(tmpdir(), "readme-commands-"));
    const dir = join(scratch, "midi-smtp-server-ts");
    const files = execFileSync("git", ["ls-files", "-z", "--cached", "--others", "--exclude-standard"], {
      cwd: ROOT,
      maxBuffer: 64 * 1024 * 1024,
    }).toString().split("\0").filter((f) => f !== "" && existsSync(join(ROOT, f)) && statSync(join(ROOT, f)).isFile());
    for (const file of files) {
      mkdirSync(dirname(join(dir, file)), { recursive: true });
      cpSync(join(ROOT, file), join(dir, file), { preserveTimestamps: true });
    }
    // cp keeps node_modules/.bin's relative symlinks and the binaries' modes, and is faster than cpSync here.
    execFileSync("cp", ["-a", join(ROOT, "node_modules"), join(dir, "node_modules")]);
    return dir;
  })();
  return copy;
}

after(() => {
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

/** The environment of every command: the reader's, minus what this test run adds or a reader would not have. */
function commandEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    // No audit, funding or update check: each would ask the registry, and none changes what is installed.
    npm_config_audit: "false",
    npm_config_fund: "false",
    npm_config_update_notifier: "false",
  };
  delete env.NODE_TEST_CONTEXT; // a child node must not report to this test runner
  delete env.SMTP_PORT; // the examples read it; the README's commands use the default
  // What `npm test` adds for its own script (npm_lifecycle_event, npm_package_json, this repository as
  // local_prefix ...): the commands run as typed by a reader, not as part of this package's script.
  for (const key of Object.keys(env)) {
    if (key.startsWith("npm_") && (!key.startsWith("npm_config_") || key === "npm_config_local_prefix")) {
      delete env[key];
    }
  }
  return env;
}

/** A started `sh -e -c script` in its own process group, with its combined output. */
function start(script: string, cwd: string) {
  // detached: its own process group, so that SIGINT reaches every process it started, as Ctrl-C does.
  const child: ChildProcess = spawn("sh", ["-e", "-c", script], {
    cwd,
    env: commandEnv(),
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout!.setEncoding("utf8").on("data", (d: string) => output += d);
  child.stderr!.setEncoding("utf8").on("data", (d: string) => output += d);
  const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) =>
    child.on("exit", (code, signal) => resolve({ code, signal }))
  );
  return { child, exited, output: () => output };
}

/** Whether any process of the group `pgid` is left. */
function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Kills what is left of the group `pgid` (after a failure: nothing may outlive the test). */
function killGroup(pgid: number | undefined): void {
  if (pgid === undefined) return;
  try {
    process.kill(-pgid, "SIGKILL");
  } catch {
    // already gone
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Fails unless `port` on 127.0.0.1 can be bound now. */
async function assertPortFree(port: number): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const server = createServer();
    server.once("error", (err) => reject(new Error(`port ${port} is in use (a dev server left running?): ${err}`)));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve()));
  });
}

/** Runs `script` to its end; it must exit 0 within the timeout. */
async function runToEnd(script: string, cwd: string, where: string): Promise<void> {
  const run = start(script, cwd);
  const timer = setTimeout(() => killGroup(run.child.pid), COMMAND_TIMEOUT);
  try {
    const { code, signal } = await run.exited;
    assert.ok(code === 0, `${where}: exit ${code ?? signal}\n${script}\n--- output ---\n${run.output()}`);
    // The lines the README says are printed, in order: that the command ran is not enough.
    const printed = run.output().split("\n").map((l) => l.trim());
    let at = 0;
    for (const [, expected] of script.matchAll(/(?:^|\s)# => (.+)$/gm)) {
      const found = printed.indexOf(expected.trim(), at);
      assert.ok(found >= 0, `${where}: "${expected}" not printed (in order)\n--- output ---\n${run.output()}`);
      at = found + 1;
    }
  } finally {
    clearTimeout(timer);
    killGroup(run.child.pid);
  }
}

/**
 * Starts `script`, waits for `text`, stops it with SIGINT and waits until all
 * it started is gone. Returns what it printed, for the test's diagnostics.
 */
async function runServer(script: string, text: string, cwd: string, where: string): Promise<string> {
  for (const port of PORTS) await assertPortFree(port);
  const run = start(script, cwd);
  const pgid = run.child.pid;
  let exited: { code: number | null; signal: string | null } | undefined;
  run.exited.then((e) => exited = e);
  try {
    const deadline = Date.now() + COMMAND_TIMEOUT;
    while (!run.output().includes(text)) {
      assert.equal(
        exited,
        undefined,
        `${where}: ended before printing "${text}"\n--- output ---\n${run.output()}`,
      );
      assert.ok(Date.now() < deadline, `${where}: "${text}" not printed within ${COMMAND_TIMEOUT} ms\n${run.output()}`);
      await sleep(50);
    }
    assert.ok(pgid !== undefined);
    process.kill(-pgid, "SIGINT");
    const stopDeadline = Date.now() + STOP_TIMEOUT;
    // The shell itself may be what ignores SIGINT: wait for it within the deadline too, not unbounded.
    while (exited === undefined || groupAlive(pgid)) {
      assert.ok(Date.now() < stopDeadline, `${where}: still running ${STOP_TIMEOUT} ms after SIGINT\n${run.output()}`);
      await sleep(50);
    }
    return run.output();
  } finally {
    killGroup(pgid);
  }
}

describe("README shell blocks: the runnable ones, in a fresh copy of the repository", () => {
  for (const block of BLOCKS) {
    if (block.mode === undefined || typeof block.mode === "string") continue;
    const mode = block.mode;
    const where = `README line ${block.line}`;
    const title = `${where}: ${block.code.split("\n")[0].replace(/\s+#.*$/, "")}${
      mode.kind === "run" ? "" : ` (until "${mode.text}"${mode.kind === "each" ? ", each line" : ""})`
    }`;
    it(title, { skip: SKIP, timeout: 4 * COMMAND_TIMEOUT }, (t) => {
      const dir = freshCopy(); // before the lock: copying node_modules takes a while
      return withPortsLock(async () => {
        if (mode.kind === "run") return await runToEnd(block.code, dir, where);
        const scripts = mode.kind === "until"
          ? [block.code]
          : block.code.split("\n").filter((l) => l.trim() !== "" && !l.trim().startsWith("#"));
        for (const script of scripts) {
          const started = Date.now();
          const output = await runServer(script, mode.text, dir, `${where}, "${script.replace(/\s+#.*$/, "")}"`);
          // Which command printed what, and how long it took, in the report: a pass alone says little here.
          const line = output.split("\n").find((l) => l.includes(mode.text));
          t.diagnostic(`${script.split("\n")[0].replace(/\s+#.*$/, "")}: ${Date.now() - started} ms: ${line?.trim()}`);
        }
      });
    });
  }
});
