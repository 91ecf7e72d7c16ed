/**
 * Command-line framing: splits the byte stream at LF, tells whether each line
 * ended with CRLF, and enforces the line-length and buffer limits without
 * ever buffering more than the limit. No I/O: it is fed chunks.
 *
 * @module
 */

const LF = 0x0a;
const CR = 0x0d;
const EMPTY = new Uint8Array(0);

/** One framed item. */
export type LineItem =
  /** A complete line, without its line break. */
  | { kind: "line"; bytes: Uint8Array; crlf: boolean }
  /** A line longer than the limit; its bytes were dropped. */
  | { kind: "too-long" }
  /** More than the buffer limit arrived without any LF: the client must be disconnected. */
  | { kind: "overflow" };

/**
 * Incremental line splitter.
 *
 * @example
 * ```ts
 * const reader = new LineReader(512, 65536);
 * reader.push(new TextEncoder().encode("EHLO a\r\nNO"));
 * reader.next(); // => { kind: "line", bytes: new TextEncoder().encode("EHLO a"), crlf: true }
 * reader.next(); // => undefined
 * // "NO" waits for its LF.
 * ```
 */
export class LineReader {
  #buf: Uint8Array = EMPTY;
  #pos = 0;
  /** Where the LF search resumes (bytes before it are known to hold no LF). */
  #scanFrom = 0;
  /** Bytes dropped of the current over-long line, or -1 when not dropping. */
  #dropped = -1;

  /**
   * @param maxLineLength longest line accepted, line break included
   * @param maxBufferSize bytes without LF after which `overflow` is reported (`null`: never)
   */
  constructor(readonly maxLineLength: number, readonly maxBufferSize: number | null) {}

  /** Appends bytes from the client. */
  push(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    const rest = this.#buf.length - this.#pos;
    if (rest === 0) {
      this.#buf = chunk;
      this.#scanFrom = 0;
    } else {
      const joined = new Uint8Array(rest + chunk.length);
      joined.set(this.#buf.subarray(this.#pos));
      joined.set(chunk, rest);
      this.#buf = joined;
      this.#scanFrom -= this.#pos;
    }
    this.#pos = 0;
    if (this.#scanFrom < 0) this.#scanFrom = 0;
  }

  /** The next complete item, or `undefined` when more bytes are needed. */
  next(): LineItem | undefined {
    const buf = this.#buf;
    const start = this.#pos;
    const lf = buf.indexOf(LF, this.#scanFrom);
    if (lf < 0) {
      const pending = buf.length - start;
      const held = (this.#dropped < 0 ? 0 : this.#dropped) + pending;
      if (this.maxBufferSize !== null && held > this.maxBufferSize) {
        this.clear();
        return { kind: "overflow" };
      }
      if (this.#dropped >= 0 || pending >= this.maxLineLength) {
        // Too long already: drop what we have instead of buffering it.
        this.#dropped = held;
        this.#buf = EMPTY;
        this.#pos = 0;
        this.#scanFrom = 0;
        return undefined;
      }
      this.#scanFrom = buf.length;
      return undefined;
    }
    this.#pos = lf + 1;
    this.#scanFrom = lf + 1;
    if (this.#dropped >= 0 || lf + 1 - start > this.maxLineLength) {
      this.#dropped = -1;
      return { kind: "too-long" };
    }
    const crlf = lf > start && buf[lf - 1] === CR;
    return { kind: "line", bytes: buf.subarray(start, crlf ? lf - 1 : lf), crlf };
  }

  /** Whether another complete line is already buffered (used to detect unannounced pipelining). */
  hasCompleteLine(): boolean {
    return this.#buf.indexOf(LF, this.#pos) >= 0;
  }

  /** Removes and returns everything not yet framed (e.g. message data sent right behind DATA). */
  takeRest(): Uint8Array {
    const rest = this.#buf.subarray(this.#pos);
    this.clear();
    return rest;
  }

  /** Drops everything buffered (after STARTTLS, plaintext must never be run). */
  clear(): void {
    this.#buf = EMPTY;
    this.#pos = 0;
    this.#scanFrom = 0;
    this.#dropped = -1;
  }
}
