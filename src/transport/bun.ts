/**
 * The Bun transport: `Bun.listen` with its open/data/drain/end/close/error
 * handlers, turned into pull-based reads by a small queue that pauses the
 * socket when it fills up.
 *
 * TLS (STARTTLS and implicit TLS) runs through the shared `node:tls` layer
 * (node_tls.ts) over a `Duplex` that wraps the plain connection
 * (connection_duplex.ts), not through Bun's own TLS: `upgradeTLS` and
 * `Bun.listen({ tls })` take no SNI list, keep feeding the raw ciphertext to
 * the original handlers, and fire `open` before the handshake (writes there
 * are dropped). The node:tls path has none of these traps, takes the ciphers
 * and minimum version, and is the same code as on Deno; it costs roughly 10%
 * of TLS throughput. Implicit TLS is "accept plain, then the same handshake as
 * STARTTLS" before the callback sees the connection.
 *
 * Bun 1.4's node:tls ignores `SNICallback` on a wrapped stream (it only runs
 * for its own listeners), so with `options.sni` the ClientHello is read
 * first (see client_hello.ts), the certificate picked by its server name,
 * and the bytes replayed into the TLS layer.
 *
 * Unix sockets are `Bun.listen({ unix })` with the same handlers, bound and
 * cleaned up through unix_socket.ts (Bun unlinks the path it bound on stop,
 * whatever is there by then). Bun reports no addresses on such a socket: the
 * connections get the listening path as both ends.
 *
 * `Bun` is reached through `globalThis` with small local interfaces, so this
 * file also compiles where no Bun types exist.
 *
 * @module
 */
import { socketAddress } from "./address.ts";
import { upgradeDuplexToTls } from "./node_tls.ts";
import { ReadQueue } from "./read_queue.ts";
import { connectionDeliverer } from "./deliver.ts";
import { ConnectionDuplex } from "./connection_duplex.ts";
import { certificateByClientHello } from "./client_hello.ts";
import { bindUnixSocket, unixSocketAddress, type UnixSocketFile } from "./unix_socket.ts";
import type { Connection, Listener, ListenOptions, SocketAddress, TlsServerOptions, Transport } from "./types.ts";

/** The parts of Bun's `Socket` used here. */
interface BunSocket {
  data: BunConnection | undefined;
  /** `undefined` on a Unix socket. */
  readonly remoteAddress?: string;
  readonly remotePort?: number;
  readonly remoteFamily?: string;
  readonly localAddress?: string;
  readonly localPort?: number;
  readonly localFamily?: string;
  /** Returns the bytes written (maybe fewer), or -1 once closed. Bug: always pass the length. */
  write(data: Uint8Array, byteOffset: number, byteLength: number): number;
  /** Without an argument: sends FIN, keeps reading. */
  shutdown(): void;
  end(): void;
  pause(): void;
  resume(): void;
  setNoDelay?(noDelay?: boolean): boolean;
}

/** The handlers `Bun.listen` calls. */
interface BunSocketHandlers {
  open(socket: BunSocket): void;
  data(socket: BunSocket, data: Uint8Array): void;
  drain(socket: BunSocket): void;
  end(socket: BunSocket): void;
  close(socket: BunSocket, error?: Error): void;
  error(socket: BunSocket, error: Error): void;
}

/** The parts of Bun's `TCPSocketListener` (or `UnixSocketListener`, without hostname and port) used here. */
interface BunListener {
  readonly hostname?: string;
  readonly port?: number;
  stop(closeActiveConnections?: boolean): void;
}

/**
 * Where `Bun.listen` binds: a TCP host and port (`reusePort`: SO_REUSEPORT,
 * which Bun's types only declare for connect), or a Unix socket path.
 */
type BunListenTarget = { hostname: string; port: number; reusePort?: boolean } | { unix: string };

/** The parts of the `Bun` global used here. */
interface BunNamespace {
  listen(options: BunListenTarget & { allowHalfOpen: boolean; socket: BunSocketHandlers }): BunListener;
}

function bunNamespace(): BunNamespace {
  const bun = (globalThis as { Bun?: BunNamespace }).Bun;
  if (!bun) throw new Error("the Bun transport needs the Bun runtime");
  return bun;
}

interface PendingWrite {
  readonly data: Uint8Array;
  offset: number;
  readonly resolve: () => void;
  readonly reject: (err: Error) => void;
}

/**
 * Adapts a plain `Bun.listen` socket to {@link Connection}.
 *
 * Incoming chunks (fresh buffers from Bun, never reused) go to a queue that
 * pauses the socket when its {@link ReadQueue} passes the high-water mark. Writes go through a queue
 * too: Bun's `write()` takes what the kernel accepts and the rest is written
 * on `drain`.
 */
export class BunConnection implements Connection {
  /** The local end, with the real port. */
  readonly localAddress: SocketAddress;
  /** The client's end. */
  readonly remoteAddress: SocketAddress;
  /** Always `undefined`: TLS connections are node:tls sockets (see {@link BunConnection.startTls}). */
  readonly tls: undefined = undefined;
  #socket: BunSocket;
  #queue = new ReadQueue();
  #paused = false;
  /** The client sent FIN, or the socket is gone. */
  #eof = false;
  /** The socket is gone, was closed locally, or was handed over to TLS. */
  #closed = false;
  #writeClosed = false;
  #waiter: ((chunk: Uint8Array | null) => void) | undefined;
  #writes: PendingWrite[] = [];
  #allWritten: Array<() => void> = [];

  /**
   * Wraps `socket` and registers as its `data`; `listenHostname` stands in if
   * Bun reports no local address. `unix` is both ends of a Unix-socket
   * connection, for which Bun reports no address at all.
   */
  constructor(socket: BunSocket, listenHostname: string, unix?: SocketAddress) {
    this.#socket = socket;
    socket.data = this;
    this.localAddress = unix ??
      socketAddress(socket.localAddress || listenHostname, socket.localPort, socket.localFamily);
    this.remoteAddress = unix ?? socketAddress(socket.remoteAddress, socket.remotePort, socket.remoteFamily);
    try {
      socket.setNoDelay?.(true); // SMTP replies are small and latency-bound
    } catch { /* not fatal */ }
  }

  /** Bun `data` handler. */
  onData(chunk: Uint8Array): void {
    if (this.#closed) return;
    const waiter = this.#waiter;
    if (waiter) {
      this.#waiter = undefined;
      waiter(chunk);
      return;
    }
    if (this.#queue.push(chunk) && !this.#paused) {
      this.#paused = true;
      this.#socket.pause();
    }
  }

  /** Bun `end` handler: the client sent FIN; queued data stays readable, writing stays possible. */
  onEnd(): void {
    this.#eof = true;
    this.#resolveWaiter();
  }

  /** Bun `close`/`error` handler: the socket is gone (also how a peer FIN shows after our own FIN). */
  onClose(): void {
    this.#eof = true;
    this.#closed = true;
    this.#resolveWaiter();
    this.#failWrites();
  }

  /** Bun `drain` handler: the kernel takes more data. */
  onDrain(): void {
    this.#flush();
  }

  read(): Promise<Uint8Array | null> {
    if (this.#waiter) return Promise.reject(new Error("a read() is already pending"));
    const chunk = this.#queue.shift();
    if (chunk) {
      if (this.#paused && this.#queue.canResume) this.#resume();
      return Promise.resolve(chunk);
    }
    if (this.#eof || this.#closed) return Promise.resolve(null);
    if (this.#paused) this.#resume();
    return new Promise((resolve) => {
      this.#waiter = resolve;
    });
  }

  write(data: Uint8Array): Promise<void> {
    if (this.#closed || this.#writeClosed) return Promise.reject(new Error("connection closed"));
    return new Promise((resolve, reject) => {
      this.#writes.push({ data, offset: 0, resolve, reject });
      if (this.#writes.length === 1) this.#flush();
    });
  }

  closeWrite(): Promise<void> {
    if (this.#closed || this.#writeClosed) return Promise.resolve();
    this.#writeClosed = true; // later writes reject; queued ones still go out before the FIN
    return new Promise((resolve) => {
      this.#allWritten.push(() => {
        if (!this.#closed) this.#socket.shutdown();
        resolve();
      });
      if (this.#writes.length === 0) this.#flush();
    });
  }

  close(): void {
    if (this.#closed) return;
    this.onClose();
    // end() closes the socket at once (its `close` handler fires synchronously) but, unlike
    // terminate(), without a reset: bytes already in the kernel still reach the client.
    this.#socket.end();
  }

  async startTls(options: TlsServerOptions, reply: Uint8Array): Promise<Connection> {
    if (this.#waiter) throw new Error("startTls() called with a read() pending");
    if (this.#closed) throw new Error("connection closed");
    // Queued bytes arrived before the 220 went out: plaintext the client sent
    // without waiting, never to be run (RFC 3207, CVE-2011-0411).
    this.#dropQueue();
    try {
      await this.write(reply);
    } catch (err) {
      this.close();
      throw err;
    }
    // The socket moves to a fresh connection object with an empty queue (what
    // came in while the 220 was being written is dropped with this one), which
    // node:tls reads through a Duplex. This object becomes inert.
    const raw = new BunConnection(
      this.#socket,
      this.localAddress.hostname,
      this.localAddress.family === "unix" ? this.localAddress : undefined,
    );
    this.#closed = true;
    this.#dropQueue();
    if (this.#paused) raw.#paused = true;
    return handshake(raw, options, undefined, { local: this.localAddress, remote: this.remoteAddress });
  }

  acceptTls(options: TlsServerOptions, received?: Uint8Array): Promise<Connection> {
    if (this.#waiter) return Promise.reject(new Error("acceptTls() called with a read() pending"));
    if (this.#closed) return Promise.reject(new Error("connection closed"));
    // Nothing is dropped: TLS reads `received`, then this connection's queue, then the socket.
    return handshake(this, options, received, { local: this.localAddress, remote: this.remoteAddress });
  }

  #dropQueue(): void {
    this.#queue.clear();
  }

  #resume(): void {
    this.#paused = false;
    this.#socket.resume();
  }

  #resolveWaiter(): void {
    const waiter = this.#waiter;
    this.#waiter = undefined;
    waiter?.(null);
  }

  #flush(): void {
    const writes = this.#writes;
    while (writes.length > 0) {
      const w = writes[0];
      const left = w.data.length - w.offset;
      if (left > 0) {
        const n = this.#socket.write(w.data, w.offset, left);
        if (n < 0) return this.onClose();
        w.offset += n;
        if (n < left) return; // the kernel is full: `drain` continues
      }
      writes.shift();
      w.resolve();
    }
    for (const done of this.#allWritten.splice(0)) done();
  }

  #failWrites(): void {
    const err = new Error("connection closed");
    for (const w of this.#writes.splice(0)) w.reject(err);
    for (const done of this.#allWritten.splice(0)) done();
  }
}

/** Runs node:tls over `raw` through a Duplex that replays `initial` (and, with SNI, the ClientHello) first. */
async function handshake(
  raw: BunConnection,
  options: TlsServerOptions,
  initial: Uint8Array | undefined,
  addresses: { local: SocketAddress; remote: SocketAddress },
): Promise<Connection> {
  const { tlsOptions, replay } = await certificateByClientHello(raw, options, initial);
  return upgradeDuplexToTls(new ConnectionDuplex(raw, replay), tlsOptions, addresses);
}

/** A `Bun.listen` listener (TCP or Unix); a Unix socket's file goes with close(). */
class BunSocketListener implements Listener {
  constructor(
    readonly address: SocketAddress,
    private readonly listener: BunListener,
    private readonly file?: UnixSocketFile,
  ) {}
  close(): Promise<void> {
    // First the file, so no client finds a path whose listener is going away.
    this.file?.remove();
    this.listener.stop(false); // accepted connections stay open
    return Promise.resolve();
  }
}

/** The Bun transport (`Bun.listen`). Only usable when running on Bun. */
export const bunTransport: Transport = {
  name: "bun",
  async listen(options: ListenOptions, onConnection: (conn: Connection) => void): Promise<Listener> {
    const bun = bunNamespace();
    const tlsOptions = options.tls;
    const deliver = connectionDeliverer(onConnection);
    const path = options.path;
    const unix = path === undefined ? undefined : unixSocketAddress(path);
    const listen = (target: BunListenTarget): BunListener =>
      bun.listen({
        ...target,
        // Without it Bun closes the socket on the client's FIN, and half-close breaks.
        allowHalfOpen: true,
        socket: {
          open(socket) {
            const conn = new BunConnection(socket, options.hostname, unix);
            if (!tlsOptions) return deliver(conn);
            // Implicit TLS: the callback only sees the connection once the
            // handshake is done; a failed one has already closed this socket.
            conn.acceptTls(tlsOptions).then(deliver, () => {});
          },
          data: (socket, data) => socket.data?.onData(data),
          drain: (socket) => socket.data?.onDrain(),
          end: (socket) => socket.data?.onEnd(),
          close: (socket) => socket.data?.onClose(),
          // ECONNRESET and friends end the connection like an EOF.
          error: (socket) => socket.data?.onClose(),
        },
      });
    if (path !== undefined) {
      const { handle, file } = await bindUnixSocket(
        path,
        (tempPath) => listen({ unix: tempPath }),
        (listener) => listener.stop(true),
      );
      return new BunSocketListener(unixSocketAddress(path), handle, file);
    }
    const reusePort = options.reusePort === true ? { reusePort: true } : {};
    const listener = listen({ hostname: options.hostname, port: options.port, ...reusePort });
    return new BunSocketListener(socketAddress(listener.hostname ?? options.hostname, listener.port), listener);
  },
};
