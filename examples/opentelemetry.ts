/**
 * OpenTelemetry metrics and traces for an SMTP server, made from the
 * library's structured events (`node:diagnostics_channel`, see README
 * "Observability"). Only `@opentelemetry/api` is imported: the application
 * registers whatever SDK and exporters it already uses, and the library itself
 * depends on neither. With no SDK registered the API is a no-op, so this costs
 * next to nothing until one is.
 *
 * Metrics (attributes in brackets):
 * - `smtp.server.connections` counter: sessions opened.
 * - `smtp.server.active_sessions` up-down counter: sessions open now.
 * - `smtp.server.session.duration` histogram (s): from the session's start to its end.
 * - `smtp.server.replies` counter [`smtp.command`, `smtp.reply.code`]: every reply, with the command it
 *   answers (`""` for the greeting): a refused RCPT is `{RCPT, 550}`.
 * - `smtp.server.messages` counter [`smtp.message.outcome`, `smtp.reply.code`, `smtp.message.transfer`]:
 *   messages accepted or refused at their end, by reply code.
 * - `smtp.server.message.size` histogram (By) and `smtp.server.message.duration` histogram (s)
 *   [`smtp.message.outcome`]: the message's bytes, and the time from DATA's 354 (or the first BDAT) to its end.
 * - `smtp.server.refusals` counter [`smtp.refusal.reason`, `smtp.reply.code`]: clients refused before a
 *   session (limits, busy, stopping, PROXY), the reason cut to the limit or cause it names (`refusalKind`).
 * - `smtp.server.auth.failures` counter [`smtp.auth.mechanism`, `smtp.reply.code`]: failed AUTH exchanges.
 * - `smtp.server.tls.handshakes` counter [`smtp.tls.mode`, `smtp.tls.outcome`]: STARTTLS and implicit TLS.
 *
 * Traces: one span `smtp.session` (kind SERVER) per session, from the
 * session's start to its end, with the client and server addresses and the
 * session id as attributes, and an event per command (its verb), reply (its
 * code), message, TLS handshake and AUTH exchange, each at the time the
 * library gave it. Reply texts and command arguments are left out on
 * purpose: they hold addresses, and traces often go to a third party.
 *
 * In an application: register the SDK first, then call
 * `instrumentSmtp()` once; it returns a function that unsubscribes.
 *
 * Run as a program it starts a server on 127.0.0.1:2525 (SMTP_PORT to
 * change, 0 for any free port) with the instrumentation on:
 * `npx tsx examples/opentelemetry.ts`, `npx deno run -A examples/opentelemetry.ts`
 * or `npx bun examples/opentelemetry.ts`. Without an SDK registered before it
 * (e.g. `node --import ./otel-setup.mjs --import tsx examples/opentelemetry.ts`)
 * the metrics and spans go nowhere.
 */
import { subscribe, unsubscribe } from "node:diagnostics_channel";
import { realpathSync } from "node:fs";
import process from "node:process";
import { fileURLToPath } from "node:url";
import {
  type Attributes,
  type MeterProvider,
  metrics,
  type Span,
  SpanKind,
  trace,
  type TracerProvider,
} from "@opentelemetry/api";
import {
  MidiSmtpServer,
  SMTP_CHANNELS,
  type SmtpAuthEvent,
  type SmtpCommandEvent,
  type SmtpConnectionEvent,
  type SmtpMessageEvent,
  type SmtpRefusalEvent,
  type SmtpReplyEvent,
  type SmtpTlsEvent,
} from "../mod.ts";

/** The instrumentation scope's name, as exporters show it. */
export const INSTRUMENTATION_NAME = "midi-smtp-server-example";

/** Where the metrics and spans go: the global providers unless given (a test passes its own). */
export interface InstrumentOptions {
  /** Default: `metrics.getMeterProvider()`, read once here, so the SDK must be registered before. */
  meterProvider?: MeterProvider;
  /** Default: `trace.getTracerProvider()` (a proxy: an SDK registered later is still used). */
  tracerProvider?: TracerProvider;
}

/** What is kept per open session: its span, and the verb the next reply answers. */
interface SessionState {
  readonly span: Span;
  readonly start: number;
  verb: string;
}

/**
 * Subscribes to every SMTP channel and records the metrics and spans listed
 * in this module's description, for every server in this process (the
 * channels are process-wide). Returns a function that unsubscribes; spans of
 * sessions still open then are ended as they are, so none leaks.
 */
export function instrumentSmtp(options: InstrumentOptions = {}): () => void {
  const meter = (options.meterProvider ?? metrics.getMeterProvider()).getMeter(INSTRUMENTATION_NAME);
  const tracer = (options.tracerProvider ?? trace.getTracerProvider()).getTracer(INSTRUMENTATION_NAME);

  const connections = meter.createCounter("smtp.server.connections", {
    description: "SMTP sessions opened",
    unit: "{connection}",
  });
  const activeSessions = meter.createUpDownCounter("smtp.server.active_sessions", {
    description: "SMTP sessions open now",
    unit: "{session}",
  });
  // Durations in seconds, as OpenTelemetry's conventions ask; the SDK's default buckets (0 to 10000) are
  // made for milliseconds and would put nearly every value into the first, hence the advice.
  const sessionDuration = meter.createHistogram("smtp.server.session.duration", {
    description: "Duration of SMTP sessions",
    unit: "s",
    advice: { explicitBucketBoundaries: [0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 600] },
  });
  const replies = meter.createCounter("smtp.server.replies", {
    description: "SMTP replies sent, by the command they answer and their code",
    unit: "{reply}",
  });
  const messages = meter.createCounter("smtp.server.messages", {
    description: "Messages accepted or refused at their end",
    unit: "{message}",
  });
  const messageSize = meter.createHistogram("smtp.server.message.size", {
    description: "Size of messages at their end",
    unit: "By",
    // Mail is mostly kilobytes, attachments megabytes: the SDK's default buckets (0 to 10000) would put
    // nearly every message above the last one.
    advice: { explicitBucketBoundaries: [1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864] },
  });
  const messageDuration = meter.createHistogram("smtp.server.message.duration", {
    description: "Time from DATA's 354 (or the first BDAT) to the end of the message",
    unit: "s",
    advice: { explicitBucketBoundaries: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60] },
  });
  const refusals = meter.createCounter("smtp.server.refusals", {
    description: "Clients refused before a session",
    unit: "{refusal}",
  });
  const authFailures = meter.createCounter("smtp.server.auth.failures", {
    description: "Failed AUTH exchanges",
    unit: "{failure}",
  });
  const tlsHandshakes = meter.createCounter("smtp.server.tls.handshakes", {
    description: "TLS handshakes, STARTTLS or implicit",
    unit: "{handshake}",
  });

  // Keyed by session id: events of interleaved sessions arrive on the same channels.
  const sessions = new Map<string, SessionState>();

  const onConnection = (message: unknown) => {
    const event = message as SmtpConnectionEvent;
    if (event.phase === "open") {
      connections.add(1);
      activeSessions.add(1);
      const span = tracer.startSpan("smtp.session", {
        kind: SpanKind.SERVER,
        startTime: event.time,
        attributes: {
          "smtp.session.id": event.sessionId,
          "client.address": event.remoteIp,
          "client.port": event.remotePort,
          "server.address": event.localIp,
          "server.port": event.localPort,
        },
      });
      sessions.set(event.sessionId, { span, start: event.time, verb: "" });
      return;
    }
    const state = sessions.get(event.sessionId);
    if (!state) return; // opened before we subscribed: counted nowhere, so not here either
    sessions.delete(event.sessionId);
    activeSessions.add(-1);
    sessionDuration.record((event.durationMs ?? event.time - state.start) / 1000);
    state.span.setAttributes({
      "smtp.session.messages": event.messages ?? 0,
      "smtp.session.errors": event.errors ?? 0,
    });
    // No error status for refused commands or messages: like an HTTP server's 4xx, they are the
    // client's outcome, not a failure of the server; the reply codes are on the events.
    state.span.end(event.time);
  };

  const onCommand = (message: unknown) => {
    const event = message as SmtpCommandEvent;
    const state = sessions.get(event.sessionId);
    if (!state) return;
    state.verb = event.verb;
    state.span.addEvent("smtp.command", { "smtp.command": event.verb }, event.time);
  };

  const onReply = (message: unknown) => {
    const event = message as SmtpReplyEvent;
    const state = sessions.get(event.sessionId);
    // The verb is what makes a reply count tell something ("RCPT refused"); the text is left out (addresses).
    replies.add(1, { "smtp.command": state?.verb ?? "", "smtp.reply.code": event.code });
    state?.span.addEvent("smtp.reply", { "smtp.reply.code": event.code }, event.time);
  };

  const onMessage = (message: unknown) => {
    const event = message as SmtpMessageEvent;
    const outcome = event.accepted ? "accepted" : "refused";
    messages.add(1, {
      "smtp.message.outcome": outcome,
      "smtp.reply.code": event.code,
      "smtp.message.transfer": event.via,
    });
    messageSize.record(event.size, { "smtp.message.outcome": outcome });
    messageDuration.record(event.durationMs / 1000, { "smtp.message.outcome": outcome });
    const attributes: Attributes = {
      "smtp.message.outcome": outcome,
      "smtp.reply.code": event.code,
      "smtp.message.size": event.size,
      "smtp.message.recipients": event.recipients,
      "smtp.message.transfer": event.via,
    };
    sessions.get(event.sessionId)?.span.addEvent("smtp.message", attributes, event.time);
  };

  const onTls = (message: unknown) => {
    const event = message as SmtpTlsEvent;
    const outcome = event.ok ? "ok" : "failed";
    tlsHandshakes.add(1, { "smtp.tls.mode": event.mode, "smtp.tls.outcome": outcome });
    const state = sessions.get(event.sessionId);
    if (!state) return;
    state.span.addEvent("smtp.tls", {
      "smtp.tls.mode": event.mode,
      "smtp.tls.outcome": outcome,
      ...(event.ok ? { "tls.protocol.version": event.protocol, "tls.cipher": event.cipher } : {}),
    }, event.time);
    if (event.ok) state.span.setAttribute("tls.protocol.version", event.protocol);
  };

  const onAuth = (message: unknown) => {
    const event = message as SmtpAuthEvent;
    if (!event.ok) authFailures.add(1, { "smtp.auth.mechanism": event.mechanism, "smtp.reply.code": event.code ?? 0 });
    // The identity only on success, as the event gives it; never what a failed attempt tried.
    sessions.get(event.sessionId)?.span.addEvent("smtp.auth", {
      "smtp.auth.mechanism": event.mechanism,
      "smtp.auth.outcome": event.ok ? "ok" : "failed",
      ...(event.code === undefined ? {} : { "smtp.reply.code": event.code }),
    }, event.time);
  };

  const onRefusal = (message: unknown) => {
    const event = message as SmtpRefusalEvent;
    refusals.add(1, { "smtp.refusal.reason": refusalKind(event.reason), "smtp.reply.code": event.code });
  };

  const handlers: Array<[string, (message: unknown) => void]> = [
    [SMTP_CHANNELS.connection, onConnection],
    [SMTP_CHANNELS.command, onCommand],
    [SMTP_CHANNELS.reply, onReply],
    [SMTP_CHANNELS.message, onMessage],
    [SMTP_CHANNELS.tls, onTls],
    [SMTP_CHANNELS.auth, onAuth],
    [SMTP_CHANNELS.refusal, onRefusal],
  ];
  for (const [name, handler] of handlers) subscribe(name, handler);

  return () => {
    for (const [name, handler] of handlers) unsubscribe(name, handler);
    for (const { span } of sessions.values()) span.end();
    sessions.clear();
  };
}

/**
 * What a refusal's reason names, without its numbers and details:
 * `"maxConnectionsPerIp (50) reached"` -> `"maxConnectionsPerIp"`, `"no valid
 * PROXY header: v2 header of 300 bytes over the limit of 232"` -> `"no valid
 * PROXY header"`. A metric attribute must take few values: each distinct one
 * is a time series of its own in the backend.
 */
export function refusalKind(reason: string): string {
  return reason.split(/ \(|: /, 1)[0];
}

/** Whether this file is the program (Deno, Bun and Node >= 24.2 say so; older Node: compare paths). */
function isProgram(): boolean {
  const main = (import.meta as { main?: unknown }).main;
  if (typeof main === "boolean") return main;
  try {
    return process.argv[1] !== undefined && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url);
  } catch {
    return false;
  }
}

if (isProgram()) {
  const stopInstrumenting = instrumentSmtp();
  const server = new MidiSmtpServer({ hosts: "127.0.0.1", ports: process.env.SMTP_PORT ?? 2525 });
  await server.start();
  console.log(`Ready for connections on ${server.addresses.join(", ")} (OpenTelemetry: ${INSTRUMENTATION_NAME})`);
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.on(signal, async () => {
      await server.stop({ gracefully: true, waitSecondsBeforeClose: 2 });
      stopInstrumenting();
      console.log("OpenTelemetry example down!");
      process.exit(0);
    });
  }
  await server.join();
}
