/**
 * One scripted client connection for the soak's load generator: a
 * `node:net` socket with a reply queue (framing by the benchmark's
 * {@link ReplyParser}, with each reply's text kept), deadlines on every wait,
 * and the ways a client can leave (QUIT, FIN, RST).
 *
 * @module
 */
import * as net from "node:net";
import type { Buffer } from "node:buffer";
import { type ReplyHandler, ReplyParser } from "../bench/lib/replies.ts";

/** A complete reply: code (-1 when malformed), enhanced code if any, the text of its last line. */
export interface Reply {
  readonly kind: "reply";
  readonly code: number;
  /** `"4.7.0"` or `""`. */
  readonly enhanced: string;
  /** The last line's text after the code (and the enhanced code). */
  readonly text: string;
}

/** The server closed (or reset) the connection before a reply came. */
export interface Closed {
  readonly kind: "closed";
  /** The socket error that came with it, e.g. `ECONNRESET`, or `""` for a clean FIN. */
  readonly error: string;
}

/** Nothing came within the deadline. */
export interface TimedOut {
  readonly kind: "timeout";
}

/** What waiting for a reply can give. */
export type ReadResult = Reply | Closed | TimedOut;

const ENHANCED = /^([245]\.\d{1,3}\.\d{1,3})\s+/;
const latin1 = new TextDecoder("latin1");

/** Where to connect, and from which local address (any of 127.0.0.0/8 works on Linux). */
export interface Endpoint {
  readonly host: string;
  readonly port: number;
  readonly localAddress?: string;
}

/** A client connection; open it with {@link SmtpConn.open}. */
export class SmtpConn implements ReplyHandler {
  #socket: net.Socket;
  #parser = new ReplyParser();
  #queue: ReadResult[] = [];
  #wake: (() => void) | undefined;
  #lastText = "";
  #closed = false;
  #error = "";
  #closedWaiters: Array<() => void> = [];
  /** Bytes received from the server so far. */
  received = 0;

  private constructor(socket: net.Socket) {
    this.#socket = socket;
    this.#parser.wantLines = true;
    socket.setNoDelay(true);
    socket.on("data", (chunk: Buffer) => {
      this.received += chunk.length;
      this.#parser.feed(chunk, this);
    });
    socket.on("error", (err: Error & { code?: string }) => {
      this.#error ||= err.code ?? err.message;
    });
    socket.on("close", () => {
      this.#closed = true;
      this.#push({ kind: "closed", error: this.#error });
      for (const wake of this.#closedWaiters.splice(0)) wake();
    });
  }

  /**
   * Connects; resolves with the connection, or with the error code (e.g.
   * `ECONNREFUSED`, `connect-timeout`) when it could not.
   */
  static open(endpoint: Endpoint, timeoutMs: number): Promise<SmtpConn | string> {
    return new Promise((resolve) => {
      const socket = net.connect({ host: endpoint.host, port: endpoint.port, localAddress: endpoint.localAddress });
      const timer = setTimeout(() => fail("connect-timeout"), timeoutMs);
      const fail = (why: string) => {
        clearTimeout(timer);
        socket.removeAllListeners();
        socket.on("error", () => {});
        socket.destroy();
        resolve(why);
      };
      socket.once("error", (err: Error & { code?: string }) => fail(err.code ?? err.message));
      socket.once("connect", () => {
        clearTimeout(timer);
        socket.removeAllListeners("error");
        resolve(new SmtpConn(socket));
      });
    });
  }

  replyLine(buf: Uint8Array, start: number, end: number): void {
    this.#lastText = latin1.decode(buf.subarray(start, end));
  }

  reply(code: number): void {
    const m = ENHANCED.exec(this.#lastText);
    this.#push({
      kind: "reply",
      code,
      enhanced: m ? m[1] : "",
      text: m ? this.#lastText.slice(m[0].length) : this.#lastText,
    });
    this.#lastText = "";
  }

  #push(result: ReadResult): void {
    this.#queue.push(result);
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  /** The next reply, or the close, or a timeout after `timeoutMs`. A close is reported once, then again on each call. */
  read(timeoutMs: number): Promise<ReadResult> {
    const next = this.#queue.shift();
    if (next) {
      // Keep reporting a close to later reads too.
      if (next.kind === "closed") this.#queue.unshift(next);
      return Promise.resolve(next);
    }
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#wake = undefined;
        resolve({ kind: "timeout" });
      }, timeoutMs);
      this.#wake = () => {
        clearTimeout(timer);
        resolve(this.read(0));
      };
    });
  }

  /** Whether a reply (or the close) has arrived and not been read yet. */
  get hasInput(): boolean {
    return this.#queue.length > 0;
  }

  /** Whether the server has closed (or reset) the connection. */
  get closed(): boolean {
    return this.#closed;
  }

  /** The socket error seen, if any (`ECONNRESET`, `EPIPE`...). */
  get error(): string {
    return this.#error;
  }

  /** Resolves `true` once the connection is closed, `false` after `timeoutMs`. */
  waitClosed(timeoutMs: number): Promise<boolean> {
    if (this.#closed) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#closedWaiters = this.#closedWaiters.filter((w) => w !== wake);
        resolve(false);
      }, timeoutMs);
      const wake = () => {
        clearTimeout(timer);
        resolve(true);
      };
      this.#closedWaiters.push(wake);
    });
  }

  /** Sends bytes (a string is sent as latin1); errors show up as a close. */
  write(data: string | Uint8Array): void {
    if (this.#closed || this.#socket.destroyed) return;
    this.#socket.write(typeof data === "string" ? Uint8Array.from(data, (c) => c.charCodeAt(0) & 0xff) : data);
  }

  /** Resolves once everything written so far has been handed to the kernel (or the socket is gone). */
  drained(): Promise<void> {
    if (this.#closed || !this.#socket.writableNeedDrain) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        this.#socket.off("drain", done);
        this.#socket.off("close", done);
        resolve();
      };
      this.#socket.on("drain", done);
      this.#socket.on("close", done);
    });
  }

  /** Half-closes (FIN) and lets the server finish. */
  end(): void {
    if (!this.#closed) this.#socket.end();
  }

  /** Closes at once (FIN, unread data dropped). */
  destroy(): void {
    this.#socket.destroy();
  }

  /** Closes with a TCP reset (RST), as a crashed client or a middlebox would. */
  reset(): void {
    if (this.#socket.destroyed) return;
    try {
      this.#socket.resetAndDestroy();
    } catch {
      this.#socket.destroy();
    }
  }
}
