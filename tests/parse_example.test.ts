/**
 * examples/parse_message.ts runs as its own process on this runtime, in both
 * modes (buffered: `ctx.message.data`; `--stream`: the body's ReadableStream
 * handed to postal-mime as it is), and prints exactly what nodemailer sent:
 * an encoded-word subject with umlauts and a symbol, UTF-8 display names, a
 * UTF-8 text body with an emoji, an HTML part, a text attachment with a
 * non-ASCII name and a binary attachment holding every byte value, compared by
 * size and SHA-256.
 *
 * One known difference is asserted as such: postal-mime keeps the line break
 * before a MIME boundary as part of the text part before it, so the text and
 * HTML bodies come back with one "\n" more than was sent (RFC 2046 5.1.1
 * counts that CRLF as part of the boundary). Base64 parts, which is how
 * attachments are sent, are byte-exact.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import process from "node:process";
import nodemailer from "nodemailer";
import { runtime } from "./helpers.ts";

const root = new URL("..", import.meta.url).pathname;
const EXAMPLE = "examples/parse_message.ts";

/** How to run the example on the runtime running this test. */
function command(args: string[]): [string, string[]] {
  if (runtime === "deno") return [process.execPath, ["run", "-A", EXAMPLE, ...args]];
  if (runtime === "bun") return [process.execPath, [EXAMPLE, ...args]];
  return [process.execPath, ["--import", "tsx", EXAMPLE, ...args]];
}

/** Every byte value, in order and reversed, then a run of CR LF NUL "." that line-based code would mangle. */
const ALL_BYTES = Buffer.concat([
  Buffer.from(Array.from({ length: 256 }, (_, i) => i)),
  Buffer.from(Array.from({ length: 256 }, (_, i) => 255 - i)),
  Buffer.from("\r\n.\r\n\0\r.\n..\r\n", "latin1"),
]);
const SUBJECT = "Grüße aus Köln ✉";
const TEXT = "Hallo Anna,\n\nviele Grüße aus Köln: ä ö ü ß € ✓ 😀.\n" +
  "Eine lange Zeile, damit quoted-printable sie umbrechen muss: " + "Straße ".repeat(20) + "\n";
const HTML = "<p>Viele <b>Grüße</b> aus Köln ✉ &amp; 😀</p>";
const TEXT_ATTACHMENT = Buffer.from("Maß, Größe, Übermaß – Köln\r\nzweite Zeile ✓\r\n", "utf8");

const MESSAGE = {
  from: { name: "Jörg Müller", address: "joerg@example.com" },
  to: [{ name: "Anna Ångström", address: "anna@example.com" }, { name: "", address: "bob@example.com" }],
  subject: SUBJECT,
  text: TEXT,
  html: HTML,
  attachments: [
    { filename: "Grüße aus Köln.txt", content: TEXT_ATTACHMENT, contentType: "text/plain; charset=utf-8" },
    { filename: "all-bytes.bin", content: ALL_BYTES, contentType: "application/octet-stream" },
  ],
};

const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");

/** What the example printed for one message, its JSON-quoted values decoded. */
interface Printed {
  header: string;
  subject: string;
  from: string;
  to: string;
  text: string;
  html: string;
  attachments: string[];
}

/** Reads the block the example prints for a message (from its "message N" line to its last attachment line). */
function readBlock(stdout: string): Printed {
  const lines = stdout.split("\n");
  const start = lines.findIndex((l) => l.startsWith("message 1 "));
  assert.ok(start >= 0, `no message block in: ${stdout}`);
  const field = (name: string) => {
    const line = lines.slice(start + 1).find((l) => l.startsWith(`  ${name}: `));
    assert.ok(line, `no ${name} line in: ${stdout}`);
    return line.slice(name.length + 4);
  };
  return {
    header: lines[start],
    subject: JSON.parse(field("subject")),
    from: field("from"),
    to: field("to"),
    text: JSON.parse(field("text")),
    html: JSON.parse(field("html")),
    attachments: lines.slice(start + 1).filter((l) => l.startsWith("  attachment ")),
  };
}

/** Starts the example with SMTP_PORT=0, sends MESSAGE, and returns what it printed; stops it with SIGTERM. */
async function sendThroughExample(args: string[]): Promise<Printed> {
  const [cmd, argv] = command(args);
  const child = spawn(cmd, argv, {
    cwd: root,
    env: { ...process.env, SMTP_PORT: "0" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (d: string) => stdout += d);
  child.stderr.setEncoding("utf8").on("data", (d: string) => stderr += d);
  const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) =>
    child.on("exit", (code, signal) => resolve({ code, signal }))
  );
  const waitFor = async (pattern: RegExp, ms: number) => {
    const deadline = Date.now() + ms;
    while (!pattern.test(stdout)) {
      assert.ok(Date.now() < deadline, `${pattern} not printed; stdout: ${stdout}\nstderr: ${stderr}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  try {
    await waitFor(/Ready for connections on 127\.0\.0\.1:\d+/, 30_000);
    const port = Number(/Ready for connections on 127\.0\.0\.1:(\d+)/.exec(stdout)![1]);
    const transport = nodemailer.createTransport({ host: "127.0.0.1", port, secure: false, ignoreTLS: true });
    try {
      const info = await transport.sendMail(MESSAGE);
      assert.deepEqual(info.accepted, ["anna@example.com", "bob@example.com"]);
    } finally {
      transport.close();
    }
    // The 250 came after the hook returned, so the block is complete by now; the wait covers a slow pipe.
    await waitFor(/^ {2}attachment 2: .*$/m, 10_000);
    const printed = readBlock(stdout);
    child.kill("SIGTERM");
    const { code, signal } = await exited;
    // Deno's node:child_process reports a child that handled SIGTERM and exited 0 as (null, "SIGTERM").
    assert.ok(code === 0 || (runtime === "deno" && signal === "SIGTERM"), `exit ${code} ${signal}`);
    assert.match(stdout, /Parser down!/);
    return printed;
  } finally {
    child.kill("SIGKILL");
  }
}

/** The assertions both modes share: every value decoded exactly as nodemailer was given it. */
function assertDecoded(printed: Printed, mode: string): void {
  assert.match(
    printed.header,
    new RegExp(
      `^message 1 from 127\\.0\\.0\\.1: <joerg@example\\.com> -> <anna@example\\.com>, <bob@example\\.com>, ${mode}, \\d+ bytes$`,
    ),
  );
  assert.equal(printed.subject, SUBJECT);
  assert.equal(printed.from, '"Jörg Müller" <joerg@example.com>');
  assert.equal(printed.to, '"Anna Ångström" <anna@example.com>, <bob@example.com>');
  // postal-mime's extra "\n": the CRLF before the next boundary (see the top of this file).
  assert.equal(printed.text, TEXT + "\n");
  assert.equal(printed.html, HTML + "\n");
  assert.deepEqual(printed.attachments, [
    `  attachment 1: "Grüße aus Köln.txt" text/plain, ${TEXT_ATTACHMENT.length} bytes, sha256 ${
      sha256(TEXT_ATTACHMENT)
    }`,
    `  attachment 2: "all-bytes.bin" application/octet-stream, ${ALL_BYTES.length} bytes, sha256 ${sha256(ALL_BYTES)}`,
  ]);
}

describe(`examples/parse_message.ts on ${runtime}`, () => {
  it("the test message is what it claims: encoded words, base64 and quoted-printable on the wire", async () => {
    // The same message through nodemailer's stream transport: no non-ASCII byte is sent
    // as such, so what the example prints was decoded by postal-mime, not passed through.
    const raw = (await nodemailer.createTransport({ streamTransport: true, buffer: true }).sendMail(MESSAGE))
      .message as Buffer;
    const wire = raw.toString("latin1");
    assert.ok(raw.every((b) => b < 0x80), "the message is 7-bit");
    assert.match(wire, /^Subject: =\?UTF-8\?[BQ]\?/m);
    assert.match(wire, /^From: =\?UTF-8\?[BQ]\?/m);
    assert.match(wire, /^Content-Type: text\/html; charset=utf-8\r\n/m);
    assert.match(wire, /^Content-Transfer-Encoding: quoted-printable\r\n/m);
    assert.match(wire, /^Content-Transfer-Encoding: base64\r\n/m);
    assert.match(wire, /filename\*0\*=utf-8''|filename\*=utf-8''|filename="=\?UTF-8\?/i);
  });

  it("buffered: parses ctx.message.data and prints every part decoded", { timeout: 60_000 }, async () => {
    assertDecoded(await sendThroughExample([]), "buffered");
  });

  it("--stream: postal-mime reads the ReadableStream itself and prints the same", { timeout: 60_000 }, async () => {
    assertDecoded(await sendThroughExample(["--stream"]), "streamed");
  });
});
