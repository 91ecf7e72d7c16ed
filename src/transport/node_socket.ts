/**
 * A node `net.Socket` (plain, or a `tls.TLSSocket`) as a {@link Connection}:
 * the reading, writing and closing that the node:net transport's plain
 * connections and every transport's TLS connections (node_tls.ts) share.
 * What differs between the two, upgrading to TLS, is left to subclasses, so
 * this file needs neither of them.
 *
 * @module
 */
import { ReadQueue } from "./read_queue.ts";
import { socketAddress } from "./address.ts";
import type * as net from "node:net";
import type { Connection, SocketAddress, TlsInfo, TlsServerOptions } from "./types.ts";

/**
 * Adapts a node socket to {@link Connection}; subclasses decide what
 * `startTls()` and `acceptTls()` do.
 *
 * The socket flows freely into a small queue and is paused only when the
 * {@link ReadQueue} passes its high-water mark: pausing on every read would cost a
 * system call per chunk.
 */
export abstract class NodeSocketConnection implements Connection {
  /** The local end, with the real port. */
  readonly localAddress: SocketAddress;
  /** The client's end. */
  readonly remoteAddress: SocketAddress;
  /** Set when the socket is a finished `tls.TLSSocket`. */
  readonly tls: TlsInfo | undefined;
  /** The wrapped socket; after {@link handOver} it belongs to someone else. */
  protected readonly socket: net.Socket;
  #queue = new ReadQueue();
  #ended = false;
  /** The client sent FIN: reads give null, writing stays possible (half-close). */
  #inputEnded = false;
  /** handOver() gave the socket to TLS: this object must not touch it any more. */
  #handedOver = false;
  #waiter: ((chunk: Uint8Array | null) => void) | undefined;
  #onData = (chunk: Uint8Array) => {
    const waiter = this.#waiter;
    if (waiter) {
      this.#waiter = undefined;
      waiter(chunk);
      return;
    }
    if (this.#queue.push(chunk)) this.socket.pause();
  };

  /** Wraps `socket`; the addresses default to the socket's own. */
  constructor(socket: net.Socket, local?: SocketAddress, remote?: SocketAddress, tlsInfo?: TlsInfo) {
    this.socket = socket;
    this.localAddress = local ?? socketAddress(socket.localAddress, socket.localPort, socket.localFamily);
    this.remoteAddress = remote ?? socketAddress(socket.remoteAddress, socket.remotePort, socket.remoteFamily);
    this.tls = tlsInfo;
    socket.setNoDelay(true);
    socket.on("data", this.#onData);
    socket.on("end", () => {
      this.#inputEnded = true;
      const waiter = this.#waiter;
      this.#waiter = undefined;
      waiter?.(null);
    });
    socket.on("close", () => this.#finish());
    // An error (ECONNRESET, EPIPE) ends the connection like an EOF; the
    // listener also keeps the process from crashing on an unhandled 'error'.
    socket.on("error", () => this.#finish());
  }

  #finish(): void {
    this.#ended = true;
    const waiter = this.#waiter;
    this.#waiter = undefined;
    waiter?.(null);
  }

  read(): Promise<Uint8Array | null> {
    const chunk = this.#queue.shift();
    if (chunk) {
      if (this.socket.isPaused() && this.#queue.canResume) this.socket.resume();
      return Promise.resolve(chunk);
    }
    if (this.#ended || this.#inputEnded) return Promise.resolve(null);
    if (this.socket.isPaused()) this.socket.resume();
    return new Promise((resolve) => {
      this.#waiter = resolve;
    });
  }

  write(data: Uint8Array): Promise<void> {
    const socket = this.socket;
    if (this.#ended || socket.destroyed || !socket.writable) return Promise.reject(new Error("connection closed"));
    // Resolve on the write callback (bytes handed to the kernel), not on the
    // return value: a later destroy() would drop bytes still in node's buffer.
    return new Promise((resolve, reject) => {
      socket.write(data, (err) => err ? reject(err) : resolve());
    });
  }

  closeWrite(): Promise<void> {
    const socket = this.socket;
    if (socket.destroyed || socket.writableEnded) return Promise.resolve();
    return new Promise((resolve) => socket.end(resolve));
  }

  close(): void {
    // After handOver() the socket is under a TLSSocket: destroying it from here crashes Node 20 (SIGSEGV).
    if (!this.#handedOver) this.socket.destroy();
    this.#finish();
  }

  abstract startTls(options: TlsServerOptions, reply: Uint8Array): Promise<Connection>;

  abstract acceptTls(options: TlsServerOptions, received?: Uint8Array): Promise<Connection>;

  /** Whether a `read()` is waiting for data. */
  protected get readPending(): boolean {
    return this.#waiter !== undefined;
  }

  /** Whether the socket is gone or was closed locally. */
  protected get ended(): boolean {
    return this.#ended;
  }

  /** Whether nothing has been taken off the socket: no byte queued, no FIN seen. */
  protected get untouched(): boolean {
    return this.#queue.empty && !this.#inputEnded;
  }

  /** Stops taking data off the socket; with `dropQueued`, what is queued is dropped unread. */
  protected stopReading(dropQueued: boolean): void {
    this.socket.pause();
    this.socket.off("data", this.#onData);
    if (dropQueued) this.#queue.clear();
  }

  /** Gives the socket to node:tls: this object stops listening to it and must not touch it any more. */
  protected handOver(): net.Socket {
    const socket = this.socket;
    socket.removeAllListeners("end");
    socket.removeAllListeners("close");
    socket.removeAllListeners("error");
    socket.on("error", () => {});
    this.#handedOver = true;
    this.#finish();
    return socket;
  }
}
