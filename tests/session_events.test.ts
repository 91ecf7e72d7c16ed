/**
 * SessionEvents (src/session/session_events.ts) on its own: what each method
 * publishes, and that nothing is built without subscribers. tests/events.test.ts
 * checks the same events in order through real sessions on each transport.
 */
import { afterEach, describe, it } from "node:test";
import assert from "node:assert/strict";
import { subscribe, unsubscribe } from "node:diagnostics_channel";
import { SMTP_CHANNELS, type SmtpChannelNames } from "../src/events.ts";
import { newContext } from "../src/context.ts";
import { SessionEvents } from "../src/session/session_events.ts";
import { serverContext } from "./server_context.ts";

type Event = Record<string, unknown>;
const stops: (() => void)[] = [];
afterEach(() => stops.splice(0).forEach((stop) => stop()));

/** Records the events of `names` while the test runs. */
function record(...names: (keyof SmtpChannelNames)[]): Event[] {
  const events: Event[] = [];
  for (const name of names) {
    const handler = (message: unknown) => events.push({ channel: name, ...(message as Event) });
    subscribe(SMTP_CHANNELS[name], handler);
    stops.push(() => unsubscribe(SMTP_CHANNELS[name], handler));
  }
  return events;
}

function setUp() {
  const ctx = newContext(serverContext({ remotePort: 40001 }));
  return { ctx, events: new SessionEvents(ctx) };
}

describe("SessionEvents", () => {
  it("opened and closed: the addresses, then the duration, messages and errors", async () => {
    const recorded = record("connection");
    const { ctx, events } = setUp();
    events.opened();
    await new Promise((r) => setTimeout(r, 20));
    ctx.server.exceptions = 2;
    events.closed(3);
    const [open, close] = recorded;
    const where = { remoteIp: "127.0.0.1", remotePort: 40001, localIp: "127.0.0.1", localPort: 2525 };
    assert.deepEqual(open, {
      channel: "connection",
      sessionId: ctx.sessionId,
      time: open.time,
      phase: "open",
      ...where,
    });
    assert.equal(close.phase, "close");
    assert.equal(close.messages, 3);
    assert.equal(close.errors, 2);
    assert.ok((close.durationMs as number) >= 15, `durationMs ${close.durationMs}`);
    assert.equal(close.durationMs, (close.time as number) - (open.time as number));
  });

  it("command: the verb of a known command only, never its arguments", () => {
    const recorded = record("command");
    const { events } = setUp();
    const known = (verb: string) => verb === "MAIL";
    events.command("mail FROM:<secret@example.com>", known);
    events.command("AGFsaWNlAHMzY3JldA==", known);
    assert.deepEqual(recorded.map((e) => e.verb), ["MAIL", ""]);
    assert.ok(!JSON.stringify(recorded).includes("secret"));
  });

  it("replies: one event per reply, a multi-line reply as one", () => {
    const recorded = record("reply");
    const { events } = setUp();
    events.replies("250-mx.example\r\n250-PIPELINING\r\n250 SIZE 1000\r\n354 go ahead\r\n");
    assert.deepEqual(recorded.map((e) => [e.code, e.text]), [
      [250, "250-mx.example\r\n250-PIPELINING\r\n250 SIZE 1000\r\n"],
      [354, "354 go ahead\r\n"],
    ]);
  });

  it("message: size, recipients, duration since its start, and how it came", () => {
    const recorded = record("message");
    const { ctx, events } = setUp();
    ctx.message.bytesize = 1234;
    ctx.envelope.to.push("<a@example.com>", "<b@example.com>");
    events.message(true, 250, Date.now() - 50, "BDAT");
    const [event] = recorded;
    assert.equal(event.accepted, true);
    assert.equal(event.code, 250);
    assert.equal(event.size, 1234);
    assert.equal(event.recipients, 2);
    assert.equal(event.via, "BDAT");
    assert.ok((event.durationMs as number) >= 50);
  });

  it("tls: protocol and cipher on success; on failure none, and why", () => {
    const recorded = record("tls");
    const { events } = setUp();
    events.tls("implicit", { protocol: "TLSv1.3", cipher: "TLS_AES_128_GCM_SHA256" } as never);
    events.tls("STARTTLS", undefined, "wrong version number");
    assert.deepEqual(recorded.map(({ time: _, sessionId: __, ...rest }) => rest), [
      { channel: "tls", ok: true, mode: "implicit", protocol: "TLSv1.3", cipher: "TLS_AES_128_GCM_SHA256" },
      { channel: "tls", ok: false, mode: "STARTTLS", protocol: "", cipher: "", error: "wrong version number" },
    ]);
  });

  it("without subscribers: nothing is published and the command line is not even looked at", () => {
    const { events } = setUp();
    let asked = 0;
    events.opened();
    events.command("MAIL FROM:<a@example.com>", () => (asked++, true));
    events.replies("250 OK\r\n");
    events.message(true, 250, 0, "DATA");
    events.tls("STARTTLS", undefined, "x");
    events.closed(0);
    assert.equal(asked, 0);
  });
});
