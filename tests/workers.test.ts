/**
 * Worker processes (src/workers.ts and the dev server's `--workers`), run
 * under all three runtimes:
 *
 *   deno test -A tests/workers.test.ts
 *   bun test ./tests/workers.test.ts
 *   node --import tsx --test tests/workers.test.ts
 *
 * Every test spawns a program under the runtime running it: the dev server
 * (src/cli.ts) with `--workers 2`, or tests/workers_fixture.ts, a small
 * `runWorkers` program. So Deno and Bun (and Node >= 22.12) are tested with
 * SO_REUSEPORT, Node 20 with node:cluster. Which worker served a message
 * shows in its Maildir file name (`time.pid_random.host`). HAProxy runs
 * examples/haproxy-workers.cfg as it is, in front of two workers.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import * as tls from "node:tls";
import { fileURLToPath } from "node:url";
import { RawClient, runtime, withTimeout } from "./helpers.ts";
import { haproxyMissing, startHaproxy } from "./haproxy.ts";
import { freePort } from "./ports.ts";
import { workerMechanism } from "../src/workers/mechanism.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const CLI = join(ROOT, "src", "cli.ts");
const FIXTURE = join(ROOT, "tests", "workers_fixture.ts");
const HAPROXY_CONFIG = join(ROOT, "examples", "haproxy-workers.cfg");
const EXAMPLE = join(ROOT, "examples", "workers.ts");
/** Spawned runtimes (three processes each) start slower than in-process tests. */
const TEST = { timeout: 40_000 };
/** What the start-up report says about the workers. */
const WORKERS_LINE = /^Workers: 2 processes \(pids (\d+), (\d+)\) sharing the ports (.+); supervisor pid (\d+)$/m;
const MECHANISM_TEXT = workerMechanism() === "reuseport" ? "with SO_REUSEPORT" : "through node:cluster";

// A missing HAProxy fails under CI (which installs it) and is reported as skipped elsewhere, never a silent pass.
const NO_HAPROXY = haproxyMissing();

/** The command that runs `script` with this runtime. */
function runtimeCommand(script: string, args: string[]): [string, string[]] {
  switch (runtime) {
    case "deno":
      return [process.execPath, ["run", "-A", script, ...args]];
    case "bun":
      return [process.execPath, [script, ...args]];
    default:
      return [process.execPath, ["--import", "tsx", script, ...args]];
  }
}

/** Whether process `pid` runs (a zombie, exited but not yet reaped, does not count). */
function alive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/s.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return false;
  }
}

/** Polls `predicate` every 20 ms; fails naming `what` after `ms`. */
async function until(predicate: () => boolean, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** A spawned program (a supervisor) with its output collected; {@link stop} leaves nothing running. */
class Program {
  readonly child: ChildProcess;
  stdout = "";
  stderr = "";
  readonly exited: Promise<{ code: number | null; signal: string | null }>;
  /** Worker pids seen, to make sure none is left behind. */
  readonly workerPids = new Set<number>();

  constructor(script: string, args: string[], env: Record<string, string> = {}) {
    const [command, argv] = runtimeCommand(script, args);
    this.child = spawn(command, argv, {
      cwd: ROOT,
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, NO_COLOR: "1", ...env },
    });
    this.child.stdout!.setEncoding("utf8").on("data", (d: string) => this.stdout += d);
    this.child.stderr!.setEncoding("utf8").on("data", (d: string) => {
      this.stderr += d;
      for (const m of d.matchAll(/worker \d+ \(pid (\d+)\)/g)) this.workerPids.add(Number(m[1]));
    });
    this.exited = new Promise((resolve) => this.child.on("close", (code, signal) => resolve({ code, signal })));
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** Everything it printed, for assertion messages. */
  get output(): string {
    return `stdout:\n${this.stdout}\nstderr:\n${this.stderr}`;
  }

  /** Waits until `pattern` matches stdout (or stderr), returning the match. */
  async waitFor(
    pattern: RegExp,
    what: string,
    ms = 20_000,
    stream: "stdout" | "stderr" = "stdout",
  ): Promise<RegExpExecArray> {
    let match: RegExpExecArray | null = null;
    await until(() => (match = pattern.exec(this[stream])) !== null || this.child.exitCode !== null, what, ms)
      .catch((err) => {
        throw new Error(`${err.message}\n${this.output}`);
      });
    if (!match) throw new Error(`exited (${this.child.exitCode}) before ${what}\n${this.output}`);
    return match;
  }

  /** Sends `signal` to the supervisor (not child.kill(): Deno would then misreport how it exited). */
  signal(signal: "SIGTERM" | "SIGINT"): void {
    process.kill(this.pid, signal);
  }

  /** Waits for the exit, failing after `ms`. */
  exit(ms = 20_000): Promise<{ code: number | null; signal: string | null }> {
    return withTimeout(this.exited, ms, `exit\n${this.output}`);
  }

  /** SIGKILL to the supervisor and every worker still alive. */
  async stop(): Promise<void> {
    for (const pid of [this.pid, ...this.workerPids]) {
      if (alive(pid)) {
        try {
          process.kill(pid, "SIGKILL");
        } catch { /* gone meanwhile */ }
      }
    }
    await withTimeout(this.exited, 5000, "SIGKILL").catch(() => {});
  }
}

/** A dev server with `--workers 2` on `port` storing into a fresh Maildir, once its report is printed. */
async function devServer(
  port: number,
  extra: string[] = [],
): Promise<{ cli: Program; maildir: string; pids: number[] }> {
  const maildir = join(mkdtempSync(join(tmpdir(), "midi-workers-")), "mail");
  const cli = new Program(CLI, ["--workers", "2", "--ports", String(port), "--maildir", maildir, "--quiet", ...extra]);
  const report = await cli.waitFor(WORKERS_LINE, "the start-up report").catch(async (err) => {
    await cli.stop();
    throw err;
  });
  const pids = [Number(report[1]), Number(report[2])];
  assert.equal(report[3], MECHANISM_TEXT);
  assert.equal(Number(report[4]), cli.pid, "the supervisor is the process started");
  return { cli, maildir, pids };
}

/** The stored messages: the pid that stored each (from its file name) and its Subject and Received headers. */
function stored(maildir: string): Array<{ pid: number; subject: string; received: string }> {
  return readdirSync(join(maildir, "new")).map((name) => {
    const text = readFileSync(join(maildir, "new", name), "latin1");
    return {
      pid: Number(/^\d+\.(\d+)_/.exec(name)![1]),
      subject: /^Subject: (.*)\r$/m.exec(text)?.[1] ?? "",
      received: /^Received: .*\r$/m.exec(text)?.[0] ?? "",
    };
  });
}

/** One message on a connection of its own; resolves with the reply to the final dot. */
async function sendMessage(port: number, subject: string, localAddress?: string): Promise<number> {
  const client = await RawClient.connect(port, "127.0.0.1", localAddress);
  try {
    await client.expect(220);
    await client.ehlo();
    assert.equal((await client.command("MAIL FROM:<a@example.com>")).code, 250);
    assert.equal((await client.command("RCPT TO:<b@example.com>")).code, 250);
    assert.equal((await client.command("DATA")).code, 354);
    const done = await client.command(`Subject: ${subject}\r\n\r\nHello from a worker test.\r\n.`);
    await client.command("QUIT").catch(() => {});
    return done.code;
  } finally {
    client.close();
  }
}

/** Sends `subjects`, `parallel` at a time; every one must get 250. */
async function sendAll(port: number, subjects: string[], parallel = 4, localAddress?: string): Promise<void> {
  const queue = [...subjects];
  await Promise.all(Array.from({ length: parallel }, async () => {
    for (let subject = queue.shift(); subject !== undefined; subject = queue.shift()) {
      assert.equal(await sendMessage(port, subject, localAddress), 250, subject);
    }
  }));
}

/**
 * Whether a connection from `localAddress` is closed with nothing sent: reset
 * at once (the connect fails) or closed before any reply.
 */
async function refusedWithoutReply(port: number, localAddress: string): Promise<boolean> {
  let client: RawClient;
  try {
    client = await RawClient.connect(port, "127.0.0.1", localAddress);
  } catch (err) {
    return (err as { code?: string }).code === "ECONNRESET";
  }
  try {
    await client.waitClosed(5000);
    return client.pending === "";
  } finally {
    client.close();
  }
}

/** The SHA-256 fingerprint of the certificate presented on the implicit-TLS port. */
function tlsFingerprint(port: number): Promise<string> {
  return withTimeout(
    new Promise((resolve, reject) => {
      const socket = tls.connect({ port, host: "127.0.0.1", rejectUnauthorized: false }, () => {
        const fingerprint = socket.getPeerCertificate().fingerprint256;
        socket.destroy();
        resolve(fingerprint);
      });
      socket.once("error", reject);
    }),
    5000,
    "implicit TLS handshake",
  );
}

describe(`worker processes (${runtime}: ${MECHANISM_TEXT.replace(/^(with|through) /, "")})`, () => {
  it(
    "--workers 2: both workers serve mail, the report names them, every worker has the one certificate",
    TEST,
    async () => {
      const [port, tlsPort] = [await freePort(), await freePort()];
      const { cli, maildir, pids } = await devServer(port, ["--tls-port", String(tlsPort)]);
      try {
        const fingerprint = (await cli.waitFor(/SHA-256 fingerprint (\S+)$/m, "the fingerprint line"))[1];
        // Twelve connections: both workers get some (all on one: 2 in 4096), and all show the printed certificate.
        const seen = await Promise.all(Array.from({ length: 12 }, () => tlsFingerprint(tlsPort)));
        assert.deepEqual(new Set(seen), new Set([fingerprint]), "one certificate for all workers");
        const subjects = Array.from({ length: 16 }, (_, i) => `flow-${i}`);
        await sendAll(port, subjects);
        const messages = stored(maildir);
        assert.deepEqual(messages.map((m) => m.subject).sort(), [...subjects].sort());
        assert.deepEqual(new Set(messages.map((m) => m.pid)), new Set(pids), "stored by both workers, and only them");
        cli.signal("SIGTERM");
        assert.deepEqual(await cli.exit(), { code: 0, signal: null }, cli.output);
        for (const pid of pids) assert.ok(!alive(pid), `worker ${pid} is gone`);
        assert.match(cli.stderr, /all workers stopped\n/);
      } finally {
        await cli.stop();
        rmSync(join(maildir, ".."), { recursive: true, force: true });
      }
    },
  );

  it("SIGTERM drains every worker: messages in progress complete with 250, then all exit 0", TEST, async () => {
    const port = await freePort();
    const { cli, maildir, pids } = await devServer(port);
    const clients: RawClient[] = [];
    try {
      // Four sessions in the middle of their message (with two workers, mostly on both).
      for (let i = 0; i < 4; i++) {
        const client = await RawClient.connect(port);
        clients.push(client);
        await client.expect(220);
        await client.ehlo();
        await client.command("MAIL FROM:<a@example.com>");
        await client.command("RCPT TO:<b@example.com>");
        assert.equal((await client.command("DATA")).code, 354);
        await client.send(`Subject: drain-${i}\r\n\r\nThe first half,\r\n`);
      }
      cli.signal("SIGTERM");
      for (const pid of pids) {
        await cli.waitFor(
          new RegExp(`\\(pid ${pid}\\): SIGTERM received: stopping`),
          `worker ${pid} stopping`,
          10_000,
          "stderr",
        );
      }
      // The stop is under way; the messages still come to an end, and are stored before their 250.
      for (const client of clients) {
        const done = await client.command("and the second half.\r\n.");
        assert.equal(done.code, 250, done.raw);
      }
      assert.deepEqual(await cli.exit(), { code: 0, signal: null }, cli.output);
      assert.deepEqual(stored(maildir).map((m) => m.subject).sort(), ["drain-0", "drain-1", "drain-2", "drain-3"]);
      for (const pid of pids) assert.ok(!alive(pid), `worker ${pid} is gone`);
      assert.equal((cli.stderr.match(/exited with code 0/g) ?? []).length, 2, cli.output);
    } finally {
      for (const client of clients) client.close();
      await cli.stop();
      rmSync(join(maildir, ".."), { recursive: true, force: true });
    }
  });

  it("a worker killed with SIGKILL is replaced, and no message that got 250 is lost", TEST, async () => {
    const port = await freePort();
    const { cli, maildir, pids } = await devServer(port);
    const accepted: string[] = [];
    let sending = true;
    let sent = 0;
    // Three clients sending all the time; a connection the kill cuts off (no 250) is fine, a lost 250 is not.
    const senders = Array.from({ length: 3 }, async () => {
      while (sending) {
        const subject = `kill-${sent++}`;
        try {
          if (await sendMessage(port, subject) === 250) accepted.push(subject);
        } catch {
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
      }
    });
    try {
      await until(() => accepted.length >= 6, "the first messages");
      const [victim, survivor] = pids;
      process.kill(victim, "SIGKILL");
      await cli.waitFor(new RegExp(`\\(pid ${victim}\\) exited with signal SIGKILL`), "the exit", 10_000, "stderr");
      let replacement = 0;
      await until(() => {
        const listening = [...cli.stderr.matchAll(/worker \d \(pid (\d+)\) listening on/g)].map((m) => Number(m[1]));
        replacement = listening.find((pid) => !pids.includes(pid)) ?? 0;
        return replacement !== 0;
      }, "the replacement listening");
      assert.match(cli.stderr, /restarting worker \d in 0\.5 s \(restart 1\)/);
      // The replacement serves too.
      await until(() => stored(maildir).some((m) => m.pid === replacement), "a message stored by the replacement");
      sending = false;
      await Promise.all(senders);
      const subjects = new Set(stored(maildir).map((m) => m.subject));
      assert.deepEqual(accepted.filter((s) => !subjects.has(s)), [], "every message that got 250 is stored");
      cli.signal("SIGTERM");
      assert.deepEqual(await cli.exit(), { code: 0, signal: null }, cli.output);
      for (const pid of [survivor, replacement]) assert.ok(!alive(pid), `worker ${pid} is gone`);
    } finally {
      sending = false;
      await Promise.all(senders);
      await cli.stop();
      rmSync(join(maildir, ".."), { recursive: true, force: true });
    }
  });

  it(
    "HAProxy (examples/haproxy-workers.cfg, send-proxy-v2) in front: messages name the real client, " +
      "its per-address limit holds across the workers, its health checks log nothing",
    { ...TEST, skip: NO_HAPROXY },
    async () => {
      const port = await freePort();
      // One dev server on two addresses stands in for the two receivers of the file.
      const { cli, maildir } = await devServer(port, ["--hosts", "127.0.0.1, 127.0.0.3", "--proxy"]);
      const hp = await startHaproxy({
        file: HAPROXY_CONFIG,
        frontends: [{ name: "smtp", backend: { servers: [] } }],
        env: (ports) => ({
          SMTP_FRONT: `127.0.0.1:${ports.smtp}`,
          MX1: `127.0.0.1:${port}`,
          MX2: `127.0.0.3:${port}`,
          PER_IP_CONNECTIONS: "2",
        }),
      }).catch(async (err) => {
        await cli.stop();
        throw err;
      });
      const front = hp.ports.smtp;
      const started = Date.now();
      const clients: RawClient[] = [];
      try {
        const subjects = Array.from({ length: 6 }, (_, i) => `proxied-${i}`);
        // One at a time: HAProxy may count a connection that just closed a moment longer.
        await sendAll(front, subjects, 1, "127.0.0.2");
        const messages = stored(maildir);
        assert.deepEqual(messages.map((m) => m.subject).sort(), subjects);
        for (const { received } of messages) {
          assert.match(received, /^Received: from client\.example \(127\.0\.0\.2 \[127\.0\.0\.2\]\)/, received);
        }
        // Two connections from 127.0.0.2 are in; HAProxy's table refuses the third (the workers
        // would each count only their own), while another address still gets in.
        for (let i = 0; i < 2; i++) {
          const client = await RawClient.connect(front, "127.0.0.1", "127.0.0.2");
          clients.push(client);
          await client.expect(220);
        }
        assert.ok(await refusedWithoutReply(front, "127.0.0.2"), "the third connection is refused");
        const other = await RawClient.connect(front, "127.0.0.1", "127.0.0.4");
        clients.push(other);
        await other.expect(220);
        // Health checks every 2 s (a v2 LOCAL header, then a close) have run by now: none is worth a line.
        await new Promise((resolve) => setTimeout(resolve, Math.max(0, 2500 - (Date.now() - started))));
        assert.doesNotMatch(cli.stderr, /\[(WARN|ERROR|FATAL)\]/, cli.output);
      } finally {
        for (const client of clients) client.close();
        await hp.stop();
        cli.signal("SIGTERM");
        await cli.exit().catch(() => {});
        await cli.stop();
        rmSync(join(maildir, ".."), { recursive: true, force: true });
      }
    },
  );

  it("examples/workers.ts is what the README shows, and runs: both workers log their messages", TEST, async () => {
    const readme = readFileSync(join(ROOT, "README.md"), "utf8");
    const section = readme.slice(readme.indexOf("### Worker processes"));
    const block = /```ts\n([\s\S]*?)```/.exec(section)?.[1];
    assert.ok(block, "no ts block in the section");
    const file = readFileSync(EXAMPLE, "utf8").replace('from "../mod.ts"', 'from "midi-smtp-server"');
    for (const line of block.split("\n").filter((l) => l.trim() !== "")) {
      assert.ok(file.includes(`${line}\n`), `README line not in examples/workers.ts: ${line}`);
    }
    const port = await freePort();
    const app = new Program(EXAMPLE, [], { SMTP_PORT: String(port), WORKERS: "2" });
    try {
      await app.waitFor(
        /^Ready for connections on 127\.0\.0\.1:\d+ \((reuseport|cluster); worker pids \d+, \d+\)$/m,
        "ready",
      );
      await sendAll(port, Array.from({ length: 12 }, (_, i) => `example-${i}`));
      const ids = new Set(
        [...app.stdout.matchAll(/^worker (\d) \(pid \d+\): \d+ bytes from <a@example\.com>$/gm)].map((m) => m[1]),
      );
      assert.deepEqual(ids, new Set(["1", "2"]), app.output);
      app.signal("SIGTERM");
      assert.deepEqual(await app.exit(), { code: 0, signal: null }, app.output);
    } finally {
      await app.stop();
    }
  });

  it("workers whose supervisor was killed (SIGKILL) stop by themselves: nothing is left running", TEST, async () => {
    const port = await freePort();
    const app = new Program(FIXTURE, [JSON.stringify({ port, workers: 2, mode: "serve" })]);
    try {
      const ready = JSON.parse((await app.waitFor(/^\{"ready".*$/m, "all listening"))[0]) as { ready: number[] };
      process.kill(app.pid, "SIGKILL");
      await until(() => ready.ready.every((pid) => !alive(pid)), "the workers to exit");
    } finally {
      await app.stop();
    }
  });

  it(
    "a worker whose stop hangs is killed after killTimeout, and the supervisor says so and exits 1",
    TEST,
    async () => {
      const port = await freePort();
      const app = new Program(FIXTURE, [JSON.stringify({ port, workers: 2, mode: "hang-stop", killTimeout: 1 })]);
      try {
        const ready = JSON.parse((await app.waitFor(/^\{"ready".*$/m, "all listening"))[0]) as { ready: number[] };
        const started = Date.now();
        app.signal("SIGTERM");
        assert.deepEqual(await app.exit(10_000), { code: 1, signal: null }, app.output);
        assert.ok(Date.now() - started < 8000, `exited ${Date.now() - started} ms after SIGTERM`);
        for (const pid of ready.ready) {
          assert.match(
            app.stderr,
            new RegExp(`\\(pid ${pid}\\) did not exit within 1 s of SIGTERM: killing it \\(SIGKILL\\)`),
          );
          assert.match(app.stderr, new RegExp(`\\(pid ${pid}\\) exited with signal SIGKILL`));
          assert.ok(!alive(pid), `worker ${pid} is gone`);
        }
        const killed = app.stdout.split("\n").filter((l) => l.includes('"killed"')).map((l) => JSON.parse(l).id).sort();
        assert.deepEqual(killed, [1, 2], "onEvent saw both kills");
      } finally {
        await app.stop();
      }
    },
  );

  it("a worker that cannot start: the supervisor stops the other one and fails, saying why", TEST, async () => {
    const port = await freePort();
    const app = new Program(FIXTURE, [JSON.stringify({ port, workers: 2, mode: "fail-start" })]);
    try {
      const exit = await app.exit();
      assert.notEqual(exit.code, 0, app.output);
      assert.match(app.stderr, /worker 2 \(pid \d+\): cannot start: no configuration for worker 2/);
      assert.match(app.stderr, /giving up: worker 2 \(pid \d+\) exited with code 1 before it listened/);
      assert.doesNotMatch(app.stdout, /"ready"/);
      for (const pid of app.workerPids) assert.ok(!alive(pid), `worker ${pid} is gone`);
    } finally {
      await app.stop();
    }
  });
});
