/**
 * The bytes a load generator sends, built once per run: the message (headers
 * and a body of ~76-byte CRLF lines, dot-stuffed, ending with `.\r\n`; or as
 * BDAT chunks, RFC 3030, sent as they are) and every SMTP command, so that
 * sending a message costs no encoding work.
 *
 * @module
 */
import { Buffer } from "node:buffer";

/** Sender used in `MAIL FROM` and the `From:` header. */
export const SENDER = "bench@bench.test";
/** Content bytes per body line; with CRLF a line is 76 bytes (RFC 5322 asks for at most 78 + CRLF). */
const LINE_CONTENT = 74;
const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const CR = 0x0d;
const LF = 0x0a;
const DOT = 0x2e;

/** Everything a session writes, pre-encoded. */
export interface Wire {
  /** `EHLO` line. */
  readonly ehlo: Buffer;
  /** `MAIL FROM` line (lock-step mode). */
  readonly mail: Buffer;
  /** One `RCPT TO` line per recipient (lock-step mode). */
  readonly rcpts: readonly Buffer[];
  /** `DATA` line (lock-step mode). */
  readonly data: Buffer;
  /** `MAIL` + every `RCPT` + `DATA` in one buffer: what a PIPELINING client sends in one write. */
  readonly group: Buffer;
  /** The dot-stuffed message followed by `.\r\n`. */
  readonly body: Buffer;
  /** `QUIT` line. */
  readonly quit: Buffer;
  /** Message size before dot-stuffing, i.e. what the server stores: the payload counted in MB/s. */
  readonly payloadBytes: number;
  /**
   * BDAT mode: each chunk of the message behind its `BDAT <n>` line, the last one's marked `LAST`
   * (lock-step mode sends them one by one). Empty in DATA mode.
   */
  readonly chunks: readonly Buffer[];
  /** BDAT mode: `MAIL` + every `RCPT` + every chunk in one buffer, what a PIPELINING client sends at once. */
  readonly chunkGroup: Buffer;
}

/**
 * The message as BDAT commands with their chunks of `chunkSize` bytes (0: one
 * chunk, `BDAT <size> LAST`). No dot-stuffing: a chunk is sent as it is.
 */
export function buildChunks(message: Uint8Array, chunkSize: number): Buffer[] {
  if (!Number.isInteger(chunkSize) || chunkSize < 0) throw new RangeError(`chunk size must be >= 0, got ${chunkSize}`);
  const step = chunkSize === 0 ? message.length : chunkSize;
  const chunks: Buffer[] = [];
  for (let from = 0; from < message.length; from += step) {
    const chunk = message.subarray(from, Math.min(from + step, message.length));
    const last = from + chunk.length === message.length;
    chunks.push(Buffer.concat([Buffer.from(`BDAT ${chunk.length}${last ? " LAST" : ""}\r\n`, "latin1"), chunk]));
  }
  return chunks;
}

/** The address of recipient `i` (0-based). */
export function recipient(i: number): string {
  return `sink${i + 1}@bench.test`;
}

/** Header lines (without the empty line that ends them). */
function headerLines(recipients: number): string[] {
  return [
    `From: <${SENDER}>`,
    `To: <${recipient(0)}>${recipients > 1 ? `, ... (${recipients})` : ""}`,
    "Subject: bench",
    "Message-ID: <bench.0@bench.test>",
    "MIME-Version: 1.0",
    "Content-Type: text/plain; charset=us-ascii",
  ];
}

/**
 * Builds a message of exactly `size` bytes (headers, empty line, body), every
 * line ending in CRLF. When the headers do not fit, the message is body only.
 */
export function buildMessage(size: number, recipients = 1): Uint8Array {
  if (!Number.isInteger(size) || size < 2) throw new RangeError(`message size must be an integer >= 2, got ${size}`);
  let header = headerLines(recipients).join("\r\n") + "\r\n\r\n";
  if (header.length + 2 > size) header = "";
  // Lines of 2..76 bytes fill any body of >= 2 bytes, except that one byte left over goes to the last full line.
  const bodyBytes = size - header.length;
  const full = Math.floor(bodyBytes / (LINE_CONTENT + 2));
  const rest = bodyBytes % (LINE_CONTENT + 2);
  const widenLast = rest === 1;
  const out = new Uint8Array(size);
  let pos = 0;
  for (let i = 0; i < header.length; i++) out[pos++] = header.charCodeAt(i);
  const line = (content: number, n: number) => {
    // Rotate the alphabet per line so lines differ (no compression-friendly repeats) and none starts with a dot.
    for (let k = 0; k < content; k++) out[pos++] = ALPHABET.charCodeAt((n + k) % ALPHABET.length);
    out[pos++] = CR;
    out[pos++] = LF;
  };
  for (let n = 0; n < full; n++) line(LINE_CONTENT + (widenLast && n === full - 1 ? 1 : 0), n);
  if (rest >= 2) line(rest - 2, full);
  if (pos !== size) throw new Error(`internal: built ${pos} bytes instead of ${size}`);
  return out;
}

/** Doubles a dot at the start of any line (RFC 5321 4.5.2); returns the input when there is none. */
export function dotStuff(message: Uint8Array): Uint8Array {
  let dots = 0;
  for (let i = 0; i < message.length; i++) {
    if (message[i] === DOT && (i === 0 || message[i - 1] === LF)) dots++;
  }
  if (dots === 0) return message;
  const out = new Uint8Array(message.length + dots);
  let o = 0;
  for (let i = 0; i < message.length; i++) {
    if (message[i] === DOT && (i === 0 || message[i - 1] === LF)) out[o++] = DOT;
    out[o++] = message[i];
  }
  return out;
}

/**
 * Builds every buffer a session sends for messages of `size` bytes to
 * `recipients` recipients; with `bdatChunk` (bytes per chunk, 0 for one
 * chunk) the message goes with BDAT instead of DATA.
 */
export function buildWire(
  size: number,
  recipients: number,
  helo = "loadgen.bench.test",
  bdatChunk?: number,
): Wire {
  if (!Number.isInteger(recipients) || recipients < 1) throw new RangeError("recipients must be >= 1");
  const message = buildMessage(size, recipients);
  const stuffed = dotStuff(message);
  const body = Buffer.alloc(stuffed.length + 3);
  body.set(stuffed);
  body.write(".\r\n", stuffed.length, "latin1");
  const mail = Buffer.from(`MAIL FROM:<${SENDER}>\r\n`, "latin1");
  const rcpts = Array.from({ length: recipients }, (_, i) => Buffer.from(`RCPT TO:<${recipient(i)}>\r\n`, "latin1"));
  const data = Buffer.from("DATA\r\n", "latin1");
  const chunks = bdatChunk === undefined ? [] : buildChunks(message, bdatChunk);
  return {
    ehlo: Buffer.from(`EHLO ${helo}\r\n`, "latin1"),
    mail,
    rcpts,
    data,
    group: Buffer.concat([mail, ...rcpts, data]),
    body,
    quit: Buffer.from("QUIT\r\n", "latin1"),
    payloadBytes: message.length,
    chunks,
    chunkGroup: chunks.length === 0 ? Buffer.alloc(0) : Buffer.concat([mail, ...rcpts, ...chunks]),
  };
}
