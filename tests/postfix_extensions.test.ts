/**
 * A real Postfix as a client of the server's newer extensions, with every
 * transport of the running runtime:
 *
 *   node_modules/.bin/deno test -A --no-check tests/postfix_extensions.test.ts
 *   node_modules/.bin/bun test --timeout 60000 ./tests/postfix_extensions.test.ts
 *   node --import tsx --test tests/postfix_extensions.test.ts
 *
 * SMTP (Postfix's smtp client): CHUNKING offered (Postfix's client has no
 * BDAT, so a large message still comes with DATA), DSN parameters passed on
 * and decoded, XFORWARD from a trusted relay (and none to a server that does
 * not offer it), and a 552 for a too-large message that Postfix bounces.
 * LMTP (Postfix's lmtp client), over TCP and a Unix socket: one reply per
 * recipient after the message (Postfix defers, bounces and delivers each
 * recipient on its own), XFORWARD over the socket, and cached connections
 * reused for several messages.
 *
 * One Postfix per describe block; `transport_maps` routes recipient domains
 * to the other servers of the block. What the server read on the wire comes
 * from its own debug log (`<<< line`), per session.
 *
 * Needs Debian's `postfix` and root: without it this file reports a skipped
 * test (outside CI) or fails (under CI, which installs it).
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import {
  type LogSeverity,
  type MidiSmtpServerOptions,
  type RecipientContext,
  type RecipientResults,
  Smtpd452Exception,
  Smtpd550Exception,
  type SmtpdContext,
  type XforwardInfo,
} from "../mod.ts";
import type { Transport } from "../src/transport/types.ts";
import { type RunningServer, startServer, TRANSPORTS } from "./helpers.ts";
import {
  postfixMissing,
  postfixSocketPath,
  type RunningPostfix,
  startPostfix,
  type Submitted,
  xtext,
} from "./postfix.ts";

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
  /** Which server of the describe block took it. */
  server: string;
  /** Number of the session (connection) it came over, counted per server. */
  session: number;
  subject: string;
  from: string;
  to: string[];
  recipients: RecipientContext[];
  dsn: { ret: string | null; envid: string | null };
  xforward: XforwardInfo | null;
  mailParams: Record<string, string | true>;
  helo: string;
  heloMode: string;
  protocol: string;
  data: Uint8Array;
  text: string;
  /**
   * The lines the server read and wrote in this session since the previous
   * message of the session (`<<< ` command lines, `>>> ` replies), from its
   * debug log: the commands of this transaction, and for the first message
   * the greeting and EHLO/LHLO too.
   */
  wire: string[];
}

/**
 * What the servers of a describe block received. Each server gets its hooks
 * from {@link Inbox.hooks}: they record every message, keep each session's
 * wire lines (from the debug log) and answer by the recipient's local part:
 * in LMTP `full-*` gets 452 4.2.2 the first time its message arrives and
 * `refuse-*` 550, each on its own.
 */
class Inbox {
  readonly messages: Arrived[] = [];
  /** Sessions seen so far, per server name: numbers each server's sessions. */
  #connections = new Map<string, number>();
  #sessions = new WeakMap<SmtpdContext, { n: number; wire: string[] }>();
  #seen = new Set<string>();
  #wake: Array<() => void> = [];

  /** Hooks and debug logging for the server called `name`. */
  hooks(name: string): MidiSmtpServerOptions {
    return {
      loggerSeverity: "debug",
      onLoggingEvent: (ctx: SmtpdContext | null, _severity: LogSeverity, msg: string) => {
        if (ctx && (msg.startsWith("<<< ") || msg.startsWith(">>> "))) this.#session(name, ctx).wire.push(msg);
      },
      onConnectEvent: (ctx: SmtpdContext) => {
        this.#session(name, ctx);
      },
      onMessageDataEvent: (ctx: SmtpdContext): RecipientResults | void => {
        const session = this.#session(name, ctx);
        const subject = /^Subject: (.*)$/m.exec(ctx.message.headers)?.[1] ?? "";
        this.messages.push({
          server: name,
          session: session.n,
          subject,
          from: ctx.envelope.from,
          to: [...ctx.envelope.to],
          recipients: structuredClone(ctx.envelope.recipients),
          dsn: { ...ctx.envelope.dsn },
          xforward: ctx.envelope.xforward && { ...ctx.envelope.xforward },
          mailParams: { ...ctx.envelope.mailParams },
          helo: ctx.server.helo,
          heloMode: ctx.server.heloMode,
          protocol: ctx.server.protocol,
          // A copy: on Node `data` may be a Buffer, whose slice() would be a view of the server's memory.
          data: new Uint8Array(ctx.message.data),
          text: ctx.message.text,
          wire: session.wire.splice(0),
        });
        for (const wake of this.#wake.splice(0)) wake();
        if (ctx.server.protocol !== "LMTP") return;
        return ctx.envelope.recipients.map((r) => {
          const local = r.address.slice(1).split("@")[0];
          if (local.startsWith("refuse-")) return new Smtpd550Exception();
          if (local.startsWith("full-") && this.#firstTime(`${subject} ${r.address}`)) {
            return new Smtpd452Exception(undefined, "Mailbox full", "4.2.2");
          }
          return undefined;
        });
      },
    };
  }

  /** The record of `ctx`'s session, made (and counted as a connection of `name`) on first sight. */
  #session(name: string, ctx: SmtpdContext): { n: number; wire: string[] } {
    let session = this.#sessions.get(ctx);
    if (!session) {
      const n = (this.#connections.get(name) ?? 0) + 1;
      this.#connections.set(name, n);
      session = { n, wire: [] };
      this.#sessions.set(ctx, session);
    }
    return session;
  }

  /** True the first time `key` is seen. */
  #firstTime(key: string): boolean {
    if (this.#seen.has(key)) return false;
    this.#seen.add(key);
    return true;
  }

  /** Messages with `Subject: <subject>`. */
  withSubject(subject: string): Arrived[] {
    return this.messages.filter((m) => m.subject === subject);
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

  /** Waits for the (first) message with `Subject: <subject>`. */
  waitForSubject(subject: string): Promise<Arrived> {
    return this.waitFor((m) => m.subject === subject, `a message with Subject: ${subject}`);
  }
}

/** The command lines (without `<<< `) among `wire`. */
function commands(wire: string[]): string[] {
  return wire.filter((l) => l.startsWith("<<< ")).map((l) => l.slice(4));
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

/**
 * A body of about `bytes` bytes of 7-bit lines under Postfix's 998-octet line
 * limit (longer ones it would fold), with lines that are or start with dots
 * spread through it: each must arrive unstuffed, wherever the transfer splits.
 */
function bigBody(bytes: number): string {
  const lines: string[] = [];
  let size = 0;
  for (let i = 0; size < bytes; i++) {
    const line = i % 97 === 0
      ? "."
      : i % 89 === 0
      ? `..double dot line ${i}`
      : i % 83 === 0
      ? `.single dot line ${i}`
      : `line ${String(i).padStart(6, "0")} ${"abcdefghijklmnopqrstuvwxyz0123456789".repeat(2)}`;
    lines.push(line);
    size += line.length + 2;
  }
  return lines.join("\r\n") + "\r\n";
}

/** The maillog lines of a submitted message. */
function maillogOf(postfix: RunningPostfix, submitted: Submitted): string {
  return postfix.log().split("\n").filter((l) => l.includes(submitted.queueId)).join("\n");
}

// ---------------------------------------------------------------------------

function smtpSuite(transport: Transport): void {
  describe(`Postfix's smtp client and the server's extensions (${transport.name} transport)`, () => {
    const inbox = new Inbox();
    /** CHUNKING, DSN, PIPELINING, SMTPUTF8; trusts Postfix (127.0.0.1) with XFORWARD. The relayhost. */
    let main: RunningServer;
    /** The same extensions, trusting nobody: mail for `untrusted.test`. */
    let untrusted: RunningServer;
    /** maxMessageSize 8 KiB: mail for `small.test`, sent by a Postfix transport that ignores SIZE. */
    let small: RunningServer;
    let postfix: RunningPostfix;
    const extensions: MidiSmtpServerOptions = {
      chunkingExtension: true,
      binaryMimeExtension: false,
      dsnExtension: true,
      pipeliningExtension: true,
      internationalizationExtensions: true,
    };

    before(async () => {
      main = await startServer(transport, {
        ...extensions,
        xclientTrustedSources: ["127.0.0.1/32"],
        ...inbox.hooks("main"),
      });
      untrusted = await startServer(transport, { ...extensions, ...inbox.hooks("untrusted") });
      small = await startServer(transport, { ...extensions, maxMessageSize: 8192, ...inbox.hooks("small") });
      postfix = await startPostfix({
        mode: "smtp",
        target: { port: main.port },
        mainCf: [
          "smtp_send_xforward_command = yes",
          `transport_maps = inline:{untrusted.test=smtp:[127.0.0.1]:${untrusted.port}, ` +
          `small.test=nosize:[127.0.0.1]:${small.port}}`,
        ],
        // Postfix checks a message against the server's SIZE itself and bounces it without sending it: this
        // transport does not see SIZE, so the message goes out and the server must refuse it.
        masterCf: ["nosize unix - - n - - smtp -o smtp_discard_ehlo_keywords=size"],
      });
    });
    after(async () => {
      await postfix?.stop();
      await main?.close();
      await untrusted?.close();
      await small?.close();
    });

    it(
      "CHUNKING offered: a 300 KiB message relayed by Postfix (with DATA: its client has no BDAT) arrives byte for byte",
      TEST,
      async () => {
        const subject = uniqueSubject("big");
        const body = bigBody(300 * 1024);
        const { queueId } = await postfix.submit(SENDER, ["big@dest.test"], message(subject, body));
        const m = await inbox.waitForSubject(subject);
        assert.equal(m.server, "main");
        assert.ok(m.wire.some((l) => /^>>> 250[ -]/.test(l) && l.includes("250-CHUNKING")), "CHUNKING offered");
        const sent = commands(m.wire);
        const bdat = sent.filter((c) => /^BDAT /i.test(c));
        if (bdat.length === 0) {
          // Postfix's smtp client does not implement CHUNKING (3.7: no BDAT in /usr/lib/postfix/sbin/smtp):
          // offering it must change nothing.
          assert.deepEqual(sent.filter((c) => /^DATA$/i.test(c)), ["DATA"], sent.join("\n"));
        } else {
          // A Postfix that chunks: the chunk sizes add up to the message, the last chunk says LAST, no DATA.
          assert.equal(sent.filter((c) => /^DATA$/i.test(c)).length, 0, sent.join("\n"));
          const sizes = bdat.map((c) => Number(/^BDAT (\d+)/i.exec(c)?.[1]));
          assert.equal(sizes.reduce((a, b) => a + b, 0), m.data.length, bdat.join("\n"));
          assert.match(bdat[bdat.length - 1], / LAST$/i);
        }
        assert.equal(Buffer.from(bodyOf(m.data)).toString("latin1"), body, "body as submitted, dots unstuffed");
        const delivered = await postfix.waitForDelivery(queueId, "big@dest.test", "sent");
        assert.equal(delivered.relay, `127.0.0.1[127.0.0.1]:${main.port}`);
      },
    );

    it("DSN: RET, ENVID (an xtext '+'), NOTIFY and ORCPT pass through Postfix and arrive decoded", TEST, async () => {
      const subject = uniqueSubject("dsn");
      const envid = "queue+42=ab/c";
      const original = "Orig+Tag@Before.test";
      const submitted = await postfix.submit(
        SENDER,
        [
          { address: "dsn-one@dest.test", notify: ["SUCCESS", "FAILURE"], orcpt: `rfc822;${xtext(original)}` },
          { address: "dsn-two@dest.test", notify: ["NEVER"] },
        ],
        message(subject, "DSN parameters.\r\n"),
        { ret: "HDRS", envid: xtext(envid) },
      );
      const m = await inbox.waitForSubject(subject);
      assert.deepEqual(m.dsn, { ret: "HDRS", envid });
      // xtext on the wire ('+' and '=' as +2B and +3D), decoded in the envelope.
      const mail = commands(m.wire).find((c) => c.startsWith("MAIL FROM:")) ?? "";
      assert.match(mail, / ENVID=queue\+2B42\+3Dab\/c(?: |$)/, mail);
      assert.match(mail, / RET=HDRS(?: |$)/, mail);
      assert.deepEqual(
        m.recipients.map((r) => ({ address: r.address, notify: r.notify, orcpt: r.orcpt })),
        [
          {
            address: "<dsn-one@dest.test>",
            notify: ["SUCCESS", "FAILURE"],
            orcpt: { type: "rfc822", address: original },
          },
          // Without an ORCPT from its client Postfix sends the recipient as it received it.
          {
            address: "<dsn-two@dest.test>",
            notify: ["NEVER"],
            orcpt: { type: "rfc822", address: "dsn-two@dest.test" },
          },
        ],
      );
      for (const rcpt of ["dsn-one@dest.test", "dsn-two@dest.test"]) {
        await postfix.waitForDelivery(submitted.queueId, rcpt, "sent");
      }
      // The server offered DSN, so NOTIFY=SUCCESS is its to honour: Postfix sends no "relayed" notice itself.
      await postfix.waitForLog(new RegExp(`: ${submitted.queueId}: removed$`));
      assert.doesNotMatch(maillogOf(postfix, submitted), /delivery status notification/);
    });

    it("XFORWARD: Postfix passes its client on to a server that trusts it", TEST, async () => {
      const subject = uniqueSubject("xforward");
      const { queueId } = await postfix.submit(SENDER, ["xf@dest.test"], message(subject, "Forwarded.\r\n"), {
        ehlo: "upstream.test",
      });
      const m = await inbox.waitForSubject(subject);
      assert.equal(m.server, "main");
      const sent = commands(m.wire);
      const mailAt = sent.findIndex((c) => c.startsWith("MAIL FROM:"));
      assert.ok(sent.slice(0, mailAt).some((c) => c.startsWith("XFORWARD ")), sent.join("\n"));
      assert.ok(m.xforward, "envelope.xforward is set");
      assert.equal(m.xforward.addr, "127.0.0.1", "the submitting client's address");
      assert.equal(m.xforward.ident, queueId, "IDENT is Postfix's queue id");
      assert.equal(m.xforward.helo, "upstream.test");
      assert.equal(m.xforward.proto, "ESMTP");
      assert.equal(m.xforward.source, "LOCAL", "a client on Postfix's own interface (local_header_rewrite_clients)");
      assert.equal(typeof m.xforward.port, "number");
      // smtpd_peername_lookup = no: Postfix knows no client name, and sends no NAME.
      assert.equal(m.xforward.name, null);
      await postfix.waitForDelivery(queueId, "xf@dest.test", "sent");
    });

    it("a server that does not trust Postfix offers no XFORWARD, gets none, and the mail flows", TEST, async () => {
      const subject = uniqueSubject("untrusted");
      const { queueId } = await postfix.submit(SENDER, ["plain@untrusted.test"], message(subject, "No XFORWARD.\r\n"));
      const m = await inbox.waitForSubject(subject);
      assert.equal(m.server, "untrusted");
      const ehloReply = m.wire.find((l) => l.startsWith(">>> 250-")) ?? "";
      assert.match(ehloReply, /\b250[ -]DSN\b/);
      assert.doesNotMatch(ehloReply, /XFORWARD|XCLIENT/);
      assert.deepEqual(commands(m.wire).filter((c) => /^X(FORWARD|CLIENT)/i.test(c)), []);
      assert.equal(m.xforward, null);
      const sent = await postfix.waitForDelivery(queueId, "plain@untrusted.test", "sent");
      assert.equal(sent.relay, `127.0.0.1[127.0.0.1]:${untrusted.port}`);
    });

    it("552 for a message over maxMessageSize: Postfix bounces it, and the server goes on serving", TEST, async () => {
      const subject = uniqueSubject("too large");
      const { queueId } = await postfix.submit(SENDER, ["huge@small.test"], message(subject, bigBody(20 * 1024)));
      const bounced = await postfix.waitForDelivery(queueId, "huge@small.test", "bounced");
      assert.equal(bounced.relay, `127.0.0.1[127.0.0.1]:${small.port}`);
      assert.equal(bounced.dsn, "5.3.4");
      assert.match(bounced.detail, /said: 552 5\.3\.4 .*\(in reply to end of DATA command\)$/);
      assert.equal(inbox.withSubject(subject).filter((m) => m.server === "small").length, 0);

      // The non-delivery notification goes to the sender through the relayhost, quoting the 552.
      const dsn = await inbox.waitFor(
        (x) => x.from === "<>" && x.text.includes(`Subject: ${subject}`) && x.to.includes(`<${SENDER}>`),
        "the bounce to the sender",
      );
      assert.equal(dsn.server, "main");
      assert.match(dsn.text, /\r\nFinal-Recipient: rfc822; huge@small\.test\r\n/);
      assert.match(dsn.text, /\r\nDiagnostic-Code: smtp; 552 5\.3\.4 /);

      const next = uniqueSubject("small enough");
      const ok = await postfix.submit(SENDER, ["fits@small.test"], message(next, "Small.\r\n"));
      const m = await inbox.waitForSubject(next);
      assert.equal(m.server, "small");
      await postfix.waitForDelivery(ok.queueId, "fits@small.test", "sent");
    });
  });
}

function lmtpSuite(transport: Transport): void {
  describe(`Postfix's lmtp client, over TCP and a Unix socket (${transport.name} transport)`, () => {
    const inbox = new Inbox();
    /** LMTP on 127.0.0.1 (mail for `tcp.test`) and on a Unix socket (everything else); trusts the socket. */
    let server: RunningServer;
    let postfix: RunningPostfix;
    const socket = postfixSocketPath(`lmtp-${transport.name}.sock`);

    before(async () => {
      server = await startServer(transport, {
        lmtp: true,
        chunkingExtension: false,
        dsnExtension: true,
        internationalizationExtensions: true,
        socketPaths: socket,
        xclientTrustedSources: ["unix"],
        ...inbox.hooks("lmtp"),
      });
      postfix = await startPostfix({
        mode: "lmtp",
        target: { path: socket },
        mainCf: [
          "lmtp_send_xforward_command = yes",
          `transport_maps = inline:{tcp.test=lmtp:inet:127.0.0.1:${server.port}}`,
          // Cache connections to the TCP listener always, not only when mail backs up (on demand).
          "lmtp_connection_cache_destinations = 127.0.0.1",
        ],
      });
    });
    after(async () => {
      await postfix?.stop();
      await server?.close();
    });

    for (const target of ["tcp", "unix"] as const) {
      const domain = target === "tcp" ? "tcp.test" : "sock.test";
      it(
        `one reply per recipient (${target}): Postfix delivers, defers and bounces each recipient on its own`,
        TEST,
        async () => {
          const subject = uniqueSubject(`lmtp ${target}`);
          const [ok, full, refused] = [`ok@${domain}`, `full-x@${domain}`, `refuse-y@${domain}`];
          const { queueId } = await postfix.submit(SENDER, [ok, full, refused], message(subject, "To three.\r\n"));
          const m = await inbox.waitForSubject(subject);
          assert.equal(m.protocol, "LMTP");
          assert.equal(m.heloMode, "LHLO");
          assert.equal(m.helo, "postfix.test");
          assert.deepEqual([...m.to].sort(), [ok, full, refused].map((a) => `<${a}>`).sort());
          // CHUNKING is off: the message comes with DATA (Postfix's lmtp client has no BDAT either).
          assert.ok(commands(m.wire).includes("DATA"), m.wire.join("\n"));

          const sent = await postfix.waitForDelivery(queueId, ok, "sent");
          assert.equal(sent.agent, "lmtp");
          assert.equal(sent.detail, `250 2.0.0 <${ok}> OK, delivered`);
          if (target === "tcp") assert.equal(sent.relay, `127.0.0.1[127.0.0.1]:${server.port}`);
          else assert.ok(sent.relay.endsWith(`[${socket}]`), sent.relay);
          const deferred = await postfix.waitForDelivery(queueId, full, "deferred");
          assert.equal(deferred.dsn, "4.2.2");
          assert.match(
            deferred.detail,
            new RegExp(`said: 452 4\\.2\\.2 <${full}> Mailbox full \\(in reply to end of DATA command\\)$`),
          );
          const bounced = await postfix.waitForDelivery(queueId, refused, "bounced");
          assert.equal(bounced.dsn, "5.1.1");
          assert.match(
            bounced.detail,
            new RegExp(`said: 550 5\\.1\\.1 <${refused}> .*\\(in reply to end of DATA command\\)$`),
          );
          // Only the deferred recipient was left to deliver; the retry brings it alone.
          assert.equal(postfix.deliveries(queueId).filter((d) => d.to === ok).length, 1, "delivered once");

          await postfix.flush();
          await postfix.waitForDelivery(queueId, full, "sent");
          const retried = await inbox.waitFor((x) => x.subject === subject && x !== m, "the retry");
          assert.deepEqual(retried.to, [`<${full}>`]);

          // The bounce for the refused one goes to the sender (through the socket: the default transport).
          const dsn = await inbox.waitFor(
            (x) => x.from === "<>" && x.text.includes(`Subject: ${subject}`),
            "the bounce to the sender",
          );
          assert.match(dsn.text, new RegExp(`\\r\\nFinal-Recipient: rfc822; ${refused}\\r\\n`));
          assert.doesNotMatch(dsn.text, /Final-Recipient: rfc822; (ok|full-x)@/);
          await postfix.waitForEmptyQueue();
        },
      );
    }

    it("XFORWARD over the trusted Unix socket fills envelope.xforward; over untrusted TCP none", TEST, async () => {
      const viaSocket = uniqueSubject("xforward unix");
      const s1 = await postfix.submit(SENDER, ["xf@sock.test"], message(viaSocket, "Socket.\r\n"));
      const m1 = await inbox.waitForSubject(viaSocket);
      assert.ok(m1.xforward, `envelope.xforward is set; the server read:\n${m1.wire.join("\n")}`);
      assert.equal(m1.xforward.addr, "127.0.0.1");
      assert.equal(m1.xforward.ident, s1.queueId, "IDENT is Postfix's queue id");
      assert.equal(m1.xforward.helo, "submitter.test");
      assert.equal(m1.xforward.proto, "ESMTP");
      assert.equal(m1.xforward.source, "LOCAL");
      await postfix.waitForDelivery(s1.queueId, "xf@sock.test", "sent");

      const viaTcp = uniqueSubject("xforward tcp");
      const s2 = await postfix.submit(SENDER, ["xf@tcp.test"], message(viaTcp, "TCP.\r\n"));
      const m2 = await inbox.waitForSubject(viaTcp);
      assert.equal(m2.xforward, null);
      assert.deepEqual(commands(m2.wire).filter((c) => /^X(FORWARD|CLIENT)/i.test(c)), []);
      await postfix.waitForDelivery(s2.queueId, "xf@tcp.test", "sent");
    });

    it("connection caching: several messages over one connection, each after an RSET probe", TEST, async () => {
      const arrived = [];
      for (let i = 0; i < 3; i++) {
        const subject = uniqueSubject("cached");
        const { queueId } = await postfix.submit(SENDER, [`cached${i}@tcp.test`], message(subject, `No. ${i}\r\n`));
        arrived.push(await inbox.waitForSubject(subject));
        const sent = await postfix.waitForDelivery(queueId, `cached${i}@tcp.test`, "sent");
        // Postfix logs how often it used the connection when it was reused.
        if (i > 0) assert.match(sent.line, /, conn_use=\d+, /);
      }
      const [first, ...later] = arrived;
      for (const m of later) {
        assert.equal(m.session, first.session, "the same connection");
        const sent = commands(m.wire);
        // A cached connection is probed with RSET before its next transaction; no new LHLO.
        assert.deepEqual(
          sent.slice(0, 2),
          ["RSET", `MAIL FROM:<${SENDER}> SIZE=${m.mailParams.SIZE}`],
          sent.join("\n"),
        );
        assert.ok(!sent.includes("LHLO postfix.test"), sent.join("\n"));
      }
    });
  });
}

if (!NO_POSTFIX) {
  for (const transport of TRANSPORTS) {
    smtpSuite(transport);
    lmtpSuite(transport);
  }
}
