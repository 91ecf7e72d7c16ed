/**
 * The XCLIENT and XFORWARD command definitions (src/session/xclient.ts)
 * against a recording SessionControl: they use only the public registry
 * interface, so an application could have written them. The wire behaviour
 * with real sockets is in xclient.test.ts.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { newContext, newEnvelope, type ServerContext } from "../src/context.ts";
import type { SessionControl, SessionState } from "../src/session/registry.ts";
import { XCLIENT_COMMAND, XFORWARD_COMMAND } from "../src/session/xclient.ts";
import { SmtpdException } from "../src/exceptions.ts";

function fakeSession(state: SessionState, trusted: boolean) {
  const server = { remoteIp: "127.0.0.1", remoteHost: "localhost", remotePort: 1, localIp: "127.0.0.1", localPort: 25 };
  const ctx = newContext({ ...server, helo: "", heloMode: "", xclient: null } as unknown as ServerContext);
  const log: string[] = [];
  const session: SessionControl = {
    ctx,
    state,
    offers: (keyword) => trusted && (keyword === "XCLIENT" || keyword === "XFORWARD"),
    reply: (code, enhanced, text) => void log.push(`${code} ${enhanced} ${text}`),
    replyLines: () => {},
    reset: () => {
      ctx.envelope = newEnvelope();
    },
    restart: (keep = {}) => {
      log.push("restart");
      ctx.server.helo = keep.helo ?? "";
      ctx.server.heloMode = keep.helo === undefined ? "" : keep.heloMode ?? "EHLO";
      ctx.server.authenticationId = ctx.server.authorizationId = keep.login ?? "";
      ctx.server.authenticated = keep.login === undefined ? null : new Date();
      return Promise.resolve();
    },
    readLine: () => Promise.reject(new Error("not used")),
    readBytes: () => Promise.reject(new Error("not used")),
    countFailure: () => {},
    close: () => {},
  };
  return { session, ctx, log };
}

async function refusal(run: () => void | Promise<void>): Promise<string> {
  try {
    await run();
  } catch (err) {
    assert.ok(err instanceof SmtpdException);
    return `${err.code} ${err.enhancedCode} ${err.text}`;
  }
  assert.fail("no refusal");
}

describe("XCLIENT_COMMAND", () => {
  it("replaces the client's facts, restarts the session, then keeps HELO and LOGIN", async () => {
    const { session, ctx, log } = fakeSession("RSET", true);
    await XCLIENT_COMMAND.handler(session, "ADDR=IPV6:2001:db8::1 PORT=4242 HELO=c.example LOGIN=bob", "");
    assert.deepEqual(log, ["restart"]);
    assert.equal(ctx.server.remoteIp, "2001:db8::1");
    assert.equal(ctx.server.remoteHost, "2001:db8::1");
    assert.equal(ctx.server.remotePort, 4242);
    assert.equal(ctx.server.helo, "c.example");
    assert.equal(ctx.server.heloMode, "EHLO");
    assert.equal(ctx.server.authenticationId, "bob");
    assert.ok(ctx.server.authenticated instanceof Date);
    assert.equal(ctx.server.xclient?.login, "bob");
  });

  it("refuses untrusted clients (550) and clients inside a transaction (503)", async () => {
    assert.equal(
      await refusal(() => XCLIENT_COMMAND.handler(fakeSession("RSET", false).session, "ADDR=192.0.2.1", "")),
      "550 5.7.0 Error: insufficient authorization",
    );
    assert.equal(
      await refusal(() => XCLIENT_COMMAND.handler(fakeSession("RCPT", true).session, "ADDR=192.0.2.1", "")),
      "503 5.5.1 Error: MAIL transaction in progress",
    );
  });
});

describe("XFORWARD_COMMAND", () => {
  it("accumulates attributes on the envelope, unset ones null", async () => {
    const { session, ctx, log } = fakeSession("RSET", true);
    await XFORWARD_COMMAND.handler(session, "NAME=up.example ADDR=192.0.2.9", "");
    await XFORWARD_COMMAND.handler(session, "PROTO=ESMTP IDENT=4ABC", "");
    assert.deepEqual(log, ["250 2.0.0 Ok", "250 2.0.0 Ok"]);
    assert.deepEqual(ctx.envelope.xforward, {
      name: "up.example",
      addr: "192.0.2.9",
      port: null,
      proto: "ESMTP",
      helo: null,
      ident: "4ABC",
      source: null,
    });
  });

  it("refuses untrusted clients", async () => {
    assert.match(
      await refusal(() => XFORWARD_COMMAND.handler(fakeSession("RSET", false).session, "NAME=x", "")),
      /^550/,
    );
  });
});
