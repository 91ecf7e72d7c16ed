/**
 * The TLS layer all three transports share: the server side of a `node:tls`
 * handshake over any node `Duplex` (a node:net socket itself, or a Deno or
 * Bun connection wrapped as one, see connection_duplex.ts), and the
 * {@link Connection} that the finished TLS socket becomes. Deno and Bun run
 * their TLS through here too, since neither does server-side STARTTLS with
 * SNI, ciphers and a minimum version on its own sockets.
 *
 * This file imports no transport: each transport imports it, so Node never
 * loads the Deno or Bun code, and Deno and Bun never load node.ts.
 *
 * @module
 */
import * as tls from "node:tls";
import { NodeSocketConnection } from "./node_socket.ts";
import type * as net from "node:net";
import type { Duplex } from "node:stream";
import type { Connection, SocketAddress, TlsInfo, TlsServerOptions } from "./types.ts";

/** Handshake deadline when the options give none. */
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 10_000;

/** Creates a secure context for `options` (certificate, key, minimum version, ciphers). */
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

/** Reads the negotiated protocol, cipher and SNI name off a finished node TLS socket. */
export function tlsInfoOf(socket: tls.TLSSocket): TlsInfo {
  const servername = (socket as tls.TLSSocket & { servername?: string | false }).servername;
  return {
    protocol: socket.getProtocol() ?? "unknown",
    cipher: socket.getCipher()?.name ?? "unknown",
    serverName: typeof servername === "string" && servername !== "" ? servername : undefined,
  };
}

/**
 * A finished `tls.TLSSocket` as a {@link Connection}: the TLS connection of
 * every transport. It is TLS already, so it cannot be upgraded again.
 */
export class NodeTlsConnection extends NodeSocketConnection {
  /** Wraps a TLS socket whose handshake is done; the addresses default to the socket's own. */
  constructor(socket: tls.TLSSocket, local?: SocketAddress, remote?: SocketAddress) {
    super(socket, local, remote, tlsInfoOf(socket));
  }

  override startTls(_options: TlsServerOptions, _reply: Uint8Array): Promise<Connection> {
    return Promise.reject(new Error("the connection runs TLS already"));
  }

  override acceptTls(_options: TlsServerOptions, _received?: Uint8Array): Promise<Connection> {
    return Promise.reject(new Error("the connection runs TLS already"));
  }
}

/**
 * Runs a server-side TLS handshake over any node `Duplex` and resolves with
 * the TLS connection. On failure, timeout or a client that leaves mid-way,
 * both the TLS socket and `raw` are destroyed and the promise rejects.
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
      resolve(new NodeTlsConnection(secureSocket, addresses.local, addresses.remote));
    });
  });
}
