/**
 * Structured events (src/events.ts) on node:diagnostics_channel, on every
 * runtime and transport: one full session with a STARTTLS, a refused RCPT,
 * an accepted message and an AUTH failure, and what each event carries (never
 * arguments or credentials). Also the session id in ctx and log lines.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import type * as tls from "node:tls";
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
        "reply 220",
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

/** Collects the refusal channel's events while `body` runs; waits up to 2 s for `count` of them. */
async function refusalsDuring(count: number, body: () => Promise<void>): Promise<Record<string, unknown>[]> {
  const events: Record<string, unknown>[] = [];
  const handler = (event: unknown) => void events.push(event as Record<string, unknown>);
  subscribe(SMTP_CHANNELS.refusal, handler);
  try {
    await body();
    for (let i = 0; i < 100 && events.length < count; i++) await new Promise((r) => setTimeout(r, 20));
  } finally {
    unsubscribe(SMTP_CHANNELS.refusal, handler);
  }
  return events;
}

/** An event's fields without its time, which is checked on its own. */
function withoutTime(event: Record<string, unknown>): Record<string, unknown> {
  assert.ok(typeof event.time === "number" && Math.abs(event.time - Date.now()) < 10_000, `time ${event.time}`);
  const { time: _, ...rest } = event;
  return rest;
}

for (const transport of TRANSPORTS) {
  describe(`refusal events before a session (${transport.name} transport)`, () => {
    it("maxConnections and per-client limits: 421, with the client and the reason", TEST, async () => {
      for (
        const [options, reason] of [
          [{ maxConnections: 1, maxProcessings: 1 }, "maxConnections (1) reached"],
          [{ maxConnectionsPerIp: 1 }, "maxConnectionsPerIp (1) reached"],
        ] as const
      ) {
        const srv = await startServer(transport, options);
        try {
          const events = await refusalsDuring(1, async () => {
            const first = await RawClient.connect(srv.port);
            try {
              await first.expect(220);
              const second = await RawClient.connect(srv.port);
              await second.expect(421);
              await second.waitClosed();
              second.close();
            } finally {
              first.close();
            }
          });
          assert.deepEqual(events.map(withoutTime), [{ remoteIp: "127.0.0.1", code: 421, reason }]);
        } finally {
          await srv.close();
        }
      }
    });

    it("no slot within queueTimeout: 421", TEST, async () => {
      const srv = await startServer(transport, { maxProcessings: 1, queueTimeout: 0.2 });
      try {
        const events = await refusalsDuring(1, async () => {
          const first = await RawClient.connect(srv.port);
          try {
            await first.expect(220);
            const second = await RawClient.connect(srv.port);
            await second.expect(421);
            second.close();
          } finally {
            first.close();
          }
        });
        assert.deepEqual(events.map(withoutTime), [
          { remoteIp: "127.0.0.1", code: 421, reason: "no free slot within queueTimeout" },
        ]);
      } finally {
        await srv.close();
      }
    });

    it("PROXY: an untrusted source and a malformed header are closed without a reply (code 0)", TEST, async () => {
      const untrusted = await startServer(transport, { proxyExtension: true, proxyTrustedSources: ["10.0.0.0/8"] });
      try {
        const events = await refusalsDuring(1, async () => {
          const client = await RawClient.connect(untrusted.port);
          await client.waitClosed();
          client.close();
        });
        assert.deepEqual(events.map(withoutTime), [
          { remoteIp: "127.0.0.1", code: 0, reason: "PROXY header expected from an untrusted source" },
        ]);
      } finally {
        await untrusted.close();
      }
      const trusted = await startServer(transport, { proxyExtension: true });
      try {
        const events = await refusalsDuring(1, async () => {
          // A health check that connects and leaves was not refused: no event.
          const check = await RawClient.connect(trusted.port);
          check.close();
          for (let i = 0; i < 100 && trusted.server.connections() > 0; i++) await new Promise((r) => setTimeout(r, 20));
          const client = await RawClient.connect(trusted.port);
          await client.send("GARBAGE\r\n");
          await client.waitClosed();
          client.close();
        });
        assert.equal(events.length, 1, JSON.stringify(events));
        const { remoteIp, code, reason } = withoutTime(events[0]);
        assert.deepEqual([remoteIp, code], ["127.0.0.1", 0]);
        assert.match(String(reason), /^no valid PROXY header: /);
      } finally {
        await trusted.close();
      }
    });

    it("before an implicit-TLS handshake: closed without a reply (code 0)", TEST, async () => {
      const srv = await startServer(transport, { tlsPorts: 0, maxConnections: 1, maxProcessings: 1 });
      try {
        const tlsPort = Number(/:(\d+)$/.exec(srv.server.tlsAddresses[0])![1]);
        const events = await refusalsDuring(1, async () => {
          const first = await RawClient.connect(srv.port);
          try {
            await first.expect(220);
            const second = await RawClient.connect(tlsPort);
            await second.waitClosed();
            assert.equal(second.pending, "", "no plaintext reply before the handshake");
            second.close();
          } finally {
            first.close();
          }
        });
        assert.deepEqual(events.map(withoutTime), [
          { remoteIp: "127.0.0.1", code: 0, reason: "maxConnections (1) reached" },
        ]);
      } finally {
        await srv.close();
      }
    });

    it("a per-client limit met inside a session is no refusal event: its reply is one", TEST, async () => {
      const srv = await startServer(transport, { maxMessageRatePerIp: 1 });
      try {
        const events = await refusalsDuring(0, async () => {
          const client = await RawClient.connect(srv.port);
          await client.expect(220);
          for (
            const [line, code] of [
              ["EHLO client.example", 250],
              ["MAIL FROM:<a@example.com>", 250],
              ["RSET", 250],
              ["MAIL FROM:<a@example.com>", 450],
              ["QUIT", 221],
            ] as const
          ) {
            assert.equal((await client.command(line)).code, code, line);
          }
          client.close();
        });
        assert.deepEqual(events, []);
      } finally {
        await srv.close();
      }
    });
  });
}
