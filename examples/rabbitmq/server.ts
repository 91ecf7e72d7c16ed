/**
 * The seed's own use, as a real example: receive mail over SMTP and hand each
 * message to a RabbitMQ queue (the Ruby README published it with Bunny and an
 * `x-smtp` header). The broker, not this process, then holds the mail: the
 * SMTP client gets its `250` only after RabbitMQ has confirmed that it took
 * the message (publisher confirms on a durable queue with persistent
 * delivery), so a receiver that dies right after its `250` loses nothing.
 *
 * What the client is told:
 * - `250`: the broker confirmed the message (basic.ack after it was routed
 *   to the queue and, the queue being durable and the message persistent,
 *   written to disk).
 * - `451 4.3.0` (the client keeps the message and retries later): no broker
 *   connection right now, the broker refused it (basic.nack, e.g. a full
 *   queue with `overflow: reject-publish`), it was unroutable (the queue is
 *   gone: `mandatory` returns it), or no confirm came within
 *   `AMQP_CONFIRM_TIMEOUT_MS`. Never a `250` for a message the broker does
 *   not hold.
 *
 * The connection comes back by itself: after a loss it is retried with
 * exponential backoff (0.25 s doubling to 5 s, with jitter so that many
 * receivers do not reconnect in step); meanwhile messages get `451`. SIGTERM
 * (or Ctrl-C) drains: the server stops taking sessions and lets the ones in a
 * publish finish, then the publishes still unconfirmed get their confirms
 * (within a deadline), then the channel and connection close.
 *
 * Each message goes out as its exact bytes (body `message/rfc822`), with the
 * envelope as AMQP headers: `x-smtp-from`, `x-smtp-to` (array),
 * `x-smtp-client-ip`, `x-smtp-client-port`, `x-smtp-helo`,
 * `x-smtp-message-id` (the Message-ID header, when there is one),
 * `x-smtp-size`, `x-smtp-received` (ISO time); with DSN (RFC 3461)
 * `x-smtp-dsn-ret`, `x-smtp-dsn-envid`, and per recipient (same order as
 * `x-smtp-to`) `x-smtp-dsn-notify` and `x-smtp-dsn-orcpt`; `x-smtp-body`
 * (`8bitmime`, `binarymime`) and `x-smtp-smtputf8` when the client sent
 * them. The AMQP `messageId` is a fresh UUID per accepted message (this
 * receiver's queue id, as in its log line).
 *
 * Run (a broker on 127.0.0.1:5672 with its `guest` user, e.g. Debian's
 * `rabbitmq-server`): `deno run -A examples/rabbitmq/server.ts`,
 * `bun examples/rabbitmq/server.ts` or `npx tsx examples/rabbitmq/server.ts`.
 * Environment:
 * - `SMTP_PORT` port on 127.0.0.1 (2525; 0 for any free one), `SMTP_HOST` (127.0.0.1)
 * - `AMQP_URL` (`amqp://guest:guest@127.0.0.1:5672`; add `?heartbeat=10` to notice a broker
 *   host that vanished without closing the TCP connection sooner than the default 60 s heartbeat)
 * - `AMQP_QUEUE` (`smtp-in`), declared durable if it does not exist
 * - `AMQP_CONFIRM_TIMEOUT_MS` (10000): the longest a client waits for the broker's confirm
 * - `AMQP_DRAIN_TIMEOUT_MS` (10000): on SIGTERM, the longest to wait for confirms still out
 * - `SMTP_PER_IP_LIMITS=off`: no per-address limits, for a load test from one address (BENCHMARKS.md)
 *
 * amqplib is a dependency of this example only (the library has none on it).
 */
import { Buffer } from "node:buffer";
import { randomUUID } from "node:crypto";
import process from "node:process";
import { type ChannelModel, type ConfirmChannel, connect, type Options } from "amqplib";
import { MidiSmtpServer, Smtpd451Exception, type SmtpdContext, SmtpdException } from "../../mod.ts";

const AMQP_URL = process.env.AMQP_URL || "amqp://guest:guest@127.0.0.1:5672";
const AMQP_QUEUE = process.env.AMQP_QUEUE || "smtp-in";
const CONFIRM_TIMEOUT_MS = Number(process.env.AMQP_CONFIRM_TIMEOUT_MS || 10_000);
const DRAIN_TIMEOUT_MS = Number(process.env.AMQP_DRAIN_TIMEOUT_MS || 10_000);
const RECONNECT_FIRST_MS = 250;
const RECONNECT_MAX_MS = 5_000;

/** The reply texts; the enhanced code is 4.3.0 (mail system congested / unavailable) for all of them. */
const UNAVAILABLE = "Message queue unavailable, try again later";
const REFUSED = "Message queue refused the message, try again later";
const NO_CONFIRM = "Message queue did not confirm in time, try again later";

/** The URL without its password, for log lines. */
const shownUrl = AMQP_URL.replace(/\/\/([^:@/]*):[^@/]*@/, "//$1:***@");

function log(line: string): void {
  console.log(`${new Date().toISOString()}: ${line}`);
}

function reason(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * One AMQP connection with one confirm channel, kept up by reconnecting.
 * Publishing does not wait for a connection: with none, the message is
 * refused at once (451), since the SMTP client is the better place to hold
 * a message than this process's memory.
 */
class QueueLink {
  #connection: ChannelModel | undefined;
  #channel: ConfirmChannel | undefined;
  #closing = false;
  #attempt = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  /**
   * Confirms the broker still owes, whether or not the SMTP client still
   * waits for them: SIGTERM waits for these, not for the clients.
   */
  readonly #unconfirmed = new Set<Promise<void>>();
  /**
   * Message ids the broker returned as unroutable (`mandatory`). RabbitMQ
   * sends basic.return before the basic.ack of the same message, so the ack
   * callback finds the id here and answers 451 instead of 250.
   */
  readonly #returned = new Set<string>();

  constructor(readonly url: string, readonly queue: string) {}

  /** Connects in the background; {@link publish} refuses until then. */
  start(): void {
    void this.#connect();
  }

  async #connect(): Promise<void> {
    this.#timer = undefined;
    let connection: ChannelModel | undefined;
    try {
      connection = await connect(this.url, {
        // Shown in the broker's management UI and `rabbitmqctl list_connections`.
        clientProperties: { connection_name: `midi-smtp-server rabbitmq example, pid ${process.pid}` },
        // A broker that accepts the TCP connection but never answers must not stall reconnecting.
        timeout: 5_000,
      });
      const conn = connection;
      // Without an "error" listener an EventEmitter error would end the process.
      conn.on("error", (err: Error) => log(`AMQP connection error: ${reason(err)}`));
      conn.on(
        "close",
        (err?: Error) => this.#lost(conn, err ? `connection closed: ${reason(err)}` : "connection closed"),
      );
      // A resource alarm (memory, disk) blocks publishing: confirms stop coming,
      // and each waiting client gets 451 at its confirm timeout. A short alarm
      // does not bounce mail that would have been confirmed a moment later.
      conn.on("blocked", (why: string) => log(`AMQP connection blocked by the broker: ${why}`));
      conn.on("unblocked", () => log("AMQP connection unblocked"));
      const channel = await conn.createConfirmChannel();
      channel.on("error", (err: Error) => log(`AMQP channel error: ${reason(err)}`));
      // A channel closed on its own (a channel error) leaves the connection up:
      // start over on a new connection rather than juggle half a link. One turn
      // later, so that when the whole connection closed (its channels first),
      // the connection's close, which says why, is the one reported.
      channel.on("close", () => setTimeout(() => this.#lost(conn, "channel closed"), 0));
      channel.on("return", (msg: { properties: { messageId?: string } }) => {
        if (msg.properties.messageId) this.#returned.add(msg.properties.messageId);
      });
      // Durable: the queue survives a broker restart (with persistent messages, so do they).
      await channel.assertQueue(this.queue, { durable: true });
      if (this.#closing) {
        await conn.close().catch(() => {});
        return;
      }
      this.#connection = conn;
      this.#channel = channel;
      this.#attempt = 0;
      log(`AMQP connected to ${shownUrl}, queue ${this.queue}`);
    } catch (err) {
      // Bounded: a broker that stopped answering must not stall the reconnect loop.
      if (connection) await withDeadline(connection.close(), 2_000);
      if (this.#closing) return;
      const delay = this.#nextDelay();
      log(`AMQP connect failed (${reason(err)}); retrying in ${delay} ms`);
      this.#timer = setTimeout(() => void this.#connect(), delay);
    }
  }

  /** Exponential backoff with ±20 % jitter, so that a fleet of receivers does not reconnect in step. */
  #nextDelay(): number {
    const base = Math.min(RECONNECT_MAX_MS, RECONNECT_FIRST_MS * 2 ** this.#attempt++);
    return Math.round(base * (0.8 + 0.4 * Math.random()));
  }

  /** The connection or its channel went away: refuse from now on and reconnect. */
  #lost(conn: ChannelModel, why: string): void {
    if (this.#connection !== conn) return; // already handled (channel and connection both report)
    this.#connection = undefined;
    this.#channel = undefined;
    // amqplib fails the confirm callbacks of this channel's unconfirmed messages
    // (their clients get 451 now); the connection may still be open if only the channel closed.
    conn.close().catch(() => {});
    if (this.#closing) return;
    const delay = this.#nextDelay();
    log(`AMQP ${why}; reconnecting in ${delay} ms`);
    this.#timer = setTimeout(() => void this.#connect(), delay);
  }

  /**
   * Publishes `content` and resolves once the broker confirmed it. Rejects
   * with the SMTP reply to give: 451 when there is no channel, on a nack or
   * return, when no confirm comes within `timeoutMs`, or when `signal`
   * aborts (the client is gone).
   */
  publish(content: Uint8Array, options: Options.Publish, signal: AbortSignal, timeoutMs: number): Promise<void> {
    const channel = this.#channel;
    if (!channel) return Promise.reject(new Smtpd451Exception("no AMQP channel", UNAVAILABLE));
    const id = options.messageId!;
    // Buffer.from on the ArrayBuffer: a view, not a copy of the message.
    const body = Buffer.from(content.buffer, content.byteOffset, content.byteLength);
    const confirmed = new Promise<void>((resolve, reject) => {
      // persistent + durable queue: the ack comes after the message is on disk.
      // mandatory: an unroutable message (queue deleted) is returned, not dropped and acked.
      // The return value (false: amqplib's write buffer is full) needs no waiting here:
      // amqplib keeps the frame, and at most maxProcessings messages are in flight.
      channel.sendToQueue(this.queue, body, { ...options, persistent: true, mandatory: true }, (err: unknown) => {
        const returned = this.#returned.delete(id);
        // amqplib calls back with "message nacked" for a basic.nack, with "channel closed" when
        // the channel (or connection) went away before the confirm came.
        if (err && reason(err) === "message nacked") reject(new Smtpd451Exception(`broker refused ${id}`, REFUSED));
        else if (err) reject(new Smtpd451Exception(`no confirm for ${id}: ${reason(err)}`, UNAVAILABLE));
        else if (returned) reject(new Smtpd451Exception(`broker returned ${id} as unroutable`, REFUSED));
        else resolve();
      });
    }).catch((err: unknown) => {
      if (err instanceof SmtpdException) throw err;
      // amqplib refuses a headers table over 64 KiB (RangeError): sending the same
      // envelope again would fail again, so this one is permanent.
      if (err instanceof RangeError) {
        throw new SmtpdException(554, "5.3.4", "Envelope too large for the message queue", reason(err));
      }
      // The channel closed between the check above and the publish.
      throw new Smtpd451Exception(`publish failed: ${reason(err)}`, UNAVAILABLE);
    });
    const tracked = confirmed.then(() => {}, () => {}).finally(() => this.#unconfirmed.delete(tracked));
    this.#unconfirmed.add(tracked);

    return new Promise<void>((resolve, reject) => {
      const done = (err?: unknown) => {
        clearTimeout(timer);
        signal.removeEventListener("abort", onAbort);
        if (err === undefined) resolve();
        else reject(err);
      };
      const timer = setTimeout(
        () => done(new Smtpd451Exception(`no confirm for ${id} within ${timeoutMs} ms`, NO_CONFIRM)),
        timeoutMs,
      );
      // The client left (or the session was cut off) while we waited. Nobody will
      // read the reply, so stop waiting; the publish itself cannot be taken back
      // and the broker may still confirm it. The client saw no 250, so it sends
      // the message again later and the queue may then hold it twice (the same
      // goes for a confirm that comes after the timeout above). At-least-once is
      // the honest promise here: a consumer that must not act twice can drop
      // duplicates by `x-smtp-message-id` (the Message-ID header) together with
      // the envelope, e.g. keeping the ids of the last few days in a set.
      const onAbort = () => done(new Smtpd451Exception(`client gone while ${id} waited for its confirm`, NO_CONFIRM));
      if (signal.aborted) return onAbort();
      signal.addEventListener("abort", onAbort, { once: true });
      confirmed.then(() => done(), done);
    });
  }

  /**
   * Stops reconnecting, waits up to `timeoutMs` for the confirms still out,
   * then closes the channel and the connection. Resolves with the number of
   * publishes left unconfirmed (their clients got 451 and will retry).
   */
  async close(timeoutMs: number): Promise<number> {
    this.#closing = true;
    clearTimeout(this.#timer);
    if (this.#unconfirmed.size > 0) {
      log(`waiting for ${this.#unconfirmed.size} confirm(s) from the broker`);
      await withDeadline(Promise.all([...this.#unconfirmed]), timeoutMs);
    }
    const left = this.#unconfirmed.size;
    const connection = this.#connection;
    const channel = this.#channel;
    this.#connection = undefined;
    this.#channel = undefined;
    // A blocked broker may never answer the close handshakes: bounded too.
    await withDeadline(
      (async () => {
        await channel?.close().catch(() => {});
        await connection?.close().catch(() => {});
      })(),
      2_000,
    );
    return left;
  }
}

/** Resolves when `promise` settles or after `ms`, whichever comes first. */
async function withDeadline(promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([promise.catch(() => {}), new Promise((r) => timer = setTimeout(r, ms))]);
  clearTimeout(timer);
}

/** The Message-ID header's value (unfolded, trimmed), or `undefined` when the message has none. */
function messageIdHeader(headers: string): string | undefined {
  const match = /^message-id:[ \t]*((?:.*)(?:\r?\n[ \t].*)*)/im.exec(headers);
  return match ? match[1].replace(/\r?\n[ \t]+/g, " ").trim() : undefined;
}

/**
 * The envelope as AMQP headers (what the seed put in its `x-smtp` header):
 * a consumer needs the envelope, not just the message, to deliver or bounce.
 * Keys are flat so that a headers exchange can route on them.
 */
function envelopeHeaders(ctx: SmtpdContext): Record<string, unknown> {
  const { envelope, message, server } = ctx;
  const headers: Record<string, unknown> = {
    "x-smtp-from": envelope.from,
    "x-smtp-to": envelope.to,
    "x-smtp-client-ip": server.remoteIp,
    "x-smtp-client-port": server.remotePort,
    "x-smtp-helo": server.helo,
    "x-smtp-size": message.bytesize,
    "x-smtp-received": (message.delivered ?? new Date()).toISOString(),
  };
  const messageId = messageIdHeader(message.headers);
  if (messageId !== undefined) headers["x-smtp-message-id"] = messageId;
  if (envelope.encodingBody) headers["x-smtp-body"] = envelope.encodingBody;
  if (envelope.encodingUtf8) headers["x-smtp-smtputf8"] = true;
  // DSN: whoever delivers from the queue sends the DSNs, so it needs what the client asked for.
  if (envelope.dsn.ret) headers["x-smtp-dsn-ret"] = envelope.dsn.ret;
  if (envelope.dsn.envid !== null) headers["x-smtp-dsn-envid"] = envelope.dsn.envid;
  if (envelope.recipients.some((r) => r.notify || r.orcpt)) {
    headers["x-smtp-dsn-notify"] = envelope.recipients.map((r) => r.notify?.join(",") ?? "");
    headers["x-smtp-dsn-orcpt"] = envelope.recipients.map((r) => r.orcpt ? `${r.orcpt.type};${r.orcpt.address}` : "");
  }
  return headers;
}

const link = new QueueLink(AMQP_URL, AMQP_QUEUE);
link.start();

const server = new MidiSmtpServer({
  hosts: process.env.SMTP_HOST || "127.0.0.1",
  ports: process.env.SMTP_PORT ?? 2525,
  pipeliningExtension: true,
  internationalizationExtensions: true,
  dsnExtension: true,
  // Each message in flight sits in memory until confirmed: maxProcessings x this is the bound.
  maxMessageSize: 25 * 1024 * 1024,
  // 100 recipients keep the headers table far below amqplib's 64 KiB limit.
  maxRecipients: 100,
  loggerSeverity: "warn",
  // The per-address limits (50 connections, 600 a minute, 1200 messages a minute) would refuse a load test.
  ...(process.env.SMTP_PER_IP_LIMITS === "off"
    ? { maxConnectionsPerIp: null, maxConnectionRatePerIp: null, maxMessageRatePerIp: null }
    : {}),
  async onMessageDataEvent(ctx: SmtpdContext) {
    const id = randomUUID();
    const what = `${ctx.envelope.from} -> ${ctx.envelope.to.join(", ")} (${ctx.message.bytesize} bytes)`;
    // Returning (after the confirm) sends the 250; a throw sends the exception's reply.
    try {
      await link.publish(
        ctx.message.data,
        {
          messageId: id,
          timestamp: Math.floor(Date.now() / 1000),
          contentType: "message/rfc822",
          appId: "midi-smtp-server",
          headers: envelopeHeaders(ctx),
        },
        ctx.signal,
        CONFIRM_TIMEOUT_MS,
      );
    } catch (err) {
      log(`not queued: ${what}: ${reason(err)}`);
      throw err;
    }
    log(`queued ${id}: ${what}`);
  },
});
await server.start();
log(`Ready for connections on ${server.addresses.join(", ")}, handing mail to ${shownUrl} queue ${AMQP_QUEUE}`);

let stopping = false;
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, async () => {
    if (stopping) return;
    stopping = true;
    log("Shutdown: no new sessions; messages being published get their answer");
    // Sessions in a publish get up to the confirm timeout (and a second) to give their answer.
    await server.stop({ gracefully: true, waitSecondsBeforeClose: Math.ceil(CONFIRM_TIMEOUT_MS / 1000) + 1 });
    const left = await link.close(DRAIN_TIMEOUT_MS);
    if (left > 0) log(`${left} publish(es) still unconfirmed: their clients got 451 and will retry`);
    log("RabbitMQ hand-off down!");
    process.exit(0);
  });
}

await server.join();
