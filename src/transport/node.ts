/**
 * The `node:net` / `node:tls` transport. It runs on Node and also under Deno
 * and Bun (both implement these modules), which is how a user can pick it
 * explicitly anywhere. Its socket adapter is reused by the Deno and Bun
 * transports for TLS, since both runtimes do server-side STARTTLS best
 * through `node:tls`.
 *
 * @module
 */
import * as net from "node:net";
import * as tls from "node:tls";
import type { Duplex } from "node:stream";
import type {
  Connection,
  Listener,
  ListenOptions,
  SocketAddress,
  TlsInfo,
  TlsServerOptions,
  Transport,
} from "./types.ts";
import { ReadQueue } from "./read_queue.ts";
import { ConnectionDuplex } from "./connection_duplex.ts";
import { certificateByClientHello } from "./client_hello.ts";

const DEFAULT_HANDSHAKE_TIMEOUT_MS = 10_000;

/** Builds an address from node's `address`/`port`/`family` triple. */
export function nodeAddress(
  address: string | undefined,
  port: number | undefined,
  family?: string | number,
): SocketAddress {
  const hostname = (address ?? "").replace(/^\[|\]$/g, "");
  const isV6 = family === "IPv6" || family === 6 || hostname.includes(":");
  return { hostname, port: port ?? 0, family: isV6 ? "IPv6" : "IPv4" };
}

/** Creates a secure context for `options`, with SNI when asked for. */
export function createServerSecureContext(options: TlsServerOptions): tls.SecureContext {
  return tls.createSecureContext({
    cert: options.cert,
    key: options.key,
    minVersion: options.minVersion ?? "TLSv1.2",
    ciphers: options.ciphers,
  });
}

/** The `SNICallback` for node:tls that asks `options.sni`, caching one context per certificate. */
export function sniCallback(options: TlsServerOptions): tls.TlsOptions["SNICallback"] {
  const sni = options.sni;
  if (!sni) return undefined;
  const cache = new WeakMap<object, tls.SecureContext>();
  return (serverName, callback) => {
    try {
      const picked = sni(serverName ?? "");
      if (!picked) return callback(null, undefined);
      let context = cache.get(picked);
      if (!context) {
        context = createServerSecureContext({ ...options, cert: picked.cert, key: picked.key });
        cache.set(picked, context);
      }
      callback(null, context);
    } catch (err) {
      callback(err as Error, undefined);
    }
  };
}

/** Reads the negotiated protocol and cipher off a finished node TLS socket. */
export function tlsInfoOf(socket: tls.TLSSocket): TlsInfo {
  const servername = (socket as tls.TLSSocket & { servername?: string | false }).servername;
  return {
    protocol: socket.getProtocol() ?? "unknown",
    cipher: socket.getCipher()?.name ?? "unknown",
    serverName: typeof servername === "string" && servername !== "" ? servername : undefined,
  };
}

/**
 * Runs a server-side TLS handshake over any node `Duplex` (a raw socket, or a
 * Deno/Bun connection wrapped as a stream) and adapts the result.
 */
export function upgradeDuplexToTls(
  raw: Duplex,
  options: TlsServerOptions,
  addresses: { local: SocketAddress; remote: SocketAddress },
): Promise<Connection> {
  const secureSocket = new tls.TLSSocket(raw as net.Socket, {
    isServer: true,
    secureContext: createServerSecureContext(options),
    SNICallback: sniCallback(options),
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => fail(new Error("TLS handshake timed out")),
      options.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS,
    );
    const fail = (err: Error) => {
      clearTimeout(timer);
      secureSocket.destroy();
      raw.destroy();
      reject(err);
    };
    const closed = () => fail(new Error("connection closed during the TLS handshake"));
    secureSocket.once("error", fail);
    secureSocket.once("close", closed);
    // With allowHalfOpen a client's FIN emits only 'end', and only on a flowing
    // stream: let it flow (no application data exists before 'secure') so a
    // client that leaves mid-handshake is noticed at once, not at the timeout.
    secureSocket.once("end", closed);
    secureSocket.resume();
    secureSocket.once("secure", () => {
      clearTimeout(timer);
      secureSocket.pause();
      secureSocket.removeAllListeners("error");
      secureSocket.removeAllListeners("close");
      secureSocket.removeListener("end", closed);
      resolve(new NodeSocketConnection(secureSocket, addresses.local, addresses.remote, tlsInfoOf(secureSocket)));
    });
  });
}

/**
 * Adapts a node `net.Socket` (or `tls.TLSSocket`) to {@link Connection}.
 *
 * The socket flows freely into a small queue and is paused only when the
 * {@link ReadQueue} passes its high-water mark: pausing on every read would cost a
 * system call per chunk.
 */
export class NodeSocketConnection implements Connection {
  readonly localAddress: SocketAddress;
  readonly remoteAddress: SocketAddress;
  readonly tls: TlsInfo | undefined;
  #socket: net.Socket;
  #queue = new ReadQueue();
  #ended = false;
  /** The client sent FIN: reads give null, writing stays possible (half-close). */
  #inputEnded = false;
  /** startTls() gave the socket to TLS: this object must not touch it any more. */
  #handedOver = false;
  #waiter: ((chunk: Uint8Array | null) => void) | undefined;
  #onData = (chunk: Uint8Array) => {
    const waiter = this.#waiter;
    if (waiter) {
      this.#waiter = undefined;
      waiter(chunk);
      return;
    }
    if (this.#queue.push(chunk)) this.#socket.pause();
  };

  /** Wraps `socket`; the addresses default to the socket's own. */
  constructor(socket: net.Socket, local?: SocketAddress, remote?: SocketAddress, tlsInfo?: TlsInfo) {
    this.#socket = socket;
    this.localAddress = local ?? nodeAddress(socket.localAddress, socket.localPort, socket.localFamily);
    this.remoteAddress = remote ?? nodeAddress(socket.remoteAddress, socket.remotePort, socket.remoteFamily);
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
      if (this.#socket.isPaused() && this.#queue.canResume) this.#socket.resume();
      return Promise.resolve(chunk);
    }
    if (this.#ended || this.#inputEnded) return Promise.resolve(null);
    if (this.#socket.isPaused()) this.#socket.resume();
    return new Promise((resolve) => {
      this.#waiter = resolve;
    });
  }

  write(data: Uint8Array): Promise<void> {
    const socket = this.#socket;
    if (this.#ended || socket.destroyed || !socket.writable) return Promise.reject(new Error("connection closed"));
    // Resolve on the write callback (bytes handed to the kernel), not on the
    // return value: a later destroy() would drop bytes still in node's buffer.
    return new Promise((resolve, reject) => {
      socket.write(data, (err) => err ? reject(err) : resolve());
    });
  }

  closeWrite(): Promise<void> {
    const socket = this.#socket;
    if (socket.destroyed || socket.writableEnded) return Promise.resolve();
    return new Promise((resolve) => socket.end(resolve));
  }

  close(): void {
    // After startTls() the socket is under a TLSSocket: destroying it from here crashes Node 20 (SIGSEGV).
    if (!this.#handedOver) this.#socket.destroy();
    this.#finish();
  }

  async startTls(options: TlsServerOptions, reply: Uint8Array): Promise<Connection> {
    const socket = this.#socket;
    // Stop reading before the 220 goes out: the ClientHello must reach the
    // TLS layer, not our queue. Whatever is queued now is plaintext the
    // client sent after STARTTLS without waiting: it is dropped, never run.
    socket.pause();
    socket.off("data", this.#onData);
    this.#queue.clear();
    try {
      await this.write(reply);
    } catch (err) {
      this.close();
      throw err;
    }
    this.#handOver();
    return upgradeDuplexToTls(socket, options, { local: this.localAddress, remote: this.remoteAddress });
  }

  acceptTls(options: TlsServerOptions, received?: Uint8Array): Promise<Connection> {
    if (this.#waiter) return Promise.reject(new Error("acceptTls() called with a read() pending"));
    if (this.#ended) return Promise.reject(new Error("connection closed"));
    const addresses = { local: this.localAddress, remote: this.remoteAddress };
    if ((received === undefined || received.length === 0) && this.#queue.empty && !this.#inputEnded) {
      // Nothing was read yet: node:tls takes the socket itself (its native path).
      this.#socket.pause();
      this.#socket.off("data", this.#onData);
      this.#handOver();
      return upgradeDuplexToTls(this.#socket, options, addresses);
    }
    // Bytes were taken off the socket already: TLS reads them first through a Duplex, then the rest.
    return this.#tlsOverDuplex(options, received, addresses);
  }

  async #tlsOverDuplex(
    options: TlsServerOptions,
    received: Uint8Array | undefined,
    addresses: { local: SocketAddress; remote: SocketAddress },
  ): Promise<Connection> {
    // Over a Duplex, Bun's node:tls ignores SNICallback: pick the certificate from the ClientHello here.
    const { tlsOptions, replay } = await certificateByClientHello(this, options, received);
    return upgradeDuplexToTls(new ConnectionDuplex(this, replay), tlsOptions, addresses);
  }

  /** Gives the socket to node:tls: this object must not touch it any more. */
  #handOver(): void {
    const socket = this.#socket;
    socket.removeAllListeners("end");
    socket.removeAllListeners("close");
    socket.removeAllListeners("error");
    socket.on("error", () => {});
    this.#handedOver = true;
    this.#finish();
  }
}

class NodeListener implements Listener {
  constructor(readonly address: SocketAddress, private readonly server: net.Server) {}
  close(): Promise<void> {
    // close() stops listening at once; its callback would wait until every accepted connection has ended.
    this.server.close();
    return Promise.resolve();
  }
}

/** The `node:net` / `node:tls` transport. */
export const nodeTransport: Transport = {
  name: "node",
  listen(options: ListenOptions, onConnection: (conn: Connection) => void): Promise<Listener> {
    const tlsOptions = options.tls;
    const server: net.Server = tlsOptions
      ? tls.createServer({
        cert: tlsOptions.cert,
        key: tlsOptions.key,
        minVersion: tlsOptions.minVersion ?? "TLSv1.2",
        ciphers: tlsOptions.ciphers,
        SNICallback: sniCallback(tlsOptions),
        handshakeTimeout: tlsOptions.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS,
        allowHalfOpen: true, // the client's FIN must not end our side: SMTP may still reply
      }, (socket) => onConnection(new NodeSocketConnection(socket, undefined, undefined, tlsInfoOf(socket))))
      : net.createServer(
        { pauseOnConnect: false, allowHalfOpen: true },
        (socket) => onConnection(new NodeSocketConnection(socket)),
      );
    // A failed or stalled handshake only concerns that one client.
    if (tlsOptions) server.on("tlsClientError", (_err: Error, socket: net.Socket) => socket.destroy());
    return new Promise((resolve, reject) => {
      server.once("error", reject);
      server.listen({ host: options.hostname, port: options.port }, () => {
        server.off("error", reject);
        server.on("error", () => {});
        const bound = server.address() as net.AddressInfo;
        resolve(new NodeListener(nodeAddress(bound.address, bound.port, bound.family), server));
      });
    });
  },
};
