/**
 * The streaming mode of DATA: the message body handed to the application as
 * a `ReadableStream<Uint8Array>` while it arrives, with backpressure. When the
 * application reads slowly the session stops reading the socket, so TCP slows
 * the client down and memory stays flat whatever the message size.
 *
 * @module
 */
import type { Awaitable } from "../hooks.ts";

/** Bytes queued in the stream before the session stops reading from the client. */
const HIGH_WATER_MARK = 256 * 1024;

/** How the application's stream hook ended. */
export type StreamHookResult = { ok: true } | { ok: false; error: unknown };

/** One message as a stream, fed by the session, read by the application's hook. */
export class MessageStream {
  /** What the hook reads. */
  readonly stream: ReadableStream<Uint8Array>;
  /** Settles when the hook returns or throws (never rejects). */
  readonly hookResult: Promise<StreamHookResult>;
  #controller!: ReadableStreamDefaultController<Uint8Array>;
  #wake: (() => void) | undefined;
  #ended = false;
  #hookSettled = false;
  #cancelled = false;

  /** Creates the stream and starts `hook` on it (the hook runs while the session feeds the stream). */
  constructor(hook: (stream: ReadableStream<Uint8Array>) => Awaitable<void>) {
    this.stream = new ReadableStream<Uint8Array>({
      start: (controller) => {
        this.#controller = controller;
      },
      pull: () => this.#wakeUp(),
      cancel: () => {
        // The application stopped reading: the rest of the message is read and dropped.
        this.#cancelled = true;
        this.#ended = true;
        this.#wakeUp();
      },
    }, new ByteLengthQueuingStrategy({ highWaterMark: HIGH_WATER_MARK }));
    this.hookResult = Promise.resolve()
      .then(() => hook(this.stream))
      .then((): StreamHookResult => ({ ok: true }), (error): StreamHookResult => ({ ok: false, error }))
      .finally(() => {
        this.#hookSettled = true;
        this.#wakeUp();
      });
  }

  /** Whether nobody will read further bytes (the hook finished or cancelled the stream). */
  get abandoned(): boolean {
    return this.#cancelled || this.#hookSettled;
  }

  /**
   * Queues `chunk` and waits until the reader wants more (or gave up, or
   * `stop()` says to stop waiting, e.g. after a timeout).
   */
  async write(chunk: Uint8Array, stop: () => boolean): Promise<void> {
    if (this.#ended || this.abandoned) return;
    if (chunk.length > 0) this.#controller.enqueue(chunk);
    while ((this.#controller.desiredSize ?? 1) <= 0 && !this.abandoned && !stop()) {
      await new Promise<void>((resolve) => this.#wake = resolve);
    }
  }

  /** Ends the stream normally (the final dot arrived). */
  close(): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#controller.close();
  }

  /** Ends the stream with an error (message refused, or the client vanished). */
  error(reason: unknown): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#controller.error(reason);
  }

  /** Lets a waiting `write()` re-check its conditions. */
  #wakeUp(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  /** Wakes a waiting `write()` from outside (a timeout or a closing session). */
  interrupt(): void {
    this.#wakeUp();
  }
}
