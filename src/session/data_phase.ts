/**
 * One message being received, after DATA's `354` or as BDAT chunks: the one
 * owner of its bytes, its size, its header section and, in streaming mode,
 * its stream. The session feeds it what the client sends and runs the hooks;
 * this object does no I/O and calls no hook. The framer behind it (dot
 * framing or counted chunks) is the only difference between the two.
 *
 * @module
 */
import type { BodyFramer } from "./body_framer.ts";
import { ChunkReader, type ChunkReaderOptions } from "./chunk_reader.ts";
import { DataReader, type DataReaderOptions } from "./data_reader.ts";
import type { MessageStream } from "./message_stream.ts";
import { concatBytes } from "../bytes.ts";
import {
  Smtpd500CrLfSequenceException,
  Smtpd500Exception,
  Smtpd552Exception,
  type SmtpdException,
} from "../exceptions.ts";

/** How much of the start of a streamed message is kept for `ctx.message.headers`. */
const HEAD_LIMIT = 64 * 1024;
const lenientUtf8 = new TextDecoder();

/**
 * The message of one DATA command, or of one series of BDAT chunks.
 *
 * @example
 * ```ts
 * const phase = new DataPhase({ crlfMode: "CRLF_ENSURE", maxSize: 0, maxLineLength: 0 });
 * const { done } = phase.push(new TextEncoder().encode("Subject: hi\r\n\r\nbody\r\n.\r\n"));
 * console.log(done, phase.takeHeaders(), phase.size); // => true, "Subject: hi\r\n\r\n", 21
 * ```
 */
export class DataPhase {
  /** The streaming hook's stream, in streaming mode. */
  readonly stream: MessageStream | undefined;
  #framer: BodyFramer;
  /** The BDAT framer, when the message comes in chunks. */
  #chunks: ChunkReader | undefined;
  readonly #strict: boolean;
  readonly #maxSize: number;
  /** DATA: the final dot was seen. */
  #dotSeen = false;
  #refusal: SmtpdException | undefined;
  #headersSeen = false;
  /** Streaming mode: the first bytes, kept until the header section is complete. */
  #head: Uint8Array[] = [];

  /** @param options the framer's limits @param stream the stream to feed, in streaming mode */
  constructor(options: DataReaderOptions, stream?: MessageStream) {
    this.#framer = new DataReader(options);
    this.#strict = options.crlfMode === "CRLF_STRICT";
    this.#maxSize = options.maxSize;
    this.stream = stream;
  }

  /**
   * A message that comes as BDAT chunks: announce each with `beginChunk`,
   * then `push` its octets.
   *
   * @example
   * ```ts
   * const phase = DataPhase.chunked({ crlfMode: "CRLF_ENSURE", maxSize: 0, maxLineLength: 0, binary: false });
   * phase.beginChunk(15, false);
   * phase.push(new TextEncoder().encode("Subject: hi\r\n\r\nBDAT 6 LAST\r\n")); // => { consumed: 15, done: true }
   * phase.beginChunk(6, true);
   * phase.push(new TextEncoder().encode("body\r\nQUIT\r\n")); // => { consumed: 6, done: true }
   * console.log(phase.complete, phase.takeHeaders(), phase.size); // => true, "Subject: hi\r\n\r\n", 21
   * ```
   *
   * @param options the framer's limits, and whether the body is `BODY=BINARYMIME`
   * @param stream the stream to feed, in streaming mode
   */
  static chunked(options: ChunkReaderOptions, stream?: MessageStream): DataPhase {
    // The constructor is DATA's (its signature is public); its DataReader is swapped before any use.
    const phase = new DataPhase(options, stream);
    phase.#chunks = new ChunkReader(options);
    phase.#framer = phase.#chunks;
    return phase;
  }

  /**
   * Feeds client bytes; `consumed` of them belong to the message. `done`
   * says DATA's final dot came, or (BDAT) the current chunk was read.
   */
  push(bytes: Uint8Array): { consumed: number; done: boolean } {
    const result = this.#framer.push(bytes);
    if (result.done && this.#chunks === undefined) this.#dotSeen = true;
    return result;
  }

  /** The message arrived in chunks (BDAT), not as DATA. */
  get chunked(): boolean {
    return this.#chunks !== undefined;
  }

  /**
   * BDAT: starts the next chunk, of `size` octets, the last one if `last`.
   *
   * @throws Error for a DATA message, while the current chunk has octets left, or after the LAST chunk
   */
  beginChunk(size: number, last: boolean): void {
    if (this.#chunks === undefined) throw new Error("a DATA message has no chunks");
    this.#chunks.beginChunk(size, last);
  }

  /** BDAT: octets of the current chunk not read yet (0 for DATA). */
  get chunkRemaining(): number {
    return this.#chunks?.chunkRemaining ?? 0;
  }

  /** The whole message is in: DATA's final dot was seen, or BDAT's LAST chunk was read. */
  get complete(): boolean {
    return this.#chunks ? this.#chunks.lastChunk : this.#dotSeen;
  }

  /**
   * Whether a chunk of `chunkSize` more octets would take the message past
   * `maxSize`, so that it is refused before it is read (RFC 3030: 552).
   * Counts octets as sent (DATA: the message so far).
   */
  wouldExceed(chunkSize: number): boolean {
    const sofar = this.#chunks ? this.#chunks.wireSize : this.#framer.size;
    return this.#maxSize > 0 && sofar + chunkSize > this.#maxSize;
  }

  /** Message bytes so far (dots unstuffed, line breaks repaired in `CRLF_ENSURE`). */
  get size(): number {
    return this.#framer.size;
  }

  /** Why the message is refused already (a data hook threw): the rest is read and dropped. */
  get refusal(): SmtpdException | undefined {
    return this.#refusal;
  }

  /** Whether the header section has just become complete and was not handed out yet. */
  get headersPending(): boolean {
    return !this.#headersSeen && this.#framer.headerSize >= 0 && this.#refusal === undefined;
  }

  /**
   * The header section's text, once, when it is complete (`""` when the
   * message is not kept: too large, or refused).
   */
  takeHeaders(): string {
    this.#headersSeen = true;
    const framer = this.#framer;
    const head = this.#head;
    this.#head = [];
    if (!framer.retain || framer.oversize || framer.headerSize < 0) return "";
    const bytes = this.stream ? concatBytes([...head, framer.peek(framer.size)]) : framer.peek(framer.headerSize);
    return lenientUtf8.decode(bytes.subarray(0, framer.headerSize));
  }

  /** Refuses the message now (a data hook threw): the rest is read and dropped, `error` answers its end. */
  refuse(error: SmtpdException): void {
    this.#refusal = error;
    this.#framer.retain = false;
    this.#framer.take();
  }

  /**
   * Streaming mode: hands the bytes read so far to the stream, waiting while
   * its reader is behind (unless `stop()` says the session ends).
   */
  async pump(stop: () => boolean): Promise<void> {
    const stream = this.stream;
    if (!stream) return;
    const framer = this.#framer;
    const chunk = framer.take();
    if (!this.#headersSeen && chunk.length > 0 && framer.size - chunk.length < HEAD_LIMIT) {
      this.#head.push(new Uint8Array(chunk)); // a copy: a Node Buffer's slice is a view
    }
    await stream.write(chunk, stop);
    // A reader that gave up does not hold the message up: keep reading, drop the bytes.
    if (stream.abandoned) framer.retain = false;
  }

  /**
   * The refusal the message earned by its end: a hook's, too large, bare
   * line breaks in strict mode, a line too long (a binary body has no lines).
   */
  refusalAtEnd(): SmtpdException | undefined {
    const framer = this.#framer;
    if (this.#refusal) return this.#refusal;
    if (framer.oversize) return new Smtpd552Exception(undefined, "Message size exceeds fixed maximum message size");
    if (framer.bareLineBreak && this.#strict) return new Smtpd500CrLfSequenceException();
    if (framer.lineTooLong) return new Smtpd500Exception(undefined, "Line too long", "5.5.2");
    return undefined;
  }

  /** The message as the pieces received (joined only when read), once it is complete. */
  takeSegments(): Uint8Array[] {
    return this.#framer.takeSegments();
  }

  /** The last line break seen (`CRLF_LEAVE` keeps it in `ctx.message.crlf`). */
  get lastLineBreak(): string {
    return this.#framer.lastLineBreak;
  }
}
