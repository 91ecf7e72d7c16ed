/**
 * Structured events (src/events.ts) on node:diagnostics_channel, on every
 * runtime and transport: one full session with a STARTTLS, a refused RCPT,
 * an accepted message and an AUTH failure, and what each event carries (never
 * arguments or credentials). Also the session id in ctx and log lines.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import * as tls from "node:tls";
import { subscribe, unsubscribe } from "node:diagnostics_channel";
import { SMTP_CHANNELS, Smtpd535Exception, Smtpd550Exception } from "../mod.ts";
import { RawClient, startServer, TRANSPORTS } from "./helpers.ts";
import { channels } from "../src/events.ts";
import { newSessionId } from "../src/session_id.ts";

const TEST = { timeout: 30_000 };

type Recorded = { channel: string; event: Record<string, unknown> };

/** Subscribes to every channel; `events` fills in publishing order. */
function recorder() {
  const events: Recorded[] = [];
  const handlers = Object.entries(SMTP_CHANNELS).map(([name, channel]) => {
    const handler = (event: unknown) => events.push({ channel: name, event: event as Record<string, unknown> });
    subscribe(channel, handler);
    return [channel, handler] as const;
  });
  return { events, stop: () => handlers.forEach(([channel, handler]) => unsubscribe(channel, handler)) };
}

for (const transport of TRANSPORTS) {
  describe(`events over the ${transport.name} transport`, () => {
    let rec: ReturnType<typeof recorder>;
    before(() => rec = recorder());
    after(() => rec.stop());

    it("a full session publishes its events in order, with the session id of ctx and the log lines", TEST, async () => {
      const ids: string[] = [];
      const logLines: string[] = [];
      const srv = await startServer(transport, {
        tlsMode: "TLS_OPTIONAL",
        authMode: "AUTH_OPTIONAL",
        loggerSeverity: "debug",
        onLoggingEvent(ctx, _severity, msg) {
          if (ctx) logLines.push(`${ctx.sessionId} ${msg}`);
        },
        onConnectEvent(ctx) {
          ids.push(ctx.sessionId);
        },
        onRcptToEvent(_ctx, rcpt) {
          if (rcpt === "<nobody@example.com>") throw new Smtpd550Exception();
        },
        onAuthEvent() {
          throw new Smtpd535Exception();
        },
      });
      rec.events.length = 0;
      try {
        const raw = await RawClient.connect(srv.port);
        assert.equal((await raw.reply()).code, 220);
        await raw.send("EHLO client.example\r\n");
        assert.equal((await raw.reply()).code, 250);
        await raw.startTls({ rejectUnauthorized: false } as tls.ConnectionOptions);
        const client = raw;
        for (
          const [line, code] of [
            ["EHLO client.example", 250],
            ["AUTH PLAIN AGFsaWNlAHNlY3JldA==", 535],
            ["MAIL FROM:<a@example.com>", 250],
            ["RCPT TO:<nobody@example.com>", 550],
            ["RCPT TO:<b@example.com>", 250],
            ["DATA", 354],
            ["Subject: hi\r\n\r\nhello\r\n.", 250],
            ["QUIT", 221],
          ] as const
        ) {
          await client.send(line + "\r\n");
          assert.equal((await client.reply()).code, code, line);
        }
        client.close();
        // The close event comes once the session has ended.
        for (let i = 0; i < 100 && !rec.events.some((e) => e.event.phase === "close"); i++) {
          await new Promise((r) => setTimeout(r, 20));
        }
      } finally {
        await srv.close();
      }
      const mine = rec.events.filter((e) => e.channel === "refusal" || e.event.sessionId === ids[0]);
      assert.equal(mine.length, rec.events.length, "every event belongs to the one session");
      const summary = mine.map(({ channel, event }) =>
        channel === "command"
          ? `command ${event.verb}`
          : channel === "reply"
          ? `reply ${event.code}`
          : channel === "connection"
          ? `connection ${event.phase}`
          : channel === "tls"
          ? `tls ${event.mode} ${event.ok}`
          : channel === "auth"
          ? `auth ${event.mechanism} ${event.ok} ${event.code}`
          : `message ${event.accepted} ${event.code} ${event.size} ${event.recipients} ${event.via}`
      );
      assert.deepEqual(summary, [
        "connection open",
        "reply 220",
        "command EHLO",
        "reply 250",
        "command STARTTLS",
        "tls STARTTLS true",
        "command EHLO",
        "reply 250",
        "command AUTH",
        "auth PLAIN false 535",
        "reply 535",
        "command MAIL",
        "reply 250",
        "command RCPT",
        "reply 550",
        "command RCPT",
        "reply 250",
        "command DATA",
        "reply 354",
        "message true 250 22 1 DATA",
        "reply 250",
        "command QUIT",
        "reply 221",
        "connection close",
      ]);
      const close = mine.at(-1)!.event;
      assert.equal(close.messages, 1);
      assert.equal(close.errors, 2);
      assert.ok((close.durationMs as number) >= 0);
      const tlsEvent = mine.find((e) => e.channel === "tls")!.event;
      assert.match(String(tlsEvent.protocol), /^TLSv1\.[23]$/);
      // Nothing of the AUTH line's credentials in any event.
      assert.ok(!JSON.stringify(mine).includes("AGFsaWNl"));
      assert.match(ids[0], /^[0-9A-HJKMNP-TV-Z]{12}$/);
      assert.ok(logLines.length > 0 && logLines.every((l) => l.startsWith(ids[0])));
    });

    it("publishes nothing while nobody listens, and two sessions get two ids", TEST, async () => {
      rec.stop();
      const ids = new Set<string>();
      const srv = await startServer(transport, {
        onConnectEvent(ctx) {
          ids.add(ctx.sessionId);
        },
      });
      rec.events.length = 0;
      try {
        for (let i = 0; i < 2; i++) {
          const client = await RawClient.connect(srv.port);
          assert.equal((await client.reply()).code, 220);
          await client.send("QUIT\r\n");
          assert.equal((await client.reply()).code, 221);
          client.close();
        }
      } finally {
        await srv.close();
        rec = recorder();
      }
      assert.equal(ids.size, 2);
    });
  });
}

describe("session ids and channels", () => {
  it("makes distinct 12-character Crockford base32 ids", () => {
    const ids = new Set(Array.from({ length: 1000 }, () => newSessionId()));
    assert.equal(ids.size, 1000);
    for (const id of ids) assert.match(id, /^[0-9A-HJKMNP-TV-Z]{12}$/);
  });

  it("has one channel per kind, named as SMTP_CHANNELS says", () => {
    for (const [kind, name] of Object.entries(SMTP_CHANNELS)) {
      assert.equal(channels[kind as keyof typeof channels].name, name);
    }
  });
});
