/**
 * The README's examples run as their own processes on this runtime:
 * examples/my_smtp_server.ts takes a message from nodemailer, refuses the
 * recipient it should, and stops on SIGTERM; examples/site_command.ts answers
 * its SITE command, takes and checks its MT-PRIORITY parameter, refuses the
 * commands it disables, and stops on SIGTERM.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import process from "node:process";
import nodemailer from "nodemailer";
import { RawClient, runtime } from "./helpers.ts";

const root = new URL("..", import.meta.url).pathname;

/** How to run a TypeScript file on the runtime running this test. */
function command(file: string): [string, string[]] {
  if (runtime === "deno") return [process.execPath, ["run", "-A", file]];
  if (runtime === "bun") return [process.execPath, [file]];
  return [process.execPath, ["--import", "tsx", file]];
}

/** What {@link runExample} gives its body: the port, and the example's stdout so far. */
interface RunningExample {
  readonly port: number;
  stdout(): string;
  /** Resolves once stdout contains `text` (fails after 10 s). */
  waitFor(text: string | RegExp): Promise<void>;
}

/**
 * Starts `file` with SMTP_PORT=0, waits for its "Ready for connections on
 * 127.0.0.1:port" line, runs `body`, then sends SIGTERM and checks that it
 * exits 0 and printed `downLine` on the way out.
 */
async function runExample(file: string, downLine: RegExp, body: (example: RunningExample) => Promise<void>) {
  const [cmd, args] = command(file);
  const child = spawn(cmd, args, {
    cwd: root,
    env: { ...process.env, SMTP_PORT: "0" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  child.stdout.setEncoding("utf8").on("data", (d: string) => stdout += d);
  child.stderr.resume();
  const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) =>
    child.on("exit", (code, signal) => resolve({ code, signal }))
  );
  const waitFor = async (text: string | RegExp, ms = 10_000) => {
    const deadline = Date.now() + ms;
    while (typeof text === "string" ? !stdout.includes(text) : !text.test(stdout)) {
      assert.ok(Date.now() < deadline, `${file}: ${text} not printed: ${stdout}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  try {
    await waitFor(/Ready for connections on 127\.0\.0\.1:\d+/, 30_000);
    const port = Number(/Ready for connections on 127\.0\.0\.1:(\d+)/.exec(stdout)![1]);
    await body({ port, stdout: () => stdout, waitFor });
    child.kill("SIGTERM");
    const { code, signal } = await exited;
    // Deno's node:child_process reports a child that handled SIGTERM and exited 0 as
    // (null, "SIGTERM"); the "down!" line proves the handler ran either way.
    assert.ok(code === 0 || (runtime === "deno" && signal === "SIGTERM"), `exit ${code} ${signal}`);
    assert.match(stdout, downLine);
  } finally {
    child.kill("SIGKILL");
  }
}

describe(`examples/my_smtp_server.ts on ${runtime}`, () => {
  it("receives a message, refuses not.name@domain.con, and stops on SIGTERM", { timeout: 60_000 }, async () => {
    await runExample("examples/my_smtp_server.ts", /MySmtpServer down!/, async ({ port, stdout, waitFor }) => {
      const transport = nodemailer.createTransport({ host: "127.0.0.1", port, secure: false, ignoreTLS: true });
      const info = await transport.sendMail({
        from: "sender@example.com",
        to: ["rcpt@example.com", "not.name@domain.con"],
        subject: "seed example",
        text: "Hello from the port",
      });
      assert.deepEqual(info.accepted, ["rcpt@example.com"]);
      assert.deepEqual(info.rejected, ["not.name@domain.con"]);
      transport.close();
      await waitFor("Hello from the port");
      assert.match(stdout(), /on mail from event with data: \[<sender@example\.com>\]/);
      assert.match(stdout(), /for recipient\(s\): \[<rcpt@example\.com>\]/);
      assert.match(stdout(), /Subject: seed example/);
    });
  });
});

describe(`examples/site_command.ts on ${runtime}`, () => {
  it('is what README\'s "Extending the session" shows', () => {
    const readme = readFileSync(`${root}README.md`, "utf8");
    const section = readme.slice(readme.indexOf("## Extending the session"));
    const block = /```ts\n([\s\S]*?)```/.exec(section)?.[1];
    assert.ok(block, "no ts block in the section");
    const file = readFileSync(`${root}examples/site_command.ts`, "utf8").replace(
      'from "../mod.ts"',
      'from "midi-smtp-server"',
    );
    for (const line of block.split("\n").filter((l) => l.trim() !== "")) {
      assert.ok(file.includes(`${line}\n`), `README line not in examples/site_command.ts: ${line}`);
    }
  });

  it("answers SITE, takes MT-PRIORITY, refuses VRFY, and stops on SIGTERM", { timeout: 60_000 }, async () => {
    await runExample("examples/site_command.ts", /SiteServer down!/, async ({ port, waitFor }) => {
      const c = await RawClient.connect(port);
      try {
        await c.expect(220);
        assert.deepEqual(await c.ehlo(), ["SIZE 26214400", "ENHANCEDSTATUSCODES", "MT-PRIORITY"]);
        assert.equal(
          (await c.command("site help")).raw,
          "214-SITE HELP: this text\r\n214 SITE STATS: messages received\r\n",
        );
        assert.equal((await c.command("SITE STATS")).raw, "250-0 message(s) received\r\n250 you are 127.0.0.1\r\n");
        assert.equal((await c.command("SITE REBOOT")).raw, "501 5.5.4 Syntax: SITE HELP|STATS\r\n");
        assert.equal((await c.command("VRFY postmaster")).raw, "502 5.5.1 Command not implemented\r\n");
        assert.equal(
          (await c.command("MAIL FROM:<a@example.com> MT-PRIORITY=12")).raw,
          "501 5.5.4 MT-PRIORITY takes -9 to 9\r\n",
        );
        assert.equal((await c.command("MAIL FROM:<a@example.com> MT-PRIORITY=-3")).raw, "250 2.1.0 OK\r\n");
        assert.equal((await c.command("RCPT TO:<b@example.com>")).raw, "250 2.1.5 OK\r\n");
        assert.equal((await c.command("DATA")).code, 354);
        assert.equal((await c.command("Subject: urgent\r\n\r\nsoon\r\n.")).code, 250);
        await waitFor("priority -3: <a@example.com> -> <b@example.com>");
        assert.equal((await c.command("SITE STATS")).raw, "250-1 message(s) received\r\n250 you are 127.0.0.1\r\n");
        assert.equal((await c.command("QUIT")).code, 221);
      } finally {
        c.close();
      }
      // A client that knows nothing of MT-PRIORITY: priority 0.
      const transport = nodemailer.createTransport({ host: "127.0.0.1", port, secure: false, ignoreTLS: true });
      await transport.sendMail({ from: "c@example.com", to: "d@example.com", text: "whenever" });
      transport.close();
      await waitFor("priority 0: <c@example.com> -> <d@example.com>");
    });
  });
});
