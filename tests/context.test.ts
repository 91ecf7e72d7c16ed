/**
 * src/context.ts and src/hooks.ts: the per-session context (fresh envelope
 * and message, a signal that aborts when the session ends, message bytes
 * joined only when read) and the test for results that must be awaited.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  endContext,
  type MessageContext,
  newContext,
  newEnvelope,
  newMessage,
  setMessageData,
} from "../src/context.ts";
import { serverContext } from "./server_context.ts";
import { type Awaitable, isPromiseLike, type SmtpdHooks } from "../src/hooks.ts";

const encoder = new TextEncoder();
/** Replies the context must carry as given. */
const FACTS = {
  localResponse: "127.0.0.1 says welcome!",
  heloResponse: "127.0.0.1 at your service!",
  helo: "",
  heloMode: "",
} as const;

test("a new context holds the server facts, an empty envelope and no message yet", () => {
  const server = serverContext(FACTS);
  const ctx = newContext(server);
  assert.equal(ctx.server, server);
  assert.deepEqual(ctx.envelope, newEnvelope());
  assert.equal(ctx.message.bytesize, -1);
  assert.equal(ctx.message.received, null);
  assert.equal(ctx.message.delivered, null);
  assert.equal(ctx.message.headers, "");
  assert.equal(ctx.message.crlf, "\r\n");
  assert.deepEqual(ctx.message.data, new Uint8Array(0));
  assert.equal(ctx.message.text, "");
});

test("newEnvelope gives a fresh envelope each time", () => {
  const a = newEnvelope();
  const b = newEnvelope();
  assert.deepEqual(a, {
    from: "",
    to: [],
    encodingBody: "",
    encodingUtf8: "",
    mailParams: {},
    rcptParams: [],
    recipients: [],
    dsn: { ret: null, envid: null },
    requireTls: false,
    xforward: null,
    values: {},
  });
  for (const key of ["to", "mailParams", "rcptParams", "recipients", "dsn", "values"] as const) {
    assert.notEqual(a[key], b[key], `${key} is not shared`);
  }
});

test("ctx.signal aborts when the session ends, also when first asked for after the end", () => {
  const early = newContext(serverContext(FACTS));
  const signal = early.signal;
  assert.equal(signal.aborted, false);
  assert.equal(early.signal, signal, "one signal per context");
  let fired = 0;
  signal.addEventListener("abort", () => fired++);
  endContext(early);
  assert.equal(signal.aborted, true);
  assert.equal(fired, 1);

  const late = newContext(serverContext(FACTS));
  endContext(late);
  assert.equal(late.signal.aborted, true);
});

test("endContext leaves a context it did not make alone", () => {
  const controller = new AbortController();
  const foreign = { ...newContext(serverContext(FACTS)), signal: controller.signal };
  endContext(foreign);
  assert.equal(foreign.signal.aborted, false);
});

test("setMessageData: several segments are joined on first read, once", () => {
  const message = newMessage();
  const segments = [encoder.encode("Subject: hi\r\n"), encoder.encode("\r\n"), encoder.encode("bödy\r\n")];
  setMessageData(message, segments);
  const data = message.data;
  assert.deepEqual(data, encoder.encode("Subject: hi\r\n\r\nbödy\r\n"));
  assert.equal(message.data, data, "joined once, then kept");
  assert.equal(message.text, "Subject: hi\r\n\r\nbödy\r\n");
});

test("setMessageData: one segment is kept as it is; none is empty", () => {
  const message = newMessage();
  const only = encoder.encode("x\r\n");
  setMessageData(message, [only]);
  assert.equal(message.data, only);
  setMessageData(message, []);
  assert.deepEqual(message.data, new Uint8Array(0));
});

test("message.data can be set directly, and text decodes invalid UTF-8 leniently", () => {
  const message = newMessage();
  setMessageData(message, [encoder.encode("a"), encoder.encode("b")]);
  message.data = new Uint8Array([0x61, 0xff, 0x0d, 0x0a]);
  assert.deepEqual(message.data, new Uint8Array([0x61, 0xff, 0x0d, 0x0a]));
  assert.equal(message.text, "a\ufffd\r\n");
});

test("setMessageData joins at once into a message record of the application's own", () => {
  const own: MessageContext = { ...newMessage(), data: new Uint8Array(0), text: "" };
  setMessageData(own, [encoder.encode("a"), encoder.encode("b")]);
  assert.deepEqual(own.data, encoder.encode("ab"));
});

test("isPromiseLike: promises and thenables are awaited, plain values are not", () => {
  assert.equal(isPromiseLike(Promise.resolve(1)), true);
  assert.equal(isPromiseLike({ then: () => {} } as PromiseLike<void>), true);
  assert.equal(isPromiseLike<number>(1), false);
  assert.equal(isPromiseLike<void>(undefined), false);
  assert.equal(isPromiseLike<null>(null), false);
  assert.equal(isPromiseLike<{ then: number }>({ then: 1 }), false);
});

test("SmtpdHooks may be sync or async (Awaitable)", async () => {
  const calls: string[] = [];
  const connect: SmtpdHooks["onConnectEvent"] = (ctx) => void calls.push(ctx.server.remoteIp);
  const asyncConnect: SmtpdHooks["onConnectEvent"] = async (ctx) => {
    await Promise.resolve();
    calls.push(`async ${ctx.server.remoteIp}`);
  };
  const ctx = newContext(serverContext(FACTS));
  for (const hook of [connect, asyncConnect]) {
    const result: Awaitable<void> = hook(ctx);
    if (isPromiseLike(result)) await result;
  }
  assert.deepEqual(calls, ["127.0.0.1", "async 127.0.0.1"]);
});
