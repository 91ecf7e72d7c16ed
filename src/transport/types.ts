/**
 * The socket layer behind the SMTP core.
 *
 * A transport adapts one runtime's sockets (Deno, Bun or node:net) to these
 * small interfaces. The protocol core only ever talks to a {@link Connection};
 * everything runtime-specific lives in one transport file.
 *
 * @module
 */

/**
 * An endpoint as reported by the runtime: an IP address with the real port,
 * or a Unix socket. A Unix-socket peer has no address of its own (it is a
 * local process), so both ends of such a connection read
 * `{ hostname: "", port: 0, family: "unix", path }` with the listening path.
 */
export interface SocketAddress {
  /** Numeric IP address, e.g. `"127.0.0.1"` or `"::1"` (no brackets); `""` for a Unix socket. */
  readonly hostname: string;
  /** Port number; `0` for a Unix socket. */
  readonly port: number;
  /** Address family. */
  readonly family: "IPv4" | "IPv6" | "unix";
  /** The socket file's path, only for family `"unix"` (the path listened on, for both ends). */
  readonly path?: string;
}

/** Key and certificate material for the server side of TLS (used by STARTTLS and implicit TLS). */
export interface TlsServerOptions {
  /** PEM certificate chain. */
  readonly cert: string;
  /** PEM private key. */
  readonly key: string;
  /** Lowest protocol version accepted, default `"TLSv1.2"`. */
  readonly minVersion?: "TLSv1.2" | "TLSv1.3";
  /** OpenSSL cipher list for TLS 1.2 (TLS 1.3 suites are not affected). */
  readonly ciphers?: string;
  /** Picks a certificate by the SNI name the client sent (`""` when it sent none). */
  readonly sni?: (serverName: string) => { cert: string; key: string } | undefined;
  /** A handshake not finished within this many milliseconds fails (default 10000). */
  readonly handshakeTimeoutMs?: number;
}

/** What a finished TLS handshake tells about the session. */
export interface TlsInfo {
  /** Negotiated protocol, e.g. `"TLSv1.3"`. */
  readonly protocol: string;
  /** Negotiated cipher name. */
  readonly cipher: string;
  /** The SNI name the client asked for, if any. */
  readonly serverName?: string;
}

/**
 * One accepted TCP or Unix-socket connection (plain or TLS).
 *
 * Reads are pull-based: the transport reads nothing from the socket until
 * {@link Connection.read} is called, so a slow consumer applies backpressure
 * to the client through the socket's flow control. Only one `read()` may be pending at a time.
 */
export interface Connection {
  /** The local end, with the real port. */
  readonly localAddress: SocketAddress;
  /** The client's end. */
  readonly remoteAddress: SocketAddress;
  /** Set once the connection runs over TLS. */
  readonly tls: TlsInfo | undefined;
  /**
   * Resolves with the next bytes from the client, or `null` once the client
   * has closed its side (or the connection was closed locally). The returned
   * array belongs to the caller: a transport never reuses its memory.
   */
  read(): Promise<Uint8Array | null>;
  /**
   * Writes all of `data`. Resolves once the bytes are handed to the kernel
   * (or fit within the runtime's send buffer), so awaiting it respects
   * backpressure. Rejects if the connection is gone.
   */
  write(data: Uint8Array): Promise<void>;
  /** Sends FIN after the pending writes; reading stays possible. */
  closeWrite(): Promise<void>;
  /** Closes both directions at once; a pending `read()` resolves `null`. Safe to call twice. */
  close(): void;
  /**
   * Upgrades this plain connection to TLS as the server (STARTTLS): stops
   * reading, writes `reply` (the `220` that tells the client to start the
   * handshake) as the last plaintext, then runs the handshake. Call it with no
   * `read()` pending. Plaintext the client sent before the handshake is
   * discarded, never returned by a later `read()` (CVE-2011-0411). The
   * returned connection replaces this one; on a failed handshake the promise
   * rejects and this connection is closed.
   */
  startTls(options: TlsServerOptions, reply: Uint8Array): Promise<Connection>;
  /**
   * Runs the server side of a TLS handshake at once (implicit TLS, RFC 8314)
   * on a connection the caller may already have read from: `received` holds
   * those bytes (the start of a ClientHello that came behind a PROXY header).
   * Unlike {@link startTls} nothing the client sent is dropped: the TLS layer
   * reads `received` first, then the rest of the stream. Call it with no
   * `read()` pending. The returned connection replaces this one; on a failed
   * handshake the promise rejects and this connection is closed.
   */
  acceptTls(options: TlsServerOptions, received?: Uint8Array): Promise<Connection>;
}

/** Where and how to listen. */
export interface ListenOptions {
  /** Numeric IP address to bind, e.g. `"127.0.0.1"`, `"::1"`, `"0.0.0.0"`; ignored with {@link path}. */
  readonly hostname: string;
  /** Port, `0` for any free one; ignored with {@link path}. */
  readonly port: number;
  /**
   * Listen on this Unix socket path instead of TCP. A socket file left there
   * by an earlier run is replaced (unless a server still answers on it); any
   * other kind of file makes `listen()` reject and is left alone. The file is
   * created with the runtime's default mode, `0777` minus the umask (with the
   * usual umask `022` only the owner may connect, since connecting needs
   * write permission): chmod it, or pick its directory, for wider access.
   * {@link Listener.close} removes it, if it is still the one bound here.
   */
  readonly path?: string;
  /**
   * Bind with SO_REUSEPORT: other processes may listen on the same address
   * and port, and the kernel spreads new connections over them (Linux). Used
   * for worker processes; ignored with {@link path}. Deno needs
   * `--unstable-net` for it (the Deno transport says so rather than let Deno
   * end the process); node:net needs Node 22.12 / 23.1 (in a `node:cluster`
   * worker the primary's socket is shared instead, so it is not needed).
   */
  readonly reusePort?: boolean;
  /**
   * Implicit TLS (SMTPS, RFC 8314): every connection starts with a handshake
   * before `onConnection` sees it. The server does not use this (it listens
   * plain and calls {@link Connection.acceptTls} after admission and any PROXY
   * header); it is kept for direct users of a transport.
   */
  readonly tls?: TlsServerOptions;
}

/** A bound listening socket. */
export interface Listener {
  /** The bound address, with the real port when `0` was asked for (family `"unix"` with the path for a Unix socket). */
  readonly address: SocketAddress;
  /**
   * Stops accepting; connections already accepted stay open. A Unix socket's
   * file is removed, unless something else has replaced it meanwhile.
   */
  close(): Promise<void>;
}

/**
 * A runtime's socket implementation.
 *
 * @example
 * ```ts
 * import { nodeTransport } from "./node.ts";
 * const listener = await nodeTransport.listen({ hostname: "127.0.0.1", port: 0 }, (conn) => {
 *   conn.write(new TextEncoder().encode("220 hi\r\n")).then(() => conn.close());
 * });
 * console.log(listener.address.port);
 * ```
 */
export interface Transport {
  /** `"deno"`, `"bun"` or `"node"`: which socket API this transport uses. */
  readonly name: string;
  /** Binds and starts accepting; `onConnection` is called once per accepted client. */
  listen(options: ListenOptions, onConnection: (conn: Connection) => void): Promise<Listener>;
}
