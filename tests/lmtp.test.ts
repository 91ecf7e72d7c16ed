/**
 * LMTP (RFC 2033) on every runtime and transport: LHLO instead of HELO/EHLO,
 * PIPELINING and ENHANCEDSTATUSCODES always offered, and one reply per
 * accepted recipient after the message (DATA's dot or BDAT LAST), which the
 * data hook may set one by one. Python's smtplib.LMTP is a real client.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type MidiSmtpServerOptions, Smtpd452Exception, Smtpd550Exception, type SmtpdContext } from "../mod.ts";
import { RawClient, startServer, TRANSPORTS } from "./helpers.ts";

const TEST = { timeout: 30_000 };

/** Sends `lines` joined by CRLF (with a final CRLF) in one write. */
function pipelined(client: RawClient, lines: string[]): Promise<void> {
  return client.send(lines.join("\r\n") + "\r\n");
}

/** The text of `count` replies, one string per reply ("250 2.0.0 <a@x> OK, delivered"). */
async function replies(client: RawClient, count: number): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < count; i++) {
    const reply = await client.reply();
    out.push(`${reply.code} ${reply.lines.join(" | ")}`);
  }
  return out;
}

async function lhloClient(port: number): Promise<RawClient> {
  const client = await RawClient.connect(port);
  assert.equal((await client.reply()).code, 220);
  await client.send("LHLO client.example\r\n");
  const reply = await client.reply();
  assert.equal(reply.code, 250);
  return client;
}

const python = await new Promise<string | undefined>((resolve) =>
  execFile("python3", ["-c", "print(1)"], (err) => resolve(err ? undefined : "python3"))
);

/** Sends one message with Python's smtplib.LMTP to a TCP port or a Unix socket path; returns its JSON result. */
function pythonLmtp(target: { port: number } | { path: string }, rcpts: string[]): Promise<Record<string, unknown>> {
  const script = `
import json, smtplib, sys
target, rcpts = json.loads(sys.argv[1]), json.loads(sys.argv[2])
out = {}
if "path" in target:
    s = smtplib.LMTP(target["path"])
else:
    s = smtplib.LMTP("127.0.0.1", target["port"])
code, _ = s.ehlo("python.example")
out["lhlo"] = code
out["features"] = sorted(s.esmtp_features.keys())
out["refused"] = {k: [v[0], v[1].decode()] for k, v in s.sendmail("a@example.com", rcpts, b"Subject: lmtp\\r\\n\\r\\nhello\\r\\n").items()}
out["quit"] = s.quit()[0]
print(json.dumps(out))
`;
  return new Promise((resolve, reject) =>
    execFile(
      python!,
      ["-c", script, JSON.stringify(target), JSON.stringify(rcpts)],
      { timeout: 20_000 },
      (err, out) => err ? reject(err) : resolve(JSON.parse(out)),
    )
  );
}

for (const transport of TRANSPORTS) {
  describe(`LMTP over the ${transport.name} transport`, () => {
    const lmtp = (options: MidiSmtpServerOptions = {}) => startServer(transport, { lmtp: true, ...options });

    it("answers LHLO with PIPELINING and ENHANCEDSTATUSCODES; HELO and EHLO get 500", TEST, async () => {
      const srv = await lmtp({ pipeliningExtension: false });
      try {
        const client = await RawClient.connect(srv.port);
        assert.equal((await client.reply()).code, 220);
        await client.send("EHLO client.example\r\n");
        const ehlo = await client.reply();
        assert.equal(ehlo.code, 500);
        assert.match(ehlo.lines[0], /LHLO/);
        await client.send("HELO client.example\r\n");
        assert.equal((await client.reply()).code, 500);
        await client.send("LHLO client.example\r\n");
        const lhlo = await client.reply();
        assert.equal(lhlo.code, 250);
        assert.ok(lhlo.lines.includes("PIPELINING"), lhlo.raw);
        assert.ok(lhlo.lines.includes("ENHANCEDSTATUSCODES"), lhlo.raw);
        await client.send("QUIT\r\n");
        assert.equal((await client.reply()).code, 221);
        client.close();
      } finally {
        await srv.close();
      }
    });

    it("an SMTP server answers LHLO with 500", TEST, async () => {
      const srv = await startServer(transport);
      try {
        const client = await RawClient.connect(srv.port);
        assert.equal((await client.reply()).code, 220);
        await client.send("LHLO client.example\r\n");
        assert.equal((await client.reply()).code, 500);
        client.close();
      } finally {
        await srv.close();
      }
    });

    it("after DATA: one reply per accepted recipient, in RCPT order, set by the data hook", TEST, async () => {
      let seen: SmtpdContext["envelope"] | undefined;
      const srv = await lmtp({
        onRcptToEvent(_ctx, rcpt) {
          if (rcpt === "<nobody@example.com>") throw new Smtpd550Exception();
        },
        onMessageDataEvent(ctx) {
          seen = ctx.envelope;
          return ctx.envelope.recipients.map((r) =>
            r.address === "<full@example.com>" ? new Smtpd452Exception(undefined, "Mailbox full", "4.2.2") : null
          );
        },
      });
      try {
        const client = await lhloClient(srv.port);
        await pipelined(client, [
          "MAIL FROM:<a@example.com>",
          "RCPT TO:<one@example.com>",
          "RCPT TO:<nobody@example.com>",
          "RCPT TO:<full@example.com>",
          "RCPT TO:<two@example.com>",
          "DATA",
        ]);
        assert.deepEqual((await replies(client, 6)).map((r) => r.slice(0, 3)), [
          "250",
          "250",
          "550",
          "250",
          "250",
          "354",
        ]);
        await client.send("Subject: x\r\n\r\nhi\r\n.\r\n");
        assert.deepEqual(await replies(client, 3), [
          "250 2.0.0 <one@example.com> OK, delivered",
          "452 4.2.2 <full@example.com> Mailbox full",
          "250 2.0.0 <two@example.com> OK, delivered",
        ]);
        assert.deepEqual(seen?.to, ["<one@example.com>", "<full@example.com>", "<two@example.com>"]);
        // The next transaction on the same connection (Postfix caches LMTP connections).
        await pipelined(client, ["RSET", "MAIL FROM:<>", "RCPT TO:<one@example.com>", "DATA"]);
        assert.deepEqual((await replies(client, 4)).map((r) => r.slice(0, 3)), ["250", "250", "250", "354"]);
        await client.send("x\r\n.\r\n");
        assert.deepEqual(await replies(client, 1), ["250 2.0.0 <one@example.com> OK, delivered"]);
        client.close();
      } finally {
        await srv.close();
      }
    });

    it("a hook that throws, or a message too large, answers every recipient alike", TEST, async () => {
      const srv = await lmtp({
        maxMessageSize: 100,
        onMessageDataEvent() {
          throw new Smtpd550Exception(undefined, "No thanks", "5.7.1");
        },
      });
      try {
        const client = await lhloClient(srv.port);
        await pipelined(client, [
          "MAIL FROM:<a@example.com>",
          "RCPT TO:<one@example.com>",
          "RCPT TO:<two@example.com>",
        ]);
        await replies(client, 3);
        await client.send("DATA\r\n");
        assert.equal((await client.reply()).code, 354);
        await client.send("hi\r\n.\r\n");
        assert.deepEqual(await replies(client, 2), [
          "550 5.7.1 <one@example.com> No thanks",
          "550 5.7.1 <two@example.com> No thanks",
        ]);
        await pipelined(client, [
          "MAIL FROM:<a@example.com>",
          "RCPT TO:<one@example.com>",
          "RCPT TO:<two@example.com>",
        ]);
        await replies(client, 3);
        await client.send("DATA\r\n");
        assert.equal((await client.reply()).code, 354);
        await client.send("x".repeat(300) + "\r\n.\r\n");
        const tooLarge = await replies(client, 2);
        assert.deepEqual(tooLarge.map((r) => r.split(" ").slice(0, 3).join(" ")), [
          "552 5.3.4 <one@example.com>",
          "552 5.3.4 <two@example.com>",
        ]);
        await client.send("NOOP\r\n");
        assert.equal((await client.reply()).code, 250);
        client.close();
      } finally {
        await srv.close();
      }
    });

    it("DATA without an accepted recipient gets 503", TEST, async () => {
      const srv = await lmtp();
      try {
        const client = await lhloClient(srv.port);
        await pipelined(client, ["MAIL FROM:<a@example.com>", "DATA"]);
        assert.deepEqual((await replies(client, 2)).map((r) => r.slice(0, 3)), ["250", "503"]);
        client.close();
      } finally {
        await srv.close();
      }
    });

    it("with CHUNKING: one reply per chunk, then one per recipient after BDAT LAST", TEST, async () => {
      const bodies: string[] = [];
      const srv = await lmtp({
        chunkingExtension: true,
        onMessageDataEvent(ctx) {
          bodies.push(ctx.message.text);
        },
      });
      try {
        const client = await lhloClient(srv.port);
        await client.send(
          "MAIL FROM:<a@example.com>\r\nRCPT TO:<one@example.com>\r\nRCPT TO:<two@example.com>\r\n" +
            "BDAT 6\r\nhello\rBDAT 3 LAST\r\n\n.\r\n",
        );
        assert.deepEqual(await replies(client, 6), [
          "250 2.1.0 OK",
          "250 2.1.5 OK",
          "250 2.1.5 OK",
          "250 2.0.0 6 octets received",
          "250 2.0.0 <one@example.com> OK, delivered",
          "250 2.0.0 <two@example.com> OK, delivered",
        ]);
        assert.deepEqual(bodies, ["hello\r\n.\r\n"]);
        client.close();
      } finally {
        await srv.close();
      }
    });

    it("Python's smtplib.LMTP delivers over TCP; a per-recipient refusal reaches it", {
      ...TEST,
      skip: python ? false : "python3 is not installed",
    }, async () => {
      const srv = await lmtp({
        onMessageDataEvent(ctx) {
          return ctx.envelope.recipients.map(() => null);
        },
        onRcptToEvent(_ctx, rcpt) {
          if (rcpt.startsWith("<bad")) throw new Smtpd550Exception();
        },
      });
      try {
        const out = await pythonLmtp({ port: srv.port }, ["good@example.com", "bad@example.com"]);
        assert.equal(out.lhlo, 250);
        assert.ok((out.features as string[]).includes("pipelining"));
        assert.deepEqual(Object.keys(out.refused as object), ["bad@example.com"]);
        assert.equal(out.quit, 221);
      } finally {
        await srv.close();
      }
    });

    it("serves LMTP on a Unix socket (smtplib.LMTP and a raw client)", {
      ...TEST,
      skip: python ? false : "python3 is not installed",
    }, async () => {
      const dir = mkdtempSync(join(tmpdir(), "lmtp-"));
      const path = join(dir, "lmtp.sock");
      const received: Array<{ to: string[]; remoteIp: string; remoteHost: string }> = [];
      const srv = await lmtp({
        socketPaths: path,
        onMessageDataEvent(ctx) {
          received.push({ to: ctx.envelope.to, remoteIp: ctx.server.remoteIp, remoteHost: ctx.server.remoteHost });
        },
      });
      try {
        const out = await pythonLmtp({ path }, ["one@example.com"]);
        assert.equal(out.lhlo, 250);
        assert.deepEqual(out.refused, {});
        assert.deepEqual(received, [{ to: ["<one@example.com>"], remoteIp: "", remoteHost: "localhost" }]);
      } finally {
        await srv.close();
        rmSync(dir, { recursive: true, force: true });
      }
    });

    it("a refused BDAT LAST chunk is answered per recipient (the client counts one reply each)", TEST, async () => {
      const srv = await lmtp({ chunkingExtension: true, maxMessageSize: 10 });
      try {
        const client = await lhloClient(srv.port);
        await client.send(
          "MAIL FROM:<a@example.com>\r\nRCPT TO:<one@example.com>\r\nRCPT TO:<two@example.com>\r\n" +
            "BDAT 20 LAST\r\n" + "y".repeat(20),
        );
        const got = await replies(client, 5);
        assert.match(got[3], /^552 5\.3\.4 <one@example\.com> /);
        assert.match(got[4], /^552 5\.3\.4 <two@example\.com> /);
        await client.send("NOOP\r\n");
        assert.equal((await client.reply()).code, 250);
        client.close();
      } finally {
        await srv.close();
      }
    });
  });
}
