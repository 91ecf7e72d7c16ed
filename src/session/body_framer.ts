/**
 * What a message body's framer gives `DataPhase`, whichever command carries
 * the body: DATA (dot framing, `DataReader`) or BDAT (counted chunks,
 * `ChunkReader`). Also the output half both framers share, so that size,
 * the size limit, the header section and the kept bytes mean the same for
 * both.
 *
 * @module
 */
import { concatBytes } from "../bytes.ts";

const LF = 0x0a;
const CR = 0x0d;

/** What one `push` did. */
export interface BodyPushResult {
  /** Bytes of the input that belong to the body (the rest are commands that follow it). */
  readonly consumed: number;
  /** The framer's unit ended: DATA's final dot, or the end of the current BDAT chunk. */
  readonly done: boolean;
}

/** A message body's framer, as `DataPhase` drives it. */
export interface BodyFramer {
  /** Feeds client bytes; at most the body's bytes are consumed. */
  push(bytes: Uint8Array): BodyPushResult;
  /** Body bytes after the framer's policy (dots unstuffed, CRLF repaired), counted even past `maxSize`. */
  readonly size: number;
  /** Size of the header section, including the empty line that ends it, or -1 while not seen. */
  readonly headerSize: number;
  /** Keep the body bytes; `false` only counts them. */
  retain: boolean;
  /** The body passed `maxSize`: its bytes are no longer kept. */
  readonly oversize: boolean;
  /** A bare CR or LF was seen (refused in `CRLF_STRICT`). */
  readonly bareLineBreak: boolean;
  /** A line passed `maxLineLength`. */
  readonly lineTooLong: boolean;
  /** The last line break, `"\r\n"` or `"\n"` (`CRLF_LEAVE` keeps it in `ctx.message.crlf`). */
  readonly lastLineBreak: string;
  /** Removes and returns the bytes kept since the last call, joined. */
  take(): Uint8Array;
  /** Removes and returns the kept bytes as the received pieces, without joining them. */
  takeSegments(): Uint8Array[];
  /** Copies the first `n` kept bytes without taking them. */
  peek(n: number): Uint8Array;
}

/**
 * The output half of a framer: counts the body, keeps it as zero-copy views
 * of the input (unless `retain` is off or it grew past `maxSize`), and finds
 * the end of the header section. A framer calls `emit` with each piece of
 * its output, in order.
 *
 * @example
 * ```ts
 * class Echo extends BodyOutput {
 *   push(bytes: Uint8Array): void {
 *     this.emit(bytes);
 *   }
 * }
 * const out = new Echo(0, false);
 * out.push(new TextEncoder().encode("Subject: x\r\n\r\nbody"));
 * out.headerSize; // => 14
 * new TextDecoder().decode(out.take()); // => "Subject: x\r\n\r\nbody"
 * ```
 */
export class BodyOutput {
  /** Body bytes emitted, counted even past `maxSize`. */
  size = 0;
  /** The body passed `maxSize`: its bytes were dropped and no more are kept. */
  oversize = false;
  /** Size of the header section, including the empty line that ends it, or -1 while not seen. */
  headerSize = -1;
  /** Keep the body bytes; `false` only counts them (streaming mode takes them as they come). */
  retain = true;

  #segments: Uint8Array[] = [];
  readonly #maxSize: number;
  readonly #crlfOnly: boolean;
  /** Output bytes of the current line, while looking for the end of the headers. */
  #lineLength = 0;
  #lastByte = -1;

  /**
   * An empty body.
   *
   * @param maxSize largest body in bytes (0: no limit)
   * @param crlfOnly only CRLF ends a header line (a binary body: a bare LF is just a byte);
   *   otherwise a bare LF does too (text, as the framer's CRLF policy left it)
   */
  constructor(maxSize: number, crlfOnly: boolean) {
    this.#maxSize = maxSize;
    this.#crlfOnly = crlfOnly;
  }

  /** Adds the next piece of output (kept as a view: the caller must not reuse its buffer). */
  protected emit(segment: Uint8Array): void {
    const n = segment.length;
    if (n === 0) return;
    if (this.headerSize < 0) this.#findHeaderEnd(segment);
    this.size += n;
    if (this.oversize) return;
    const max = this.#maxSize;
    if (max > 0 && this.size > max) {
      this.oversize = true;
      this.#segments = [];
      return;
    }
    if (this.retain) this.#segments.push(segment);
  }

  /** Looks for the first empty line in the output; runs only until it is found. */
  #findHeaderEnd(segment: Uint8Array): void {
    let from = 0;
    for (let lf = segment.indexOf(LF); lf >= 0; lf = segment.indexOf(LF, lf + 1)) {
      const prev = lf > 0 ? segment[lf - 1] : this.#lastByte;
      if (this.#crlfOnly && prev !== CR) continue;
      const before = this.#lineLength + (lf - from);
      if (before === 0 || (before === 1 && prev === CR)) {
        this.headerSize = this.size + lf + 1;
        return;
      }
      this.#lineLength = 0;
      from = lf + 1;
    }
    this.#lineLength += segment.length - from;
    this.#lastByte = segment[segment.length - 1];
  }

  /** Copies the first `n` kept bytes (the header section) without taking them. */
  peek(n: number): Uint8Array {
    const out = new Uint8Array(Math.min(n, this.size));
    let offset = 0;
    for (const s of this.#segments) {
      if (offset >= out.length) break;
      const part = s.subarray(0, out.length - offset);
      out.set(part, offset);
      offset += part.length;
    }
    return out.subarray(0, offset);
  }

  /** Removes and returns the kept bytes as the received pieces, without joining them. */
  takeSegments(): Uint8Array[] {
    const segments = this.#segments;
    this.#segments = [];
    return segments;
  }

  /** Removes and returns the bytes kept since the last call, joined (streaming mode reads them per chunk). */
  take(): Uint8Array {
    const segments = this.#segments;
    this.#segments = [];
    if (segments.length === 1) return segments[0];
    return concatBytes(segments);
  }
}
