/**
 * src/session/auth_command.ts on its own: the AUTH command against a
 * recording session (what it replies, writes, fails and closes), with the
 * real SASL mechanisms and the real per-client limits. The whole exchange
 * over sockets, with real clients, is in auth_session.test.ts.
 *
 *   node --import tsx --test tests/auth_command.test.ts
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { AuthCommand, authOffered, type AuthSession } from "../src/session/auth_command.ts";
import type { SessionHost } from "../src/session/session.ts";
import type { SessionState } from "../src/session/registry.ts";
import { LOGIN_MECHANISM, PLAIN_MECHANISM } from "../src/auth/mod.ts";
import { ClientLimits } from "../src/client_limits.ts";
import { CidrList } from "../src/cidr.ts";
import { newContext } from "../src/context.ts";
import { serverContext } from "./server_context.ts";
import { SmtpdException } from "../src/exceptions.ts";
import type { ResolvedOptions } from "../src/options.ts";

const b64 = (text: string) => Buffer.from(text).toString("base64");

type AuthOptions = Pick<ResolvedOptions, "authMode" | "tlsMode" | "allowInsecureAuth" | "maxAuthFailures">;

/** A session that records what AUTH does to it; `check` is onAuthEvent. */
function recordingSession(
  check: (user: string, password: string) => string | void | Promise<string | void>,
  options: Partial<AuthOptions & { maxAuthFailuresPerIp: number | null }> = {},
) {
  const resolved = {
    authMode: "AUTH_OPTIONAL",
    tlsMode: "TLS_OPTIONAL",
    allowInsecureAuth: false,
    maxAuthFailures: 3,
    ...options,
  } as ResolvedOptions;
  const limits = new ClientLimits({
    maxConnectionsPerIp: null,
    maxConnectionRatePerIp: null,
    maxMessageRatePerIp: null,
    maxAuthFailuresPerIp: options.maxAuthFailuresPerIp ?? null,
    authLockoutTime: 60,
    perIpLimitsExempt: new CidrList([]),
  });
  const logs: string[] = [];
  const host = {
    options: resolved,
    hooks: {
      onAuthEvent: (_ctx: unknown, _authz: string, user: string, password: string) => check(user, password),
    },
    authMechanisms: new Map([["PLAIN", PLAIN_MECHANISM], ["LOGIN", LOGIN_MECHANISM]]),
    limits,
    log: (_ctx: unknown, severity: string, msg: string) => logs.push(`${severity}: ${msg}`),
    logRefusal: (_ctx: unknown, _ip: string, refusal: { reason: string }) => logs.push(`refused: ${refusal.reason}`),
  } as unknown as SessionHost;
  const out: string[] = [];
  const failures: Array<{ code: number; text: string; countsAsBad: boolean }> = [];
  const record = {
    state: "RSET" as SessionState,
    closing: false,
  };
  const session: AuthSession = {
    ctx: newContext(serverContext({
      localHost: "mx.test",
      remoteHost: "127.0.0.9",
      remoteIp: "127.0.0.9",
      encrypted: new Date(),
      tlsProtocol: "TLSv1.3",
    })),
    host,
    get state() {
      return record.state;
    },
    get closing() {
      return record.closing;
    },
    offers: (keyword) => keyword === "AUTH",
    reply: (code, enhanced, text) => out.push(`${code} ${enhanced} ${text}`),
    write: (line) => out.push(line.trimEnd()),
    fail(err, countsAsBad) {
      assert.ok(err instanceof SmtpdException, `an SMTP error, got ${err}`);
      failures.push({ code: err.code, text: err.text, countsAsBad });
      out.push(`${err.code} ${err.enhancedCode} ${err.text}`);
    },
    awaitHook: (_name, pending) => Promise.resolve(pending),
    close: () => record.closing = true,
  };
  return { session, auth: new AuthCommand(session), out, failures, logs, record, limits };
}

const alice = (user: string, password: string) => {
  if (user !== "alice" || password !== "secret") throw new SmtpdException(535, "5.7.8", "Bad credentials");
};

describe("AuthCommand", () => {
  it("offers AUTH only when enabled, and in plaintext only when allowed", () => {
    const o = (authMode: string, allowInsecureAuth: boolean) => ({ authMode, allowInsecureAuth }) as ResolvedOptions;
    assert.equal(authOffered(o("AUTH_OPTIONAL", false), true), true);
    assert.equal(authOffered(o("AUTH_OPTIONAL", false), false), false);
    assert.equal(authOffered(o("AUTH_REQUIRED", true), false), true);
    assert.equal(authOffered(o("AUTH_FORBIDDEN", true), true), false);
  });

  it("PLAIN with an initial response: the hook's authorization id is kept, 235", async () => {
    const { session, auth, out } = recordingSession((user, password) => {
      alice(user, password);
      return "alice@example.com";
    });
    await auth.start(`PLAIN ${b64("\0alice\0secret")}`);
    assert.deepEqual(out, ["235 2.7.0 Authentication successful"]);
    assert.equal(auth.awaitingResponse, false);
    const server = session.ctx.server;
    assert.ok(server.authenticated instanceof Date);
    assert.equal(server.authenticationId, "alice");
    assert.equal(server.authorizationId, "alice@example.com");
  });

  it("LOGIN: two 334 challenges, each response routed back, then 235", async () => {
    const { auth, out } = recordingSession(alice);
    await auth.start("LOGIN");
    assert.equal(auth.awaitingResponse, true);
    await auth.respond(b64("alice"));
    assert.equal(auth.awaitingResponse, true);
    await auth.respond(b64("secret"));
    assert.equal(auth.awaitingResponse, false);
    assert.deepEqual(out, [
      `334 ${b64("Username:")}`,
      `334 ${b64("Password:")}`,
      "235 2.7.0 Authentication successful",
    ]);
  });

  it("`*` cancels with 501 5.7.0, not counted as a bad command", async () => {
    const { auth, failures } = recordingSession(alice);
    await auth.start("LOGIN");
    await auth.respond("*");
    assert.equal(auth.awaitingResponse, false);
    assert.deepEqual(failures, [{ code: 501, text: "Authentication canceled", countsAsBad: false }]);
  });

  it("refuses before any exchange: no EHLO, in a transaction, already authenticated, bad syntax, unknown mechanism", async () => {
    const cases: Array<[string, (r: ReturnType<typeof recordingSession>) => void, string, number]> = [
      ["no EHLO", (r) => r.session.ctx.server.heloMode = "HELO", "PLAIN", 503],
      ["in a transaction", (r) => r.record.state = "MAIL", "PLAIN", 503],
      ["already authenticated", (r) => r.session.ctx.server.authenticated = new Date(), "PLAIN", 503],
      ["bad syntax", () => {}, "PLAIN a b", 501],
      ["no mechanism", () => {}, "", 501],
      ["unknown mechanism", () => {}, "GSSAPI", 504],
      ["plaintext", (r) => r.session.ctx.server.encrypted = null, "PLAIN", 538],
    ];
    for (const [what, arrange, args, code] of cases) {
      const r = recordingSession(alice);
      arrange(r);
      await assert.rejects(r.auth.start(args), (err: SmtpdException) => err.code === code, what);
      assert.equal(r.auth.awaitingResponse, false, what);
    }
  });

  it("a refused credential (5xx) counts against the address; a hook that crashes answers 454 and counts nothing", async () => {
    const refused = recordingSession(alice, { maxAuthFailuresPerIp: 1 });
    await refused.auth.start(`PLAIN ${b64("\0alice\0wrong")}`);
    assert.deepEqual(refused.failures.map((f) => f.code), [535]);
    // The limit is per address, across sessions: the next AUTH from there is locked out.
    assert.ok(refused.limits.authLocked("127.0.0.9"));

    const crashing = recordingSession(() => {
      throw new Error("database down");
    }, { maxAuthFailuresPerIp: 1 });
    await crashing.auth.start(`PLAIN ${b64("\0alice\0secret")}`);
    assert.deepEqual(crashing.failures.map((f) => f.code), [454]);
    assert.equal(crashing.limits.authLocked("127.0.0.9"), undefined);
    assert.ok(crashing.logs.some((l) => l === "error: onAuthEvent failed: database down"), crashing.logs.join("\n"));
  });

  it("the maxAuthFailures-th failure answers 421 and closes the session, once", async () => {
    const { auth, out, record } = recordingSession(alice, { maxAuthFailures: 2 });
    await auth.start(`PLAIN ${b64("\0alice\0wrong")}`);
    assert.equal(record.closing, false);
    await auth.start(`PLAIN ${b64("\0alice\0wrong")}`);
    assert.equal(record.closing, true);
    assert.deepEqual(out, [
      "535 5.7.8 Bad credentials",
      "535 5.7.8 Bad credentials",
      "421 4.7.0 Too many authentication failures, closing transmission channel",
    ]);
  });
});
