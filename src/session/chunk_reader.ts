/**
 * BDAT framing (RFC 3030): a message comes as chunks of announced sizes, raw
 * octets with no dot-stuffing and no terminator, so `\r\n.\r\n` inside a
 * chunk is just body. The framer only counts: each `push` takes at most what
 * is left of the current chunk, and the byte after it starts the next
 * command. Without BINARYMIME the body is still line-based text, and the
 * bare CR/LF and line-length policies of DATA apply across chunk borders (a
 * CR that ends one chunk and the LF that starts the next are one CRLF). A
 * BINARYMIME body is kept exactly as sent. Output is kept as zero-copy views
 * of the input, as `DataReader` keeps it.
 *
 * @module
 */
import { type BodyFramer, BodyOutput, type BodyPushResult } from "./body_framer.ts";
import { type DataReaderOptions, findControl } from "./data_reader.ts";

const LF = 0x0a;
const CR = 0x0d;
const CRLF_BYTES = new Uint8Array([CR, LF]);
const LF_BYTES = new Uint8Array([LF]);
const NO_WORDS = new Int32Array(0);

/** Limits and policy for one BDAT message. */
export interface ChunkReaderOptions extends DataReaderOptions {
  /** `BODY=BINARYMIME`: no line processing at all, every octet kept as sent. */
  readonly binary: boolean;
}

/**
 * Incremental BDAT reader for one message, chunk by chunk.
 *
 * @example
 * ```ts
 * const r = new ChunkReader({ crlfMode: "CRLF_ENSURE", maxSize: 0, maxLineLength: 0, binary: false });
 * const bytes = new TextEncoder().encode("Subject: x\r\n\r\n.\r\nhi\nQUIT\r\n");
 * r.beginChunk(17, false);
 * r.push(bytes); // => { consumed: 17, done: true }
 * r.beginChunk(3, true);
 * r.push(bytes.subarray(17)); // => { consumed: 3, done: true }
 * r.lastChunk; // => true
 * new TextDecoder().decode(r.take()); // => "Subject: x\r\n\r\n.\r\nhi\r\n"
 * ```
 */
export class ChunkReader extends BodyOutput implements BodyFramer {
  /** A line passed `maxLineLength` (never in a binary body). */
  lineTooLong = false;
  /** A bare CR or LF was seen (refused in `CRLF_STRICT`; never in a binary body). */
  bareLineBreak = false;
  /** The line break kept in `CRLF_LEAVE` mode when the last line ended with a bare LF. */
  lastLineBreak = "\r\n";

  #remaining = 0;
  #last = false;
  #ended = false;
  #wireSize = 0;
  /** The last byte read was a CR, whose LF (if any) is the next byte, maybe in the next chunk. */
  #prevCR = false;
  /** Wire bytes of the current line so far (it may span pushes and chunks). */
  #lineLength = 0;
  readonly #options: ChunkReaderOptions;

  /**
   * A reader with no chunk yet: `beginChunk` starts the first.
   *
   * @param options limits, CRLF policy and whether the body is binary
   */
  constructor(options: ChunkReaderOptions) {
    super(options.maxSize, options.binary);
    this.#options = options;
  }

  /**
   * Starts the next chunk, of `size` octets (a BDAT command was read).
   *
   * @param size the chunk's octet count
   * @param last the chunk ends the message (`BDAT <size> LAST`)
   * @throws Error when the current chunk still has octets to read, or the LAST chunk was read
   * @throws RangeError when `size` is not a whole number of octets
   */
  beginChunk(size: number, last: boolean): void {
    if (!Number.isSafeInteger(size) || size < 0) throw new RangeError(`bad chunk size: ${size}`);
    if (this.#remaining > 0) throw new Error(`the current chunk still has ${this.#remaining} octets to read`);
    if (this.#ended) throw new Error("the LAST chunk was read already");
    this.#remaining = size;
    this.#last = last;
    if (size === 0) this.#chunkEnded();
  }

  /** Octets of the current chunk not read yet. */
  get chunkRemaining(): number {
    return this.#remaining;
  }

  /** The LAST chunk was announced and fully read: the message is complete. */
  get lastChunk(): boolean {
    return this.#ended;
  }

  /** Octets received over all chunks, as sent (before any CRLF repair): what the size limit checks. */
  get wireSize(): number {
    return this.#wireSize;
  }

  /** Feeds client bytes; at most the current chunk's remaining octets are consumed, `done` once it is read. */
  push(bytes: Uint8Array): BodyPushResult {
    const n = bytes.length < this.#remaining ? bytes.length : this.#remaining;
    if (n === 0) return { consumed: 0, done: this.#remaining === 0 };
    const body = n === bytes.length ? bytes : bytes.subarray(0, n);
    this.#wireSize += n;
    this.#remaining -= n;
    if (this.#options.binary) this.emit(body);
    else this.#scan(body);
    const done = this.#remaining === 0;
    if (done) this.#chunkEnded();
    return { consumed: n, done };
  }

  #chunkEnded(): void {
    if (!this.#last) return;
    this.#ended = true;
    // No next byte will come for a CR that ended the body: it is bare.
    if (this.#prevCR) this.#danglingCR();
    this.#prevCR = false;
  }

  /**
   * Applies the line policies to text bytes (not empty), as `DataReader.push`
   * does without its dot handling: one `findControl` pass per line finds its
   * LF and any bare CR in it.
   */
  #scan(buf: Uint8Array): void {
    const mode = this.#options.crlfMode;
    const maxLine = this.#options.maxLineLength;
    const len = buf.length;
    // The same bytes as 32-bit words, from the first 4-aligned byte (typed-array views must be aligned).
    const wordBase = (4 - (buf.byteOffset & 3)) & 3;
    const words = len >= wordBase + 4
      ? new Int32Array(buf.buffer, buf.byteOffset + wordBase, (len - wordBase) >> 2)
      : NO_WORDS;
    let segStart = 0;

    // A CR that ended the last push (maybe the last chunk): its LF (if any) is our first byte.
    const startsAfterCR = this.#prevCR;
    if (startsAfterCR && buf[0] !== LF) this.#danglingCR();

    for (let i = 0;;) {
      let lf = findControl(buf, words, wordBase, i);
      for (; lf < len; lf = findControl(buf, words, wordBase, lf + 1)) {
        const b = buf[lf];
        if (b === LF) break;
        // A CR as the last byte is decided by the next push (#prevCR).
        if (b === CR && lf + 1 < len && buf[lf + 1] !== LF) segStart = this.#bareCR(buf, lf, segStart);
      }
      if (lf === len) {
        this.#lineLength += len - i;
        if (maxLine > 0 && this.#lineLength > maxLine) this.lineTooLong = true;
        break;
      }
      const crlf = lf > 0 ? buf[lf - 1] === CR : startsAfterCR;
      const lineBytes = this.#lineLength + (lf - i);
      this.#lineLength = 0;
      if (maxLine > 0 && lineBytes + 1 > maxLine) this.lineTooLong = true;
      if (!crlf) {
        this.bareLineBreak = true;
        if (mode === "CRLF_ENSURE") {
          this.emit(buf.subarray(segStart, lf));
          this.emit(CRLF_BYTES);
          segStart = lf + 1;
        }
      }
      this.lastLineBreak = crlf ? "\r\n" : "\n";
      i = lf + 1;
    }
    this.emit(buf.subarray(segStart, len));
    this.#prevCR = buf[len - 1] === CR;
  }

  /** Handles a bare CR at `buf[at]`; returns where the output's next segment starts. */
  #bareCR(buf: Uint8Array, at: number, segStart: number): number {
    this.bareLineBreak = true;
    if (this.#options.crlfMode !== "CRLF_ENSURE") return segStart;
    // Emit up to the CR, then the LF it lacks.
    this.emit(buf.subarray(segStart, at + 1));
    this.emit(LF_BYTES);
    return at + 1;
  }

  /** The CR that ended an earlier push is bare: the next byte is not its LF, or no byte comes. */
  #danglingCR(): void {
    this.bareLineBreak = true;
    // The CR was emitted already; add the LF it lacks.
    if (this.#options.crlfMode === "CRLF_ENSURE") this.emit(LF_BYTES);
  }
}
