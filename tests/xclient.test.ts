/**
 * XCLIENT and XFORWARD (Postfix) in the session, over real sockets with
 * every transport of the running runtime: offered and accepted only from
 * `xclientTrustedSources` (a client on 127.0.0.2 is not trusted), the new
 * 220 and the rerun connect hook after XCLIENT, the new client's facts in
 * every later hook, trust recomputed on the new ADDR, the refusals (501, 503,
 * 550, the connect hook's own), XFORWARD's per-transaction values, and the
 * per-client MAIL rate counted on the XCLIENT address.
 *
 *   deno test -A tests/xclient.test.ts
 *   bun test ./tests/xclient.test.ts
 *   node --import tsx --test tests/xclient.test.ts
 *
 * Unix-socket clients (`"unix"` in `xclientTrustedSources`) are covered by
 * the Unix socket suites; here only the option itself is checked.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  MidiSmtpServer,
  type MidiSmtpServerOptions,
  Smtpd550Exception,
  type SmtpdContext,
  type XclientInfo,
  type XforwardInfo,
} from "../mod.ts";
import { resolveOptions } from "../src/options.ts";
import type { Transport } from "../src/transport/types.ts";
import { RawClient, type RunningServer, startServer, testOptions, TRANSPORTS, withTimeout } from "./helpers.ts";
import { scratchFolder } from "./scratch.ts";

/** Per-test limit for the runner; every wait inside a test has its own, shorter limit. */
const TEST = { timeout: 20_000 };

const scratch = scratchFolder("xclient");
const CERT = scratch.selfSigned("leaf", { cn: "localhost", san: "DNS:localhost,IP:127.0.0.1" });
/** Client TLS options trusting only our certificate. */
const TRUST = { ca: CERT.cert, servername: "localhost" } as const;

/** A second loopback address: a client connecting from it is outside `127.0.0.1/32`. */
const UNTRUSTED_SOURCE = "127.0.0.2";
/** The client address whose (re)connection the connect hook refuses. */
const REFUSED_IP = "192.0.2.66";

const XCLIENT_LINE = "XCLIENT NAME ADDR PORT PROTO HELO LOGIN DESTADDR DESTPORT";
const XFORWARD_LINE = "XFORWARD NAME ADDR PORT PROTO HELO IDENT SOURCE";
const NO_AUTHORIZATION = "550 5.7.0 Error: insufficient authorization";
const IN_TRANSACTION = "503 5.5.1 Error: MAIL transaction in progress";
const GREETING = "220 127.0.0.1 says welcome!";

/** What a hook saw of `ctx.server` (copied: the session changes it later). */
interface ServerSnapshot {
  remoteIp: string;
  remoteHost: string;
  remotePort: number;
  localIp: string;
  localPort: number;
  helo: string;
  heloMode: string;
  authenticated: boolean;
  authenticationId: string;
  authorizationId: string;
  xclient: XclientInfo | null;
}

function snapshot(ctx: SmtpdContext): ServerSnapshot {
  const s = ctx.server;
  return {
    remoteIp: s.remoteIp,
    remoteHost: s.remoteHost,
    remotePort: s.remotePort,
    localIp: s.localIp,
    localPort: s.localPort,
    helo: s.helo,
    heloMode: s.heloMode,
    authenticated: s.authenticated instanceof Date,
    authenticationId: s.authenticationId,
    authorizationId: s.authorizationId,
    xclient: s.xclient === null ? null : { ...s.xclient },
  };
}

/** A started server and what its hooks saw. */
interface XclientServer extends RunningServer {
  /** Every onConnectEvent call, in order (a session's XCLIENT adds one). */
  connects: ServerSnapshot[];
  /** What the `XPROBE` command (answered by the unknown-command hook) saw, in order. */
  probes: ServerSnapshot[];
  /** Every accepted MAIL's view of the client. */
  mails: ServerSnapshot[];
  /** Every delivered message: the client as seen at the end of DATA, and the XFORWARD values. */
  messages: Array<{ server: ServerSnapshot; xforward: XforwardInfo | null }>;
}

/**
 * Runs `body` with a server that trusts XCLIENT/XFORWARD from 127.0.0.1 only
 * (unless `options` say otherwise), records what its hooks see, refuses
 * {@link REFUSED_IP} in onConnectEvent and senders starting with `refused`
 * in onMailFromEvent, and answers `XPROBE` (an unknown
 * command) with 250 after recording the session's client; always stops it.
 */
async function withServer(
  transport: Transport,
  options: MidiSmtpServerOptions,
  body: (srv: XclientServer) => Promise<void>,
): Promise<void> {
  const connects: ServerSnapshot[] = [];
  const probes: ServerSnapshot[] = [];
  const mails: ServerSnapshot[] = [];
  const messages: XclientServer["messages"] = [];
  const running = await startServer(transport, {
    xclientTrustedSources: ["127.0.0.1/32"],
    softErrorLimit: null,
    maxBadCommands: 1000,
    onConnectEvent(ctx) {
      connects.push(snapshot(ctx));
      if (ctx.server.remoteIp === REFUSED_IP) {
        throw new Smtpd550Exception(undefined, `Client ${REFUSED_IP} refused`, "5.7.1");
      }
    },
    onProcessLineUnknownEvent(ctx, line) {
      if (line !== "XPROBE") return;
      probes.push(snapshot(ctx));
      return "250 2.0.0 probed";
    },
    onMailFromEvent(ctx, from) {
      if (from.startsWith("<refused")) throw new Smtpd550Exception(undefined, "Sender refused", "5.7.1");
      mails.push(snapshot(ctx));
    },
    onMessageDataEvent(ctx) {
      const xforward = ctx.envelope.xforward;
      messages.push({ server: snapshot(ctx), xforward: xforward === null ? null : { ...xforward } });
    },
    ...options,
  });
  try {
    await withTimeout(body({ ...running, connects, probes, mails, messages }), 15_000, "test body");
  } finally {
    await withTimeout(running.close(), 5000, "server.stop()");
  }
}

/**
 * Connects (from `localAddress` if given), reads the 220, sends EHLO; returns
 * the client, the keywords and the client's port (read now: a closed socket has none).
 */
async function connect(
  port: number,
  localAddress?: string,
): Promise<{ client: RawClient; keywords: string[]; clientPort: number }> {
  const client = await RawClient.connect(port, "127.0.0.1", localAddress);
  try {
    assert.equal((await client.reply()).raw, GREETING + "\r\n");
    return { client, keywords: await client.ehlo("proxy.example"), clientPort: client.localPort };
  } catch (err) {
    client.close();
    throw err;
  }
}

/** Sends `line` and asserts the exact reply. */
async function exchange(client: RawClient, line: string, expected: string): Promise<void> {
  const r = await client.command(line);
  assert.equal(r.raw, expected + "\r\n", line);
}

/** One whole transaction; asserts every reply. */
async function transaction(client: RawClient): Promise<void> {
  await exchange(client, "MAIL FROM:<a@example.com>", "250 2.1.0 OK");
  await exchange(client, "RCPT TO:<b@example.com>", "250 2.1.5 OK");
  await exchange(client, "DATA", '354 Enter message, ending with "." on a line by itself');
  await exchange(client, "Subject: xclient\r\n\r\nbody\r\n.", "250 2.0.0 Requested mail action okay, completed");
}

/** The snapshot of a client that has not used XCLIENT: the socket's own addresses. */
function original(clientPort: number, serverPort: number, more: Partial<ServerSnapshot> = {}): ServerSnapshot {
  return {
    remoteIp: "127.0.0.1",
    remoteHost: "127.0.0.1",
    remotePort: clientPort,
    localIp: "127.0.0.1",
    localPort: serverPort,
    helo: "",
    heloMode: "",
    authenticated: false,
    authenticationId: "",
    authorizationId: "",
    xclient: null,
    ...more,
  };
}

for (const transport of TRANSPORTS) {
  describe(`XCLIENT and XFORWARD (${transport.name} transport)`, () => {
    it("offered to a trusted client only; an untrusted one gets 550 5.7.0 for both", TEST, async () => {
      await withServer(transport, {}, async (s) => {
        const trusted = await connect(s.port);
        trusted.client.close();
        assert.deepEqual(trusted.keywords.slice(-2), [XCLIENT_LINE, XFORWARD_LINE]);

        const { client, keywords } = await connect(s.port, UNTRUSTED_SOURCE);
        try {
          assert.ok(!keywords.some((k) => /^X(CLIENT|FORWARD)\b/.test(k)), keywords.join("|"));
          await exchange(client, "XCLIENT ADDR=192.0.2.7", NO_AUTHORIZATION);
          // Refused before its arguments are looked at: the untrusted client learns nothing from a 501.
          await exchange(client, "XCLIENT FOO=bar", NO_AUTHORIZATION);
          await exchange(client, "xclient NAME=x.example", NO_AUTHORIZATION);
          await exchange(client, "XFORWARD NAME=x.example", NO_AUTHORIZATION);
          await transaction(client);
        } finally {
          client.close();
        }
        // No new client: the connect hook ran once per connection, and the message came from 127.0.0.2.
        assert.equal(s.connects.length, 2);
        assert.equal(s.messages.length, 1);
        assert.equal(s.messages[0].server.remoteIp, UNTRUSTED_SOURCE);
        assert.equal(s.messages[0].server.xclient, null);
        assert.equal(s.messages[0].xforward, null);
      });
    });

    it("without xclientTrustedSources nobody is trusted", TEST, async () => {
      await withServer(transport, { xclientTrustedSources: [] }, async (s) => {
        const { client, keywords } = await connect(s.port);
        try {
          assert.ok(!keywords.some((k) => /^X(CLIENT|FORWARD)\b/.test(k)), keywords.join("|"));
          await exchange(client, "XCLIENT ADDR=192.0.2.7", NO_AUTHORIZATION);
          await exchange(client, "XFORWARD ADDR=192.0.2.7", NO_AUTHORIZATION);
        } finally {
          client.close();
        }
      });
    });

    it(
      "XCLIENT NAME ADDR PORT HELO LOGIN: a new 220, the connect hook again, later hooks see the new client",
      TEST,
      async () => {
        await withServer(transport, {}, async (s) => {
          const { client, clientPort } = await connect(s.port);
          try {
            await exchange(
              client,
              "XCLIENT NAME=mail.example ADDR=192.0.2.7 PORT=4242 HELO=client.example LOGIN=bob",
              GREETING,
            );
            assert.equal(s.connects.length, 2, "onConnectEvent ran again for the new client");
            assert.deepEqual(s.connects[0], original(clientPort, s.port));
            const xclient = {
              name: "mail.example",
              addr: "192.0.2.7",
              port: 4242,
              helo: "client.example",
              login: "bob",
            };
            const second = s.connects[1];
            assert.deepEqual(
              [second.remoteIp, second.remoteHost, second.remotePort, second.localIp, second.localPort, second.xclient],
              ["192.0.2.7", "mail.example", 4242, "127.0.0.1", s.port, xclient],
            );
            // Straight after the 220: HELO= and LOGIN= are the session's (the client has not sent EHLO again yet).
            await exchange(client, "XPROBE", "250 2.0.0 probed");
            assert.deepEqual(
              s.probes[0],
              original(clientPort, s.port, {
                remoteIp: "192.0.2.7",
                remoteHost: "mail.example",
                remotePort: 4242,
                helo: "client.example",
                heloMode: "EHLO",
                authenticated: true,
                authenticationId: "bob",
                authorizationId: "bob",
                xclient,
              }),
            );
            // Trust is judged on the new ADDR: 192.0.2.7 is not trusted.
            const keywords = await client.ehlo("client.example");
            assert.ok(!keywords.some((k) => /^X(CLIENT|FORWARD)\b/.test(k)), keywords.join("|"));
            await exchange(client, "XCLIENT NAME=again.example", NO_AUTHORIZATION);
            await exchange(client, "XFORWARD NAME=again.example", NO_AUTHORIZATION);
            await transaction(client);
          } finally {
            client.close();
          }
          assert.equal(s.connects.length, 2, "the refused second XCLIENT did not restart the session");
          const seen = s.messages[0].server;
          assert.deepEqual(seen, s.mails[0]);
          assert.deepEqual(
            [seen.remoteIp, seen.remoteHost, seen.remotePort, seen.helo, seen.heloMode],
            ["192.0.2.7", "mail.example", 4242, "client.example", "EHLO"],
          );
          // LOGIN= outlives the EHLO that follows (as an AUTH would).
          assert.deepEqual([seen.authenticated, seen.authenticationId, seen.authorizationId], [true, "bob", "bob"]);
        });
      },
    );

    it("without HELO= and LOGIN=, the restart forgets the earlier EHLO and AUTH state", TEST, async () => {
      await withServer(transport, {}, async (s) => {
        const { client, clientPort } = await connect(s.port);
        try {
          await exchange(client, "XCLIENT ADDR=192.0.2.8", GREETING);
          await exchange(client, "XPROBE", "250 2.0.0 probed");
          // No EHLO since the 220: no mail yet.
          await exchange(client, "MAIL FROM:<a@example.com>", "503 5.5.1 Send HELO/EHLO first");
          await client.ehlo("second.example");
          await transaction(client);
        } finally {
          client.close();
        }
        const probe = s.probes[0];
        assert.deepEqual(
          [probe.remoteIp, probe.remoteHost, probe.remotePort, probe.helo, probe.heloMode, probe.authenticated],
          ["192.0.2.8", "192.0.2.8", clientPort, "", "", false],
        );
        assert.deepEqual(probe.xclient, { addr: "192.0.2.8" });
        assert.equal(s.messages[0].server.helo, "second.example");
      });
    });

    it(
      "attributes over several XCLIENTs: trusted until ADDR; IPV6:, [UNAVAILABLE], DESTADDR/DESTPORT",
      TEST,
      async () => {
        await withServer(transport, {}, async (s) => {
          const { client, clientPort } = await connect(s.port);
          try {
            await exchange(client, "XCLIENT DESTADDR=IPV6:2001:DB8::25 DESTPORT=25 PROTO=esmtp", GREETING);
            // No ADDR yet: still 127.0.0.1, still trusted.
            const keywords = await client.ehlo();
            assert.ok(keywords.includes(XCLIENT_LINE), keywords.join("|"));
            await exchange(client, "XCLIENT NAME=[UNAVAILABLE] ADDR=ipv6:2001:db8:0:0::7 PORT=[TEMPUNAVAIL]", GREETING);
            assert.ok(!(await client.ehlo()).includes(XCLIENT_LINE));
            await exchange(client, "XCLIENT ADDR=192.0.2.9", NO_AUTHORIZATION);
            await transaction(client);
          } finally {
            client.close();
          }
          assert.equal(s.connects.length, 3);
          const [, first, second] = s.connects;
          assert.deepEqual(
            [first.remoteIp, first.remotePort, first.localIp, first.localPort],
            ["127.0.0.1", clientPort, "2001:db8::25", 25],
          );
          assert.deepEqual(first.xclient, { destaddr: "2001:db8::25", destport: 25, proto: "ESMTP" });
          // The later XCLIENT adds to the earlier one's attributes; [UNAVAILABLE] and [TEMPUNAVAIL] are null.
          assert.deepEqual(second.xclient, {
            destaddr: "2001:db8::25",
            destport: 25,
            proto: "ESMTP",
            name: null,
            addr: "2001:db8::7",
            port: null,
          });
          // NAME=[TEMPUNAVAIL]: Postfix's "unknown"; no port: 0.
          assert.deepEqual(
            [second.remoteIp, second.remoteHost, second.remotePort, second.localIp, second.localPort],
            ["2001:db8::7", "unknown", 0, "2001:db8::25", 25],
          );
          assert.equal(s.messages[0].server.remoteIp, "2001:db8::7");
        });
      },
    );

    it("ADDR=[UNAVAILABLE]: an unknown client, no longer trusted, and mail still works", TEST, async () => {
      await withServer(transport, {}, async (s) => {
        const { client } = await connect(s.port);
        try {
          await exchange(client, "XCLIENT ADDR=[UNAVAILABLE] NAME=[unavailable]", GREETING);
          const keywords = await client.ehlo();
          assert.ok(!keywords.includes(XCLIENT_LINE), keywords.join("|"));
          await exchange(client, "XCLIENT ADDR=192.0.2.9", NO_AUTHORIZATION);
          await transaction(client);
        } finally {
          client.close();
        }
        const seen = s.connects[1];
        assert.deepEqual(seen.xclient, { addr: null, name: null });
        assert.equal(seen.remoteIp, "");
        assert.equal(s.messages[0].server.remoteIp, "");
      });
    });

    it("XCLIENT inside a transaction gets 503; bad attributes 501; neither changes the session", TEST, async () => {
      await withServer(transport, {}, async (s) => {
        const { client, clientPort } = await connect(s.port);
        try {
          await exchange(client, "MAIL FROM:<a@example.com>", "250 2.1.0 OK");
          await exchange(client, "XCLIENT ADDR=192.0.2.7", IN_TRANSACTION);
          await exchange(client, "RCPT TO:<b@example.com>", "250 2.1.5 OK");
          await exchange(client, "XCLIENT ADDR=192.0.2.7", IN_TRANSACTION);
          await exchange(client, "XFORWARD ADDR=192.0.2.7", IN_TRANSACTION);
          await exchange(client, "RSET", "250 2.0.0 OK");
          const bad: Array<[string, string]> = [
            ["XCLIENT", "501 5.5.4 Syntax: XCLIENT attribute=value [attribute=value ...]"],
            ["XCLIENT FOO=bar", "501 5.5.4 Bad XCLIENT attribute name: FOO"],
            ["XCLIENT REVERSE_NAME=x.example", "501 5.5.4 Bad XCLIENT attribute name: REVERSE_NAME"],
            ["XCLIENT ADDR", "501 5.5.4 Error: attribute=value expected"],
            ["XCLIENT ADDR=", "501 5.5.4 Error: attribute=value expected"],
            ["XCLIENT ADDR=192.0.2.300", "501 5.5.4 Bad ADDR syntax: 192.0.2.300"],
            ["XCLIENT ADDR=IPV6:192.0.2.1", "501 5.5.4 Bad ADDR syntax: IPV6:192.0.2.1"],
            ["XCLIENT PORT=65536", "501 5.5.4 Bad PORT syntax: 65536"],
            ["XCLIENT PROTO=LMTP", "501 5.5.4 Bad PROTO syntax: LMTP"],
            ["XCLIENT NAME=192.0.2.1", "501 5.5.4 Bad NAME syntax: 192.0.2.1"],
            ["XCLIENT ADDR=192.0.2.7 ADDR=192.0.2.8", "501 5.5.4 Bad XCLIENT attribute name: ADDR"],
            ["XCLIENT LOGIN=" + "x".repeat(256), "501 5.5.4 Error: attribute value too long"],
            // Checked as a whole before anything is applied: the good NAME does not stick.
            ["XCLIENT NAME=good.example ADDR=bogus", "501 5.5.4 Bad ADDR syntax: bogus"],
            // An encoded CRLF (a log or header injection) is refused once decoded; the reply shows it masked.
            ["XCLIENT HELO=x+0D+0AReceived:", "501 5.5.4 Bad HELO syntax: x??Received:"],
            ["XFORWARD LOGIN=bob", "501 5.5.4 Bad XFORWARD attribute name: LOGIN"],
            ["XFORWARD SOURCE=NEARBY", "501 5.5.4 Bad SOURCE syntax: NEARBY"],
            ["XFORWARD", "501 5.5.4 Syntax: XFORWARD attribute=value [attribute=value ...]"],
          ];
          for (const [line, reply] of bad) await exchange(client, line, reply);
          // Still the same client, still trusted.
          assert.ok((await client.ehlo()).includes(XCLIENT_LINE));
          await transaction(client);
        } finally {
          client.close();
        }
        assert.equal(s.connects.length, 1, "no XCLIENT restarted the session");
        assert.deepEqual(
          s.messages[0].server,
          original(clientPort, s.port, { helo: "client.example", heloMode: "EHLO" }),
        );
        assert.equal(s.messages[0].xforward, null);
      });
    });

    it("TLS_REQUIRED: XCLIENT is allowed before STARTTLS (XFORWARD and MAIL are not)", TEST, async () => {
      const options: MidiSmtpServerOptions = { tlsMode: "TLS_REQUIRED", tlsCert: CERT.cert, tlsKey: CERT.key };
      await withServer(transport, options, async (s) => {
        const { client, keywords } = await connect(s.port);
        try {
          assert.ok(keywords.includes("STARTTLS") && keywords.includes(XCLIENT_LINE), keywords.join("|"));
          const mustTls = "530 5.7.0 Must issue a STARTTLS command first";
          await exchange(client, "XFORWARD NAME=up.example", mustTls);
          await exchange(client, "XCLIENT NAME=mail.example ADDR=192.0.2.7 LOGIN=bob", GREETING);
          // The new client still has to start TLS before mail.
          await client.ehlo("client.example");
          await exchange(client, "MAIL FROM:<a@example.com>", mustTls);
          await client.startTls(TRUST);
          const afterTls = await client.ehlo("client.example");
          assert.ok(!afterTls.includes(XCLIENT_LINE), afterTls.join("|"));
          await transaction(client);
        } finally {
          client.close();
        }
        const seen = s.messages[0].server;
        assert.deepEqual(
          [seen.remoteIp, seen.remoteHost, seen.helo],
          ["192.0.2.7", "mail.example", "client.example"],
        );
        // STARTTLS forgets authentication (RFC 3207 4.2), LOGIN= included.
        assert.equal(seen.authenticated, false);
      });
    });

    it("onConnectEvent refusing the new client: its reply, then the connection closes", TEST, async () => {
      await withServer(transport, {}, async (s) => {
        const { client } = await connect(s.port);
        try {
          await exchange(
            client,
            `XCLIENT ADDR=${REFUSED_IP} NAME=bad.example`,
            `550 5.7.1 Client ${REFUSED_IP} refused`,
          );
          await client.waitClosed();
          assert.equal(client.pending, "", "nothing after the refusal");
        } finally {
          client.close();
        }
        assert.equal(s.connects.length, 2);
        assert.equal(s.connects[1].remoteIp, REFUSED_IP);
      });
    });

    it("XFORWARD: 250, values in envelope.xforward for the next transaction only; RSET clears them", TEST, async () => {
      await withServer(transport, {}, async (s) => {
        const { client, clientPort } = await connect(s.port);
        try {
          await exchange(client, "XFORWARD NAME=upstream.example ADDR=IPV6:2001:db8::9", "250 2.0.0 Ok");
          // Later ones add to (and overwrite) what the earlier ones said.
          await exchange(client, "XFORWARD IDENT=4Bv2Lq0x1Zz1 SOURCE=remote NAME=up.example", "250 2.0.0 Ok");
          await transaction(client);
          // The next transaction has none.
          await transaction(client);
          // RSET drops them.
          await exchange(client, "XFORWARD PROTO=ESMTP HELO=helo.example PORT=2525", "250 2.0.0 Ok");
          await exchange(client, "RSET", "250 2.0.0 OK");
          await transaction(client);
          // Sent between the previous transaction and this one's MAIL: they belong to this one.
          await exchange(client, "XFORWARD PROTO=QMQP PORT=[UNAVAILABLE]", "250 2.0.0 Ok");
          await transaction(client);
        } finally {
          client.close();
        }
        const unset = { name: null, addr: null, port: null, proto: null, helo: null, ident: null, source: null };
        assert.deepEqual(s.messages.map((m) => m.xforward), [
          { ...unset, name: "up.example", addr: "2001:db8::9", ident: "4Bv2Lq0x1Zz1", source: "REMOTE" },
          null,
          null,
          { ...unset, proto: "QMQP" },
        ]);
        // Logging data only: the session's client is unchanged.
        for (const m of s.messages) {
          assert.deepEqual(m.server, original(clientPort, s.port, { helo: "proxy.example", heloMode: "EHLO" }));
        }
        assert.equal(s.connects.length, 1);
      });
    });

    it("XFORWARD values outlive a refused MAIL: no transaction started, so none ended", TEST, async () => {
      await withServer(transport, {}, async (s) => {
        const { client } = await connect(s.port);
        try {
          await exchange(client, "XFORWARD NAME=up.example IDENT=Q1", "250 2.0.0 Ok");
          // Refused for a parameter, then by the hook: neither is the end of a transaction (Postfix resets
          // XFORWARD only at the end of DATA/BDAT or at RSET).
          await exchange(client, "MAIL FROM:<a@example.com> SIZE=x", "501 5.5.4 Syntax error in SIZE parameter");
          await exchange(client, "MAIL FROM:<refused@example.com>", "550 5.7.1 Sender refused");
          await transaction(client);
        } finally {
          client.close();
        }
        const unset = { name: null, addr: null, port: null, proto: null, helo: null, ident: null, source: null };
        assert.deepEqual(s.messages[0].xforward, { ...unset, name: "up.example", ident: "Q1" });
      });
    });

    it(
      "commands pipelined behind XCLIENT wait for its (async) connect hook and meet the new client",
      TEST,
      async () => {
        const connected: string[] = [];
        const options: MidiSmtpServerOptions = {
          pipeliningExtension: true,
          async onConnectEvent(ctx) {
            await new Promise((resolve) => setTimeout(resolve, 50));
            connected.push(ctx.server.remoteIp);
          },
        };
        await withServer(transport, options, async (s) => {
          const { client } = await connect(s.port);
          try {
            await client.send(
              "XCLIENT ADDR=192.0.2.7 NAME=a.example\r\nEHLO a.example\r\nMAIL FROM:<a@example.com>\r\n" +
                "XCLIENT ADDR=192.0.2.8\r\nRSET\r\n",
            );
            assert.equal((await client.reply()).raw, GREETING + "\r\n");
            const ehlo = await client.reply();
            assert.equal(ehlo.code, 250);
            assert.ok(!ehlo.lines.includes(XCLIENT_LINE), ehlo.raw);
            assert.equal((await client.reply()).raw, "250 2.1.0 OK\r\n");
            // Inside a transaction, and from an untrusted client now: the trust check answers first.
            assert.equal((await client.reply()).raw, NO_AUTHORIZATION + "\r\n");
            assert.equal((await client.reply()).raw, "250 2.0.0 OK\r\n");
          } finally {
            client.close();
          }
          assert.deepEqual(connected, ["127.0.0.1", "192.0.2.7"]);
          assert.equal(s.mails[0].remoteIp, "192.0.2.7");
          assert.equal(s.mails[0].remoteHost, "a.example");
        });
      },
    );

    it("maxMessageRatePerIp counts MAIL per XCLIENT address, not per proxy connection", TEST, async () => {
      await withServer(transport, { maxMessageRatePerIp: 1 }, async (s) => {
        const tooMuch = "450 4.7.1 Too much mail from your address, try again later";
        /** Connects from 127.0.0.1, presents `addr` (unless undefined), EHLO; returns the client. */
        const as = async (addr?: string) => {
          const { client } = await connect(s.port);
          if (addr !== undefined) {
            await exchange(client, `XCLIENT ADDR=${addr}`, GREETING);
            await client.ehlo();
          }
          return client;
        };
        const first = await as("192.0.2.7");
        try {
          await exchange(first, "MAIL FROM:<a@example.com>", "250 2.1.0 OK");
          await exchange(first, "RSET", "250 2.0.0 OK");
          await exchange(first, "MAIL FROM:<a@example.com>", tooMuch);
        } finally {
          first.close();
        }
        // The proxy's own address and another XCLIENT address have their own counts.
        for (const addr of [undefined, "192.0.2.8"]) {
          const client = await as(addr);
          try {
            await exchange(client, "MAIL FROM:<a@example.com>", "250 2.1.0 OK");
          } finally {
            client.close();
          }
        }
        // A new proxy connection for the same client address is still over its rate.
        const again = await as("192.0.2.7");
        try {
          await exchange(again, "MAIL FROM:<a@example.com>", tooMuch);
        } finally {
          again.close();
        }
      });
    });

    it(
      'xclientTrustedSources: "unix" is accepted and trusts no TCP client; a wider CIDR trusts 127.0.0.2',
      TEST,
      async () => {
        const resolved = resolveOptions({ xclientTrustedSources: ["unix", "10.0.0.0/8"] });
        assert.equal(resolved.xclientTrustsUnix, true);
        assert.deepEqual(resolved.xclientTrustedSources.entries, ["10.0.0.0/8"]);
        assert.equal(resolveOptions({}).xclientTrustsUnix, false);
        assert.throws(
          () => new MidiSmtpServer(testOptions(transport, { xclientTrustedSources: ["not-a-cidr"] })),
          TypeError,
        );

        await withServer(transport, { xclientTrustedSources: ["unix"] }, async (s) => {
          const { client, keywords } = await connect(s.port);
          try {
            assert.ok(!keywords.includes(XCLIENT_LINE), keywords.join("|"));
            await exchange(client, "XCLIENT ADDR=192.0.2.7", NO_AUTHORIZATION);
          } finally {
            client.close();
          }
        });
        await withServer(transport, { xclientTrustedSources: ["127.0.0.0/8"] }, async (s) => {
          const { client, keywords } = await connect(s.port, UNTRUSTED_SOURCE);
          try {
            assert.ok(keywords.includes(XCLIENT_LINE), keywords.join("|"));
            await exchange(client, "XCLIENT ADDR=192.0.2.7", GREETING);
          } finally {
            client.close();
          }
          assert.equal(s.connects[1].remoteIp, "192.0.2.7");
        });
      },
    );
  });
}
