/**
 * The `node:net` transport. It runs on Node and also under Deno and Bun (both
 * implement node:net), which is how a user can pick it explicitly anywhere.
 * Its TLS, like that of the other transports, is the shared layer in
 * node_tls.ts.
 *
 * @module
 */
import * as net from "node:net";
import * as tls from "node:tls";
import type { Connection, Listener, ListenOptions, SocketAddress, TlsServerOptions, Transport } from "./types.ts";
import { socketAddress } from "./address.ts";
import { NodeSocketConnection } from "./node_socket.ts";
import { DEFAULT_HANDSHAKE_TIMEOUT_MS, NodeTlsConnection, sniCallback, upgradeDuplexToTls } from "./node_tls.ts";
import { ConnectionDuplex } from "./connection_duplex.ts";
import { certificateByClientHello } from "./client_hello.ts";

/** A plain `net.Socket` as a {@link Connection}, upgraded to TLS by node:tls on the socket itself when it can. */
export class NodeTcpConnection extends NodeSocketConnection {
  override async startTls(options: TlsServerOptions, reply: Uint8Array): Promise<Connection> {
    // Stop reading before the 220 goes out: the ClientHello must reach the
    // TLS layer, not our queue. Whatever is queued now is plaintext the
    // client sent after STARTTLS without waiting: it is dropped, never run.
    this.stopReading(true);
    try {
      await this.write(reply);
    } catch (err) {
      this.close();
      throw err;
    }
    return upgradeDuplexToTls(this.handOver(), options, { local: this.localAddress, remote: this.remoteAddress });
  }

  override acceptTls(options: TlsServerOptions, received?: Uint8Array): Promise<Connection> {
    if (this.readPending) return Promise.reject(new Error("acceptTls() called with a read() pending"));
    if (this.ended) return Promise.reject(new Error("connection closed"));
    const addresses = { local: this.localAddress, remote: this.remoteAddress };
    if ((received === undefined || received.length === 0) && this.untouched) {
      // Nothing was read yet: node:tls takes the socket itself (its native path).
      this.stopReading(false);
      return upgradeDuplexToTls(this.handOver(), options, addresses);
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
}

class NodeListener implements Listener {
  constructor(readonly address: SocketAddress, private readonly server: net.Server) {}
  close(): Promise<void> {
    // close() stops listening at once; its callback would wait until every accepted connection has ended.
    this.server.close();
    return Promise.resolve();
  }
}

/** The `node:net` transport (with `node:tls` for implicit TLS on the listener). */
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
      }, (socket) => onConnection(new NodeTlsConnection(socket)))
      : net.createServer(
        { pauseOnConnect: false, allowHalfOpen: true },
        (socket) => onConnection(new NodeTcpConnection(socket)),
      );
    // A failed or stalled handshake only concerns that one client.
    if (tlsOptions) server.on("tlsClientError", (_err: Error, socket: net.Socket) => socket.destroy());
    return new Promise((resolve, reject) => {
      server.once("error", reject);
      server.listen({ host: options.hostname, port: options.port }, () => {
        server.off("error", reject);
        server.on("error", () => {});
        const bound = server.address() as net.AddressInfo;
        resolve(new NodeListener(socketAddress(bound.address, bound.port, bound.family), server));
      });
    });
  },
};
