/**
 * src/session/session.ts driven directly, without a server or a socket: a
 * scripted connection plays the client, a hand-made SessionHost plays the
 * server. Checks the order of things (greeting, pipelined replies sent in one
 * write, the message handed to the hook, FIN then close) and how a session
 * ends from outside. Also src/session/errors.ts, the replies of those ends.
 * Everything else about sessions runs through a real server in the other
 * session tests.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { Session, type SessionHost } from "../src/session/session.ts";
import { HookTimeoutException, SessionEndedException } from "../src/session/errors.ts";
import { Deadlines } from "../src/session/deadlines.ts";
import { ClientLimits } from "../src/client_limits.ts";
import { MidiSmtpServer, type MidiSmtpServerOptions } from "../src/server.ts";
import { SmtpdException } from "../src/exceptions.ts";
import type { SmtpdContext } from "../src/context.ts";
import { bytes, FakeConnection, text } from "./fake_connection.ts";

/** A SessionHost whose hooks are a (never started) server's, built from `options`. */
function host(options: MidiSmtpServerOptions): SessionHost {
  const server = new MidiSmtpServer({ loggerSeverity: "fatal", onLoggingEvent() {}, ...options });
  return {
    options: server.options,
    hooks: server,
    receivingHookActive: false,
    streamingHookActive: false,
    logs: () => false,
    log() {},
    hostName: (ip) => Promise.resolve(ip),
    startTls: undefined,
    authMechanisms: new Map(),
    deadlines: new Deadlines(50),
    hookDeadlines: new Deadlines(50),
    limits: new ClientLimits(server.options),
    logRefusal() {},
    overloadTimeout: () => null,
  };
}

/** Waits until `predicate` holds (checked every few ms), for 5 s at most. */
async function until(predicate: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** The reply codes in one write, in order. */
const codes = (write: Uint8Array) =>
  text(write)!.split("\r\n").filter((l) => / /.test(l.slice(3, 4))).map((l) => l.slice(0, 3));

test("errors: a hook past hookTimeout is 421 4.3.0; an ended session is 421 4.4.2", () => {
  const timeout = new HookTimeoutException("onRcptToEvent");
  assert.ok(timeout instanceof SmtpdException);
  assert.equal(timeout.name, "HookTimeoutException");
  assert.equal(timeout.smtpdResult, "421 4.3.0 Local processing timed out, closing transmission channel");
  assert.equal(timeout.message, "onRcptToEvent did not finish within hookTimeout");
  const ended = new SessionEndedException("client left");
  assert.ok(ended instanceof SmtpdException);
  assert.equal(ended.smtpdResult, "421 4.4.2 Session ended, closing transmission channel");
  assert.equal(ended.message, "client left");
});

test("a whole transaction: greeting, EHLO, one write for a pipelined group, the message, QUIT", async () => {
  const received: Array<{ from: string; to: string[]; text: string }> = [];
  const conn = new FakeConnection();
  const session = new Session(
    host({
      pipeliningExtension: true,
      onMessageDataEvent(ctx: SmtpdContext) {
        received.push({ from: ctx.envelope.from, to: ctx.envelope.to, text: ctx.message.text });
      },
    }),
    conn,
  );
  const running = session.run();
  await until(() => conn.written.length === 1, "the greeting");
  assert.match(text(conn.written[0])!, /^220 /);
  conn.feed(bytes("EHLO client.example\r\n"));
  await until(() => conn.written.length === 2, "the EHLO reply");
  assert.match(text(conn.written[1])!, /^250-.*\r\n(250-.*\r\n)*250 .*\r\n$/);
  assert.match(text(conn.written[1])!, /\r\n250[- ]PIPELINING\r\n/);
  conn.feed(bytes("MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n"));
  await until(() => conn.written.length === 3, "the pipelined replies");
  assert.deepEqual(codes(conn.written[2]), ["250", "250", "354"]);
  assert.equal(session.ctx.envelope.from, "<a@example.com>");
  conn.feed(bytes("Subject: hi\r\n\r\nbody\r\n.\r\nQUIT\r\n"));
  await running;
  assert.deepEqual(conn.written.slice(3).flatMap(codes), ["250", "221"]);
  assert.deepEqual(received, [{
    from: "<a@example.com>",
    to: ["<b@example.org>"],
    text: "Subject: hi\r\n\r\nbody\r\n",
  }]);
  assert.equal(conn.closeWrites, 1, "FIN after the last reply");
  assert.ok(conn.closes >= 1);
  assert.equal(session.ctx.signal.aborted, true, "the context ends with the session");
});

test("a client that talks before the greeting is refused with 554 and the connection closes", async () => {
  const conn = new FakeConnection();
  conn.feed(bytes("EHLO early\r\n"));
  const session = new Session(host({ greetingDelay: 0.05 }), conn);
  await session.run();
  assert.deepEqual(conn.written.map(text), [
    "554 5.5.0 Protocol error: data sent before the greeting, closing connection\r\n",
  ]);
  assert.ok(conn.closes >= 1);
});

test("shutdown() ends a session that waits for a command with 421 4.3.2", async () => {
  const conn = new FakeConnection();
  const session = new Session(host({}), conn);
  const running = session.run();
  await until(() => conn.written.length === 1, "the greeting");
  await until(() => session.idleSince > 0, "the session to wait for a command");
  session.shutdown();
  await running;
  assert.equal(text(conn.written.at(-1)), "421 4.3.2 Service shutting down, closing transmission channel\r\n");
});

test("abort() stops waiting for a hook at once: 421, ctx.signal aborted, onDisconnectEvent still runs", async () => {
  const conn = new FakeConnection();
  let signal: AbortSignal | undefined;
  let disconnected = 0;
  const session = new Session(
    host({
      pipeliningExtension: true,
      onMailFromEvent(ctx: SmtpdContext) {
        signal = ctx.signal;
        return new Promise<void>(() => {}); // never settles
      },
      onDisconnectEvent() {
        disconnected++;
      },
    }),
    conn,
  );
  const running = session.run();
  await until(() => conn.written.length === 1, "the greeting");
  conn.feed(bytes("EHLO client.example\r\nMAIL FROM:<a@example.com>\r\n"));
  await until(() => signal !== undefined, "the MAIL hook");
  session.abort();
  await running;
  assert.equal(signal!.aborted, true);
  assert.ok(
    conn.written.map(text).join("").endsWith("421 4.3.2 Service shutting down, closing transmission channel\r\n"),
  );
  assert.equal(disconnected, 1);
});
