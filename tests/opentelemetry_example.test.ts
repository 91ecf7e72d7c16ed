/**
 * examples/opentelemetry.ts on this runtime: one session with a STARTTLS, a
 * failed AUTH, a refused RCPT and an accepted message, plus a client refused
 * by `maxConnectionsPerIp` meanwhile, gives the metric values and the session
 * span the example's description promises.
 *
 * No OpenTelemetry SDK is installed (the example needs only the API, and the
 * project should not carry an SDK for one test): a tiny in-memory
 * MeterProvider and TracerProvider stand in for it, implementing just the
 * API methods the example calls and failing loudly on any other, and are
 * passed to `instrumentSmtp` directly rather than registered globally, so no
 * other test file in the same process sees them.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import type * as tls from "node:tls";
import type {
  Attributes,
  Meter,
  MeterProvider,
  MetricOptions,
  Span,
  SpanOptions,
  TimeInput,
  Tracer,
  TracerProvider,
} from "@opentelemetry/api";
import { SpanKind } from "@opentelemetry/api";
import { MidiSmtpServer, Smtpd535Exception, Smtpd550Exception } from "../mod.ts";
import { INSTRUMENTATION_NAME, instrumentSmtp, refusalKind } from "../examples/opentelemetry.ts";
import { RawClient, runtime } from "./helpers.ts";

/** One `add` or `record` call. */
interface Point {
  readonly value: number;
  readonly attributes: Attributes;
}

/** An instrument as created, with everything recorded on it. */
interface FakeInstrument {
  readonly kind: "counter" | "upDownCounter" | "histogram";
  readonly options: MetricOptions | undefined;
  readonly points: Point[];
}

/** An in-memory MeterProvider: instruments by name, with their points. */
function fakeMeterProvider() {
  const instruments = new Map<string, FakeInstrument>();
  const scopes: string[] = [];
  const create = (kind: FakeInstrument["kind"]) => (name: string, options?: MetricOptions) => {
    assert.ok(!instruments.has(name), `instrument ${name} created twice`);
    const instrument: FakeInstrument = { kind, options, points: [] };
    instruments.set(name, instrument);
    const push = (value: number, attributes: Attributes = {}) => {
      instrument.points.push({ value, attributes: { ...attributes } });
    };
    return kind === "histogram" ? { record: push } : { add: push };
  };
  const meter = new Proxy({
    createCounter: create("counter"),
    createUpDownCounter: create("upDownCounter"),
    createHistogram: create("histogram"),
  }, {
    get(target, key) {
      if (key in target) return target[key as keyof typeof target];
      throw new Error(`the fake Meter has no ${String(key)}: the example uses more of the API than the test knows`);
    },
  }) as unknown as Meter;
  const provider: MeterProvider = {
    getMeter(name: string) {
      scopes.push(name);
      return meter;
    },
  };
  /** The sum of an instrument's values per attribute set, keyed by the attributes' JSON (sorted keys). */
  const sums = (name: string): Record<string, number> => {
    const instrument = instruments.get(name);
    assert.ok(instrument, `no instrument ${name}`);
    const out: Record<string, number> = {};
    for (const { value, attributes } of instrument.points) {
      const key = JSON.stringify(Object.fromEntries(Object.entries(attributes).sort(([a], [b]) => a < b ? -1 : 1)));
      out[key] = (out[key] ?? 0) + value;
    }
    return out;
  };
  return { provider, instruments, scopes, sums };
}

/** A span as the fake tracer saw it. */
interface FakeSpan {
  readonly name: string;
  readonly options: SpanOptions | undefined;
  readonly attributes: Attributes;
  readonly events: { name: string; attributes: Attributes; time: TimeInput | undefined }[];
  endTime: TimeInput | undefined;
  ended: number;
}

/** An in-memory TracerProvider. */
function fakeTracerProvider() {
  const spans: FakeSpan[] = [];
  const scopes: string[] = [];
  const tracer = {
    startSpan(name: string, options?: SpanOptions): Span {
      const record: FakeSpan = {
        name,
        options,
        attributes: { ...options?.attributes },
        events: [],
        endTime: undefined,
        ended: 0,
      };
      spans.push(record);
      const span = {
        setAttribute(key: string, value: Attributes[string]) {
          record.attributes[key] = value;
          return span;
        },
        setAttributes(attributes: Attributes) {
          Object.assign(record.attributes, attributes);
          return span;
        },
        addEvent(eventName: string, attributes?: Attributes, time?: TimeInput) {
          assert.equal(record.ended, 0, `event ${eventName} on an ended span`);
          record.events.push({ name: eventName, attributes: { ...attributes }, time });
          return span;
        },
        end(time?: TimeInput) {
          record.ended++;
          record.endTime = time;
        },
      };
      return span as unknown as Span;
    },
  } as unknown as Tracer;
  const provider: TracerProvider = {
    getTracer(name: string) {
      scopes.push(name);
      return tracer;
    },
  };
  return { provider, spans, scopes };
}

/** Resolves once `check` holds (fails after 5 s). */
async function until(check: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!check()) {
    assert.ok(Date.now() < deadline, `timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** JSON key for the attribute set `attributes`, as `sums` makes it. */
const key = (attributes: Attributes) =>
  JSON.stringify(Object.fromEntries(Object.entries(attributes).sort(([a], [b]) => a < b ? -1 : 1)));

describe(`examples/opentelemetry.ts on ${runtime}`, () => {
  it(
    "records the metrics and the session span of a full session, and a refused client",
    { timeout: 30_000 },
    async () => {
      const meters = fakeMeterProvider();
      const tracers = fakeTracerProvider();
      const stop = instrumentSmtp({ meterProvider: meters.provider, tracerProvider: tracers.provider });
      const sessionIds: string[] = [];
      const server = new MidiSmtpServer({
        hosts: "127.0.0.1",
        ports: 0,
        loggerSeverity: "fatal",
        onLoggingEvent() {},
        tlsMode: "TLS_OPTIONAL", // a self-signed certificate is made at start
        authMode: "AUTH_OPTIONAL",
        maxConnectionsPerIp: 1, // so that a second client is refused while the session runs
        onConnectEvent(ctx) {
          sessionIds.push(ctx.sessionId);
        },
        onRcptToEvent(_ctx, rcpt) {
          if (rcpt === "<nobody@example.com>") throw new Smtpd550Exception();
        },
        onAuthEvent() {
          throw new Smtpd535Exception();
        },
      });
      await server.start();
      const address = server.addresses[0];
      const port = Number(address.slice(address.lastIndexOf(":") + 1));
      const message = "Subject: hi\r\n\r\nhello\r\n";
      let client: RawClient | undefined;
      try {
        client = await RawClient.connect(port);
        assert.equal((await client.reply()).code, 220);
        await client.send("EHLO client.example\r\n");
        assert.equal((await client.reply()).code, 250);
        await client.startTls({ rejectUnauthorized: false } as tls.ConnectionOptions);

        // The second client from 127.0.0.1 while the first is open: refused before any session.
        const refused = await RawClient.connect(port);
        assert.equal((await refused.reply()).code, 421);
        refused.close();

        for (
          const [line, code] of [
            ["EHLO client.example", 250],
            ["AUTH PLAIN AGFsaWNlAHNlY3JldA==", 535],
            ["MAIL FROM:<a@example.com>", 250],
            ["RCPT TO:<nobody@example.com>", 550],
            ["RCPT TO:<b@example.com>", 250],
            ["DATA", 354],
            [`${message}.`, 250],
            ["QUIT", 221],
          ] as const
        ) {
          await client.send(line + "\r\n");
          assert.equal((await client.reply()).code, code, line);
        }
        client.close();
        await until(() => tracers.spans.length === 1 && tracers.spans[0].ended > 0, "the session span to end");
      } finally {
        client?.close();
        await server.stop({ gracefully: false, waitSecondsBeforeClose: 0 });
        stop();
      }

      assert.deepEqual(meters.scopes, [INSTRUMENTATION_NAME]);
      assert.deepEqual(tracers.scopes, [INSTRUMENTATION_NAME]);

      // Metrics.
      assert.deepEqual(meters.sums("smtp.server.connections"), { [key({})]: 1 }, "the refused client had no session");
      assert.deepEqual(meters.sums("smtp.server.active_sessions"), { [key({})]: 0 });
      assert.deepEqual(meters.sums("smtp.server.replies"), {
        [key({ "smtp.command": "", "smtp.reply.code": 220 })]: 1, // the greeting
        [key({ "smtp.command": "EHLO", "smtp.reply.code": 250 })]: 2,
        [key({ "smtp.command": "STARTTLS", "smtp.reply.code": 220 })]: 1,
        [key({ "smtp.command": "AUTH", "smtp.reply.code": 535 })]: 1,
        [key({ "smtp.command": "MAIL", "smtp.reply.code": 250 })]: 1,
        [key({ "smtp.command": "RCPT", "smtp.reply.code": 550 })]: 1, // the refused recipient
        [key({ "smtp.command": "RCPT", "smtp.reply.code": 250 })]: 1,
        [key({ "smtp.command": "DATA", "smtp.reply.code": 354 })]: 1,
        [key({ "smtp.command": "DATA", "smtp.reply.code": 250 })]: 1, // the message's end
        [key({ "smtp.command": "QUIT", "smtp.reply.code": 221 })]: 1,
      });
      assert.deepEqual(meters.sums("smtp.server.messages"), {
        [key({ "smtp.message.outcome": "accepted", "smtp.reply.code": 250, "smtp.message.transfer": "DATA" })]: 1,
      });
      const size = meters.instruments.get("smtp.server.message.size")!;
      assert.equal(size.kind, "histogram");
      assert.equal(size.options?.unit, "By");
      assert.deepEqual(size.points, [{ value: message.length, attributes: { "smtp.message.outcome": "accepted" } }]);
      const messageDuration = meters.instruments.get("smtp.server.message.duration")!;
      assert.equal(messageDuration.options?.unit, "s");
      assert.equal(messageDuration.points.length, 1);
      assert.ok(messageDuration.points[0].value >= 0 && messageDuration.points[0].value < 5, "seconds, not ms");
      const sessionDuration = meters.instruments.get("smtp.server.session.duration")!;
      assert.equal(sessionDuration.points.length, 1);
      assert.ok(sessionDuration.points[0].value >= messageDuration.points[0].value);
      assert.ok(sessionDuration.points[0].value < 10, "seconds, not ms");
      assert.deepEqual(meters.sums("smtp.server.refusals"), {
        [key({ "smtp.refusal.reason": "maxConnectionsPerIp", "smtp.reply.code": 421 })]: 1,
      });
      assert.deepEqual(meters.sums("smtp.server.auth.failures"), {
        [key({ "smtp.auth.mechanism": "PLAIN", "smtp.reply.code": 535 })]: 1,
      });
      assert.deepEqual(meters.sums("smtp.server.tls.handshakes"), {
        [key({ "smtp.tls.mode": "STARTTLS", "smtp.tls.outcome": "ok" })]: 1,
      });
      for (const [name, instrument] of meters.instruments) {
        assert.ok(instrument.options?.description && instrument.options.unit, `${name} has a description and a unit`);
      }

      // The session span.
      const [span] = tracers.spans;
      assert.equal(span.name, "smtp.session");
      assert.equal(span.options?.kind, SpanKind.SERVER);
      assert.equal(span.ended, 1);
      assert.equal(sessionIds.length, 1);
      assert.equal(span.attributes["smtp.session.id"], sessionIds[0]);
      assert.equal(span.attributes["client.address"], "127.0.0.1");
      assert.equal(typeof span.attributes["client.port"], "number");
      assert.equal(span.attributes["server.address"], "127.0.0.1");
      assert.equal(span.attributes["server.port"], port);
      assert.match(String(span.attributes["tls.protocol.version"]), /^TLSv1\.[23]$/);
      assert.equal(span.attributes["smtp.session.messages"], 1);
      assert.equal(span.attributes["smtp.session.errors"], 2); // the 535 and the 550
      assert.ok(typeof span.options?.startTime === "number" && typeof span.endTime === "number");
      assert.ok(span.endTime >= span.options.startTime);
      const summary = span.events.map(({ name, attributes: a }) => {
        switch (name) {
          case "smtp.command":
            return `command ${a["smtp.command"]}`;
          case "smtp.reply":
            return `reply ${a["smtp.reply.code"]}`;
          case "smtp.tls":
            return `tls ${a["smtp.tls.mode"]} ${a["smtp.tls.outcome"]}`;
          case "smtp.auth":
            return `auth ${a["smtp.auth.mechanism"]} ${a["smtp.auth.outcome"]} ${a["smtp.reply.code"]}`;
          case "smtp.message":
            return `message ${a["smtp.message.outcome"]} ${a["smtp.reply.code"]} ${a["smtp.message.size"]} ${
              a["smtp.message.recipients"]
            } ${a["smtp.message.transfer"]}`;
          default:
            return name;
        }
      });
      assert.deepEqual(summary, [
        "reply 220",
        "command EHLO",
        "reply 250",
        "command STARTTLS",
        "reply 220",
        "tls STARTTLS ok",
        "command EHLO",
        "reply 250",
        "command AUTH",
        "auth PLAIN failed 535",
        "reply 535",
        "command MAIL",
        "reply 250",
        "command RCPT",
        "reply 550",
        "command RCPT",
        "reply 250",
        "command DATA",
        "reply 354",
        `message accepted 250 ${message.length} 1 DATA`,
        "reply 250",
        "command QUIT",
        "reply 221",
      ]);
      // Every event at the library's own time, within the span.
      for (const event of span.events) {
        assert.ok(typeof event.time === "number" && event.time >= span.options.startTime && event.time <= span.endTime);
      }
      // Nothing of the AUTH line's credentials, nor of the addresses, in the span.
      const text = JSON.stringify(span);
      assert.ok(!text.includes("AGFsaWNl") && !text.includes("example.com"), text);
    },
  );

  it("cuts refusal reasons to the limit or cause they name", () => {
    assert.equal(refusalKind("maxConnectionsPerIp (50) reached"), "maxConnectionsPerIp");
    assert.equal(refusalKind("maxConnectionRatePerIp (600 a minute) reached"), "maxConnectionRatePerIp");
    assert.equal(refusalKind("maxConnections (1000) reached"), "maxConnections");
    assert.equal(
      refusalKind("no valid PROXY header: v2 header of 300 bytes over the limit of 232"),
      "no valid PROXY header",
    );
    assert.equal(refusalKind("no free slot within queueTimeout"), "no free slot within queueTimeout");
    assert.equal(refusalKind("the server is stopping"), "the server is stopping");
  });

  it("unsubscribes: no metric or span after the returned function ran", { timeout: 30_000 }, async () => {
    const meters = fakeMeterProvider();
    const tracers = fakeTracerProvider();
    instrumentSmtp({ meterProvider: meters.provider, tracerProvider: tracers.provider })();
    const server = new MidiSmtpServer({ hosts: "127.0.0.1", ports: 0, loggerSeverity: "fatal", onLoggingEvent() {} });
    await server.start();
    try {
      const address = server.addresses[0];
      const client = await RawClient.connect(Number(address.slice(address.lastIndexOf(":") + 1)));
      assert.equal((await client.reply()).code, 220);
      await client.send("QUIT\r\n");
      assert.equal((await client.reply()).code, 221);
      client.close();
    } finally {
      await server.stop({ gracefully: false, waitSecondsBeforeClose: 0 });
    }
    assert.equal(tracers.spans.length, 0);
    for (const [name, instrument] of meters.instruments) assert.deepEqual(instrument.points, [], name);
  });
});
