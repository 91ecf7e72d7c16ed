/**
 * The seed's own use of a received message, ported: the Ruby README parses
 * each message with the `mail` gem; here postal-mime does it, on Deno, Bun
 * and Node alike. Each message is parsed and its subject, sender, recipients,
 * text, HTML and attachments (name, type, size, SHA-256) are printed.
 *
 * Two modes, one per hook:
 * - buffered (default): `onMessageDataEvent` parses `ctx.message.data`, the
 *   whole message in one `Uint8Array`;
 * - `--stream`: `onMessageDataStreamEvent` hands the body's `ReadableStream`
 *   to postal-mime as it is (postal-mime takes a web `ReadableStream` on all
 *   three runtimes; it reads it to the end before parsing, see the README's
 *   "Parsing messages").
 *
 * Run: `deno run -A examples/parse_message.ts [--stream]`,
 * `bun examples/parse_message.ts [--stream]` or
 * `npx tsx examples/parse_message.ts [--stream]`; then send mail to
 * 127.0.0.1:2525 (set SMTP_PORT to use another port, 0 for any free one).
 */
import { createHash } from "node:crypto";
import process from "node:process";
import PostalMime, { type Address, type Email } from "postal-mime";
import { MidiSmtpServer, Smtpd554Exception, type SmtpdContext } from "../mod.ts";

const streaming = process.argv.slice(2).includes("--stream");
let received = 0;

/** `"Jörg Müller" <joerg@example.com>`: the name JSON-quoted, so odd characters in it stay visible. */
function formatAddress(address: Address): string {
  if (address.group) return `${JSON.stringify(address.name)}: ${address.group.map(formatAddress).join(", ")};`;
  return address.name ? `${JSON.stringify(address.name)} <${address.address}>` : `<${address.address}>`;
}

/**
 * The parsed message as lines of text. Texts are JSON-quoted so that every
 * character (line breaks, trailing spaces, non-ASCII) shows as it was decoded;
 * attachments show their SHA-256, which pins their exact bytes.
 */
function describeEmail(email: Email): string[] {
  const lines = [
    `  subject: ${JSON.stringify(email.subject ?? null)}`,
    `  from: ${email.from ? formatAddress(email.from) : "-"}`,
    `  to: ${email.to?.map(formatAddress).join(", ") ?? "-"}`,
    `  text: ${JSON.stringify(email.text ?? null)}`,
    `  html: ${JSON.stringify(email.html ?? null)}`,
  ];
  email.attachments.forEach((attachment, i) => {
    // The default attachmentEncoding ("arraybuffer") gives the decoded bytes; only
    // calendar parts come as a Uint8Array of normalised text.
    const content = attachment.content;
    const bytes = typeof content === "string"
      ? new TextEncoder().encode(content)
      : content instanceof ArrayBuffer
      ? new Uint8Array(content)
      : content;
    const sha256 = createHash("sha256").update(bytes).digest("hex");
    lines.push(
      `  attachment ${i + 1}: ${JSON.stringify(attachment.filename)} ${attachment.mimeType}, ` +
        `${bytes.length} bytes, sha256 ${sha256}`,
    );
  });
  return lines;
}

/**
 * Parses one message and prints it. postal-mime refuses only messages past its
 * own limits (MIME nesting deeper than 256, headers over 2 MB): those are
 * abusive, and sending the same bytes again would fail again, so the client
 * gets a permanent 554 rather than the 451 (retry later) an error would give.
 */
async function parseAndPrint(ctx: SmtpdContext, raw: Uint8Array | ReadableStream<Uint8Array>): Promise<void> {
  let email: Email;
  try {
    email = await PostalMime.parse(raw);
  } catch (err) {
    // In --stream mode the stream also errors when the server refuses the
    // message (too large) or the client vanishes; the server's own reply wins
    // then, and this 554 is not sent.
    console.log(`message not parsed: ${err instanceof Error ? err.message : String(err)}`);
    throw new Smtpd554Exception(undefined, "Message could not be parsed", "5.6.0");
  }
  received++;
  const mode = streaming ? "streamed" : "buffered";
  console.log(
    `message ${received} from ${ctx.server.remoteIp}: ${ctx.envelope.from} -> ${ctx.envelope.to.join(", ")}, ` +
      `${mode}, ${ctx.message.bytesize} bytes`,
  );
  console.log(describeEmail(email).join("\n"));
}

const server = new MidiSmtpServer({
  hosts: "127.0.0.1",
  ports: process.env.SMTP_PORT ?? 2525,
  // UTF-8 in headers and 8-bit bodies are what a parser is for.
  internationalizationExtensions: true,
  pipeliningExtension: true,
  // The parser holds the whole message (and its decoded parts) in memory:
  // this is the bound on what one message may cost.
  maxMessageSize: 25 * 1024 * 1024,
  // Only one of the two hooks is given: the streaming one, when present, is used instead.
  ...(streaming
    ? {
      // postal-mime reads the stream itself: no copy of the message is kept by the server.
      onMessageDataStreamEvent: (ctx: SmtpdContext, stream: ReadableStream<Uint8Array>) => parseAndPrint(ctx, stream),
    }
    : {
      // The 250 goes out after this returns, so a parse failure can still refuse the message.
      onMessageDataEvent: (ctx: SmtpdContext) => parseAndPrint(ctx, ctx.message.data),
    }),
});
await server.start();
console.log(
  `Ready for connections on ${server.addresses.join(", ")} (${streaming ? "streamed" : "buffered"} parsing)`,
);

// Shut down gracefully on Ctrl-C or SIGTERM: messages being received get 2 seconds to finish.
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, async () => {
    await server.stop({ gracefully: true, waitSecondsBeforeClose: 2 });
    console.log("Parser down!");
    process.exit(0);
  });
}

await server.join();
