/**
 * CHUNKING, BDAT and BINARYMIME (RFC 3030) on the wire, byte-exact, with every
 * transport of the running runtime: chunk framing (CRLF split across chunks,
 * `\r\n.\r\n` inside a chunk, sizes that lie), BDAT next to DATA, pipelining,
 * the size limit checked before a chunk is read, the refusals that close the
 * connection, binary bodies kept octet for octet, the CRLF policy for text
 * bodies, the streaming hook, a hook refusing mid-chunk, RSET and vanishing
 * clients between chunks, and BDAT with PIPELINING off.
 *
 * Every refused chunk must still be read to its announced end: the tests put
 * command lines (`QUIT`, `RSET`) inside refused chunks and check that they
 * were never run.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { type MidiSmtpServerOptions, Smtpd554Exception, type SmtpdContext } from "../mod.ts";
import { delay, ehloClient, RawClient, type RunningServer, startServer, TRANSPORTS, withTimeout } from "./helpers.ts";
import type { Transport } from "../src/transport/types.ts";

const MAIL_OK = "250 2.1.0 OK\r\n";
const RCPT_OK = "250 2.1.5 OK\r\n";
const MESSAGE_OK = "250 2.0.0 Requested mail action okay, completed\r\n";
const NOOP_OK = "250 2.0.0 OK\r\n";
const NEED_MAIL = "503 5.5.1 Need MAIL command first\r\n";
const EARLIER_FAILED = "503 5.5.0 An earlier chunk failed: send RSET\r\n";
const TOO_BIG = "552 5.3.4 Message size exceeds fixed maximum message size\r\n";

/** The reply to a non-final chunk of `n` octets. */
function chunkOk(n: number): string {
  return `250 2.0.0 ${n} octets received\r\n`;
}

/** `text` as bytes, one byte per char (latin1), so any octet can be written in a string. */
function bytes(text: string): Buffer {
  return Buffer.from(text, "latin1");
}

/** `BDAT <size>[ LAST]\r\n` followed by the chunk, as one buffer. */
function bdat(chunk: string | Uint8Array, last = false): Buffer {
  const data = typeof chunk === "string" ? bytes(chunk) : Buffer.from(chunk);
  return Buffer.concat([bytes(`BDAT ${data.length}${last ? " LAST" : ""}\r\n`), data]);
}

/** What `onMessageDataEvent` (or the streaming hook) saw of one message. */
interface Received {
  data: Buffer;
  from: string;
  to: string[];
  headers: string;
  bytesize: number;
  encodingBody: string;
}

/** Copies what a data hook sees (the message's bytes may be views of buffers the transport reuses). */
function record(ctx: SmtpdContext, data: Uint8Array): Received {
  return {
    data: Buffer.from(data),
    from: ctx.envelope.from,
    to: [...ctx.envelope.to],
    headers: ctx.message.headers,
    bytesize: ctx.message.bytesize,
    encodingBody: ctx.envelope.encodingBody,
  };
}

/** A server with CHUNKING on that keeps every accepted message in `messages`. */
async function chunkingServer(
  transport: Transport,
  options: MidiSmtpServerOptions = {},
): Promise<{ s: RunningServer; messages: Received[] }> {
  const messages: Received[] = [];
  const s = await startServer(transport, {
    chunkingExtension: true,
    onMessageDataEvent(ctx) {
      messages.push(record(ctx, ctx.message.data));
    },
    ...options,
  });
  return { s, messages };
}

/** Asserts two byte strings are equal, naming the first differing offset (a diff of 5 KiB is unreadable). */
function assertBytes(got: Uint8Array, expected: Uint8Array, what: string): void {
  const n = Math.min(got.length, expected.length);
  let i = 0;
  while (i < n && got[i] === expected[i]) i++;
  if (i === n && got.length === expected.length) return;
  assert.fail(
    `${what}: ${got.length} bytes, expected ${expected.length}; first difference at offset ${i}: ` +
      `got ${JSON.stringify(Buffer.from(got.subarray(i, i + 16)).toString("latin1"))}, ` +
      `expected ${JSON.stringify(Buffer.from(expected.subarray(i, i + 16)).toString("latin1"))}`,
  );
}

/** Reads the next reply and checks it is exactly `raw`. */
async function expectRaw(c: RawClient, raw: string, ms = 5000): Promise<void> {
  assert.equal((await c.reply(ms)).raw, raw);
}

/** Reads replies one by one and checks them against `raws`, in order. */
async function expectReplies(c: RawClient, raws: readonly string[]): Promise<void> {
  const got: string[] = [];
  for (let i = 0; i < raws.length; i++) got.push((await c.reply()).raw);
  assert.deepEqual(got, raws);
}

/** MAIL and RCPT, one at a time (works with PIPELINING off), each checked. */
async function envelope(c: RawClient, from = "<a@example.com>", to = "<b@example.com>", params = ""): Promise<void> {
  assert.equal((await c.command(`MAIL FROM:${from}${params}`)).raw, MAIL_OK);
  assert.equal((await c.command(`RCPT TO:${to}`)).raw, RCPT_OK);
}

/**
 * Proves the session is in step: a NOOP's reply is the next thing received
 * (no stray reply was left over from bytes taken for commands).
 */
async function inStep(c: RawClient): Promise<void> {
  assert.equal(c.pending, "", "nothing unread before the NOOP");
  assert.equal((await c.command("NOOP")).raw, NOOP_OK);
  await delay(20);
  assert.equal(c.pending, "", "nothing after the NOOP's reply");
}

/** Waits until `predicate` holds (polling), or fails naming `what`. */
async function until(predicate: () => boolean, what: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await delay(10);
  }
}

/** Every byte value in order, `times` times over: NUL, bare CR and LF, 8-bit octets. */
function allOctets(times: number): Buffer {
  const out = Buffer.alloc(256 * times);
  for (let i = 0; i < out.length; i++) out[i] = i & 0xff;
  return out;
}

/** Splits `data` at the given offsets (ascending) into chunks. */
function splitAt(data: Uint8Array, cuts: readonly number[]): Uint8Array[] {
  const out: Uint8Array[] = [];
  let from = 0;
  for (const cut of [...cuts, data.length]) {
    out.push(data.subarray(from, cut));
    from = cut;
  }
  return out;
}

for (const transport of TRANSPORTS) {
  describe(`BDAT (${transport.name} transport)`, () => {
    it("offers CHUNKING only when enabled, BINARYMIME only with it", async () => {
      const off = await startServer(transport, {});
      const on = await startServer(transport, { chunkingExtension: true, binaryMimeExtension: true });
      try {
        const a = await RawClient.connect(off.port);
        await a.expect(220);
        const plain = await a.ehlo();
        assert.ok(!plain.includes("CHUNKING") && !plain.includes("BINARYMIME"), plain.join(","));
        a.close();
        const b = await RawClient.connect(on.port);
        await b.expect(220);
        const keywords = await b.ehlo();
        assert.ok(keywords.includes("CHUNKING") && keywords.includes("BINARYMIME"), keywords.join(","));
        b.close();
      } finally {
        await off.close();
        await on.close();
      }
    });

    it("joins a CRLF split across chunks into one line break, and answers each chunk with its size", async () => {
      const { s, messages } = await chunkingServer(transport);
      const c = await ehloClient(s.port);
      try {
        await envelope(c);
        // The CR ends one chunk, its LF starts the next: one CRLF, not a bare CR plus a bare LF.
        await c.send(bdat("Subject: split\r"));
        await expectRaw(c, chunkOk(15));
        await c.send(bdat("\n\r"));
        await expectRaw(c, chunkOk(2));
        await c.send(bdat("\nline one\r"));
        await expectRaw(c, chunkOk(10));
        await c.send(bdat("\nline two\r\n", true));
        await expectRaw(c, MESSAGE_OK);
        assert.equal(messages.length, 1);
        const m = messages[0];
        assertBytes(m.data, bytes("Subject: split\r\n\r\nline one\r\nline two\r\n"), "message");
        assert.equal(m.headers, "Subject: split\r\n\r\n");
        assert.equal(m.bytesize, m.data.length);
        assert.equal(m.from, "<a@example.com>");
        assert.deepEqual(m.to, ["<b@example.com>"]);
        await inStep(c);
      } finally {
        c.close();
        await s.close();
      }
    });

    it("keeps CRLF.CRLF and leading dots inside a chunk verbatim: one message, nothing taken for commands", async () => {
      const { s, messages } = await chunkingServer(transport);
      const c = await ehloClient(s.port);
      try {
        await envelope(c);
        // With DATA this would end the message at the dot and run MAIL and QUIT; in a chunk it is all body.
        const body = "Subject: dots\r\n\r\nbefore\r\n.\r\nMAIL FROM:<x@example.com>\r\n..stuffed?\r\n.\r\nQUIT\r\n";
        await c.send(bdat(body, true));
        await expectRaw(c, MESSAGE_OK);
        assert.equal(messages.length, 1, "one message");
        assertBytes(messages[0].data, bytes(body), "message (no dot removed, no line ended it)");
        await inStep(c);
        assert.equal(messages.length, 1, "no second message");
      } finally {
        c.close();
        await s.close();
      }
    });

    it("a chunk shorter than announced takes the following command bytes as chunk data", async () => {
      const { s, messages } = await chunkingServer(transport);
      const c = await ehloClient(s.port);
      try {
        await envelope(c);
        // 16 announced, 10 sent: the NOOP line that follows is the chunk's last 6 octets, not a command.
        await c.send("BDAT 16 LAST\r\n0123456789");
        await delay(50);
        assert.equal(c.pending, "", "no reply while the chunk is short");
        await c.send("NOOP\r\n");
        await expectRaw(c, MESSAGE_OK);
        assert.equal(messages.length, 1);
        assertBytes(messages[0].data, bytes("0123456789NOOP\r\n"), "message");
        await inStep(c);
      } finally {
        c.close();
        await s.close();
      }
    });

    it("a chunk longer than announced: the extra bytes are parsed as the next command (500)", async () => {
      const { s, messages } = await chunkingServer(transport);
      const c = await ehloClient(s.port);
      try {
        await envelope(c);
        await c.send("BDAT 5 LAST\r\nhelloEXTRA\r\n");
        await expectRaw(c, MESSAGE_OK);
        await expectRaw(c, "500 5.5.2 Syntax error, command unrecognised\r\n");
        assert.equal(messages.length, 1);
        assertBytes(messages[0].data, bytes("hello"), "message: exactly the announced octets");
        await inStep(c);
      } finally {
        c.close();
        await s.close();
      }
    });

    it("DATA and BDAT transactions in one connection; BDAT without MAIL is 503 and its bytes dropped", async () => {
      const { s, messages } = await chunkingServer(transport);
      const c = await ehloClient(s.port);
      try {
        await envelope(c, "<d1@example.com>", "<r1@example.com>");
        assert.equal((await c.command("DATA")).raw, '354 Enter message, ending with "." on a line by itself\r\n');
        await c.send("Subject: one\r\n\r\n..dot\r\n.\r\n");
        await expectRaw(c, MESSAGE_OK);
        await envelope(c, "<b2@example.com>", "<r2@example.com>");
        await c.send(bdat("Subject: two\r\n\r\n..dot\r\n", true));
        await expectRaw(c, MESSAGE_OK);
        // No transaction: the 12 octets (two command lines) are read and dropped, then the 503.
        await c.send("BDAT 12\r\nQUIT\r\nRSET\r\n");
        await expectRaw(c, NEED_MAIL);
        await inStep(c);
        // A DATA transaction again after the BDAT one.
        await envelope(c, "<d3@example.com>", "<r3@example.com>");
        assert.equal((await c.command("DATA")).code, 354);
        await c.send("Subject: three\r\n\r\nx\r\n.\r\n");
        await expectRaw(c, MESSAGE_OK);
        assert.deepEqual(messages.map((m) => [m.from, m.to[0], m.data.toString("latin1")]), [
          ["<d1@example.com>", "<r1@example.com>", "Subject: one\r\n\r\n.dot\r\n"],
          ["<b2@example.com>", "<r2@example.com>", "Subject: two\r\n\r\n..dot\r\n"],
          ["<d3@example.com>", "<r3@example.com>", "Subject: three\r\n\r\nx\r\n"],
        ]);
        await inStep(c);
      } finally {
        c.close();
        await s.close();
      }
    });

    it("MAIL without RCPT: a chunk is dropped with 554, and RCPT may still follow", async () => {
      const { s, messages } = await chunkingServer(transport);
      const c = await ehloClient(s.port);
      try {
        assert.equal((await c.command("MAIL FROM:<a@example.com>")).raw, MAIL_OK);
        await c.send("BDAT 10 LAST\r\nQUIT\r\nNOOP");
        await expectRaw(c, "554 5.5.1 No valid recipients\r\n");
        assert.equal((await c.command("RCPT TO:<b@example.com>")).raw, RCPT_OK);
        await c.send(bdat("late", true));
        await expectRaw(c, MESSAGE_OK);
        assert.deepEqual(messages.map((m) => m.data.toString("latin1")), ["late"]);
        await inStep(c);
      } finally {
        c.close();
        await s.close();
      }
    });

    for (const mode of ["sync", "async"] as const) {
      it(`onMessageDataStartEvent refusing the first chunk (${mode}): dropped unread, then its reply`, async () => {
        let calls = 0;
        const { s, messages } = await chunkingServer(transport, {
          onMessageDataStartEvent() {
            calls++;
            const refusal = new Smtpd554Exception(undefined, "Not now", "5.7.1");
            if (mode === "sync") throw refusal;
            return delay(10).then(() => Promise.reject(refusal));
          },
        });
        const c = await ehloClient(s.port);
        try {
          await envelope(c);
          await c.send("BDAT 12\r\nQUIT\r\nRSET\r\n");
          await expectRaw(c, "554 5.7.1 Not now\r\n");
          // The refused chunk took the transaction with it: a LAST chunk is refused too and ends it.
          await c.send(bdat("rest", true));
          await expectRaw(c, EARLIER_FAILED);
          await envelope(c);
          await c.send(bdat("Subject: x\r\n\r\n", true));
          await expectRaw(c, "554 5.7.1 Not now\r\n");
          assert.equal(calls, 2, "called once per message, not per chunk");
          assert.equal(messages.length, 0);
          await inStep(c);
        } finally {
          c.close();
          await s.close();
        }
      });
    }

    it("AUTH_REQUIRED: BDAT before AUTH is 530 and its chunk dropped", async () => {
      const { s, messages } = await chunkingServer(transport, { authMode: "AUTH_REQUIRED" });
      const c = await ehloClient(s.port);
      try {
        await c.send(bdat("MAIL FROM:<a@example.com>\r\nQUIT\r\n", true));
        await expectRaw(c, "530 5.7.0 Authentication required\r\n");
        await inStep(c);
        assert.equal(messages.length, 0);
      } finally {
        c.close();
        await s.close();
      }
    });

    it("LMTP: BDAT LAST is answered once per accepted recipient", async () => {
      const { s, messages } = await chunkingServer(transport, {
        lmtp: true,
        onMessageDataEvent(ctx) {
          messages.push(record(ctx, ctx.message.data));
          return [undefined, new Smtpd554Exception(undefined, "Mailbox full", "5.2.2")];
        },
      });
      const c = await RawClient.connect(s.port);
      try {
        await c.expect(220);
        assert.ok((await c.command("LHLO client.example")).lines.includes("CHUNKING"));
        await c.send(
          "MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nRCPT TO:<c@example.com>\r\n" +
            "BDAT 6\r\nhello BDAT 7 LAST\r\nworld\r\n",
        );
        await expectReplies(c, [
          MAIL_OK,
          RCPT_OK,
          RCPT_OK,
          chunkOk(6),
          "250 2.0.0 <b@example.com> OK, delivered\r\n",
          "554 5.2.2 <c@example.com> Mailbox full\r\n",
        ]);
        assertBytes(messages[0].data, bytes("hello world\r\n"), "message");
        await inStep(c);
      } finally {
        c.close();
        await s.close();
      }
    });

    it("DATA, MAIL and RCPT inside a BDAT transaction are 503; the transaction goes on", async () => {
      const { s, messages } = await chunkingServer(transport);
      const c = await ehloClient(s.port);
      try {
        await envelope(c);
        await c.send(bdat("first "));
        await expectRaw(c, chunkOk(6));
        assert.equal((await c.command("DATA")).raw, "503 5.5.1 DATA after BDAT: send RSET first\r\n");
        assert.equal(
          (await c.command("MAIL FROM:<x@example.com>")).raw,
          "503 5.5.1 MAIL after BDAT: send RSET first\r\n",
        );
        assert.equal(
          (await c.command("RCPT TO:<y@example.com>")).raw,
          "503 5.5.1 RCPT after BDAT: send RSET first\r\n",
        );
        await c.send(bdat("second", true));
        await expectRaw(c, MESSAGE_OK);
        assert.equal(messages.length, 1);
        assertBytes(messages[0].data, bytes("first second"), "message");
        assert.deepEqual(messages[0].to, ["<b@example.com>"], "the refused RCPT added nothing");
        await inStep(c);
      } finally {
        c.close();
        await s.close();
      }
    });

    it("BDAT 0 LAST ends a message; alone it makes an empty one; a non-final BDAT 0 is 250", async () => {
      const { s, messages } = await chunkingServer(transport);
      const c = await ehloClient(s.port);
      try {
        await envelope(c);
        await c.send(bdat("hello\r\n"));
        await expectRaw(c, chunkOk(7));
        assert.equal((await c.command("BDAT 0")).raw, chunkOk(0));
        assert.equal((await c.command("BDAT 0 LAST")).raw, MESSAGE_OK);
        await envelope(c);
        assert.equal((await c.command("BDAT 0 LAST")).raw, MESSAGE_OK);
        assert.equal(messages.length, 2);
        assertBytes(messages[0].data, bytes("hello\r\n"), "first message");
        assert.equal(messages[1].data.length, 0, "empty message");
        assert.equal(messages[1].bytesize, 0);
        await inStep(c);
      } finally {
        c.close();
        await s.close();
      }
    });

    for (const split of ["in one write", "one byte per write"] as const) {
      it(`pipelined MAIL/RCPT/BDAT/BDAT LAST/MAIL/RCPT/BDAT LAST, ${split}`, async () => {
        const { s, messages } = await chunkingServer(transport, { pipeliningExtension: true });
        const c = await ehloClient(s.port);
        try {
          const wire = Buffer.concat([
            bytes("MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nRCPT TO:<c@example.com>\r\n"),
            bdat("Subject: p1\r\n\r\nBDAT 9 LAST\r\n"),
            bytes("bdat 4 last\r\nend\n"), // lower case, and a bare LF the default CRLF mode repairs
            bytes("MAIL FROM:<d@example.com>\r\nRCPT TO:<e@example.com>\r\n"),
            bdat("\r\n.\r\nsecond", true),
          ]);
          if (split === "in one write") await c.send(wire);
          else for (const b of wire) await c.send(Uint8Array.of(b));
          await expectReplies(c, [
            MAIL_OK,
            RCPT_OK,
            RCPT_OK,
            chunkOk(28),
            MESSAGE_OK,
            MAIL_OK,
            RCPT_OK,
            MESSAGE_OK,
          ]);
          assert.deepEqual(messages.map((m) => [m.from, m.to, m.data.toString("latin1")]), [
            ["<a@example.com>", ["<b@example.com>", "<c@example.com>"], "Subject: p1\r\n\r\nBDAT 9 LAST\r\nend\r\n"],
            ["<d@example.com>", ["<e@example.com>"], "\r\n.\r\nsecond"],
          ]);
          await inStep(c);
        } finally {
          c.close();
          await s.close();
        }
      });
    }

    it("enforces maxMessageSize before reading a chunk: 552, the chunk dropped unparsed, 503 until RSET", async () => {
      const { s, messages } = await chunkingServer(transport, { maxMessageSize: 100 });
      const c = await ehloClient(s.port);
      try {
        await envelope(c);
        await c.send(bdat("x".repeat(60)));
        await expectRaw(c, chunkOk(60));
        // 60 + 41 > 100: refused before it is read; its octets hold command lines that must not run.
        const refused = "QUIT\r\nRSET\r\nMAIL FROM:<z@example.com>\r\n".padEnd(41, "y");
        assert.equal(refused.length, 41);
        await c.send(bdat(refused));
        await expectRaw(c, TOO_BIG);
        await c.send(bdat("abcde"));
        await expectRaw(c, EARLIER_FAILED);
        await c.send(bdat("abcde"));
        await expectRaw(c, EARLIER_FAILED);
        assert.equal((await c.command("RSET")).raw, NOOP_OK);
        // Exactly the limit is fine.
        await envelope(c);
        await c.send(bdat("y".repeat(40)));
        await expectRaw(c, chunkOk(40));
        await c.send(bdat("z".repeat(60), true));
        await expectRaw(c, MESSAGE_OK);
        // A LAST chunk over the limit on its own: 552, and the transaction is over (MAIL is accepted again).
        await envelope(c);
        await c.send(bdat("w".repeat(101), true));
        await expectRaw(c, TOO_BIG);
        await envelope(c);
        await c.send(bdat("ok", true));
        await expectRaw(c, MESSAGE_OK);
        assert.deepEqual(messages.map((m) => m.data.toString("latin1")), ["y".repeat(40) + "z".repeat(60), "ok"]);
        await inStep(c);
      } finally {
        c.close();
        await s.close();
      }
    });

    it("a chunk far past the limit is not read: 421 and close", async () => {
      const { s, messages } = await chunkingServer(transport, { maxMessageSize: 1000 });
      try {
        // 1.5 * 1000 + 65536 = 67036 octets are still read and dropped...
        const c = await ehloClient(s.port);
        await envelope(c);
        await c.send(bdat(Buffer.alloc(67036, 0x61)));
        await expectRaw(c, TOO_BIG);
        // ... one more is too many.
        await c.send("BDAT 67037\r\n");
        await expectRaw(c, "421 4.3.4 Chunk far too large, closing transmission channel\r\n");
        await c.waitClosed();
        // Also without a transaction (the size is the first thing looked at).
        const d = await ehloClient(s.port);
        await d.send("BDAT 99999999 LAST\r\n");
        await expectRaw(d, "421 4.3.4 Chunk far too large, closing transmission channel\r\n");
        await d.waitClosed();
        assert.equal(messages.length, 0);
      } finally {
        await s.close();
      }
    });

    it("a size that does not parse: 521 and close (nobody knows where the chunk would end)", async () => {
      const { s } = await chunkingServer(transport);
      try {
        for (const line of ["BDAT", "BDAT abc", "BDAT -1 LAST", "BDAT 10 LASTX", "BDAT 10 LAST more", "BDAT 1e3"]) {
          const c = await ehloClient(s.port);
          await envelope(c);
          await c.send(`${line}\r\n0123456789`);
          await expectRaw(c, "521 5.5.4 Syntax: BDAT size [LAST], closing connection\r\n");
          await c.waitClosed();
          assert.equal(c.pending, "", `${line}: nothing after the 521`);
        }
      } finally {
        await s.close();
      }
    });

    it("BDAT when CHUNKING is off: 521 and close", async () => {
      const messages: Received[] = [];
      const s = await startServer(transport, {
        onMessageDataEvent(ctx) {
          messages.push(record(ctx, ctx.message.data));
        },
      });
      try {
        const c = await ehloClient(s.port);
        await envelope(c);
        await c.send("BDAT 6 LAST\r\nhello\n");
        await expectRaw(c, "521 5.5.1 BDAT is not offered, closing connection\r\n");
        await c.waitClosed();
        assert.equal(messages.length, 0);
      } finally {
        await s.close();
      }
    });

    it("BODY=BINARYMIME: every octet (NUL, bare CR and LF, a 5000-byte line) kept exactly", async () => {
      const { s, messages } = await chunkingServer(transport, {
        binaryMimeExtension: true,
        // A binary body has no lines: the line limit of text bodies does not apply to it.
        maxDataLineLength: 1000,
      });
      const c = await ehloClient(s.port);
      try {
        const body = Buffer.concat([
          bytes("Subject: binary\r\nContent-Type: application/octet-stream\r\n\r\n"),
          allOctets(4),
          bytes("\0\0\rbare CR\nbare LF\n\r\r\n\n"),
          Buffer.alloc(5000, 0x7a),
          bytes("\r\n.\r\n..dots\r\n"),
          allOctets(1),
          bytes("\r"), // ends with a bare CR: nothing is added
        ]);
        // Cut right after a CR (its LF starts the next chunk) and in odd places.
        const firstCR = body.indexOf(0x0d, 70);
        const chunks = splitAt(body, [1, firstCR + 1, 300, 301, 1200, 6500]);
        await envelope(c, "<a@example.com>", "<b@example.com>", " BODY=BINARYMIME");
        for (const [i, chunk] of chunks.entries()) {
          const last = i === chunks.length - 1;
          await c.send(bdat(chunk, last));
          await expectRaw(c, last ? MESSAGE_OK : chunkOk(chunk.length));
        }
        assert.equal(messages.length, 1);
        const m = messages[0];
        assertBytes(m.data, body, "binary message");
        assert.equal(m.bytesize, body.length);
        assert.equal(m.encodingBody, "binarymime");
        assert.equal(m.headers, "Subject: binary\r\nContent-Type: application/octet-stream\r\n\r\n");
        await inStep(c);
      } finally {
        c.close();
        await s.close();
      }
    });

    it("DATA with BODY=BINARYMIME is 503; BDAT then delivers the same transaction", async () => {
      const { s, messages } = await chunkingServer(transport, { binaryMimeExtension: true });
      const c = await ehloClient(s.port);
      try {
        await envelope(c, "<a@example.com>", "<b@example.com>", " BODY=BINARYMIME");
        assert.equal(
          (await c.command("DATA")).raw,
          "503 5.5.1 DATA cannot be used with BODY=BINARYMIME: use BDAT\r\n",
        );
        await c.send(bdat("\0\r\n.\r\n", true));
        await expectRaw(c, MESSAGE_OK);
        assertBytes(messages[0].data, bytes("\0\r\n.\r\n"), "message");
        await inStep(c);
      } finally {
        c.close();
        await s.close();
      }
    });

    it("a text body's bare LF and CR are repaired to CRLF (default CRLF mode), across chunks too", async () => {
      const { s, messages } = await chunkingServer(transport);
      const c = await ehloClient(s.port);
      try {
        await envelope(c);
        await c.send(bdat("Subject: t\n\nline1\nline2\r"));
        await expectRaw(c, chunkOk(24));
        await c.send(bdat("\nline3\r"));
        await expectRaw(c, chunkOk(7));
        // A bare CR at the very end gets its LF too (nothing can follow the LAST chunk).
        await c.send(bdat("x\rline4\r\n\nend\r", true));
        await expectRaw(c, MESSAGE_OK);
        assert.equal(messages.length, 1);
        const m = messages[0];
        assertBytes(
          m.data,
          bytes("Subject: t\r\n\r\nline1\r\nline2\r\nline3\r\nx\r\nline4\r\n\r\nend\r\n"),
          "repaired message",
        );
        assert.equal(m.headers, "Subject: t\r\n\r\n");
        assert.equal(m.bytesize, m.data.length);
        await inStep(c);
      } finally {
        c.close();
        await s.close();
      }
    });

    it("BDAT 0 LAST after a chunk ending in a bare CR: the LF it gets counts in bytesize and reaches the stream", async () => {
      const streamed: Buffer[] = [];
      const sizes: number[] = [];
      const { s, messages } = await chunkingServer(transport);
      const t = await startServer(transport, {
        chunkingExtension: true,
        async onMessageDataStreamEvent(ctx, stream) {
          const parts: Uint8Array[] = [];
          for await (const part of stream) parts.push(Buffer.from(part));
          streamed.push(Buffer.concat(parts));
          sizes.push(ctx.message.bytesize);
        },
      });
      const c = await ehloClient(s.port);
      const d = await ehloClient(t.port);
      try {
        for (const client of [c, d]) {
          await envelope(client);
          await client.send(bdat("Subject: cr\r\n\nend\r"));
          await expectRaw(client, chunkOk(18));
          assert.equal((await client.command("BDAT 0 LAST")).raw, MESSAGE_OK);
        }
        const expected = bytes("Subject: cr\r\n\r\nend\r\n");
        assertBytes(messages[0].data, expected, "buffered message");
        assertBytes(streamed[0], expected, "streamed message (the repaired final LF included)");
        assert.equal(messages[0].bytesize, expected.length, "ctx.message.bytesize of the buffered message");
        assert.equal(sizes[0], expected.length, "ctx.message.bytesize of the streamed message");
        // The LF that only BDAT 0 LAST adds may also complete the header section.
        await envelope(c);
        await c.send(bdat("Subject: h\r\n\r"));
        await expectRaw(c, chunkOk(13));
        assert.equal((await c.command("BDAT 0 LAST")).raw, MESSAGE_OK);
        assertBytes(messages[1].data, bytes("Subject: h\r\n\r\n"), "message");
        assert.equal(messages[1].headers, "Subject: h\r\n\r\n", "ctx.message.headers");
      } finally {
        c.close();
        d.close();
        await s.close();
        await t.close();
      }
    });

    it("a text body's line limit still applies (500 after the LAST chunk)", async () => {
      const { s, messages } = await chunkingServer(transport, { maxDataLineLength: 1000 });
      const c = await ehloClient(s.port);
      try {
        await envelope(c);
        await c.send(bdat("Subject: long\r\n\r\n" + "z".repeat(5000) + "\r\n", true));
        await expectRaw(c, "500 5.5.2 Line too long\r\n");
        assert.equal(messages.length, 0);
        await inStep(c);
      } finally {
        c.close();
        await s.close();
      }
    });

    it("the streaming hook gets the exact bytes, text and binary", async () => {
      const streamed: Received[] = [];
      let buffered = 0;
      const s = await startServer(transport, {
        chunkingExtension: true,
        binaryMimeExtension: true,
        pipeliningExtension: true,
        async onMessageDataStreamEvent(ctx, stream) {
          const parts: Uint8Array[] = [];
          for await (const part of stream) parts.push(Buffer.from(part));
          streamed.push(record(ctx, Buffer.concat(parts)));
        },
        onMessageDataEvent() {
          buffered++;
        },
      });
      const c = await ehloClient(s.port);
      try {
        const text = "Subject: streamed\r\n\r\n" + "line\r\n.\r\n..two dots\r\n".repeat(3000);
        await envelope(c);
        const textChunks = splitAt(bytes(text), [5, 19, 20, 21, 40000]);
        await c.send(Buffer.concat(textChunks.map((chunk, i) => bdat(chunk, i === textChunks.length - 1))));
        await expectReplies(c, [...textChunks.slice(0, -1).map((chunk) => chunkOk(chunk.length)), MESSAGE_OK]);
        const binary = Buffer.concat([bytes("Subject: b\r\n\r\n"), allOctets(300), bytes("\r")]);
        await envelope(c, "<a@example.com>", "<b@example.com>", " BODY=BINARYMIME");
        const binaryChunks = splitAt(binary, [13, 14, 70000]);
        await c.send(Buffer.concat(binaryChunks.map((chunk, i) => bdat(chunk, i === binaryChunks.length - 1))));
        await expectReplies(c, [...binaryChunks.slice(0, -1).map((chunk) => chunkOk(chunk.length)), MESSAGE_OK]);
        assert.equal(streamed.length, 2);
        assertBytes(streamed[0].data, bytes(text), "streamed text");
        assert.equal(streamed[0].headers, "Subject: streamed\r\n\r\n");
        assertBytes(streamed[1].data, binary, "streamed binary");
        assert.equal(streamed[1].headers, "Subject: b\r\n\r\n");
        assert.equal(buffered, 0, "onMessageDataEvent is not used in streaming mode");
        await inStep(c);
      } finally {
        c.close();
        await s.close();
      }
    });

    it("a headers hook refusing mid-chunk: the chunk is read to its end, then the refusal", async () => {
      let dataCalls = 0;
      const s = await startServer(transport, {
        chunkingExtension: true,
        onMessageDataHeadersEvent(ctx) {
          if (ctx.message.headers.includes("Subject: refuse")) {
            throw new Smtpd554Exception(undefined, "Refused by the headers hook", "5.7.1");
          }
        },
        onMessageDataEvent() {
          dataCalls++;
        },
      });
      const c = await ehloClient(s.port);
      try {
        for (const last of [false, true]) {
          await envelope(c);
          const head = "Subject: refuse\r\n\r\nbody\r\n";
          const rest = "QUIT\r\nRSET\r\n";
          await c.send(`BDAT ${head.length + rest.length}${last ? " LAST" : ""}\r\n${head}`);
          await delay(100);
          assert.equal(c.pending, "", "no reply before the chunk's end");
          await c.send(rest);
          await expectRaw(c, "554 5.7.1 Refused by the headers hook\r\n");
          if (!last) {
            // The transaction is dead: a LAST chunk is refused and ends it.
            await c.send(bdat("more", true));
            await expectRaw(c, EARLIER_FAILED);
          }
          await inStep(c);
        }
        assert.equal(dataCalls, 0);
        // Not refused: delivered on the same connection.
        await envelope(c);
        await c.send(bdat("Subject: fine\r\n\r\nok\r\n", true));
        await expectRaw(c, MESSAGE_OK);
        assert.equal(dataCalls, 1);
      } finally {
        c.close();
        await s.close();
      }
    });

    it("RSET between chunks drops the message; the next transaction has only its own bytes", async () => {
      const { s, messages } = await chunkingServer(transport);
      const c = await ehloClient(s.port);
      try {
        await envelope(c);
        await c.send(bdat("Subject: dropped\r\n\r\n"));
        await expectRaw(c, chunkOk(20));
        assert.equal((await c.command("RSET")).raw, NOOP_OK);
        assert.equal((await c.command("BDAT 0 LAST")).raw, NEED_MAIL);
        assert.equal(messages.length, 0, "no onMessageDataEvent for the reset message");
        await envelope(c);
        await c.send(bdat("Subject: kept\r\n\r\n", true));
        await expectRaw(c, MESSAGE_OK);
        assert.deepEqual(messages.map((m) => m.data.toString("latin1")), ["Subject: kept\r\n\r\n"]);
      } finally {
        c.close();
        await s.close();
      }
    });

    it("RSET between chunks errors the stream of the streaming hook", async () => {
      let failed: ((err: unknown) => void) | undefined;
      const streamFailed = new Promise<unknown>((resolve) => failed = resolve);
      let accepted = 0;
      const s = await startServer(transport, {
        chunkingExtension: true,
        async onMessageDataStreamEvent(_ctx, stream) {
          try {
            for await (const _ of stream) { /* read */ }
            accepted++;
          } catch (err) {
            failed!(err);
            throw err;
          }
        },
      });
      const c = await ehloClient(s.port);
      try {
        await envelope(c);
        await c.send(bdat("Subject: reset\r\n\r\n"));
        await expectRaw(c, chunkOk(18));
        assert.equal((await c.command("RSET")).raw, NOOP_OK);
        assert.ok((await withTimeout(streamFailed, 5000, "the stream to error")) instanceof Error);
        await inStep(c);
        assert.equal(accepted, 0);
      } finally {
        c.close();
        await s.close();
      }
    });

    for (const when of ["between chunks", "inside a chunk"] as const) {
      it(`a client vanishing ${when}: no message, the server goes on`, async () => {
        let disconnects = 0;
        const { s, messages } = await chunkingServer(transport, {
          onDisconnectEvent() {
            disconnects++;
          },
        });
        try {
          const c = await ehloClient(s.port);
          await envelope(c);
          await c.send(bdat("Subject: gone\r\n\r\n"));
          await expectRaw(c, chunkOk(17));
          if (when === "inside a chunk") {
            await c.send("BDAT 100 LAST\r\nonly part of it");
            await delay(50);
          }
          c.reset();
          await until(() => disconnects === 1, "onDisconnectEvent");
          assert.equal(messages.length, 0);
          const d = await ehloClient(s.port);
          await envelope(d);
          await d.send(bdat("Subject: next\r\n\r\n", true));
          await expectRaw(d, MESSAGE_OK);
          assert.deepEqual(messages.map((m) => m.data.toString("latin1")), ["Subject: next\r\n\r\n"]);
          d.close();
        } finally {
          await s.close();
        }
      });
    }

    it("with PIPELINING off, a BDAT line with its chunk in the same write is not pipelining", async () => {
      const { s, messages } = await chunkingServer(transport, { pipeliningExtension: false });
      const c = await RawClient.connect(s.port);
      try {
        await c.expect(220);
        assert.ok(!(await c.ehlo()).includes("PIPELINING"));
        // Two commands in one write are refused here (what makes the BDAT case below worth testing).
        await c.send("MAIL FROM:<a@example.com>\r\nNOOP\r\n");
        assert.equal((await c.reply()).code, 500);
        await c.reply(); // the NOOP's answer
        assert.equal((await c.command("RSET")).raw, NOOP_OK);
        await envelope(c);
        // The chunks hold complete lines: still one command each.
        await c.send(bdat("Subject: no pipelining\r\n\r\n"));
        await expectRaw(c, chunkOk(26));
        await c.send(bdat("line\r\nMAIL FROM:<x@example.com>\r\n", true));
        await expectRaw(c, MESSAGE_OK);
        assert.equal(messages.length, 1);
        assertBytes(
          messages[0].data,
          bytes("Subject: no pipelining\r\n\r\nline\r\nMAIL FROM:<x@example.com>\r\n"),
          "message",
        );
        await inStep(c);
      } finally {
        c.close();
        await s.close();
      }
    });
  });
}
