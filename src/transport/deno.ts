/**
 * The Deno transport: `Deno.listen` with `conn.read()` / `conn.write()`.
 *
 * The web-streams API (`conn.readable`) is avoided on purpose: it is about 30%
 * slower, and its EOF closes the whole connection, which breaks half-close.
 *
 * TLS (STARTTLS and implicit TLS) runs through the shared `node:tls` layer
 * (node_tls.ts) over a `Duplex` (connection_duplex.ts) that reads the raw
 * `Deno.Conn`: Deno has no server-side `startTls`, and `Deno.listenTls` has
 * no SNI, cipher or minimum-version options. Doing implicit TLS as "accept
 * plain, then the same handshake as STARTTLS" gives one code path with the
 * same options, SNI and handshake timeout everywhere, and a failed or stalled
 * handshake only closes that one connection.
 *
 * `reusePort` (worker processes on one port) is `Deno.listen({ reusePort })`,
 * which Deno allows only with `--unstable-net`: without it the transport
 * refuses with an error that says so, since Deno would end the process.
 *
 * Unix sockets are `Deno.listen({ transport: "unix" })`, bound and cleaned up
 * through unix_socket.ts (Deno unlinks the path it bound on close, whatever
 * is there by then). The same `Deno.Conn` code serves them: a `UnixConn`
 * reads, writes and half-closes like a TCP one, and has no `setNoDelay`.
 * Deno asks for `--allow-read` and `--allow-write` on the socket's path.
 *
 * `Deno` is reached through `globalThis` with small local interfaces, so this
 * file also compiles with tsc, where no `Deno` types exist.
 *
 * @module
 */
import { allocUninitialized } from "../bytes.ts";
import { socketAddress } from "./address.ts";
import { upgradeDuplexToTls } from "./node_tls.ts";
import { type ByteSource, ConnectionDuplex } from "./connection_duplex.ts";
import { connectionDeliverer } from "./deliver.ts";
import { bindUnixSocket, unixSocketAddress, type UnixSocketFile } from "./unix_socket.ts";
import type { Connection, Listener, ListenOptions, SocketAddress, TlsServerOptions, Transport } from "./types.ts";

/** The parts of `Deno.NetAddr` used here (a `Deno.UnixAddr` has neither: its connections get their address passed). */
interface DenoNetAddr {
  readonly hostname?: string;
  readonly port?: number;
}

/** The parts of `Deno.Conn` used here. */
interface DenoConn {
  readonly localAddr: DenoNetAddr;
  readonly remoteAddr: DenoNetAddr;
  read(buffer: Uint8Array): Promise<number | null>;
  write(data: Uint8Array): Promise<number>;
  closeWrite(): Promise<void>;
  close(): void;
  setNoDelay?(noDelay?: boolean): void;
}

/** The parts of `Deno.Listener` used here. */
interface DenoListener {
  readonly addr: DenoNetAddr;
  accept(): Promise<DenoConn>;
  close(): void;
}

/** The parts of the `Deno` namespace used here. */
interface DenoNamespace {
  listen(
    options:
      | { hostname: string; port: number; transport: "tcp"; reusePort?: boolean }
      | { path: string; transport: "unix" },
  ): DenoListener;
  /** Only defined with `--unstable-net` (or `"unstable": ["net"]` in deno.json): see {@link reusePortAllowed}. */
  readonly listenDatagram?: unknown;
}

/** Bytes asked for per `conn.read()` under TLS; the result is copied out, so the buffer is reused. */
const READ_SIZE = 64 * 1024;
/** First and largest read buffer of a plain connection (see DenoConnection). */
const MIN_READ_SIZE = 1024;
const MAX_READ_SIZE = 64 * 1024;
/** What `accept()` rejects with when the client left before it was accepted (Deno's error names). */
const GONE_BEFORE_ACCEPT = new Set(["NotConnected", "ConnectionReset", "ConnectionAborted"]);
/** Retry delay when `accept()` fails on a still-open listener (e.g. EMFILE). */
const ACCEPT_RETRY_MS = 100;

/**
 * Whether `Deno.listen({ reusePort: true })` may be called. Without
 * `--unstable-net` Deno does not throw there but ends the whole process
 * (exit 70), so this must be known beforehand. No API tells which unstable
 * features are on; `Deno.listenDatagram`, another `--unstable-net` API, is
 * only defined when they are (Deno 2.x).
 */
function reusePortAllowed(deno: DenoNamespace): boolean {
  return typeof deno.listenDatagram === "function";
}

function denoNamespace(): DenoNamespace {
  const deno = (globalThis as { Deno?: DenoNamespace }).Deno;
  if (!deno) throw new Error("the Deno transport needs the Deno runtime");
  return deno;
}

/** `conn.write()` may write only part of the data (about 4 MB of 64 MB): loop until all is written. */
async function writeAll(conn: DenoConn, data: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < data.length) offset += await conn.write(offset === 0 ? data : data.subarray(offset));
}

/**
 * A `Deno.Conn` as the byte source of the TLS layer's duplex: one
 * `conn.read()` into a reused 64 KiB buffer per pull, copied out at the
 * length read. TLS reads are large while a message streams in, and this is
 * faster than {@link DenoConnection}'s growing buffers, which are sized for
 * an idle plain connection's memory.
 */
class DenoConnSource implements ByteSource {
  #conn: DenoConn;
  #buffer = new Uint8Array(READ_SIZE);

  constructor(conn: DenoConn) {
    this.#conn = conn;
  }

  read(): Promise<Uint8Array | null> {
    const buffer = this.#buffer;
    return this.#conn.read(buffer).then((n) => n === null ? null : buffer.slice(0, n));
  }

  write(data: Uint8Array): Promise<void> {
    return writeAll(this.#conn, data);
  }

  closeWrite(): Promise<void> {
    return this.#conn.closeWrite();
  }

  close(): void {
    try {
      this.#conn.close();
    } catch { /* already closed */ }
  }
}

/** Adapts a plain `Deno.Conn` to {@link Connection}. Reads are pull-based: one `conn.read()` per `read()`. */
export class DenoConnection implements Connection {
  /** The local end, with the real port. */
  readonly localAddress: SocketAddress;
  /** The client's end. */
  readonly remoteAddress: SocketAddress;
  /** Always `undefined`: TLS connections are node:tls sockets (see {@link DenoConnection.startTls}). */
  readonly tls: undefined = undefined;
  #conn: DenoConn;
  /**
   * The read buffer grows from 1 KiB to 64 KiB while reads fill it, and goes
   * back to 1 KiB after a small read, so an idle connection holds 1 KiB, not
   * 64 (5000 idle clients: 5 MiB, not 320), even after a large message.
   */
  #readSize = MIN_READ_SIZE;
  /** Reused for small reads; a read that fills most of it is handed over and a new one made. */
  #buffer: Uint8Array | undefined;
  /** Closed locally, or handed over to TLS: reads give `null`, writes reject. */
  #closed = false;
  #eof = false;
  #pendingRead: ((chunk: Uint8Array | null) => void) | undefined;
  /** The tail of the write queue: writes run one after another so partial writes never interleave. */
  #lastWrite: Promise<void> = Promise.resolve();

  /** Wraps an accepted `Deno.Conn`; `address` stands for both ends of a Unix-socket connection. */
  constructor(conn: DenoConn, address?: SocketAddress) {
    this.#conn = conn;
    this.localAddress = address ?? socketAddress(conn.localAddr.hostname, conn.localAddr.port);
    this.remoteAddress = address ?? socketAddress(conn.remoteAddr.hostname, conn.remoteAddr.port);
    try {
      conn.setNoDelay?.(true); // SMTP replies are small and latency-bound
    } catch { /* not fatal */ }
  }

  read(): Promise<Uint8Array | null> {
    if (this.#closed || this.#eof) return Promise.resolve(null);
    if (this.#pendingRead) return Promise.reject(new Error("a read() is already pending"));
    return new Promise((resolve) => {
      this.#pendingRead = resolve;
      const settle = (chunk: Uint8Array | null) => {
        // close() may already have answered this read with null.
        if (this.#pendingRead !== resolve) return;
        this.#pendingRead = undefined;
        resolve(chunk);
      };
      // Uninitialised: the read fills the part that is handed on.
      const buffer = this.#buffer ?? allocUninitialized(this.#readSize);
      this.#buffer = buffer;
      this.#conn.read(buffer).then(
        (n) => {
          if (n === null) this.#eof = true;
          settle(n === null || this.#closed ? null : this.#takeRead(buffer, n));
        },
        () => {
          // ECONNRESET, or BadResource after close(): both mean the stream is over.
          this.#eof = true;
          settle(null);
        },
      );
    });
  }

  /** Returns the `n` bytes read into `buffer` without copying big reads, and sizes the next buffer. */
  #takeRead(buffer: Uint8Array, n: number): Uint8Array {
    if (n === buffer.length && this.#readSize < MAX_READ_SIZE) this.#readSize *= 4;
    if (n < MIN_READ_SIZE && this.#readSize > MIN_READ_SIZE) {
      // Quiet again (a command between messages, or a pause): copy out and
      // shrink, so a connection that goes idle holds 1 KiB. A burst after a
      // pause pays at most three extra reads (1, 4, 16 KiB) to grow again.
      this.#readSize = MIN_READ_SIZE;
      this.#buffer = undefined;
      return buffer.slice(0, n);
    }
    if (n < buffer.length / 2 && buffer.length === this.#readSize) return buffer.slice(0, n);
    this.#buffer = undefined; // handed over: the caller owns it now
    return buffer.subarray(0, n);
  }

  write(data: Uint8Array): Promise<void> {
    const result = this.#lastWrite.then(() => {
      if (this.#closed) throw new Error("connection closed");
      return writeAll(this.#conn, data);
    });
    this.#lastWrite = result.catch(() => {});
    return result;
  }

  async closeWrite(): Promise<void> {
    await this.#lastWrite;
    if (this.#closed) return;
    try {
      await this.#conn.closeWrite();
    } catch { /* the peer is gone already: nothing left to finish */ }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#conn.close();
    } catch { /* already closed by the runtime */ }
    this.#resolvePendingRead();
  }

  async startTls(options: TlsServerOptions, reply: Uint8Array): Promise<Connection> {
    if (this.#pendingRead) throw new Error("startTls() called with a read() pending");
    if (this.#closed) throw new Error("connection closed");
    try {
      await this.write(reply);
    } catch (err) {
      this.close();
      throw err;
    }
    // Reads are pull-based and none is pending, so no plaintext sits in a
    // buffer of ours: the ClientHello is still in the kernel for TLS to read.
    // From here on the socket belongs to the TLS layer; this object is inert.
    this.#closed = true;
    return upgradeDuplexToTls(new ConnectionDuplex(new DenoConnSource(this.#conn)), options, {
      local: this.localAddress,
      remote: this.remoteAddress,
    });
  }

  acceptTls(options: TlsServerOptions, received?: Uint8Array): Promise<Connection> {
    if (this.#pendingRead) return Promise.reject(new Error("acceptTls() called with a read() pending"));
    if (this.#closed) return Promise.reject(new Error("connection closed"));
    // Pull-based reads: what the caller read is `received`; the rest is still in the kernel.
    this.#closed = true;
    return upgradeDuplexToTls(new ConnectionDuplex(new DenoConnSource(this.#conn), received), options, {
      local: this.localAddress,
      remote: this.remoteAddress,
    });
  }

  #resolvePendingRead(): void {
    const pending = this.#pendingRead;
    this.#pendingRead = undefined;
    pending?.(null);
  }
}

/** A `Deno.Listener` (TCP or Unix) with its accept loop; a Unix socket's file goes with close(). */
class DenoSocketListener implements Listener {
  readonly address: SocketAddress;
  #listener: DenoListener;
  #file: UnixSocketFile | undefined;
  #closed = false;

  constructor(
    listener: DenoListener,
    address: SocketAddress,
    file: UnixSocketFile | undefined,
    onConn: (conn: DenoConn) => void,
  ) {
    this.#listener = listener;
    this.address = address;
    this.#file = file;
    this.#acceptLoop(onConn);
  }

  async #acceptLoop(onConn: (conn: DenoConn) => void): Promise<void> {
    while (!this.#closed) {
      let conn: DenoConn;
      try {
        conn = await this.#listener.accept();
      } catch (err) {
        // A closed listener fails with BadResource (or Interrupted): stop.
        const name = (err as Error | undefined)?.name;
        if (this.#closed || name === "BadResource" || name === "Interrupted") return;
        // A client that closed or reset before we took its connection: take the next one at once.
        // (Pausing here let a stream of connect-and-close clients stall accepting: a cheap DoS.)
        if (GONE_BEFORE_ACCEPT.has(name ?? "")) continue;
        // Anything else (out of file descriptors...): wait a little and keep serving.
        await new Promise((resolve) => setTimeout(resolve, ACCEPT_RETRY_MS));
        continue;
      }
      onConn(conn);
    }
  }

  close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      // First the file, so no client finds a path whose listener is going away.
      this.#file?.remove();
      try {
        this.#listener.close();
      } catch { /* already closed */ }
    }
    return Promise.resolve();
  }
}

/** Closes a listener that may be closed already (the undo of a bind that bindUnixSocket could not finish). */
function closeQuietly(listener: DenoListener): void {
  try {
    listener.close();
  } catch { /* already closed */ }
}

/** The Deno transport (`Deno.listen`). Only usable when running on Deno. */
export const denoTransport: Transport = {
  name: "deno",
  async listen(options: ListenOptions, onConnection: (conn: Connection) => void): Promise<Listener> {
    const deno = denoNamespace();
    const path = options.path;
    let listener: DenoListener;
    let file: UnixSocketFile | undefined;
    let address: SocketAddress;
    let unix: SocketAddress | undefined;
    if (path !== undefined) {
      ({ handle: listener, file } = await bindUnixSocket(
        path,
        (tempPath) => deno.listen({ path: tempPath, transport: "unix" }),
        closeQuietly,
      ));
      address = unix = unixSocketAddress(path);
    } else {
      const reusePort = options.reusePort === true;
      if (reusePort && !reusePortAllowed(deno)) {
        throw new Error(
          "reusePort on Deno needs the --unstable-net flag (runWorkers gives it to its workers), " +
            "or the node:net transport, which has it without the flag",
        );
      }
      listener = deno.listen({
        hostname: options.hostname,
        port: options.port,
        transport: "tcp",
        ...(reusePort ? { reusePort } : {}),
      });
      address = socketAddress(listener.addr.hostname, listener.addr.port);
    }
    const tlsOptions = options.tls;
    const deliver = connectionDeliverer(onConnection);
    return new DenoSocketListener(listener, address, file, (conn) => {
      const plain = new DenoConnection(conn, unix);
      if (!tlsOptions) return deliver(plain);
      // Implicit TLS: the handshake runs before the callback sees the
      // connection; a failed one has already closed just this socket.
      plain.acceptTls(tlsOptions).then(deliver, () => {});
    });
  },
};
