/**
 * The SMTP session over real sockets, driven byte by byte by a raw client,
 * with every transport of the running runtime.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  MidiSmtpServer,
  Smtpd421Exception,
  Smtpd550Exception,
  Smtpd552Exception,
  type SmtpdContext,
  SmtpdException,
} from "../mod.ts";
import { delay, ehloClient, RawClient, type RunningServer, startServer, TRANSPORTS, withTimeout } from "./helpers.ts";

interface Delivered {
  from: string;
  to: string[];
  data: string;
  headers: string;
}

/** Starts a server that records delivered messages (as latin1 strings) and disconnects. */
async function recordingServer(
  transport: (typeof TRANSPORTS)[number],
  options: ConstructorParameters<typeof MidiSmtpServer>[0] = {},
) {
  const messages: Delivered[] = [];
  const disconnects: SmtpdContext[] = [];
  const running = await startServer(transport, {
    onMessageDataEvent(ctx) {
      messages.push({
        from: ctx.envelope.from,
        to: [...ctx.envelope.to],
        data: Buffer.from(ctx.message.data).toString("latin1"),
        headers: ctx.message.headers,
      });
    },
    onDisconnectEvent(ctx) {
      disconnects.push(ctx);
    },
    ...options,
  });
  return { ...running, messages, disconnects };
}

async function transaction(client: RawClient, rcpt = "<b@example.com>"): Promise<void> {
  assert.equal((await client.command("MAIL FROM:<a@example.com>")).code, 250);
  assert.equal((await client.command(`RCPT TO:${rcpt}`)).code, 250);
  assert.equal((await client.command("DATA")).code, 354);
}

for (const transport of TRANSPORTS) {
  describe(`session (${transport.name} transport)`, () => {
    describe("greeting, EHLO, simple commands", () => {
      let s: RunningServer;
      before(async () => s = await startServer(transport));
      after(() => s.close());

      it("greets and answers EHLO with the default extensions", async () => {
        const c = await RawClient.connect(s.port);
        try {
          const greeting = await c.reply();
          assert.equal(greeting.raw, "220 127.0.0.1 says welcome!\r\n");
          const ehlo = await c.command("EHLO client.example");
          assert.equal(ehlo.raw, "250-127.0.0.1 at your service!\r\n250-SIZE 26214400\r\n250 ENHANCEDSTATUSCODES\r\n");
        } finally {
          c.close();
        }
      });

      it("answers HELO on one line and reports the real port", async () => {
        assert.ok(s.port > 0);
        assert.equal(s.server.addresses[0], `127.0.0.1:${s.port}`);
        const c = await RawClient.connect(s.port);
        try {
          await c.expect(220);
          assert.equal((await c.command("helo client.example")).raw, "250 127.0.0.1 at your service!\r\n");
        } finally {
          c.close();
        }
      });

      it("answers NOOP, HELP, VRFY, EXPN, RSET and QUIT", async () => {
        const c = await RawClient.connect(s.port);
        try {
          await c.expect(220);
          assert.equal((await c.command("NOOP")).raw, "250 2.0.0 OK\r\n");
          assert.equal(
            (await c.command("RSET")).raw,
            "250 2.0.0 OK\r\n",
            "RSET is allowed before HELO (RFC 5321 4.1.4)",
          );
          assert.equal((await c.command("HELP")).code, 214);
          assert.equal((await c.command("VRFY someone")).raw.slice(0, 10), "252 2.5.0 ");
          assert.equal((await c.command("VRFY")).code, 501);
          assert.equal((await c.command("EXPN list")).raw, "502 5.5.1 Command not implemented\r\n");
          assert.equal((await c.command("QUIT")).raw, "221 2.0.0 Service closing transmission channel\r\n");
          await c.waitClosed();
        } finally {
          c.close();
        }
      });

      it("rejects EHLO without a name and keeps the session", async () => {
        const c = await RawClient.connect(s.port);
        try {
          await c.expect(220);
          assert.equal((await c.command("EHLO")).code, 501);
          assert.equal((await c.command("EHLO ok.example")).code, 250);
        } finally {
          c.close();
        }
      });

      it("answers an unknown command with 500 and goes on", async () => {
        const c = await ehloClient(s.port);
        try {
          assert.equal((await c.command("FOO bar")).raw, "500 5.5.2 Syntax error, command unrecognised\r\n");
          assert.equal((await c.command("")).code, 500);
          assert.equal((await c.command("NOOP")).code, 250);
        } finally {
          c.close();
        }
      });
    });

    describe("sequence rules", () => {
      let s: RunningServer;
      before(async () => s = await startServer(transport));
      after(() => s.close());

      it("gives 503 to MAIL, RCPT and DATA out of order", async () => {
        const c = await RawClient.connect(s.port);
        try {
          await c.expect(220);
          assert.equal((await c.command("MAIL FROM:<a@example.com>")).raw, "503 5.5.1 Send HELO/EHLO first\r\n");
          assert.equal((await c.command("RCPT TO:<a@example.com>")).code, 503);
          assert.equal((await c.command("DATA")).code, 503);
          await c.command("EHLO x.example");
          assert.equal((await c.command("RCPT TO:<a@example.com>")).raw, "503 5.5.1 Need MAIL command first\r\n");
          assert.equal((await c.command("DATA")).code, 503);
          assert.equal((await c.command("MAIL FROM:<a@example.com>")).code, 250);
          assert.equal((await c.command("MAIL FROM:<a@example.com>")).raw, "503 5.5.1 Sender already specified\r\n");
          assert.equal((await c.command("DATA")).raw, "503 5.5.1 Need RCPT command first\r\n");
          assert.equal((await c.command("RSET")).code, 250);
          assert.equal((await c.command("RCPT TO:<a@example.com>")).code, 503, "RSET ended the transaction");
        } finally {
          c.close();
        }
      });

      it("treats a second EHLO as a reset (RFC 5321 4.1.4)", async () => {
        const c = await ehloClient(s.port);
        try {
          assert.equal((await c.command("MAIL FROM:<a@example.com>")).code, 250);
          assert.equal((await c.command("EHLO again.example")).code, 250);
          assert.equal((await c.command("RCPT TO:<b@example.com>")).code, 503);
          assert.equal((await c.command("MAIL FROM:<a@example.com>")).code, 250);
        } finally {
          c.close();
        }
      });
    });

    describe("MAIL and RCPT arguments", () => {
      let s: Awaited<ReturnType<typeof recordingServer>>;
      before(async () => s = await recordingServer(transport, { maxRecipients: 3, maxMessageSize: 1000 }));
      after(() => s.close());

      const cases: Array<[string, string, number, string]> = [
        ["MAIL", "MAIL FROM:<a@example.com>", 250, "2.1.0"],
        ["MAIL with space after colon", "MAIL FROM: <a@example.com>", 250, "2.1.0"],
        ["null sender", "MAIL FROM:<>", 250, "2.1.0"],
        ["lower case", "mail from:<a@example.com>", 250, "2.1.0"],
        ["no brackets", "MAIL FROM:a@example.com", 501, "5.5.4"],
        ["no colon", "MAIL FROM <a@example.com>", 501, "5.5.4"],
        ["bad address", "MAIL FROM:<a@@example.com>", 501, "5.1.7"],
        ["NUL byte", "MAIL FROM:<a\x00b@example.com>", 501, "5.5.2"],
        ["control byte", "MAIL FROM:<a\x01b@example.com>", 501, "5.5.2"],
        ["non-ASCII without SMTPUTF8", "MAIL FROM:<j\u00f6rg@example.com>", 553, "5.6.7"],
        ["unknown parameter", "MAIL FROM:<a@example.com> FOO=BAR", 555, "5.5.4"],
        ["SMTPUTF8 when not offered", "MAIL FROM:<a@example.com> SMTPUTF8", 555, "5.5.4"],
        ["SIZE within the limit", "MAIL FROM:<a@example.com> SIZE=999", 250, "2.1.0"],
        ["SIZE over the limit", "MAIL FROM:<a@example.com> SIZE=1001", 552, "5.3.4"],
        ["SIZE not a number", "MAIL FROM:<a@example.com> SIZE=big", 501, "5.5.4"],
      ];
      for (const [name, line, code, enhanced] of cases) {
        it(`${name}: ${code}`, async () => {
          const c = await ehloClient(s.port);
          try {
            const bytes = Buffer.from(line + "\r\n", "utf8");
            await c.send(bytes);
            const r = await c.reply();
            assert.equal(r.code, code, r.raw);
            assert.ok(r.lines[0].startsWith(enhanced + " "), r.raw);
          } finally {
            c.close();
          }
        });
      }

      it("limits recipients with 452 4.5.3 and checks RCPT syntax", async () => {
        const c = await ehloClient(s.port);
        try {
          await c.command("MAIL FROM:<a@example.com>");
          assert.equal((await c.command("RCPT TO:<>")).code, 501);
          assert.equal((await c.command("RCPT TO:<b@example.com> NOTIFY=NEVER")).code, 555);
          assert.equal((await c.command("RCPT TO:<Postmaster>")).code, 250);
          assert.equal((await c.command("RCPT TO:<b@example.com>")).code, 250);
          assert.equal((await c.command("RCPT TO:<c@[192.0.2.1]>")).code, 250);
          assert.equal((await c.command("RCPT TO:<d@example.com>")).raw, "452 4.5.3 Too many recipients\r\n");
        } finally {
          c.close();
        }
      });
    });

    describe("internationalization", () => {
      let s: Awaited<ReturnType<typeof recordingServer>>;
      before(async () => s = await recordingServer(transport, { internationalizationExtensions: true }));
      after(() => s.close());

      it("advertises 8BITMIME and SMTPUTF8 and takes UTF-8 addresses with SMTPUTF8", async () => {
        const c = await RawClient.connect(s.port);
        try {
          await c.expect(220);
          const ehlo = await c.command("EHLO x.example");
          assert.deepEqual(ehlo.lines.slice(1), ["SIZE 26214400", "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES"]);
          await c.send(Buffer.from("MAIL FROM:<j\u00f6rg@b\u00fccher.example> SMTPUTF8 BODY=8BITMIME\r\n", "utf8"));
          assert.equal((await c.reply()).code, 250);
          await c.send(Buffer.from("RCPT TO:<\u7528\u6237@\u4f8b\u5b50.example>\r\n", "utf8"));
          assert.equal((await c.reply()).code, 250);
          await c.command("DATA");
          await c.send(Buffer.from("Subject: caf\u00e9\r\n\r\n8-bit body \u00e9\r\n.\r\n", "utf8"));
          assert.equal((await c.reply()).code, 250);
          const m = s.messages.at(-1)!;
          assert.equal(Buffer.from(m.from, "utf8").toString("utf8"), "<j\u00f6rg@b\u00fccher.example>");
          assert.equal(
            Buffer.from(m.data, "latin1").toString("utf8"),
            "Subject: caf\u00e9\r\n\r\n8-bit body \u00e9\r\n",
          );
        } finally {
          c.close();
        }
      });

      it("refuses a UTF-8 recipient when MAIL had no SMTPUTF8", async () => {
        const c = await ehloClient(s.port);
        try {
          await c.command("MAIL FROM:<a@example.com> BODY=7BIT");
          await c.send(Buffer.from("RCPT TO:<\u7528\u6237@example.com>\r\n", "utf8"));
          const r = await c.reply();
          assert.equal(r.code, 553);
          assert.ok(r.lines[0].startsWith("5.6.7"));
          assert.equal((await c.command("MAIL FROM:<a@example.com> BODY=9BIT")).code, 503);
        } finally {
          c.close();
        }
      });
    });

    describe("DATA", () => {
      let s: Awaited<ReturnType<typeof recordingServer>>;
      before(async () => s = await recordingServer(transport, { pipeliningExtension: true, maxMessageSize: 2000 }));
      after(() => s.close());

      it("unstuffs dots and keeps the message byte-exact with its last CRLF", async () => {
        const c = await ehloClient(s.port);
        try {
          await transaction(c);
          await c.send("Subject: dots\r\n\r\n..leading dot\r\n...two\r\n.\x00nul \xff\r\nlast\r\n.\r\n");
          assert.equal((await c.reply()).raw, "250 2.0.0 Requested mail action okay, completed\r\n");
          const m = s.messages.at(-1)!;
          assert.equal(m.data, "Subject: dots\r\n\r\n.leading dot\r\n..two\r\n\x00nul \xff\r\nlast\r\n");
          assert.equal(m.headers, "Subject: dots\r\n\r\n");
          assert.deepEqual([m.from, m.to], ["<a@example.com>", ["<b@example.com>"]]);
        } finally {
          c.close();
        }
      });

      it("accepts an empty message", async () => {
        const c = await ehloClient(s.port);
        try {
          await transaction(c);
          await c.send(".\r\n");
          assert.equal((await c.reply()).code, 250);
          assert.equal(s.messages.at(-1)!.data, "");
        } finally {
          c.close();
        }
      });

      // SMTP smuggling: only <CRLF>.<CRLF> may end the message.
      for (const sep of ["\n.\r\n", "\n.\n", "\r\n.\n", "\r.\r\n", "\r.\r", "\n.\r"]) {
        it(`does not end DATA on ${JSON.stringify(sep)}`, async () => {
          const c = await ehloClient(s.port);
          try {
            const before = s.messages.length;
            await transaction(c);
            await c.send(
              `body${sep}MAIL FROM:<evil@example.com>\r\nRCPT TO:<victim@example.com>\r\nDATA\r\nsmuggled\r\n.\r\n`,
            );
            const r = await c.reply();
            assert.equal(r.code, 250);
            assert.equal(s.messages.length, before + 1, "exactly one message");
            assert.equal(s.messages.at(-1)!.from, "<a@example.com>");
            assert.ok(
              s.messages.at(-1)!.data.includes("MAIL FROM:<evil@example.com>"),
              "the smuggled part is message text",
            );
            assert.equal((await c.command("NOOP")).code, 250, "no extra replies were queued");
          } finally {
            c.close();
          }
        });
      }

      it("turns bare LF and CR into CRLF in CRLF_ENSURE mode", async () => {
        const c = await ehloClient(s.port);
        try {
          await transaction(c);
          await c.send("a\nb\rc\r\n.\r\n");
          assert.equal((await c.reply()).code, 250);
          assert.equal(s.messages.at(-1)!.data, "a\r\nb\r\nc\r\n");
        } finally {
          c.close();
        }
      });

      it("refuses a message over maxMessageSize with 552 after reading it, and goes on", async () => {
        const c = await ehloClient(s.port);
        try {
          const before = s.messages.length;
          await transaction(c);
          await c.send("x".repeat(990) + "\r\n" + "y".repeat(990) + "\r\n" + "z".repeat(100) + "\r\n.\r\n");
          const r = await c.reply();
          assert.equal(r.code, 552);
          assert.ok(r.lines[0].startsWith("5.3.4"));
          assert.equal(s.messages.length, before);
          await transaction(c);
          await c.send("small\r\n.\r\n");
          assert.equal((await c.reply()).code, 250);
        } finally {
          c.close();
        }
      });

      it("takes data pipelined with the commands, replies in order", async () => {
        const c = await ehloClient(s.port);
        try {
          await c.send(
            "MAIL FROM:<p@example.com>\r\nRCPT TO:<q@example.com>\r\nRCPT TO:<r@example.com>\r\nDATA\r\nhello\r\n.\r\nNOOP\r\n",
          );
          for (const code of [250, 250, 250, 354, 250, 250]) assert.equal((await c.reply()).code, code);
          assert.deepEqual(s.messages.at(-1)!.to, ["<q@example.com>", "<r@example.com>"]);
        } finally {
          c.close();
        }
      });

      it("gives the same replies and message when the input is split at every byte", async () => {
        const script = "MAIL FROM:<s@example.com>\r\nRCPT TO:<t@example.com>\r\nDATA\r\n..x\r\n\r\n.\r\n";
        const c = await ehloClient(s.port);
        try {
          for (let cut = 1; cut < script.length; cut += 3) {
            await c.send(script.slice(0, cut));
            await delay(1);
            await c.send(script.slice(cut));
            for (const code of [250, 250, 354, 250]) assert.equal((await c.reply()).code, code, `cut at ${cut}`);
            assert.equal(s.messages.at(-1)!.data, ".x\r\n\r\n", `cut at ${cut}`);
          }
          for (const ch of script) await c.send(ch);
          for (const code of [250, 250, 354, 250]) assert.equal((await c.reply()).code, code, "byte by byte");
          assert.equal(s.messages.at(-1)!.data, ".x\r\n\r\n");
        } finally {
          c.close();
        }
      });
    });

    describe("CRLF modes and pipelining off", () => {
      it("CRLF_STRICT refuses bare LF in commands and messages", async () => {
        const s = await recordingServer(transport, { crlfMode: "CRLF_STRICT" });
        const c = await RawClient.connect(s.port);
        try {
          await c.expect(220);
          const r = await c.command("EHLO x.example\n".slice(0, -2) + "e\n".slice(0, 0));
          assert.equal(r.code, 250);
          await c.send("NOOP\n");
          assert.equal((await c.reply()).raw, "500 5.5.2 Bad input, Lines must be terminated by CRLF sequence\r\n");
          await transaction(c);
          await c.send("bare\nline\r\n.\r\n");
          assert.equal((await c.reply()).code, 500);
          assert.equal(s.messages.length, 0);
        } finally {
          c.close();
          await s.close();
        }
      });

      it("CRLF_LEAVE keeps bare line breaks", async () => {
        const s = await recordingServer(transport, { crlfMode: "CRLF_LEAVE" });
        const c = await ehloClient(s.port);
        try {
          await transaction(c);
          await c.send("a\nb\rc\r\n.\r\n");
          assert.equal((await c.reply()).code, 250);
          assert.equal(s.messages[0].data, "a\nb\rc\r\n");
        } finally {
          c.close();
          await s.close();
        }
      });

      it("without PIPELINING refuses a command followed by another in the same write", async () => {
        const s = await startServer(transport);
        const c = await ehloClient(s.port);
        try {
          await c.send("NOOP\r\nNOOP\r\n");
          assert.equal((await c.reply()).raw, "500 5.5.0 Bad input, PIPELINING is not allowed\r\n");
          assert.equal((await c.reply()).code, 250);
        } finally {
          c.close();
          await s.close();
        }
      });
    });

    describe("limits", () => {
      it("answers an over-long command with 500 5.5.2 and goes on; closes on a buffer overrun", async () => {
        const s = await startServer(transport, { maxCommandLineLength: 512, ioBufferMaxSize: 4096 });
        const c = await ehloClient(s.port);
        try {
          assert.equal((await c.command("NOOP " + "x".repeat(505))).code, 250, "510 + CRLF = 512 is fine");
          assert.equal((await c.command("NOOP " + "x".repeat(506))).raw, "500 5.5.2 Line too long\r\n");
          assert.equal((await c.command("NOOP")).code, 250);
          await c.send("x".repeat(10000));
          const r = await c.reply();
          assert.equal(r.code, 421);
          await c.waitClosed();
        } finally {
          c.close();
          await s.close();
        }
      });

      it("ends the session after maxBadCommands errors, not after one", async () => {
        const s = await startServer(transport, { maxBadCommands: 3 });
        const c = await ehloClient(s.port);
        try {
          assert.equal((await c.command("BAD1")).code, 500);
          assert.equal((await c.command("NOOP")).code, 250);
          assert.equal((await c.command("BAD2")).code, 500);
          await c.send("BAD3\r\n");
          assert.equal((await c.reply()).code, 500);
          assert.equal((await c.reply()).raw, "421 4.7.0 Too many errors, closing transmission channel\r\n");
          await c.waitClosed();
        } finally {
          c.close();
          await s.close();
        }
      });
    });

    describe("timeouts", () => {
      it("closes an idle client with 421 4.4.2 and a trickling one too", async () => {
        const s = await startServer(transport, { ioGreetingTimeout: 0.3, ioCmdTimeout: 0.4 });
        const idle = await RawClient.connect(s.port);
        const trickle = await ehloClient(s.port);
        try {
          await idle.expect(220);
          const r = await idle.reply(3000);
          assert.equal(r.raw, "421 4.4.2 Timeout, closing transmission channel\r\n");
          await idle.waitClosed();
          const started = Date.now();
          let closed = false;
          for (let i = 0; i < 30 && !trickle.closed; i++) {
            await trickle.send("N").catch(() => closed = true);
            await delay(50);
          }
          assert.equal((await trickle.reply(3000)).code, 421);
          await trickle.waitClosed();
          assert.ok(Date.now() - started < 1400 || closed, "a byte at a time does not extend the deadline");
        } finally {
          idle.close();
          trickle.close();
          await s.close();
        }
      });

      it("limits the time for a whole message", async () => {
        const s = await recordingServer(transport, { ioDataTimeout: 0.4 });
        const c = await ehloClient(s.port);
        try {
          await transaction(c);
          await c.send("partial line");
          assert.equal((await c.reply(3000)).code, 421);
          await c.waitClosed();
          assert.equal(s.messages.length, 0);
        } finally {
          c.close();
          await s.close();
        }
      });
    });

    describe("hooks", () => {
      // The same outcomes whether a hook throws or returns a rejected promise.
      for (const style of ["throwing", "rejecting"] as const) {
        /** The hook as written (sync), or as an async function that waits a little first. */
        const hook = <A extends unknown[], R>(fn: (...args: A) => R) =>
          style === "throwing" ? fn : async (...args: A): Promise<R> => {
            await delay(1);
            return fn(...args);
          };

        it(`answers ${style} hooks with their reply, plain errors with 451, and goes on`, async () => {
          const s = await recordingServer(transport, {
            onHeloEvent: hook((_ctx: SmtpdContext, helo: string) => {
              if (helo === "bad.example") throw new SmtpdException(550, "5.7.1", "Go away");
            }),
            onMailFromEvent: hook((_ctx: SmtpdContext, from: string): string | void => {
              if (from === "<crash@example.com>") throw new Error("database down");
              if (from === "<rewrite@example.com>") return "<rewritten@example.com>";
            }),
            onRcptToEvent: hook((_ctx: SmtpdContext, rcpt: string) => {
              if (rcpt === "<nobody@example.com>") throw new Smtpd550Exception();
              if (rcpt === "<bye@example.com>") throw new Smtpd421Exception();
            }),
            onMessageDataStartEvent: hook((ctx: SmtpdContext) => {
              if (ctx.envelope.to.includes("<nodata@example.com>")) throw new SmtpdException(554, "5.7.1", "No data");
            }),
            onMessageDataHeadersEvent: hook((ctx: SmtpdContext) => {
              if (ctx.message.headers.includes("X-Bad:")) throw new SmtpdException(550, "5.7.1", "Bad header");
            }),
            onMessageDataEvent: hook((ctx: SmtpdContext) => {
              if (ctx.message.text.includes("reject me")) throw new Smtpd552Exception();
              s.messages.push({ from: ctx.envelope.from, to: ctx.envelope.to, data: ctx.message.text, headers: "" });
            }),
            // "XENV" shows the envelope's sender, so the test can see what a refused MAIL left behind.
            onProcessLineUnknownEvent: (ctx, line) => line === "XENV" ? `250 from=[${ctx.envelope.from}]` : undefined,
          });
          const c = await RawClient.connect(s.port);
          try {
            await c.expect(220);
            assert.equal((await c.command("EHLO bad.example")).raw, "550 5.7.1 Go away\r\n");
            assert.equal((await c.command("EHLO good.example")).code, 250);
            assert.equal(
              (await c.command("MAIL FROM:<crash@example.com>")).raw,
              "451 4.3.0 Requested action aborted: local error in processing\r\n",
            );
            // The refused MAIL left no sender behind.
            assert.equal((await c.command("XENV")).raw, "250 from=[]\r\n");
            assert.equal((await c.command("RCPT TO:<ok@example.com>")).code, 503);
            assert.equal((await c.command("MAIL FROM:<rewrite@example.com>")).code, 250);
            assert.equal(
              (await c.command("RCPT TO:<nobody@example.com>")).raw,
              "550 5.1.1 Requested action not taken: mailbox unavailable\r\n",
            );
            assert.equal((await c.command("RCPT TO:<nodata@example.com>")).code, 250);
            assert.equal((await c.command("DATA")).raw, "554 5.7.1 No data\r\n");
            await c.command("RSET");
            await transaction(c);
            await c.send("X-Bad: 1\r\n\r\nbody\r\n.\r\n");
            assert.equal((await c.reply()).raw, "550 5.7.1 Bad header\r\n");
            await transaction(c);
            await c.send("reject me\r\n.\r\n");
            assert.equal((await c.reply()).code, 552);
            assert.equal((await c.command("MAIL FROM:<rewrite@example.com>")).code, 250);
            assert.equal((await c.command("RCPT TO:<ok@example.com>")).code, 250);
            assert.equal((await c.command("DATA")).code, 354);
            await c.send("fine\r\n.\r\n");
            assert.equal((await c.reply()).code, 250);
            assert.deepEqual(s.messages.map((m) => [m.from, m.to, m.data]), [
              ["<rewritten@example.com>", ["<ok@example.com>"], "fine\r\n"],
            ]);
            await c.command("MAIL FROM:<a@example.com>");
            assert.equal((await c.command("RCPT TO:<bye@example.com>")).code, 421);
            await c.waitClosed();
          } finally {
            c.close();
            await s.close();
          }
          assert.equal(s.disconnects.length, 1);
          assert.equal(s.disconnects[0].server.exceptions, 8, "550, 451, 503, 550, 554, 550, 552, 421");
        });
      }

      it("stores what the MAIL hook returns", async () => {
        const s = await recordingServer(transport, { onMailFromEvent: () => "<other@example.com>" });
        const c = await ehloClient(s.port);
        try {
          await transaction(c);
          await c.send("x\r\n.\r\n");
          await c.expect(250);
          assert.equal(s.messages[0].from, "<other@example.com>");
        } finally {
          c.close();
          await s.close();
        }
      });

      it("refuses at connect with the hook's reply, or 421 for a plain error", async () => {
        const s = await startServer(transport, {
          onConnectEvent(ctx) {
            if (ctx.server.remotePort % 2 === 0) throw new SmtpdException(554, "5.7.1", "No SMTP service here");
            throw new Error("boom");
          },
        });
        try {
          const seen = new Set<string>();
          for (let i = 0; i < 6 && seen.size < 2; i++) {
            const c = await RawClient.connect(s.port);
            const r = await c.reply();
            seen.add(r.raw);
            await c.waitClosed();
            c.close();
          }
          assert.ok(
            [...seen].every((r) =>
              r === "554 5.7.1 No SMTP service here\r\n" ||
              r === "421 4.3.0 Service too busy or not available, closing transmission channel\r\n"
            ),
            [...seen].join(","),
          );
        } finally {
          await s.close();
        }
      });

      it("lets the unknown-line hook answer", async () => {
        const s = await startServer(transport, {
          onProcessLineUnknownEvent(_ctx, line) {
            if (line === "XPING") return "250 pong";
            if (line === "XSILENT") return "";
          },
        });
        const c = await ehloClient(s.port);
        try {
          assert.equal((await c.command("XPING")).raw, "250 pong\r\n");
          await c.send("XSILENT\r\n");
          assert.equal((await c.command("XOTHER")).code, 500, "XSILENT got no reply; XOTHER got 500");
        } finally {
          c.close();
          await s.close();
        }
      });

      it("fires start, headers and receiving hooks; a receiving hook can refuse the message", async () => {
        const calls: string[] = [];
        const s = await recordingServer(transport, {
          onMessageDataStartEvent(ctx) {
            calls.push("start");
            if (ctx.envelope.to.includes("<nodata@example.com>")) {
              throw new SmtpdException(554, "5.7.1", "No data for you");
            }
          },
          onMessageDataHeadersEvent(ctx) {
            calls.push(`headers:${ctx.message.headers}`);
          },
          onMessageDataReceivingEvent(ctx) {
            if (ctx.message.bytesize > 5000) throw new Smtpd552Exception();
          },
        });
        const c = await ehloClient(s.port);
        try {
          await transaction(c);
          await c.send("From: x\r\nTo: y\r\n\r\nbody\r\n.\r\n");
          await c.expect(250);
          assert.deepEqual(calls, ["start", "headers:From: x\r\nTo: y\r\n\r\n"]);
          await transaction(c);
          await c.send("z".repeat(4000) + "\r\n");
          await delay(20);
          await c.send("z".repeat(4000) + "\r\n.\r\n");
          assert.equal((await c.reply()).code, 552);
          assert.equal(s.messages.length, 1);
          await c.command("MAIL FROM:<a@example.com>");
          await c.command("RCPT TO:<nodata@example.com>");
          assert.equal((await c.command("DATA")).raw, "554 5.7.1 No data for you\r\n");
        } finally {
          c.close();
          await s.close();
        }
      });

      it("works with hooks overridden in a subclass", async () => {
        const got: string[] = [];
        class MyServer extends MidiSmtpServer {
          override onMessageDataEvent(ctx: SmtpdContext): void {
            got.push(ctx.message.text);
          }
          override onRcptToEvent(_ctx: SmtpdContext, rcpt: string): string {
            return rcpt.toLowerCase();
          }
        }
        const s = await startServer(transport, {}, (o) => new MyServer(o));
        const c = await ehloClient(s.port);
        try {
          await transaction(c, "<UPPER@Example.COM>");
          await c.send("sub\r\n.\r\n");
          await c.expect(250);
          assert.deepEqual(got, ["sub\r\n"]);
        } finally {
          c.close();
          await s.close();
        }
      });

      it("gives each connection its own context and resets it after each message", async () => {
        const seen: Array<[number, string, string[]]> = [];
        const s = await startServer(transport, {
          async onMessageDataEvent(ctx) {
            await delay(Math.random() * 10);
            seen.push([ctx.server.remotePort, ctx.envelope.from, ctx.envelope.to]);
            assert.equal(ctx.server.localPort, s.port);
            assert.equal(ctx.server.remoteIp, "127.0.0.1");
          },
        });
        try {
          await Promise.all([1, 2, 3, 4, 5].map(async (n) => {
            const c = await ehloClient(s.port);
            for (let m = 0; m < 3; m++) {
              await c.command(`MAIL FROM:<s${n}@example.com>`);
              await c.command(`RCPT TO:<r${n}.${m}@example.com>`);
              await c.command("DATA");
              await c.send(`m${n}\r\n.\r\n`);
              await c.expect(250);
            }
            c.close();
          }));
          assert.equal(seen.length, 15);
          for (const [, from, to] of seen) {
            const n = from.slice(2, 3);
            assert.equal(to.length, 1);
            assert.ok(to[0].startsWith(`<r${n}.`), `${from} -> ${to}`);
          }
        } finally {
          await s.close();
        }
      });

      it("aborts ctx.signal when the client goes away, also when it is first read after the end", async () => {
        let sawAbort: () => void = () => {};
        const aborted = new Promise<void>((resolve) => sawAbort = resolve);
        const afterEnd: boolean[] = [];
        const s = await startServer(transport, {
          onRcptToEvent(ctx) {
            // Work left running after the hook returned stops when the session ends.
            assert.equal(ctx.signal.aborted, false);
            ctx.signal.addEventListener("abort", () => sawAbort());
          },
          onDisconnectEvent(ctx) {
            afterEnd.push(ctx.signal.aborted);
          },
        });
        try {
          const c = await ehloClient(s.port);
          await c.command("MAIL FROM:<a@example.com>");
          assert.equal((await c.command("RCPT TO:<b@example.com>")).code, 250);
          c.close();
          await withTimeout(aborted, 3000, "abort of ctx.signal");
          // A session whose hooks never asked for the signal: it is aborted when asked for later.
          const quiet = await ehloClient(s.port);
          await quiet.command("QUIT");
          quiet.close();
          await withTimeout(
            (async () => {
              while (afterEnd.length < 2) await delay(10);
            })(),
            3000,
            "both disconnects",
          );
          assert.deepEqual(afterEnd, [true, true]);
        } finally {
          await s.close();
        }
      });
    });

    describe("lifecycle", () => {
      it("stops gracefully: idle clients get 421, a message in progress finishes", async () => {
        const s = await recordingServer(transport);
        const idle = await ehloClient(s.port);
        const busy = await ehloClient(s.port);
        try {
          await transaction(busy);
          await busy.send("first part\r\n");
          await delay(30);
          const stopped = s.server.stop({ gracefully: true, waitSecondsBeforeClose: 3 });
          assert.equal((await idle.reply()).code, 421);
          await busy.send("second part\r\n.\r\n");
          assert.equal((await busy.reply()).code, 250);
          assert.equal((await busy.reply()).code, 421);
          await stopped;
          assert.equal(s.messages.length, 1);
          assert.equal(s.messages[0].data, "first part\r\nsecond part\r\n");
          assert.equal(s.server.connections(), 0);
          await s.server.join();
        } finally {
          idle.close();
          busy.close();
        }
      });

      it("never delivers a message whose client vanished mid-DATA", async () => {
        const s = await recordingServer(transport);
        const c = await ehloClient(s.port);
        await transaction(c);
        await c.send("half a message\r\n");
        await delay(20);
        c.reset();
        for (let i = 0; i < 100 && s.disconnects.length === 0; i++) await delay(10);
        assert.equal(s.disconnects.length, 1);
        assert.equal(s.messages.length, 0);
        assert.equal(s.server.connections(), 0);
        await s.close();
      });

      it("listens on IPv6 loopback and on several ports", async () => {
        const s = await startServer(transport, { hosts: "127.0.0.1, ::1", ports: "0, 0:0" });
        try {
          assert.equal(s.server.addresses.length, 3);
          const v6 = s.server.addresses.filter((a) => a.startsWith("[::1]:"));
          assert.equal(v6.length, 2);
          for (const address of v6) {
            const port = Number(address.slice(address.lastIndexOf(":") + 1));
            const c = await RawClient.connect(port, "::1");
            assert.equal((await c.reply()).raw, "220 ::1 says welcome!\r\n");
            c.close();
          }
        } finally {
          await s.close();
        }
      });

      it("refuses a second start and rejects bad options at construction", async () => {
        const s = await startServer(transport);
        await assert.rejects(() => s.server.start(), /already started/);
        await s.close();
        assert.throws(() => new MidiSmtpServer({ maxProcessings: 0 }), TypeError);
        assert.throws(() => new MidiSmtpServer({ hosts: "" }), TypeError);
        assert.throws(() => new MidiSmtpServer({ crlfMode: "CRLF_X" as "CRLF_LEAVE" }), /Unknown CRLF mode/);
      });
    });
  });
}
