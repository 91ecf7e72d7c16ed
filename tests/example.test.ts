/**
 * The README's example (examples/my_smtp_server.ts) runs as its own process on
 * this runtime, takes a message from nodemailer, refuses the recipient it
 * should, and stops on SIGTERM.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import process from "node:process";
import nodemailer from "nodemailer";
import { runtime } from "./helpers.ts";

const root = new URL("..", import.meta.url).pathname;

/** How to run a TypeScript file on the runtime running this test. */
function command(file: string): [string, string[]] {
  if (runtime === "deno") return [`${root}node_modules/.bin/deno`, ["run", "-A", file]];
  if (runtime === "bun") return [`${root}node_modules/.bin/bun`, [file]];
  return [process.execPath, ["--import", "tsx", file]];
}

describe(`examples/my_smtp_server.ts on ${runtime}`, () => {
  it("receives a message, refuses not.name@domain.con, and stops on SIGTERM", { timeout: 60_000 }, async () => {
    const [cmd, args] = command("examples/my_smtp_server.ts");
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
    try {
      const deadline = Date.now() + 30_000;
      let match: RegExpExecArray | null = null;
      while (!(match = /Ready for connections on 127\.0\.0\.1:(\d+)/.exec(stdout))) {
        assert.ok(Date.now() < deadline, `example did not start: ${stdout}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      const port = Number(match[1]);
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
      const seen = Date.now() + 10_000;
      while (!stdout.includes("Hello from the port")) {
        assert.ok(Date.now() < seen, `message not shown: ${stdout}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.match(stdout, /on mail from event with data: \[<sender@example\.com>\]/);
      assert.match(stdout, /for recipient\(s\): \[<rcpt@example\.com>\]/);
      assert.match(stdout, /Subject: seed example/);
      child.kill("SIGTERM");
      const { code, signal } = await exited;
      // Deno's node:child_process reports a child that handled SIGTERM and exited 0 as
      // (null, "SIGTERM"); the "down!" line below proves the handler ran either way.
      assert.ok(code === 0 || (runtime === "deno" && signal === "SIGTERM"), `exit ${code} ${signal}`);
      assert.match(stdout, /MySmtpServer down!/);
    } finally {
      child.kill("SIGKILL");
    }
  });
});
