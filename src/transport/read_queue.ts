/**
 * The bounded read queue of the push-based transports (node:net and Bun):
 * their sockets deliver data as events, while a {@link Connection} is read by
 * pulling. Chunks wait here until read; past a high-water mark the transport
 * pauses its socket, so TCP slows the client down.
 *
 * @module
 */
import { concatBytes } from "../bytes.ts";

/** Above this many queued, unread bytes the socket should be paused. */
const HIGH_WATER = 256 * 1024;
/** Small queued chunks are merged into one read up to this size (fewer wake-ups when pipelined). */
const MERGE_LIMIT = 64 * 1024;

/** Chunks received and not yet read. */
export class ReadQueue {
  #chunks: Uint8Array[] = [];
  #bytes = 0;

  /** Whether nothing is queued. */
  get empty(): boolean {
    return this.#chunks.length === 0;
  }

  /** Queues `chunk`; returns `true` when the socket should now be paused. */
  push(chunk: Uint8Array): boolean {
    this.#chunks.push(chunk);
    this.#bytes += chunk.length;
    return this.#bytes > HIGH_WATER;
  }

  /** Takes the next read (small chunks merged into one); `undefined` when empty. */
  shift(): Uint8Array | undefined {
    const chunks = this.#chunks;
    if (chunks.length === 0) return undefined;
    let chunk: Uint8Array;
    if (chunks.length > 1 && this.#bytes <= MERGE_LIMIT) {
      chunk = concatBytes(chunks);
      chunks.length = 0;
    } else {
      chunk = chunks.shift()!;
    }
    this.#bytes -= chunk.length;
    return chunk;
  }

  /** Whether a paused socket may resume (the queue drained to half the high-water mark). */
  get canResume(): boolean {
    return this.#bytes <= HIGH_WATER / 2;
  }

  /** Drops everything queued (plaintext before a TLS handshake must never be read). */
  clear(): void {
    this.#chunks.length = 0;
    this.#bytes = 0;
  }
}
