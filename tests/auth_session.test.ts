/**
 * SMTP AUTH (RFC 4954) in sessions over real sockets, with every transport of
 * the running runtime: advertising, the 334 exchanges on the wire, the hook,
 * failures and limits, AUTH_REQUIRED, logging, custom mechanisms, and
 * nodemailer with every built-in mechanism over STARTTLS.
 *
 *   deno test -A tests/auth_session.test.ts
 *   bun test ./tests/auth_session.test.ts
 *   node --import tsx --test tests/auth_session.test.ts
 *
 * The certificate for STARTTLS is made with the openssl CLI in a temporary
 * directory at load time (no key is committed); the directory is removed at the end.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import * as net from "node:net";
import * as tls from "node:tls";
import {
  type MidiSmtpServerOptions,
  type SaslCredentials,
  type SaslMechanism,
  Smtpd535Exception,
  type SmtpdContext,
  SmtpdException,
} from "../mod.ts";
import type { Transport } from "../src/transport/types.ts";
import {
  ehloClient,
  type Mailer,
  RawClient,
  type RunningServer,
  startServer,
  TRANSPORTS,
  withMailer,
} from "./helpers.ts";
import { EC_KEY, scratchFolder } from "./scratch.ts";

/** Per-test limit for the runner; every wait inside a test has its own, shorter limit. */
const TEST = { timeout: 20_000 };

// ---------------------------------------------------------------------------
// a CA and a server certificate for localhost / 127.0.0.1, for STARTTLS

const { read, remove: cleanUp, makeCa, makeSigned } = scratchFolder("auth-session");

try {
  makeCa("ca", "AUTH Test CA");
  makeSigned("leaf", "ca", "/CN=localhost", EC_KEY, [
    "basicConstraints=critical,CA:FALSE",
    "extendedKeyUsage=serverAuth",
    "subjectAltName=DNS:localhost,IP:127.0.0.1",
  ]);
} catch (err) {
  cleanUp();
  throw err;
}

const CA = read("ca.pem");
const TLS_SERVER = { tlsMode: "TLS_OPTIONAL", tlsCert: read("leaf.pem"), tlsKey: read("leaf.key") } as const;

// ---------------------------------------------------------------------------
// credentials and the hook

const b64 = (text: string) => Buffer.from(text, "utf8").toString("base64");

const USER = "tim";
/** Chosen so that the PLAIN initial response holds both "+" and "/". */
const PASS = "tim?>pass~~";
const PLAIN_RESPONSE = b64(`\0${USER}\0${PASS}`);
const WRONG_PASS = "wr0ng?>pw~~";
const TOKEN = "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg";
const OAUTH_USER = "tim@example.com";

interface AuthEvent {
  mechanism: string;
  authorizationId: string;
  authenticationId: string;
  authentication: string;
  encrypted: boolean;
}

/**
 * The hook under test: `tim` with PASS (CRAM-MD5 through `credentials.verify`),
 * XOAUTH2 with TOKEN, X-TOKEN with TOKEN; `broken` throws a plain Error;
 * `mapped` returns another authorization id.
 */
function authHook(events: AuthEvent[]) {
  return (
    ctx: SmtpdContext,
    authorizationId: string,
    authenticationId: string,
    authentication: string,
    credentials: SaslCredentials,
  ): string | void => {
    events.push({
      mechanism: credentials.mechanism,
      authorizationId,
      authenticationId,
      authentication,
      encrypted: ctx.server.encrypted instanceof Date,
    });
    if (authenticationId === "broken") throw new Error("user database unreachable");
    if (credentials.mechanism === "XOAUTH2" || credentials.mechanism === "X-TOKEN") {
      if (authentication !== TOKEN) throw new Smtpd535Exception();
      return;
    }
    const secret = authenticationId === USER || authenticationId === "mapped" ? PASS : undefined;
    if (secret === undefined) throw new Smtpd535Exception();
    const ok = credentials.verify ? credentials.verify(secret) : authentication === secret;
    if (!ok) throw new Smtpd535Exception();
    if (authenticationId === "mapped") return "alias@example.com";
  };
}

interface AuthServer extends RunningServer {
  events: AuthEvent[];
  /** What onMailFromEvent saw of the session's AUTH state. */
  senders: Array<{ from: string; authenticated: boolean; authorizationId: string; authenticationId: string }>;
  /** The MAIL parameters, as onRcptToEvent sees them. */
  mailParams: Array<Record<string, string | true>>;
  logs: string[];
}

/** Starts a server with AUTH on and plaintext AUTH allowed (unless `options` says otherwise). */
async function startAuthServer(transport: Transport, options: MidiSmtpServerOptions = {}): Promise<AuthServer> {
  const events: AuthEvent[] = [];
  const senders: AuthServer["senders"] = [];
  const mailParams: AuthServer["mailParams"] = [];
  const logs: string[] = [];
  const running = await startServer(transport, {
    authMode: "AUTH_OPTIONAL",
    allowInsecureAuth: true,
    onAuthEvent: authHook(events),
    onMailFromEvent(ctx, from) {
      senders.push({
        from,
        authenticated: ctx.server.authenticated instanceof Date,
        authorizationId: ctx.server.authorizationId,
        authenticationId: ctx.server.authenticationId,
      });
    },
    onRcptToEvent(ctx) {
      mailParams.push({ ...ctx.envelope.mailParams });
    },
    onLoggingEvent(_ctx, severity, msg, err) {
      logs.push(`[${severity}] ${msg}${err === undefined ? "" : ` ${String(err)}`}`);
    },
    ...options,
  });
  return { ...running, events, senders, mailParams, logs };
}

/** Runs `body` with a fresh server and always stops it. */
async function withAuthServer(
  transport: Transport,
  options: MidiSmtpServerOptions,
  body: (s: AuthServer) => Promise<void>,
): Promise<void> {
  const s = await startAuthServer(transport, options);
  try {
    await withTimeout(body(s), 15_000, "test body");
  } finally {
    await withTimeout(s.close(), 5000, "server.stop()");
  }
}

/** Runs `body` with an EHLO'd raw client and always closes it. */
async function withClient(port: number, body: (c: RawClient) => Promise<void>): Promise<void> {
  const c = await ehloClient(port);
  try {
    await body(c);
  } finally {
    c.close();
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

const AUTH_OK = "235 2.7.0 Authentication successful\r\n";
const INVALID = "535 5.7.8 Authentication credentials invalid\r\n";
const BAD_BASE64 = "501 5.5.2 Invalid base64 data\r\n";

/** The EHLO keyword line starting with AUTH, if any. */
async function authKeyword(c: RawClient): Promise<string | undefined> {
  const r = await c.command("EHLO again.example");
  assert.equal(r.code, 250, r.raw);
  return r.lines.find((l) => /^AUTH\b/.test(l));
}

// ---------------------------------------------------------------------------
// EHLO and AUTH over STARTTLS with a raw client

/** Connects, EHLO, STARTTLS, handshake (trusting our CA), EHLO again; returns both EHLO keyword lists and a command function. */
async function startTlsSession(port: number): Promise<{
  plain: string[];
  secure: string[];
  command: (line: string) => Promise<string>;
  close: () => void;
}> {
  let buffer = "";
  let wake: (() => void) | undefined;
  const onData = (d: Buffer) => {
    buffer += d.toString("latin1");
    wake?.();
  };
  const raw = await withTimeout(
    new Promise<net.Socket>((resolve, reject) => {
      const s = net.connect({ port, host: "127.0.0.1" }, () => resolve(s));
      s.once("error", reject);
    }),
    5000,
    "connect",
  );
  raw.on("error", () => {});
  raw.on("data", onData);
  let socket: net.Socket = raw;
  const reply = async (): Promise<string> => {
    const deadline = Date.now() + 5000;
    for (;;) {
      const m = /^(?:\d{3}-.*\r\n)*\d{3} .*\r\n/.exec(buffer);
      if (m) {
        buffer = buffer.slice(m[0].length);
        return m[0];
      }
      if (Date.now() > deadline) throw new Error(`no reply; received ${JSON.stringify(buffer)}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 50);
        wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
    }
  };
  const command = (line: string) => {
    socket.write(line + "\r\n");
    return reply();
  };
  const keywords = (ehlo: string) => ehlo.split("\r\n").slice(1, -1).map((l) => l.slice(4));
  try {
    assert.match(await reply(), /^220 /);
    const plain = keywords(await command("EHLO client.example"));
    assert.equal(await command("STARTTLS"), "220 2.0.0 Ready to start TLS\r\n");
    raw.off("data", onData);
    socket = await withTimeout(
      new Promise<tls.TLSSocket>((resolve, reject) => {
        const s = tls.connect({ socket: raw, ca: CA, servername: "localhost" }, () => resolve(s));
        s.once("error", reject);
      }),
      5000,
      "TLS handshake",
    );
    socket.on("error", () => {});
    socket.on("data", onData);
    const secure = keywords(await command("EHLO client.example"));
    return { plain, secure, command, close: () => socket.destroy() };
  } catch (err) {
    socket.destroy();
    throw err;
  }
}

/** A nodemailer transport doing STARTTLS (verified against our CA) to `port`; closed after `body`. */
function withStartTlsMailer(port: number, extra: Record<string, unknown>, body: (m: Mailer) => Promise<void>) {
  return withMailer(
    port,
    { secure: false, requireTLS: true, tls: { ca: [CA], servername: "localhost" }, ...extra },
    body,
  );
}

const MAIL = { from: "a@example.com", to: "b@example.com", subject: "AUTH", text: "Authenticated." };

interface SmtpError extends Error {
  code?: string;
  responseCode?: number;
}

/** A trivial custom mechanism: one initial response, the token. */
const X_TOKEN: SaslMechanism = {
  name: "X-TOKEN",
  start: () => ({
    next(response) {
      if (response === undefined) throw new SmtpdException(501, "5.7.0", "X-TOKEN needs an initial response");
      return {
        kind: "done",
        credentials: {
          mechanism: "X-TOKEN",
          authorizationId: "",
          authenticationId: "token-user",
          authentication: new TextDecoder().decode(response),
        },
      };
    },
  }),
};

// ---------------------------------------------------------------------------

for (const transport of TRANSPORTS) {
  describe(`AUTH sessions (${transport.name} transport)`, () => {
    describe("advertising and refusing AUTH", () => {
      it("AUTH_FORBIDDEN: no AUTH in EHLO, AUTH gets 502, MAIL with AUTH=<> gets 555", TEST, async () => {
        await withAuthServer(transport, { authMode: "AUTH_FORBIDDEN" }, async (s) => {
          await withClient(s.port, async (c) => {
            assert.equal(await authKeyword(c), undefined);
            assert.equal(
              (await c.command(`AUTH PLAIN ${PLAIN_RESPONSE}`)).raw,
              "502 5.5.1 Command not implemented\r\n",
            );
            const mail = await c.command("MAIL FROM:<a@b.example> AUTH=<>");
            assert.equal(mail.code, 555, mail.raw);
            assert.equal((await c.command("MAIL FROM:<a@b.example>")).code, 250);
          });
          assert.equal(s.events.length, 0);
        });
      });

      it("AUTH_FORBIDDEN with TLS: not offered over TLS either", TEST, async () => {
        await withAuthServer(transport, { ...TLS_SERVER, authMode: "AUTH_FORBIDDEN" }, async (s) => {
          const session = await startTlsSession(s.port);
          try {
            assert.ok(!session.secure.some((k) => k.startsWith("AUTH")), session.secure.join("|"));
            assert.match(await session.command(`AUTH PLAIN ${PLAIN_RESPONSE}`), /^502 /);
          } finally {
            session.close();
          }
        });
      });

      it("without TLS and allowInsecureAuth: AUTH not offered, AUTH PLAIN gets 538 5.7.11", TEST, async () => {
        await withAuthServer(transport, { allowInsecureAuth: false }, async (s) => {
          await withClient(s.port, async (c) => {
            assert.equal(await authKeyword(c), undefined);
            assert.equal(
              (await c.command(`AUTH PLAIN ${PLAIN_RESPONSE}`)).raw,
              "538 5.7.11 Encryption required for requested authentication mechanism\r\n",
            );
            assert.equal((await c.command("AUTH LOGIN")).code, 538, "no 334 either");
            assert.equal((await c.command("NOOP")).code, 250);
          });
          assert.equal(s.events.length, 0, "the hook never saw the credentials");
        });
      });

      it("with allowInsecureAuth: offered as AUTH PLAIN LOGIN and working in plaintext", TEST, async () => {
        await withAuthServer(transport, {}, async (s) => {
          await withClient(s.port, async (c) => {
            assert.equal(await authKeyword(c), "AUTH PLAIN LOGIN");
            assert.equal((await c.command(`AUTH PLAIN ${PLAIN_RESPONSE}`)).raw, AUTH_OK);
          });
          assert.equal(s.events.length, 1);
          assert.equal(s.events[0].encrypted, false);
        });
      });

      it("with TLS and without allowInsecureAuth: offered only after STARTTLS, and working there", TEST, async () => {
        await withAuthServer(transport, {
          ...TLS_SERVER,
          allowInsecureAuth: false,
          authMechanisms: ["PLAIN", "LOGIN", "CRAM-MD5", "XOAUTH2"],
        }, async (s) => {
          const session = await startTlsSession(s.port);
          try {
            assert.ok(!session.plain.some((k) => k.startsWith("AUTH")), session.plain.join("|"));
            assert.ok(session.plain.includes("STARTTLS"));
            assert.ok(session.secure.includes("AUTH PLAIN LOGIN CRAM-MD5 XOAUTH2"), session.secure.join("|"));
            assert.equal(await session.command(`AUTH PLAIN ${PLAIN_RESPONSE}`), AUTH_OK);
          } finally {
            session.close();
          }
          assert.equal(s.events.length, 1);
          assert.equal(s.events[0].encrypted, true);
        });
      });
    });

    describe("nodemailer over STARTTLS, every mechanism", () => {
      let s: AuthServer;
      before(async () => {
        s = await startAuthServer(transport, {
          ...TLS_SERVER,
          allowInsecureAuth: false,
          authMechanisms: ["PLAIN", "LOGIN", "CRAM-MD5", "XOAUTH2"],
        });
      });
      after(() => s.close());

      for (const method of ["PLAIN", "LOGIN", "CRAM-MD5"]) {
        it(`${method}: the right password sends, a wrong one fails with 535`, TEST, async () => {
          const before = s.events.length;
          await withStartTlsMailer(s.port, { auth: { user: USER, pass: PASS }, authMethod: method }, async (m) => {
            const info = await m.sendMail(MAIL);
            assert.deepEqual(info.accepted, ["b@example.com"]);
          });
          await withStartTlsMailer(
            s.port,
            { auth: { user: USER, pass: WRONG_PASS }, authMethod: method },
            async (m) => {
              await assert.rejects(m.sendMail(MAIL), (err: SmtpError) => {
                assert.equal(err.code, "EAUTH", err.message);
                assert.equal(err.responseCode, 535, err.message);
                return true;
              });
            },
          );
          const seen = s.events.slice(before);
          assert.deepEqual(seen.map((e) => [e.mechanism, e.authenticationId, e.encrypted]), [
            [method, USER, true],
            [method, USER, true],
          ]);
          if (method === "CRAM-MD5") {
            assert.match(seen[0].authentication, /^[0-9a-f]{32}$/, "the digest, not the password");
          } else {
            assert.deepEqual(seen.map((e) => e.authentication), [PASS, WRONG_PASS]);
          }
        });
      }

      it("XOAUTH2: the right token sends, a wrong one fails with 535", TEST, async () => {
        const before = s.events.length;
        await withStartTlsMailer(
          s.port,
          { auth: { type: "OAuth2", user: OAUTH_USER, accessToken: TOKEN } },
          async (m) => {
            const info = await m.sendMail(MAIL);
            assert.deepEqual(info.accepted, ["b@example.com"]);
          },
        );
        await withStartTlsMailer(
          s.port,
          { auth: { type: "OAuth2", user: OAUTH_USER, accessToken: "wrong-token" } },
          async (m) => {
            await assert.rejects(m.sendMail(MAIL), (err: SmtpError) => {
              assert.equal(err.code, "EAUTH", err.message);
              assert.equal(err.responseCode, 535, err.message);
              return true;
            });
          },
        );
        assert.deepEqual(s.events.slice(before).map((e) => [e.mechanism, e.authenticationId, e.authentication]), [
          ["XOAUTH2", OAUTH_USER, TOKEN],
          ["XOAUTH2", OAUTH_USER, "wrong-token"],
        ]);
      });
    });

    describe("raw exchanges", () => {
      let s: AuthServer;
      before(async () => s = await startAuthServer(transport));
      after(() => s.close());

      it("AUTH PLAIN without an initial response: 334 with an empty challenge, then 235", TEST, async () => {
        await withClient(s.port, async (c) => {
          assert.equal((await c.command("AUTH PLAIN")).raw, "334 \r\n");
          assert.equal((await c.command(PLAIN_RESPONSE)).raw, AUTH_OK);
        });
      });

      it("AUTH PLAIN with an initial response holding + and /", TEST, async () => {
        assert.ok(PLAIN_RESPONSE.includes("+") && PLAIN_RESPONSE.includes("/"), PLAIN_RESPONSE);
        const before = s.events.length;
        await withClient(s.port, async (c) => {
          assert.equal((await c.command(`AUTH PLAIN ${PLAIN_RESPONSE}`)).raw, AUTH_OK);
        });
        assert.deepEqual(s.events.slice(before), [{
          mechanism: "PLAIN",
          authorizationId: "",
          authenticationId: USER,
          authentication: PASS,
          encrypted: false,
        }]);
      });

      it("AUTH PLAIN = (an empty initial response) gets 501", TEST, async () => {
        await withClient(s.port, async (c) => {
          const r = await c.command("AUTH PLAIN =");
          assert.equal(r.code, 501, r.raw);
          assert.equal((await c.command(`AUTH PLAIN ${PLAIN_RESPONSE}`)).raw, AUTH_OK, "a new AUTH works");
        });
      });

      it("AUTH LOGIN: Username: and Password: challenges, then 235", TEST, async () => {
        const before = s.events.length;
        await withClient(s.port, async (c) => {
          assert.equal((await c.command("AUTH LOGIN")).raw, "334 VXNlcm5hbWU6\r\n");
          assert.equal((await c.command(b64(USER))).raw, "334 UGFzc3dvcmQ6\r\n");
          assert.equal((await c.command(b64(PASS))).raw, AUTH_OK);
        });
        assert.deepEqual(s.events.slice(before).map((e) => [e.mechanism, e.authenticationId, e.authentication]), [
          ["LOGIN", USER, PASS],
        ]);
      });

      it("AUTH LOGIN with the user name as initial response asks only for the password", TEST, async () => {
        await withClient(s.port, async (c) => {
          assert.equal((await c.command(`AUTH LOGIN ${b64(USER)}`)).raw, "334 UGFzc3dvcmQ6\r\n");
          assert.equal((await c.command(b64(PASS))).raw, AUTH_OK);
        });
      });

      it("* cancels an exchange with 501 5.7.0, and the session goes on", TEST, async () => {
        const before = s.events.length;
        await withClient(s.port, async (c) => {
          assert.equal((await c.command("AUTH LOGIN")).code, 334);
          assert.equal((await c.command(b64(USER))).code, 334);
          const cancel = await c.command("*");
          assert.equal(cancel.code, 501, cancel.raw);
          assert.ok(cancel.lines[0].startsWith("5.7.0 "), cancel.raw);
          assert.equal((await c.command("AUTH PLAIN")).code, 334);
          assert.equal((await c.command("*")).code, 501);
          assert.equal((await c.command("NOOP")).code, 250, "no longer in the exchange");
          assert.equal((await c.command(`AUTH PLAIN ${PLAIN_RESPONSE}`)).raw, AUTH_OK);
        });
        assert.equal(s.events.length - before, 1, "canceled exchanges never reach the hook");
      });

      it("bad base64 gets 501 5.5.2, as initial response and as continuation", TEST, async () => {
        await withClient(s.port, async (c) => {
          assert.equal((await c.command("AUTH PLAIN !!!")).raw, BAD_BASE64);
          assert.equal((await c.command("AUTH LOGIN")).code, 334);
          assert.equal((await c.command("dGlt!")).raw, BAD_BASE64);
          assert.equal((await c.command("NOOP")).code, 250, "the exchange ended");
        });
      });

      it("an unknown or not offered mechanism gets 504", TEST, async () => {
        await withClient(s.port, async (c) => {
          const r = await c.command("AUTH FOO");
          assert.equal(r.code, 504, r.raw);
          assert.equal((await c.command("AUTH CRAM-MD5")).code, 504, "not in authMechanisms");
          assert.equal((await c.command("AUTH plain")).raw, "334 \r\n", "mechanism names are case-insensitive");
          assert.equal((await c.command(PLAIN_RESPONSE)).raw, AUTH_OK);
        });
      });

      it("AUTH after HELO (not EHLO) gets 503", TEST, async () => {
        const c = await RawClient.connect(s.port);
        try {
          await c.expect(220);
          assert.equal((await c.command("AUTH PLAIN")).code, 503, "before any greeting");
          assert.equal((await c.command("HELO client.example")).code, 250);
          assert.equal((await c.command(`AUTH PLAIN ${PLAIN_RESPONSE}`)).code, 503);
        } finally {
          c.close();
        }
      });

      it("a second AUTH after success gets 503", TEST, async () => {
        await withClient(s.port, async (c) => {
          assert.equal((await c.command(`AUTH PLAIN ${PLAIN_RESPONSE}`)).raw, AUTH_OK);
          assert.equal((await c.command(`AUTH PLAIN ${PLAIN_RESPONSE}`)).code, 503);
          assert.equal((await c.command("AUTH LOGIN")).code, 503);
        });
      });

      it("AUTH during a mail transaction gets 503", TEST, async () => {
        await withClient(s.port, async (c) => {
          assert.equal((await c.command("MAIL FROM:<a@example.com>")).code, 250);
          assert.equal((await c.command(`AUTH PLAIN ${PLAIN_RESPONSE}`)).code, 503);
          assert.equal((await c.command("RSET")).code, 250);
          assert.equal((await c.command(`AUTH PLAIN ${PLAIN_RESPONSE}`)).raw, AUTH_OK);
        });
      });

      it("the hook's returned string becomes authorizationId; authenticationId is the user", TEST, async () => {
        const before = s.senders.length;
        await withClient(s.port, async (c) => {
          assert.equal((await c.command(`AUTH PLAIN ${b64(`\0mapped\0${PASS}`)}`)).raw, AUTH_OK);
          assert.equal((await c.command("MAIL FROM:<a@example.com>")).code, 250);
        });
        await withClient(s.port, async (c) => {
          // Nothing returned: the client's authzid, else the user.
          assert.equal((await c.command(`AUTH PLAIN ${PLAIN_RESPONSE}`)).raw, AUTH_OK);
          assert.equal((await c.command("MAIL FROM:<b@example.com>")).code, 250);
        });
        await withClient(s.port, async (c) => {
          assert.equal((await c.command("MAIL FROM:<c@example.com>")).code, 250);
        });
        assert.deepEqual(s.senders.slice(before), [
          {
            from: "<a@example.com>",
            authenticated: true,
            authorizationId: "alias@example.com",
            authenticationId: "mapped",
          },
          { from: "<b@example.com>", authenticated: true, authorizationId: USER, authenticationId: USER },
          { from: "<c@example.com>", authenticated: false, authorizationId: "", authenticationId: "" },
        ]);
      });

      it("a plain Error from onAuthEvent gets 454 4.7.0, and the session goes on", TEST, async () => {
        await withClient(s.port, async (c) => {
          assert.equal(
            (await c.command(`AUTH PLAIN ${b64(`\0broken\0${PASS}`)}`)).raw,
            "454 4.7.0 Temporary authentication failure\r\n",
          );
          assert.equal((await c.command(`AUTH PLAIN ${PLAIN_RESPONSE}`)).raw, AUTH_OK);
        });
      });

      it("wrong credentials get 535 5.7.8 and leave the session unauthenticated", TEST, async () => {
        await withClient(s.port, async (c) => {
          assert.equal((await c.command(`AUTH PLAIN ${b64(`\0${USER}\0${WRONG_PASS}`)}`)).raw, INVALID);
          assert.equal((await c.command(`AUTH PLAIN ${b64(`\0nobody\0${PASS}`)}`)).raw, INVALID);
          assert.equal((await c.command(`AUTH PLAIN ${PLAIN_RESPONSE}`)).raw, AUTH_OK, "the third try (limit 3)");
        });
      });

      it("MAIL FROM with AUTH=<> is accepted when AUTH is on", TEST, async () => {
        const before = s.mailParams.length;
        await withClient(s.port, async (c) => {
          assert.equal((await c.command("MAIL FROM:<a@b.example> AUTH=<>")).code, 250, "not authenticated");
          assert.equal((await c.command("RCPT TO:<b@example.com>")).code, 250);
          assert.equal((await c.command("RSET")).code, 250);
          assert.equal((await c.command(`AUTH PLAIN ${PLAIN_RESPONSE}`)).raw, AUTH_OK);
          assert.equal((await c.command("MAIL FROM:<a@b.example> AUTH=<>")).code, 250, "authenticated");
          assert.equal((await c.command("RCPT TO:<b@example.com>")).code, 250);
        });
        assert.deepEqual(s.mailParams.slice(before), [{ AUTH: "<>" }, { AUTH: "<>" }]);
      });
    });

    describe("limits and defaults", () => {
      it("maxAuthFailures: 2 -> after the second 535 the server sends 421 and closes", TEST, async () => {
        await withAuthServer(transport, { maxAuthFailures: 2 }, async (s) => {
          await withClient(s.port, async (c) => {
            const wrong = `AUTH PLAIN ${b64(`\0${USER}\0${WRONG_PASS}`)}`;
            assert.equal((await c.command(wrong)).raw, INVALID);
            assert.equal((await c.command("NOOP")).code, 250, "one failure is not the end");
            assert.equal((await c.command(wrong)).raw, INVALID);
            const bye = await c.reply();
            assert.equal(bye.code, 421, bye.raw);
            assert.ok(bye.lines[0].startsWith("4.7.0 "), bye.raw);
            await c.waitClosed();
          });
        });
      });

      it("without onAuthEvent every AUTH gets 535", TEST, async () => {
        await withAuthServer(transport, { onAuthEvent: undefined }, async (s) => {
          await withClient(s.port, async (c) => {
            assert.equal((await c.command(`AUTH PLAIN ${PLAIN_RESPONSE}`)).raw, INVALID);
            assert.equal((await c.command("AUTH LOGIN")).code, 334);
            assert.equal((await c.command(b64(USER))).code, 334);
            assert.equal((await c.command(b64(PASS))).raw, INVALID);
          });
        });
      });
    });

    describe("AUTH_REQUIRED", () => {
      it("MAIL before AUTH gets 530 5.7.0; after AUTH a message goes through", TEST, async () => {
        await withAuthServer(transport, { authMode: "AUTH_REQUIRED" }, async (s) => {
          await withClient(s.port, async (c) => {
            assert.equal((await c.command("MAIL FROM:<a@example.com>")).raw, "530 5.7.0 Authentication required\r\n");
            assert.equal((await c.command("NOOP")).code, 250);
            assert.equal((await c.command(`AUTH PLAIN ${PLAIN_RESPONSE}`)).raw, AUTH_OK);
            assert.equal((await c.command("MAIL FROM:<a@example.com>")).code, 250);
            assert.equal((await c.command("RCPT TO:<b@example.com>")).code, 250);
            assert.equal((await c.command("DATA")).code, 354);
            assert.equal((await c.command("Subject: hi\r\n\r\nauthenticated\r\n.")).code, 250);
          });
          assert.equal(s.senders.length, 1);
          assert.equal(s.senders[0].authenticated, true);
        });
      });

      // options.ts documents "AUTH_REQUIRED (MAIL, RCPT and DATA get 530 before it)", and RFC 4954 6 says
      // 530 "SHOULD be returned by any command other than AUTH, EHLO, HELO, NOOP, RSET, or QUIT".
      it("RCPT and DATA before AUTH get 530 5.7.0 too", TEST, async () => {
        await withAuthServer(transport, { authMode: "AUTH_REQUIRED" }, async (s) => {
          await withClient(s.port, async (c) => {
            assert.equal((await c.command("RCPT TO:<b@example.com>")).raw, "530 5.7.0 Authentication required\r\n");
            assert.equal((await c.command("DATA")).raw, "530 5.7.0 Authentication required\r\n");
          });
        });
      });
    });

    describe("credentials in logs", () => {
      it("no log line holds the password or its base64 forms (PLAIN and LOGIN, right and wrong)", TEST, async () => {
        await withAuthServer(transport, { loggerSeverity: "debug" }, async (s) => {
          await withClient(s.port, async (c) => {
            assert.equal((await c.command(`AUTH PLAIN ${PLAIN_RESPONSE}`)).raw, AUTH_OK);
          });
          await withClient(s.port, async (c) => {
            assert.equal((await c.command("AUTH PLAIN")).code, 334);
            assert.equal((await c.command(b64(`\0${USER}\0${WRONG_PASS}`))).raw, INVALID);
            assert.equal((await c.command("AUTH PLAIN")).code, 334);
            assert.equal((await c.command(PLAIN_RESPONSE)).raw, AUTH_OK);
          });
          await withClient(s.port, async (c) => {
            assert.equal((await c.command("AUTH LOGIN")).code, 334);
            assert.equal((await c.command(b64(USER))).code, 334);
            assert.equal((await c.command(b64(WRONG_PASS))).raw, INVALID);
            assert.equal((await c.command(`AUTH LOGIN ${b64(USER)}`)).code, 334);
            assert.equal((await c.command(b64(PASS))).raw, AUTH_OK);
          });
          await withClient(s.port, async (c) => {
            // A malformed PLAIN message must not be echoed either.
            assert.equal((await c.command(`AUTH PLAIN ${b64(`${PASS}`)}`)).code, 501);
          });
          const text = s.logs.join("\n");
          assert.match(text, /<<< EHLO client\.example/, "debug logging reached the hook");
          assert.match(text, />>> 334 VXNlcm5hbWU6/);
          for (const secret of [PASS, WRONG_PASS]) {
            for (const form of [secret, b64(secret), b64(`\0${USER}\0${secret}`), b64(`${USER}\0${secret}`)]) {
              const line = s.logs.find((l) => l.includes(form));
              assert.equal(line, undefined, `"${form}" appears in the log`);
            }
          }
        });
      });
    });

    describe("custom mechanism", () => {
      it("an X-TOKEN mechanism object is advertised after the built-ins and works", TEST, async () => {
        await withAuthServer(transport, { authMechanisms: ["PLAIN", "LOGIN", X_TOKEN] }, async (s) => {
          await withClient(s.port, async (c) => {
            assert.equal(await authKeyword(c), "AUTH PLAIN LOGIN X-TOKEN");
            const bare = await c.command("AUTH X-TOKEN");
            assert.equal(bare.raw, "501 5.7.0 X-TOKEN needs an initial response\r\n");
            assert.equal((await c.command(`AUTH X-TOKEN ${b64("wrong")}`)).raw, INVALID);
            assert.equal((await c.command(`AUTH x-token ${b64(TOKEN)}`)).raw, AUTH_OK);
            assert.equal((await c.command("MAIL FROM:<a@example.com>")).code, 250);
          });
          assert.deepEqual(s.events.map((e) => [e.mechanism, e.authenticationId, e.authentication]), [
            ["X-TOKEN", "token-user", "wrong"],
            ["X-TOKEN", "token-user", TOKEN],
          ]);
          assert.equal(s.senders[0].authenticationId, "token-user");
        });
      });
    });
  });
}
