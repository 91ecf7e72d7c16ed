/**
 * A real Postfix relaying to the server with its own SMTP client
 * (`relayhost = [127.0.0.1]:<port>`), with every transport of the running
 * runtime:
 *
 *   deno test -A tests/postfix_relay.test.ts
 *   bun test ./tests/postfix_relay.test.ts
 *   node --import tsx --test tests/postfix_relay.test.ts
 *
 * Mail is submitted to a private Postfix instance (tests/postfix.ts: its
 * master runs as a child of this process, in a scratch folder) and must
 * arrive in `onMessageDataEvent` as sent; Postfix's maillog says what Postfix
 * made of the server's replies (sent, bounced, deferred). Bounces go back to
 * the sender through the same relay, so they arrive at the server too.
 *
 * Needs Debian's `postfix` and root: without it this file reports a skipped
 * test (outside CI) or fails (under CI, which installs it).
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { Smtpd451Exception, Smtpd550Exception, type SmtpdContext } from "../mod.ts";
import type { Transport } from "../src/transport/types.ts";
import { delay, type RunningServer, startServer, TRANSPORTS } from "./helpers.ts";
import { postfixMissing, type QueuedMessage, type RunningPostfix, startPostfix } from "./postfix.ts";

// A missing Postfix fails under CI (which installs it) and is reported as skipped elsewhere, never a silent pass.
const NO_POSTFIX = postfixMissing();
if (NO_POSTFIX) it(`Postfix tests: ${NO_POSTFIX}`, { skip: NO_POSTFIX }, () => {});

/** Per-test limit for the runner; every wait inside a test has its own, shorter limit. */
const TEST = { timeout: 30_000 };
/** How long a relayed message may take to arrive (Postfix delivers at once; retries come within 1-3 s). */
const ARRIVAL_MS = 10_000;
const SENDER = "sender@origin.test";

// ---------------------------------------------------------------------------
// the receiving side

/** A message as the server's onMessageDataEvent saw it. */
interface Arrived {
  from: string;
  to: string[];
  encodingBody: string;
  encodingUtf8: string;
  mailParams: Record<string, string | true>;
  helo: string;
  data: Uint8Array;
  text: string;
}

/**
 * What the server received, and the behaviour the tests ask of it, chosen by
 * the recipient's local part so that one server serves every test:
 * `refuse-*` gets 550 at RCPT, `defer-rcpt-*` 451 at RCPT the first time,
 * `defer-data-*` 451 at the end of data the first time.
 */
class Inbox {
  readonly messages: Arrived[] = [];
  /** Replies given, as `"<code> <recipient or message subject>"`, in order. */
  readonly refusals: string[] = [];
  #deferred = new Set<string>();
  #wake: Array<() => void> = [];

  onRcptToEvent = (_ctx: SmtpdContext, rcpt: string): void => {
    const local = rcpt.slice(1).split("@")[0];
    if (local.startsWith("refuse-")) {
      this.refusals.push(`550 ${rcpt}`);
      throw new Smtpd550Exception();
    }
    if (local.startsWith("defer-rcpt-") && this.#firstTime(rcpt)) {
      this.refusals.push(`451 ${rcpt}`);
      throw new Smtpd451Exception();
    }
  };

  onMessageDataEvent = (ctx: SmtpdContext): void => {
    const subject = /^Subject: (.*)$/m.exec(ctx.message.headers)?.[1] ?? "";
    if (ctx.envelope.to.some((t) => t.startsWith("<defer-data-")) && this.#firstTime(subject)) {
      this.refusals.push(`451 ${subject}`);
      throw new Smtpd451Exception();
    }
    this.messages.push({
      from: ctx.envelope.from,
      to: [...ctx.envelope.to],
      encodingBody: ctx.envelope.encodingBody,
      encodingUtf8: ctx.envelope.encodingUtf8,
      mailParams: { ...ctx.envelope.mailParams },
      helo: ctx.server.helo,
      // A copy: on Node `data` may be a Buffer, whose slice() would be a view of the server's memory.
      data: new Uint8Array(ctx.message.data),
      text: ctx.message.text,
    });
    for (const wake of this.#wake.splice(0)) wake();
  };

  /** True the first time `key` is seen. */
  #firstTime(key: string): boolean {
    if (this.#deferred.has(key)) return false;
    this.#deferred.add(key);
    return true;
  }

  /** Messages whose header section has `Subject: <subject>`. */
  withSubject(subject: string): Arrived[] {
    return this.messages.filter((m) => headerSection(m.text).includes(`\r\nSubject: ${subject}\r\n`));
  }

  /** Waits until `find` returns a message (up to {@link ARRIVAL_MS}). */
  async waitFor(find: (m: Arrived) => boolean, what: string): Promise<Arrived> {
    const deadline = Date.now() + ARRIVAL_MS;
    for (;;) {
      const found = this.messages.find(find);
      if (found) return found;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out after ${ARRIVAL_MS} ms waiting for ${what}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 250));
        this.#wake.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Waits for the message with `Subject: <subject>`. */
  waitForSubject(subject: string): Promise<Arrived> {
    return this.waitFor((m) => this.withSubject(subject).includes(m), `a message with Subject: ${subject}`);
  }
}

/** The header section with a CRLF in front, so that every field starts after a CRLF. */
function headerSection(text: string): string {
  const end = text.indexOf("\r\n\r\n");
  return "\r\n" + (end < 0 ? text : text.slice(0, end + 2));
}

/** The body: everything after the first empty line. */
function bodyOf(data: Uint8Array): Uint8Array {
  const text = Buffer.from(data).toString("latin1");
  const end = text.indexOf("\r\n\r\n");
  assert.ok(end >= 0, "the message has a header section and a body");
  return data.slice(end + 4);
}

let subjects = 0;
/** A subject no other message of this file has (runtimes and transports run in other processes or servers). */
function uniqueSubject(what: string): string {
  return `${what} #${++subjects} ${Date.now()}`;
}

/** A message with a Subject and Message-ID (Postfix would add a Message-ID, From and Date otherwise). */
function message(subject: string, body: string, to = "rcpt@dest.test"): string {
  return [
    `From: <${SENDER}>`,
    `To: <${to}>`,
    `Subject: ${subject}`,
    `Message-ID: <${subjects}.${Date.now()}@origin.test>`,
    "Date: Mon, 01 Jan 2024 00:00:00 +0000",
    "",
    body,
  ].join("\r\n");
}

// ---------------------------------------------------------------------------

function relaySuite(transport: Transport): void {
  describe(`Postfix's smtp client relays to the server (${transport.name} transport)`, () => {
    const inbox = new Inbox();
    let server: RunningServer;
    let postfix: RunningPostfix;

    before(async () => {
      server = await startServer(transport, {
        pipeliningExtension: true,
        internationalizationExtensions: true,
        onRcptToEvent: inbox.onRcptToEvent,
        onMessageDataEvent: inbox.onMessageDataEvent,
      });
      postfix = await startPostfix({ mode: "smtp", target: { port: server.port } });
    });
    after(async () => {
      await postfix?.stop();
      await server?.close();
    });

    it("relays a message: envelope, headers (plus Postfix's Received) and body as submitted", TEST, async () => {
      const subject = uniqueSubject("plain");
      const body = "Hello through Postfix.\r\n.A line that starts with a dot.\r\n..and one with two.\r\n";
      const { queueId } = await postfix.submit(SENDER, ["rcpt@dest.test"], message(subject, body));
      const m = await inbox.waitForSubject(subject);

      assert.equal(m.from, `<${SENDER}>`);
      assert.deepEqual(m.to, ["<rcpt@dest.test>"]);
      assert.equal(m.helo, "postfix.test", "Postfix says EHLO with its myhostname");
      // Postfix passes SIZE on; a 7-bit message is sent without BODY=.
      assert.match(String(m.mailParams.SIZE), /^\d+$/);
      assert.equal(m.mailParams.BODY, undefined);
      const headers = headerSection(m.text);
      // Postfix's own trace header first (no reverse lookup: smtpd_peername_lookup = no), naming the queue id.
      assert.ok(
        headers.startsWith(
          `\r\nReceived: from submitter.test (unknown [127.0.0.1])\r\n\tby postfix.test (Postfix) with ESMTP id ${queueId}\r\n` +
            "\tfor <rcpt@dest.test>; ",
        ),
        headers,
      );
      assert.ok(headers.includes(`\r\nSubject: ${subject}\r\n`), headers);
      assert.ok(headers.includes("\r\nDate: Mon, 01 Jan 2024 00:00:00 +0000\r\n"), headers);
      assert.equal(Buffer.from(bodyOf(m.data)).toString("latin1"), body, "body arrives as submitted, dots unstuffed");

      const sent = await postfix.waitForDelivery(queueId, "rcpt@dest.test", "sent");
      assert.equal(sent.agent, "smtp");
      assert.equal(sent.relay, `127.0.0.1[127.0.0.1]:${server.port}`);
      assert.equal(sent.dsn, "2.0.0");
      assert.match(sent.detail, /^250 /);
    });

    it("several recipients: one transaction with all of them", TEST, async () => {
      const subject = uniqueSubject("three recipients");
      const to = ["one@dest.test", "two@dest.test", "three@other.test"];
      const { queueId } = await postfix.submit(SENDER, to, message(subject, "To three.\r\n"));
      const m = await inbox.waitForSubject(subject);
      assert.deepEqual([...m.to].sort(), to.map((a) => `<${a}>`).sort());
      for (const rcpt of to) await postfix.waitForDelivery(queueId, rcpt, "sent");
      assert.equal(inbox.withSubject(subject).length, 1, "one transaction for all recipients (same relayhost)");
    });

    it("an 8-bit body (BODY=8BITMIME) arrives byte for byte, not converted to quoted-printable", TEST, async () => {
      const subject = uniqueSubject("8bit");
      // UTF-8 text, and a Latin-1 byte (0xE9) that is not UTF-8: Postfix passes 8-bit bytes on as they are.
      const body = Buffer.concat([
        Buffer.from("Grüße aus Köln – 8 bit, ½ € ✓\r\n", "utf8"),
        Buffer.from([0x43, 0x61, 0x66, 0xe9, 0x0d, 0x0a]),
      ]);
      const head = message(subject, "").replace(
        /\r\n\r\n$/,
        "\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: 8bit\r\n\r\n",
      );
      const data = Buffer.concat([Buffer.from(head, "utf8"), body]);
      const { queueId } = await postfix.submit(SENDER, ["eight@dest.test"], data, { body: "8BITMIME" });
      const m = await inbox.waitForSubject(subject);
      assert.equal(m.mailParams.BODY, "8BITMIME");
      assert.equal(m.encodingBody, "8bitmime");
      // Buffers on both sides: the server may hand out a Buffer or a plain Uint8Array depending on the runtime.
      assert.deepEqual(Buffer.from(bodyOf(m.data)), body);
      assert.match(headerSection(m.text), /\r\nContent-Transfer-Encoding: 8bit\r\n/);
      await postfix.waitForDelivery(queueId, "eight@dest.test", "sent");
    });

    it("an internationalized address (SMTPUTF8) is relayed with SMTPUTF8", TEST, async () => {
      const subject = uniqueSubject("smtputf8");
      const rcpt = "jürgen@bücher.test";
      const { queueId } = await postfix.submit(SENDER, [rcpt], message(subject, "UTF-8 envelope.\r\n", rcpt), {
        smtputf8: true,
      });
      const m = await inbox.waitForSubject(subject);
      assert.deepEqual(m.to, [`<${rcpt}>`]);
      assert.equal(m.encodingUtf8, "utf8");
      assert.equal(m.mailParams.SMTPUTF8, true);
      await postfix.waitForDelivery(queueId, rcpt, "sent");
    });

    it(
      "550 for one recipient: Postfix bounces that one, delivers the other, and mails the sender a DSN",
      TEST,
      async () => {
        const subject = uniqueSubject("bounce");
        const { queueId } = await postfix.submit(
          SENDER,
          ["kept@dest.test", "refuse-me@dest.test"],
          message(subject, "One of two.\r\n"),
        );
        const m = await inbox.waitForSubject(subject);
        assert.deepEqual(m.to, ["<kept@dest.test>"], "the refused recipient is not in the transaction");
        assert.ok(inbox.refusals.includes("550 <refuse-me@dest.test>"));

        await postfix.waitForDelivery(queueId, "kept@dest.test", "sent");
        const bounced = await postfix.waitForDelivery(queueId, "refuse-me@dest.test", "bounced");
        assert.equal(bounced.dsn, "5.1.1");
        assert.match(bounced.detail, /said: 550 5\.1\.1 .*\(in reply to RCPT TO command\)$/);

        // The non-delivery notification goes to the sender, relayed to this same server: null sender, a
        // multipart/report naming the refused recipient and quoting the server's reply.
        const dsn = await inbox.waitFor(
          (x) => x.from === "<>" && x.text.includes(`Subject: ${subject}`) && x.to.includes(`<${SENDER}>`),
          "the bounce to the sender",
        );
        assert.match(headerSection(dsn.text), /\r\nContent-Type: multipart\/report; report-type=delivery-status;/);
        assert.match(dsn.text, /\r\nFinal-Recipient: rfc822; refuse-me@dest\.test\r\n/);
        assert.match(dsn.text, /\r\nStatus: 5\.1\.1\r\n/);
        assert.match(dsn.text, /\r\nDiagnostic-Code: smtp; 550 5\.1\.1 /);
        assert.doesNotMatch(dsn.text, /Final-Recipient: rfc822; kept@dest\.test/);
        await postfix.waitForEmptyQueue();
      },
    );

    it("451 at the end of data: Postfix defers the message, retries within seconds, delivered once", TEST, async () => {
      const subject = uniqueSubject("defer data");
      const started = Date.now();
      const { queueId } = await postfix.submit(SENDER, ["defer-data-x@dest.test"], message(subject, "Later.\r\n"));
      const deferred = await postfix.waitForDelivery(queueId, "defer-data-x@dest.test", "deferred");
      assert.equal(deferred.dsn, "4.3.0");
      assert.match(deferred.detail, /said: 451 4\.3\.0 .*\(in reply to end of DATA command\)$/);
      assert.ok(inbox.refusals.includes(`451 ${subject}`));

      // No flush: the queue settings alone bring the retry.
      // Postfix's side first: on a time-out its maillog lines for the message say what happened.
      await postfix.waitForDelivery(queueId, "defer-data-x@dest.test", "sent");
      const m = await inbox.waitForSubject(subject);
      assert.ok(Date.now() - started < ARRIVAL_MS, "retried within seconds");
      assert.deepEqual(m.to, ["<defer-data-x@dest.test>"]);
      assert.equal(inbox.withSubject(subject).length, 1, "the refused attempt is not kept");
      await postfix.waitForEmptyQueue();
    });

    it(
      "451 for one recipient: the other is delivered now, the deferred one on the retry (postqueue -f)",
      TEST,
      async () => {
        const subject = uniqueSubject("defer rcpt");
        const { queueId } = await postfix.submit(
          SENDER,
          ["now@dest.test", "defer-rcpt-y@dest.test"],
          message(subject, "Half now, half later.\r\n"),
        );
        const deferred = await postfix.waitForDelivery(queueId, "defer-rcpt-y@dest.test", "deferred");
        assert.match(deferred.detail, /said: 451 4\.3\.0 .*\(in reply to RCPT TO command\)$/);
        await postfix.waitForDelivery(queueId, "now@dest.test", "sent");

        // Between attempts (2 s at least) the message waits in the deferred queue, for that recipient only.
        let queued: QueuedMessage | undefined;
        const deadline = Date.now() + ARRIVAL_MS;
        while (queued?.queue_name !== "deferred") {
          if (Date.now() > deadline) throw new Error(`not in the deferred queue: ${JSON.stringify(queued)}`);
          queued = (await postfix.queue()).find((q) => q.queue_id === queueId);
          if (queued?.queue_name !== "deferred") await delay(50);
        }
        assert.deepEqual(queued.recipients.map((r) => r.address), ["defer-rcpt-y@dest.test"]);
        assert.match(queued.recipients[0].delay_reason ?? "", /said: 451 4\.3\.0 /);
        await postfix.flush();
        await postfix.waitForDelivery(queueId, "defer-rcpt-y@dest.test", "sent");

        const arrived = inbox.withSubject(subject);
        assert.deepEqual(arrived.map((m) => m.to), [["<now@dest.test>"], ["<defer-rcpt-y@dest.test>"]]);
        await postfix.waitForEmptyQueue();
      },
    );
  });
}

if (!NO_POSTFIX) { for (const transport of TRANSPORTS) relaySuite(transport); }
