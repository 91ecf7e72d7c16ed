/**
 * The public extension points of a session, over real sockets with every
 * transport of the runtime: registered commands and what SessionControl lets
 * them do (multi-line replies, reading the client's next line or bytes,
 * counting failures, closing, resetting, restarting), replacing and disabling
 * commands, `allowedBeforeTls`, per-client EHLO keywords (`ehloKeywords`) and
 * MAIL/RCPT parameters (`esmtpParameters`); and the options' validation.
 *
 *   deno test -A tests/registry.test.ts
 *   bun test ./tests/registry.test.ts
 *   node --import tsx --test tests/registry.test.ts
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import {
  type CommandDefinition,
  type EsmtpParameter,
  MidiSmtpServer,
  type MidiSmtpServerOptions,
  Smtpd501Exception,
  type SmtpdContext,
} from "../mod.ts";
import type { Transport } from "../src/transport/types.ts";
import { ehloClient, RawClient, type RunningServer, startServer, TRANSPORTS, withMailer } from "./helpers.ts";

const TEST = { timeout: 30_000 };
const TRUST_ANY = { rejectUnauthorized: false };
/** Eighteen bytes for readBytes that hold a CRLF, a QUIT line and a lone dot: none of it may run as a command. */
const BLOB = "ab\r\nQUIT\r\n.\r\nRSET\r\n";

/** `SITE sub args`: sub-commands that exercise replyLines and reply. */
const SITE: CommandDefinition = {
  name: "site",
  handler(session, args) {
    const space = args.indexOf(" ");
    const sub = (space < 0 ? args : args.slice(0, space)).toUpperCase();
    const rest = space < 0 ? "" : args.slice(space + 1);
    switch (sub) {
      case "HELP":
        return session.replyLines(214, ["SITE commands:", "SITE HELP", "SITE STATE"]);
      case "STATE":
        return session.reply(
          250,
          "2.0.0",
          `state ${session.state}, chunking ${session.offers("chunking")}, x-priority ${session.offers("x-priority")}`,
        );
      case "CODE":
        return session.replyLines(Number(rest), ["never sent"]);
      case "EMPTY":
        return session.replyLines(250, []);
      case "INJECT":
        // Each line tries to start a reply of its own; oneLine turns the breaks into spaces.
        return session.replyLines(250, ["one\r\n250 injected", "two\nthree", "four\rfive\r\n"]);
      case "INJECT1":
        return session.reply(250, "2.0.0", "one\r\n221 2.0.0 fake bye");
      default:
        throw new Smtpd501Exception(undefined, "Syntax: SITE HELP|STATE");
    }
  },
};

/** `XSECRET`: 334, then the secret on a line of its own (read with readLine, never run as a command). */
const XSECRET: CommandDefinition = {
  name: "XSECRET",
  async handler(session) {
    session.reply(334, "", "Send the secret");
    const secret = await session.readLine();
    if (secret === "open sesame") session.reply(250, "2.0.0", "Welcome");
    else session.reply(535, "5.7.8", `Wrong secret (${secret.length} chars)`);
  },
};

/** The bytes `XBLOB`/`XRAW` read, shown in their reply (JSON: CR and LF as `\r`, `\n`). */
function blobReply(bytes: Uint8Array): string {
  return `${bytes.length} octets: ${JSON.stringify(Buffer.from(bytes).toString("latin1"))}`;
}

/** `XBLOB n`: 354, then exactly n bytes read with readBytes. */
const XBLOB: CommandDefinition = {
  name: "XBLOB",
  async handler(session, args) {
    const count = Number(args);
    session.reply(354, "", `Send ${count} octets`);
    session.reply(250, "2.0.0", blobReply(await session.readBytes(count)));
  },
};

/** `XRAW n` followed at once by n bytes (as BDAT), read with readBytes. */
const XRAW: CommandDefinition = {
  name: "XRAW",
  readsInput: true,
  async handler(session, args) {
    session.reply(250, "2.0.0", blobReply(await session.readBytes(Number(args))));
  },
};

/** The commands of the main test server. */
const COMMANDS: CommandDefinition[] = [
  SITE,
  XSECRET,
  XBLOB,
  XRAW,
  {
    name: "XFAIL",
    handler(session) {
      session.reply(550, "5.7.1", "Not allowed");
      session.countFailure();
    },
  },
  {
    name: "XBYE",
    handler(session) {
      session.reply(221, "2.0.0", "Bye");
      session.close();
    },
  },
  {
    name: "XRESET",
    handler(session) {
      const before = session.state;
      session.reset();
      session.reply(250, "2.0.0", `${before} -> ${session.state}`);
    },
  },
  { name: "XRESTART", handler: (session) => session.restart() },
  // Replaces the built-in VRFY (its 252).
  { name: "vrfy", handler: (session, args) => session.reply(250, "2.1.5", `${args} is ours`) },
];

/** What the hooks of the main test server saw. */
interface Seen {
  mailValues: Record<string, unknown>[];
  messages: { values: Record<string, unknown>; recipients: { address: string; values: Record<string, unknown> }[] }[];
  connects: number;
  disconnects: number;
}

/** MAIL X-PRIORITY=0..9 (offered through ehloKeywords), X-HIDDEN (its keyword never offered), RCPT X-TAG. */
const PARAMETERS: EsmtpParameter[] = [
  {
    name: "X-PRIORITY",
    command: "MAIL",
    keyword: "X-PRIORITY",
    apply(value, { envelope }) {
      if (typeof value !== "string" || !/^[0-9]$/.test(value)) {
        throw new Smtpd501Exception(undefined, "X-PRIORITY takes 0 to 9");
      }
      envelope.values.priority = Number(value);
    },
  },
  {
    name: "X-HIDDEN",
    command: "MAIL",
    keyword: "X-NEVER-OFFERED",
    apply(_value, { envelope }) {
      envelope.values.hidden = true;
    },
  },
  {
    name: "x-tag",
    command: "RCPT",
    apply(value, { recipient }) {
      recipient!.values.tag = value;
    },
  },
];

/** The main test server: the commands, the parameters, X-PRIORITY added to EHLO, and hooks that record. */
async function mainServer(transport: Transport, options: MidiSmtpServerOptions = {}) {
  const seen: Seen = { mailValues: [], messages: [], connects: 0, disconnects: 0 };
  const running = await startServer(transport, {
    maxBadCommands: 3,
    commands: COMMANDS,
    esmtpParameters: PARAMETERS,
    ehloKeywords: (_ctx, keywords) => [...keywords, "X-PRIORITY"],
    onConnectEvent() {
      seen.connects++;
    },
    onDisconnectEvent() {
      seen.disconnects++;
    },
    onMailFromEvent(ctx) {
      seen.mailValues.push({ ...ctx.envelope.values });
    },
    onMessageDataEvent(ctx: SmtpdContext) {
      seen.messages.push({
        values: { ...ctx.envelope.values },
        recipients: ctx.envelope.recipients.map((r) => ({ address: r.address, values: { ...r.values } })),
      });
    },
    ...options,
  });
  return { ...running, seen };
}

/** Runs `body` with a client that has sent EHLO (connected from the loopback address `from`, if given), then closes it. */
async function session(port: number, body: (c: RawClient) => Promise<void>, from?: string): Promise<void> {
  const c = from ? await RawClient.connect(port, "127.0.0.1", from) : await ehloClient(port);
  try {
    if (from) {
      await c.expect(220);
      await c.ehlo();
    }
    await body(c);
  } finally {
    c.close();
  }
}

for (const transport of TRANSPORTS) {
  describe(`registry (${transport.name} transport)`, () => {
    describe("registered commands and SessionControl", () => {
      let s: Awaited<ReturnType<typeof mainServer>>;
      before(async () => s = await mainServer(transport));
      after(() => s.close());

      it(
        "answers a registered command with a multi-line reply, byte for byte (any case of the verb)",
        TEST,
        () =>
          session(s.port, async (c) => {
            assert.equal(
              (await c.command("site help")).raw,
              "214-SITE commands:\r\n214-SITE HELP\r\n214 SITE STATE\r\n",
            );
            assert.equal(
              (await c.command("SITE STATE")).raw,
              "250 2.0.0 state RSET, chunking false, x-priority true\r\n",
            );
            // A refusal thrown by the handler is its reply.
            assert.equal((await c.command("SITE WHAT")).raw, "501 5.5.4 Syntax: SITE HELP|STATE\r\n");
          }),
      );

      it(
        "refuses a bad reply code or an empty list with 451, and the session goes on",
        TEST,
        () =>
          session(s.port, async (c) => {
            const local = "451 4.3.0 Requested action aborted: local error in processing\r\n";
            for (const code of ["199", "600", "25", "250.5", "NaN"]) {
              assert.equal((await c.command(`SITE CODE ${code}`)).raw, local, code);
            }
            assert.equal((await c.command("SITE EMPTY")).raw, local);
            assert.equal((await c.command("NOOP")).raw, "250 2.0.0 OK\r\n");
          }),
      );

      it(
        "turns CR and LF inside reply lines into spaces: no reply can be injected",
        TEST,
        () =>
          session(s.port, async (c) => {
            const r = await c.command("SITE INJECT");
            assert.equal(r.raw, "250-one 250 injected\r\n250-two three\r\n250 four five\r\n");
            assert.equal((await c.command("SITE INJECT1")).raw, "250 2.0.0 one 221 2.0.0 fake bye\r\n");
            // Nothing more was sent: the next reply is the NOOP's, and the connection is open.
            assert.equal(c.pending, "");
            assert.equal((await c.command("NOOP")).raw, "250 2.0.0 OK\r\n");
            assert.equal(c.closed, false);
          }),
      );

      it(
        "reads the client's next line with readLine(): the line is never run as a command",
        TEST,
        () =>
          session(s.port, async (c) => {
            assert.equal((await c.command("XSECRET")).raw, "334 Send the secret\r\n");
            assert.equal((await c.command("open sesame")).raw, "250 2.0.0 Welcome\r\n");
            assert.equal((await c.command("XSECRET")).raw, "334 Send the secret\r\n");
            assert.equal((await c.command("QUIT")).raw, "535 5.7.8 Wrong secret (4 chars)\r\n");
            assert.equal((await c.command("NOOP")).raw, "250 2.0.0 OK\r\n");
            assert.equal(c.closed, false);
          }),
      );

      it("reads a line that arrives in pieces", TEST, () =>
        session(s.port, async (c) => {
          assert.equal((await c.command("XSECRET")).raw, "334 Send the secret\r\n");
          await c.send("open ");
          await new Promise((resolve) => setTimeout(resolve, 30));
          await c.send("sesame");
          await new Promise((resolve) => setTimeout(resolve, 30));
          assert.equal((await c.command("")).raw, "250 2.0.0 Welcome\r\n");
        }));

      it(
        "answers a line too long for readLine() with 500 5.5.2, and the session goes on",
        TEST,
        () =>
          session(s.port, async (c) => {
            assert.equal((await c.command("XSECRET")).raw, "334 Send the secret\r\n");
            assert.equal((await c.command("x".repeat(13_000))).raw, "500 5.5.2 Line too long\r\n");
            assert.equal((await c.command("NOOP")).raw, "250 2.0.0 OK\r\n");
          }),
      );

      it("ends the session when the client leaves while readLine() waits", TEST, async () => {
        const disconnects = s.seen.disconnects;
        const c = await ehloClient(s.port);
        assert.equal((await c.command("XSECRET")).raw, "334 Send the secret\r\n");
        c.close();
        const deadline = Date.now() + 5000;
        while (s.seen.disconnects === disconnects) {
          assert.ok(Date.now() < deadline, "onDisconnectEvent did not run");
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
        assert.equal(s.seen.disconnects, disconnects + 1);
      });

      it(
        "reads a byte count with readBytes(): CRLF, QUIT and a dot inside are data",
        TEST,
        () =>
          session(s.port, async (c) => {
            assert.equal((await c.command(`XBLOB ${BLOB.length}`)).raw, `354 Send ${BLOB.length} octets\r\n`);
            // Split across writes, and followed by a command in the same write.
            await c.send(BLOB.slice(0, 5));
            await new Promise((resolve) => setTimeout(resolve, 30));
            await c.send(BLOB.slice(5) + "NOOP\r\n");
            assert.equal(
              (await c.reply()).raw,
              `250 2.0.0 ${BLOB.length} octets: "ab\\r\\nQUIT\\r\\n.\\r\\nRSET\\r\\n"\r\n`,
            );
            assert.equal((await c.reply()).raw, "250 2.0.0 OK\r\n");
            assert.equal((await c.command("XBLOB 0")).raw, "354 Send 0 octets\r\n");
            assert.equal((await c.reply()).raw, '250 2.0.0 0 octets: ""\r\n');
            assert.equal(c.closed, false);
          }),
      );

      it(
        "counts failures with countFailure(): maxBadCommands (3) ends the session with 421",
        TEST,
        () =>
          session(s.port, async (c) => {
            assert.equal((await c.command("XFAIL")).raw, "550 5.7.1 Not allowed\r\n");
            assert.equal((await c.command("XFAIL")).raw, "550 5.7.1 Not allowed\r\n");
            assert.equal((await c.command("XFAIL")).raw, "550 5.7.1 Not allowed\r\n");
            assert.equal((await c.reply()).raw, "421 4.7.0 Too many errors, closing transmission channel\r\n");
            await c.waitClosed();
          }),
      );

      it("ends the transaction with reset(), as RSET does", TEST, () =>
        session(s.port, async (c) => {
          assert.equal((await c.command("XRESET")).raw, "250 2.0.0 RSET -> RSET\r\n");
          assert.equal((await c.command("MAIL FROM:<a@example.com> X-PRIORITY=3")).code, 250);
          assert.equal((await c.command("RCPT TO:<b@example.com>")).code, 250);
          assert.equal((await c.command("XRESET")).raw, "250 2.0.0 RCPT -> RSET\r\n");
          assert.equal((await c.command("DATA")).raw, "503 5.5.1 Need MAIL command first\r\n");
          assert.equal((await c.command("MAIL FROM:<a@example.com>")).code, 250);
        }));

      it(
        "starts the session over with restart(): a new 220, onConnectEvent again, HELO forgotten",
        TEST,
        () =>
          session(s.port, async (c) => {
            const connects = s.seen.connects;
            assert.equal((await c.command("MAIL FROM:<a@example.com>")).code, 250);
            assert.equal((await c.command("XRESTART")).raw, "220 127.0.0.1 says welcome!\r\n");
            assert.equal(s.seen.connects, connects + 1);
            assert.equal((await c.command("MAIL FROM:<a@example.com>")).raw, "503 5.5.1 Send HELO/EHLO first\r\n");
            assert.equal((await c.command("EHLO again.example")).code, 250);
            assert.equal((await c.command("MAIL FROM:<a@example.com>")).code, 250);
          }),
      );

      it("runs a registered command in place of a built-in one (VRFY)", TEST, () =>
        session(s.port, async (c) => {
          assert.equal((await c.command("VRFY postmaster")).raw, "250 2.1.5 postmaster is ours\r\n");
        }));

      it("lists registered commands in HELP", TEST, () =>
        session(s.port, async (c) => {
          const r = await c.command("HELP");
          assert.equal(r.code, 214);
          const listed = r.lines[0].replace(/^2\.0\.0 Commands: /, "").split(" ");
          for (const verb of ["SITE", "XSECRET", "XBLOB", "XRAW", "XFAIL", "XBYE", "XRESET", "VRFY", "MAIL"]) {
            assert.ok(listed.includes(verb), `${verb} in ${r.raw}`);
          }
          assert.equal(listed.filter((v) => v === "VRFY").length, 1, "the replaced VRFY is listed once");
        }));

      it(
        "carries a MAIL parameter's value in ctx.envelope.values to the MAIL and DATA hooks, and RCPT's in recipients",
        TEST,
        () =>
          session(s.port, async (c) => {
            const mails = s.seen.mailValues.length;
            const messages = s.seen.messages.length;
            assert.ok((await c.command("EHLO client.example")).lines.includes("X-PRIORITY"));
            assert.equal((await c.command("MAIL FROM:<a@example.com> x-priority=7")).raw, "250 2.1.0 OK\r\n");
            assert.equal((await c.command("RCPT TO:<b@example.com> X-TAG=blue")).raw, "250 2.1.5 OK\r\n");
            assert.equal((await c.command("RCPT TO:<c@example.com> X-TAG")).raw, "250 2.1.5 OK\r\n");
            assert.equal((await c.command("RCPT TO:<d@example.com>")).raw, "250 2.1.5 OK\r\n");
            assert.equal((await c.command("DATA")).code, 354);
            assert.equal((await c.command("Subject: p\r\n\r\nbody\r\n.")).code, 250);
            assert.deepEqual(s.seen.mailValues.slice(mails), [{ priority: 7 }]);
            assert.deepEqual(s.seen.messages.slice(messages), [{
              values: { priority: 7 },
              recipients: [
                { address: "<b@example.com>", values: { tag: "blue" } },
                { address: "<c@example.com>", values: { tag: true } },
                { address: "<d@example.com>", values: {} },
              ],
            }]);
            // The next transaction starts with empty values.
            assert.equal((await c.command("MAIL FROM:<a@example.com>")).code, 250);
            assert.deepEqual(s.seen.mailValues.at(-1), {});
          }),
      );

      it(
        "refuses a bad parameter value with the validator's reply, an unoffered or undeclared one with 555",
        TEST,
        () =>
          session(s.port, async (c) => {
            const mails = s.seen.mailValues.length;
            assert.equal(
              (await c.command("MAIL FROM:<a@example.com> X-PRIORITY=high")).raw,
              "501 5.5.4 X-PRIORITY takes 0 to 9\r\n",
            );
            assert.equal(
              (await c.command("MAIL FROM:<a@example.com> X-HIDDEN")).raw,
              "555 5.5.4 Unsupported parameter X-HIDDEN\r\n",
            );
            assert.equal(
              (await c.command("MAIL FROM:<a@example.com> FOO=1")).raw,
              "555 5.5.4 Unsupported parameter FOO\r\n",
            );
            // A RCPT parameter is not a MAIL one, and the other way round.
            assert.equal(
              (await c.command("MAIL FROM:<a@example.com> X-TAG=red")).raw,
              "555 5.5.4 Unsupported parameter X-TAG\r\n",
            );
            assert.equal(s.seen.mailValues.length, mails, "no refused MAIL reached the hook");
            assert.equal((await c.command("MAIL FROM:<a@example.com> X-PRIORITY=0")).code, 250);
            assert.equal(
              (await c.command("RCPT TO:<b@example.com> X-PRIORITY=1")).raw,
              "555 5.5.4 Unsupported parameter X-PRIORITY\r\n",
            );
            assert.deepEqual(s.seen.mailValues.slice(mails), [{ priority: 0 }]);
          }),
      );

      it("takes mail from nodemailer next to the registered commands and parameters", TEST, async () => {
        const messages = s.seen.messages.length;
        await withMailer(s.port, { ignoreTLS: true }, async (mailer) => {
          const info = await mailer.sendMail({
            from: "a@example.com",
            to: "b@example.com",
            subject: "registry",
            text: "hello",
          });
          assert.deepEqual(info.accepted, ["b@example.com"]);
        });
        assert.deepEqual(s.seen.messages.slice(messages), [{
          values: {},
          recipients: [{ address: "<b@example.com>", values: {} }],
        }]);
      });
    });

    describe("with PIPELINING", () => {
      let s: Awaited<ReturnType<typeof mainServer>>;
      before(async () => s = await mainServer(transport, { pipeliningExtension: true }));
      after(() => s.close());

      it(
        "readBytes takes bytes sent with their command line (as BDAT); none of them runs",
        TEST,
        () =>
          session(s.port, async (c) => {
            await c.send(`XRAW ${BLOB.length}\r\n${BLOB}NOOP\r\n`);
            assert.equal(
              (await c.reply()).raw,
              `250 2.0.0 ${BLOB.length} octets: "ab\\r\\nQUIT\\r\\n.\\r\\nRSET\\r\\n"\r\n`,
            );
            assert.equal((await c.reply()).raw, "250 2.0.0 OK\r\n");
            assert.equal(c.closed, false);
          }),
      );

      it(
        "closes with close() once its reply is sent; commands pipelined behind it are not run",
        TEST,
        () =>
          session(s.port, async (c) => {
            const mails = s.seen.mailValues.length;
            await c.send("XBYE\r\nMAIL FROM:<a@example.com>\r\nNOOP\r\n");
            assert.equal((await c.reply()).raw, "221 2.0.0 Bye\r\n");
            await c.waitClosed();
            assert.equal(c.pending, "");
            assert.equal(s.seen.mailValues.length, mails);
          }),
      );
    });

    describe("readBytes without PIPELINING", () => {
      it(
        "without PIPELINING, takes the line and its bytes in one write too; none of the bytes runs",
        TEST,
        async () => {
          const s = await mainServer(transport);
          try {
            await session(s.port, async (c) => {
              // As with BDAT (which the session exempts from the PIPELINING check), the bytes come right behind
              // the line. Refusing the line as pipelined input would leave the bytes to be run as commands
              // (today: 500 5.5.0 for the line, then RSET from inside the bytes runs and answers 250).
              await c.send(`XRAW ${BLOB.length}\r\n${BLOB}`);
              assert.equal(
                (await c.reply()).raw,
                `250 2.0.0 ${BLOB.length} octets: "ab\\r\\nQUIT\\r\\n.\\r\\nRSET\\r\\n"\r\n`,
              );
              assert.equal((await c.command("NOOP")).raw, "250 2.0.0 OK\r\n");
              assert.equal(c.closed, false);
            });
          } finally {
            await s.close();
          }
        },
      );
    });

    describe("limits and hidden parameter keywords", () => {
      it(
        "ends the session with 421 when a line read by readLine() overruns ioBufferMaxSize, as for a command",
        TEST,
        async () => {
          const s = await mainServer(transport, { ioBufferMaxSize: 2000, maxCommandLineLength: 1000 });
          const overrun = "421 4.7.0 Line too long, closing transmission channel\r\n";
          try {
            await session(s.port, async (c) => {
              await c.send("x".repeat(5000));
              assert.equal((await c.reply()).raw, overrun);
              await c.waitClosed();
            });
            await session(s.port, async (c) => {
              assert.equal((await c.command("XSECRET")).raw, "334 Send the secret\r\n");
              // Today: 500 5.5.2, and the rest of the line, once its CRLF comes, is run as a command.
              await c.send("x".repeat(5000));
              assert.equal((await c.reply()).raw, overrun);
              await c.waitClosed();
            });
          } finally {
            await s.close();
          }
        },
      );

      it("bounds readLine() by ioCmdTimeout: 421 4.4.2 and close", TEST, async () => {
        const s = await mainServer(transport, { ioCmdTimeout: 0.3 });
        try {
          await session(s.port, async (c) => {
            assert.equal((await c.command("XSECRET")).raw, "334 Send the secret\r\n");
            assert.equal((await c.reply()).raw, "421 4.4.2 Timeout, closing transmission channel\r\n");
            await c.waitClosed();
          });
        } finally {
          await s.close();
        }
      });

      it("refuses a built-in parameter with 555 once ehloKeywords hides its keyword", TEST, async () => {
        const s = await startServer(transport, {
          internationalizationExtensions: true,
          ehloKeywords: (_ctx, keywords) => keywords.filter((k) => !/^(?:SIZE|8BITMIME|SMTPUTF8)\b/.test(k)),
        });
        try {
          await session(s.port, async (c) => {
            assert.deepEqual(await c.ehlo(), ["ENHANCEDSTATUSCODES"]);
            for (const param of ["BODY=8BITMIME", "SMTPUTF8", "SIZE=100"]) {
              const name = param.replace(/=.*/, "");
              assert.equal(
                (await c.command(`MAIL FROM:<a@example.com> ${param}`)).raw,
                `555 5.5.4 Unsupported parameter ${name}\r\n`,
              );
            }
          });
        } finally {
          await s.close();
        }
      });
    });

    describe("allowedBeforeTls under TLS_REQUIRED", () => {
      let s: RunningServer;
      before(async () =>
        s = await startServer(transport, {
          tlsMode: "TLS_REQUIRED",
          commands: [
            { name: "XPING", allowedBeforeTls: true, handler: (session) => session.reply(250, "2.0.0", "pong") },
            { name: "XTLSONLY", handler: (session) => session.reply(250, "2.0.0", "secret stuff") },
          ],
        })
      );
      after(() => s.close());

      it(
        "runs an allowedBeforeTls command before STARTTLS, refuses the others with 530, runs both after",
        TEST,
        () =>
          session(s.port, async (c) => {
            assert.equal((await c.command("XPING")).raw, "250 2.0.0 pong\r\n");
            assert.equal((await c.command("XTLSONLY")).raw, "530 5.7.0 Must issue a STARTTLS command first\r\n");
            await c.startTls(TRUST_ANY);
            await c.ehlo();
            assert.equal((await c.command("XTLSONLY")).raw, "250 2.0.0 secret stuff\r\n");
            assert.equal((await c.command("XPING")).raw, "250 2.0.0 pong\r\n");
          }),
      );
    });

    describe("disabledCommands", () => {
      let s: RunningServer;
      before(async () =>
        s = await startServer(transport, {
          disabledCommands: ["vrfy", "Expn", "XGONE"],
          commands: [{ name: "XGONE", handler: (session) => session.reply(250, "2.0.0", "never") }],
        })
      );
      after(() => s.close());

      it(
        "answers a disabled built-in or registered command with 502, whatever the case",
        TEST,
        () =>
          session(s.port, async (c) => {
            const refused = "502 5.5.1 Command not implemented\r\n";
            assert.equal((await c.command("VRFY postmaster")).raw, refused);
            assert.equal((await c.command("vrfy postmaster")).raw, refused);
            assert.equal((await c.command("EXPN list")).raw, refused);
            assert.equal((await c.command("xgone")).raw, refused);
            assert.equal((await c.command("NOOP")).raw, "250 2.0.0 OK\r\n");
          }),
      );

      it("does not list disabled commands in HELP", TEST, () =>
        session(s.port, async (c) => {
          const r = await c.command("HELP");
          assert.equal(r.code, 214);
          const listed = r.lines[0].replace(/^2\.0\.0 Commands: /, "").split(" ");
          assert.ok(listed.includes("NOOP"), r.raw);
          for (const verb of ["VRFY", "EXPN", "XGONE"]) assert.ok(!listed.includes(verb), `${verb} in ${r.raw}`);
        }));

      it("answers HELP itself with 502 when it is disabled", TEST, async () => {
        const h = await startServer(transport, { disabledCommands: ["HELP"] });
        try {
          await session(h.port, async (c) => {
            assert.equal((await c.command("HELP")).raw, "502 5.5.1 Command not implemented\r\n");
          });
        } finally {
          await h.close();
        }
      });
    });

    describe("ehloKeywords", () => {
      const logs: string[] = [];
      let s: RunningServer;
      let encrypted: boolean[] = [];
      before(async () =>
        s = await startServer(transport, {
          tlsMode: "TLS_OPTIONAL",
          authMode: "AUTH_OPTIONAL",
          allowInsecureAuth: true,
          loggerSeverity: "error",
          onLoggingEvent(_ctx, _severity, msg) {
            logs.push(msg);
          },
          ehloKeywords(ctx, keywords) {
            switch (ctx.server.remoteIp) {
              case "127.0.0.2": // this client sees neither STARTTLS nor AUTH (changed in place)
                keywords.splice(0, keywords.length, ...keywords.filter((k) => !/^(?:STARTTLS|AUTH)\b/.test(k)));
                return;
              case "127.0.0.3":
                throw new Error("keyword source down");
              default:
                return [...keywords, "X-SITE v1 beta", "BAD\r\n250 INJECTED", "", "X-LF\n", "-X", "X-SITE2 a\tb"];
            }
          },
          onMessageDataEvent(ctx) {
            encrypted.push(ctx.server.encrypted !== null);
          },
        })
      );
      after(() => s.close());

      const BUILTIN = ["SIZE 26214400", "ENHANCEDSTATUSCODES", "STARTTLS", "AUTH PLAIN LOGIN"];

      it(
        "adds a keyword line, and leaves out invalid lines with an error log",
        TEST,
        () =>
          session(s.port, async (c) => {
            const before = logs.length;
            const r = await c.command("EHLO client.example");
            assert.equal(
              r.raw,
              "250-127.0.0.1 at your service!\r\n" + BUILTIN.map((k) => `250-${k}\r\n`).join("") +
                "250 X-SITE v1 beta\r\n",
            );
            const errors = logs.slice(before);
            for (const line of ["BAD\r\n250 INJECTED", "", "X-LF\n", "-X", "X-SITE2 a\tb"]) {
              assert.ok(
                errors.includes(`ehloKeywords: invalid keyword line ${JSON.stringify(line)} left out`),
                `${JSON.stringify(line)} in ${JSON.stringify(errors)}`,
              );
            }
            // STARTTLS and AUTH are still there for this client.
            const auth = await c.command("AUTH PLAIN");
            assert.equal(auth.raw, "334 \r\n");
            assert.equal((await c.command("*")).raw, "501 5.7.0 Authentication canceled\r\n");
            await c.startTls(TRUST_ANY);
            assert.ok((await c.ehlo()).includes("X-SITE v1 beta"));
          }),
      );

      it("hides STARTTLS and AUTH from one client (then 502) while another still sees them", TEST, async () => {
        await session(s.port, async (c) => {
          const keywords = await c.ehlo();
          assert.deepEqual(keywords, ["SIZE 26214400", "ENHANCEDSTATUSCODES"]);
          assert.equal((await c.command("STARTTLS")).raw, "502 5.5.1 Command not implemented\r\n");
          assert.equal((await c.command("AUTH PLAIN")).raw, "502 5.5.1 Command not implemented\r\n");
          assert.equal((await c.command("NOOP")).raw, "250 2.0.0 OK\r\n");
        }, "127.0.0.2");
        await session(s.port, async (c) => {
          const keywords = await c.ehlo();
          assert.ok(keywords.includes("STARTTLS") && keywords.includes("AUTH PLAIN LOGIN"), keywords.join());
        });
      });

      it("offers the built-in list when ehloKeywords throws, and logs it", TEST, () =>
        session(s.port, async (c) => {
          assert.deepEqual(await c.ehlo(), BUILTIN);
          assert.ok(
            logs.includes("ehloKeywords failed: keyword source down: the built-in list is offered"),
            JSON.stringify(logs),
          );
          await c.startTls(TRUST_ANY);
        }, "127.0.0.3"));

      it("nodemailer sends over STARTTLS where it is offered, in plaintext where it is hidden", TEST, async () => {
        encrypted = [];
        const send = (localAddress: string) =>
          withMailer(s.port, { localAddress, tls: TRUST_ANY }, async (mailer) => {
            const info = await mailer.sendMail({ from: "a@example.com", to: "b@example.com", text: localAddress });
            assert.deepEqual(info.accepted, ["b@example.com"]);
          });
        await send("127.0.0.1");
        await send("127.0.0.2");
        assert.deepEqual(encrypted, [true, false]);
      });
    });
  });
}

describe("registry options are checked at construction", () => {
  const handler = () => {};
  const apply = () => {};
  const cases: [string, MidiSmtpServerOptions, RegExp][] = [
    ["commands not an array", { commands: {} as never }, /commands must be an array/],
    ["an empty command name", { commands: [{ name: "", handler }] }, /invalid command name ""/],
    ["a command name with a space", { commands: [{ name: "SI TE", handler }] }, /invalid command name "SI TE"/],
    ["a command name starting with a digit", { commands: [{ name: "1SITE", handler }] }, /invalid command name/],
    ["a command name with CRLF", { commands: [{ name: "SITE\r\n", handler }] }, /invalid command name/],
    ["a command name over 32 chars", { commands: [{ name: "X".repeat(33), handler }] }, /invalid command name/],
    ["a command name not a string", { commands: [{ name: 42 as never, handler }] }, /invalid command name 42/],
    ["a null command", { commands: [null as never] }, /invalid command name undefined/],
    ["a command without a handler", { commands: [{ name: "SITE" } as never] }, /SITE needs a handler function/],
    ["disabledCommands not an array", { disabledCommands: "VRFY" as never }, /disabledCommands must be an array/],
    ["a bad disabled command name", { disabledCommands: ["VR FY"] }, /disabledCommands must be an array/],
    ["ehloKeywords not a function", { ehloKeywords: ["X"] as never }, /ehloKeywords must be a function/],
    ["esmtpParameters not an array", { esmtpParameters: {} as never }, /esmtpParameters must be an array/],
    [
      "a parameter name with a space",
      { esmtpParameters: [{ name: "X PRIO", command: "MAIL", apply }] },
      /invalid parameter name "X PRIO"/,
    ],
    [
      "a parameter name with '='",
      { esmtpParameters: [{ name: "X=1", command: "MAIL", apply }] },
      /invalid parameter name "X=1"/,
    ],
    [
      "a parameter for DATA",
      { esmtpParameters: [{ name: "X-P", command: "DATA" as never, apply }] },
      /X-P must say command "MAIL" or "RCPT"/,
    ],
    [
      "a parameter without apply",
      { esmtpParameters: [{ name: "X-P", command: "RCPT" } as never] },
      /X-P needs an apply function/,
    ],
  ];
  for (const [what, options, message] of cases) {
    it(`refuses ${what} with a TypeError`, () => {
      assert.throws(() => new MidiSmtpServer(options), (err: unknown) => {
        assert.ok(err instanceof TypeError, String(err));
        assert.match(err.message, message);
        return true;
      });
    });
  }

  it("accepts names in any case, and copies the lists", () => {
    const commands: CommandDefinition[] = [{ name: "x-Site", handler }];
    const server = new MidiSmtpServer({
      commands,
      disabledCommands: ["vrfy"],
      esmtpParameters: [{ name: "x-prio", command: "MAIL", apply }],
    });
    assert.ok(server);
  });
});
