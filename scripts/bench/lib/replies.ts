/**
 * Byte-level SMTP reply framing for the load generator: finds line ends with
 * `indexOf` (native), reads the three-digit code and the separator byte, and
 * reports each complete (possibly multi-line) reply. No strings, no regular
 * expressions on the hot path.
 *
 * @module
 */
import { Buffer } from "node:buffer";

const LF = 0x0a;
const CR = 0x0d;
const ZERO = 0x30;
const HYPHEN = 0x2d;
/** A reply line longer than this (without an LF) is malformed; RFC 5321 allows 512. */
const MAX_LINE = 64 * 1024;

/** Receives what {@link ReplyParser} finds. */
export interface ReplyHandler {
  /**
   * One line's text after the code and separator (`buf[start, end)`, without
   * CRLF). Called only while {@link ReplyParser.wantLines} is set (EHLO keywords).
   */
  replyLine(buf: Uint8Array, start: number, end: number): void;
  /** A complete reply: its code, or -1 when malformed (no code, or the lines of a multi-line reply disagree). */
  reply(code: number): void;
}

/** Reads the code at `buf[pos..pos+3)`, or -1 when it is not three digits. */
function codeAt(buf: Uint8Array, pos: number, len: number): number {
  if (len < 3) return -1;
  const a = buf[pos] - ZERO, b = buf[pos + 1] - ZERO, c = buf[pos + 2] - ZERO;
  if (a < 0 || a > 9 || b < 0 || b > 9 || c < 0 || c > 9) return -1;
  return a * 100 + b * 10 + c;
}

/** Splits a server's byte stream into replies. One per connection; {@link reset} it for a new one. */
export class ReplyParser {
  /** Pass every line's text to {@link ReplyHandler.replyLine} (set while reading the EHLO reply). */
  wantLines = false;
  #carry: Buffer | undefined;
  /** Code of the multi-line reply in progress: 0 none, -1 malformed so far. */
  #multi = 0;
  #generation = 0;

  /** Whether bytes of an unfinished line are held back for the next {@link feed}. */
  get pending(): boolean {
    return this.#carry !== undefined;
  }

  /** Forgets any partial reply; a {@link feed} running right now stops after the current reply. */
  reset(): void {
    this.#carry = undefined;
    this.#multi = 0;
    this.wantLines = false;
    this.#generation++;
  }

  /** Feeds bytes from the server; calls `handler` for each complete reply. */
  feed(chunk: Buffer, handler: ReplyHandler): void {
    let buf = chunk;
    if (this.#carry) {
      buf = Buffer.concat([this.#carry, chunk]);
      this.#carry = undefined;
    }
    const generation = this.#generation;
    let pos = 0;
    for (;;) {
      const lf = buf.indexOf(LF, pos);
      if (lf < 0) break;
      const end = lf > pos && buf[lf - 1] === CR ? lf - 1 : lf;
      const len = end - pos;
      const code = codeAt(buf, pos, len);
      // "250-text" continues, "250 text" or a bare "250" ends the reply.
      const last = len <= 3 || buf[pos + 3] !== HYPHEN;
      if (this.wantLines) handler.replyLine(buf, Math.min(pos + 4, end), end);
      pos = lf + 1;
      if (!last) {
        if (this.#multi === 0) this.#multi = code;
        else if (this.#multi !== code) this.#multi = -1;
        continue;
      }
      const whole = this.#multi === 0 || this.#multi === code ? code : -1;
      this.#multi = 0;
      handler.reply(whole);
      // The handler may have dropped this connection (and reset us for the next one): stop here.
      if (this.#generation !== generation) return;
    }
    if (pos < buf.length) {
      if (buf.length - pos > MAX_LINE) {
        this.#multi = 0;
        handler.reply(-1);
        return;
      }
      // Copy: a subarray would keep the whole (possibly large) chunk alive.
      this.#carry = Buffer.from(buf.subarray(pos));
    }
  }
}
