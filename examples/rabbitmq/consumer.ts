/**
 * The other end of examples/rabbitmq/server.ts: reads the queue, parses each
 * message with postal-mime (as the seed parsed with Ruby's `mail`) and prints
 * its envelope (from the AMQP headers), subject, From, To and attachments.
 *
 * A message is acknowledged only after it was processed: if this process dies
 * first, the broker delivers it again (to this consumer when it is back, or to
 * another one). Processing must therefore tolerate seeing a message twice, as
 * it must anyway (see the server's note on duplicates).
 *
 * Run: `deno run -A examples/rabbitmq/consumer.ts`, `bun examples/rabbitmq/consumer.ts`
 * or `npx tsx examples/rabbitmq/consumer.ts`, with `AMQP_URL`
 * (`amqp://guest:guest@127.0.0.1:5672`) and `AMQP_QUEUE` (`smtp-in`) as for the server.
 * SIGTERM (or Ctrl-C) stops taking messages, lets the ones being processed finish and ack, and exits.
 *
 * Unlike the server it does not reconnect: it exits (1) when the connection is
 * lost, and a supervisor (systemd `Restart=on-failure`) starts it again. That
 * is enough here, because the broker keeps every unacknowledged message and
 * delivers it again; the server must reconnect by itself because its clients
 * are waiting.
 */
import process from "node:process";
import { connect, type ConsumeMessage } from "amqplib";
import PostalMime, { type Address } from "postal-mime";

const AMQP_URL = process.env.AMQP_URL || "amqp://guest:guest@127.0.0.1:5672";
const AMQP_QUEUE = process.env.AMQP_QUEUE || "smtp-in";
/** Messages handed to this consumer before it acks earlier ones: parsing is CPU-bound, a few suffice. */
const PREFETCH = 10;

function formatAddress(address: Address): string {
  if (address.group) return `${JSON.stringify(address.name)}: ${address.group.map(formatAddress).join(", ")};`;
  return address.name ? `${JSON.stringify(address.name)} <${address.address}>` : `<${address.address}>`;
}

/** An AMQP header as text (amqplib gives strings as strings, arrays as arrays). */
function header(msg: ConsumeMessage, name: string): string {
  const value = msg.properties.headers?.[name];
  return Array.isArray(value) ? value.join(", ") : value === undefined ? "-" : String(value);
}

const connection = await connect(AMQP_URL);
const channel = await connection.createChannel();
let stopping = false;
connection.on("error", (err: Error) => console.log(`AMQP connection error: ${err.message}`));
connection.on("close", () => {
  if (stopping) return;
  console.log("AMQP connection lost: exiting, unacknowledged messages go back to the queue");
  process.exit(1);
});
// The same declaration as the server's, so that either may start first.
await channel.assertQueue(AMQP_QUEUE, { durable: true });
await channel.prefetch(PREFETCH);

let inFlight = 0;
let idle: (() => void) | undefined;

async function handle(msg: ConsumeMessage): Promise<void> {
  inFlight++;
  try {
    const email = await PostalMime.parse(msg.content);
    const lines = [
      `message ${msg.properties.messageId ?? "-"}: ${header(msg, "x-smtp-from")} -> ${header(msg, "x-smtp-to")}` +
      ` from ${header(msg, "x-smtp-client-ip")} (helo ${header(msg, "x-smtp-helo")}), ${msg.content.length} bytes` +
      (msg.fields.redelivered ? ", redelivered" : ""),
      `  subject: ${JSON.stringify(email.subject ?? null)}`,
      `  from: ${email.from ? formatAddress(email.from) : "-"}`,
      `  to: ${email.to?.map(formatAddress).join(", ") ?? "-"}`,
      ...email.attachments.map((a) =>
        `  attachment: ${JSON.stringify(a.filename)} ${a.mimeType}, ` +
        `${typeof a.content === "string" ? a.content.length : a.content.byteLength} bytes`
      ),
    ];
    console.log(lines.join("\n"));
    // Processing done (here: printed): now the broker may forget the message.
    channel.ack(msg);
  } catch (err) {
    // postal-mime refuses only abusive input (nesting or headers past its limits): the
    // same bytes would fail again, so requeueing would loop. Reject without requeue: with
    // a dead-letter exchange configured on the queue (a policy), it lands there for a person.
    console.log(`message ${msg.properties.messageId ?? "-"} unparseable: ${(err as Error).message}; rejected`);
    channel.nack(msg, false, false);
  } finally {
    if (--inFlight === 0) idle?.();
  }
}

const { consumerTag } = await channel.consume(AMQP_QUEUE, (msg) => {
  // null: the broker cancelled the consumer (the queue was deleted).
  if (msg === null) {
    console.log(`queue ${AMQP_QUEUE} was deleted: exiting`);
    process.exit(1);
  }
  void handle(msg);
}, { noAck: false });
console.log(`Consuming ${AMQP_QUEUE}`);

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, async () => {
    if (stopping) return;
    stopping = true;
    // No new deliveries; those already here (up to PREFETCH) are finished and acked.
    await channel.cancel(consumerTag);
    if (inFlight > 0) await new Promise<void>((resolve) => idle = resolve);
    await channel.close();
    await connection.close();
    console.log("Consumer down!");
    process.exit(0);
  });
}
