/**
 * One message being received after `354`: the one owner of its bytes, its
 * size, its header section and, in streaming mode, its stream. The session
 * feeds it what the client sends and runs the hooks; this object does no
 * I/O and calls no hook.
 *
 * @module
 */
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
 * The message of one DATA command.
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
  readonly #framer: DataReader;
  readonly #strict: boolean;
  #refusal: SmtpdException | undefined;
  #headersSeen = false;
  /** Streaming mode: the first bytes, kept until the header section is complete. */
  #head: Uint8Array[] = [];

  /** @param options the framer's limits @param stream the stream to feed, in streaming mode */
  constructor(options: DataReaderOptions, stream?: MessageStream) {
    this.#framer = new DataReader(options);
    this.#strict = options.crlfMode === "CRLF_STRICT";
    this.stream = stream;
  }

  /** Feeds client bytes; `consumed` of them belong to the message, and `done` says the final dot came. */
  push(bytes: Uint8Array): { consumed: number; done: boolean } {
    return this.#framer.push(bytes);
  }

  /** Message bytes so far (dots unstuffed). */
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

  /** Refuses the message now (a data hook threw): the rest is read and dropped, `error` answers the dot. */
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

  /** The refusal the message earned by its end: a hook's, too large, bare line breaks in strict mode, a line too long. */
  refusalAtEnd(): SmtpdException | undefined {
    const framer = this.#framer;
    if (this.#refusal) return this.#refusal;
    if (framer.oversize) return new Smtpd552Exception(undefined, "Message size exceeds fixed maximum message size");
    if (framer.bareLineBreak && this.#strict) return new Smtpd500CrLfSequenceException();
    if (framer.lineTooLong) return new Smtpd500Exception(undefined, "Line too long", "5.5.2");
    return undefined;
  }

  /** The message as the pieces received (joined only when read), after the final dot. */
  takeSegments(): Uint8Array[] {
    return this.#framer.takeSegments();
  }

  /** The last line break seen (`CRLF_LEAVE` keeps it in `ctx.message.crlf`). */
  get lastLineBreak(): string {
    return this.#framer.lastLineBreak;
  }
}
