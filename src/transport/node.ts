/**
 * The `node:net` transport. It runs on Node and also under Deno and Bun (both
 * implement node:net), which is how a user can pick it explicitly anywhere.
 * Its TLS, like that of the other transports, is the shared layer in
 * node_tls.ts.
 *
 * `reusePort` is node:net's own option where it works (Node 22.12 / 23.1,
 * Deno, Bun); a `node:cluster` worker on older Node needs none (see
 * reusePortHere).
 *
 * Unix sockets are `server.listen({ path })`, bound and cleaned up through
 * unix_socket.ts (libuv, and Deno's and Bun's node:net, unlink the path they
 * bound on close, whatever is there by then). node:net reports no addresses
 * on such a socket: the connections get the listening path as both ends.
 *
 * @module
 */
import * as net from "node:net";
import * as tls from "node:tls";
import process from "node:process";
import type { Connection, Listener, ListenOptions, SocketAddress, TlsServerOptions, Transport } from "./types.ts";
import { socketAddress } from "./address.ts";
import { NodeSocketConnection } from "./node_socket.ts";
import { DEFAULT_HANDSHAKE_TIMEOUT_MS, NodeTlsConnection, sniCallback, upgradeDuplexToTls } from "./node_tls.ts";
import { ConnectionDuplex } from "./connection_duplex.ts";
import { certificateByClientHello } from "./client_hello.ts";
import { bindUnixSocket, unixSocketAddress, type UnixSocketFile } from "./unix_socket.ts";
import { nodeNetHasReusePort } from "./reuse_port.ts";

/**
 * A plain `net.Socket` (TCP, or a Unix socket despite the name) as a
 * {@link Connection}, upgraded to TLS by node:tls on the socket itself when it can.
 */
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
  constructor(
    readonly address: SocketAddress,
    private readonly server: net.Server,
    private readonly file?: UnixSocketFile,
  ) {}
  close(): Promise<void> {
    // First the file, so no client finds a path whose listener is going away.
    this.file?.remove();
    // close() stops listening at once; its callback would wait until every accepted connection has ended.
    this.server.close();
    return Promise.resolve();
  }
}

/** Starts `server` listening; resolves once it is bound, rejects with the bind error. */
function bind(server: net.Server, options: net.ListenOptions): Promise<net.Server> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(options, () => {
      server.off("error", reject);
      server.on("error", () => {});
      resolve(server);
    });
  });
}

/**
 * Whether to pass `reusePort` to `listen()`: yes where node:net honours it;
 * no in a `node:cluster` worker on older Node, where `listen()` goes through
 * the primary, which shares one socket among its workers without it; else
 * (Node 20 ignores the option silently, so a second process would fail with
 * EADDRINUSE) an error that says what to do instead.
 */
async function reusePortHere(): Promise<boolean> {
  if (nodeNetHasReusePort()) return true;
  const { default: cluster } = await import("node:cluster");
  if (cluster.isWorker) return false;
  throw new Error(
    `reusePort needs Node 22.12 / 23.1 or later (this is ${process.version}); ` +
      "on older Node, worker processes share a port through node:cluster, as runWorkers does there",
  );
}

/** The `node:net` transport (with `node:tls` for implicit TLS on the listener). */
export const nodeTransport: Transport = {
  name: "node",
  async listen(options: ListenOptions, onConnection: (conn: Connection) => void): Promise<Listener> {
    const tlsOptions = options.tls;
    const path = options.path;
    // node:net gives a Unix socket's connections no addresses: both ends are the listening path.
    const unix = path === undefined ? undefined : unixSocketAddress(path);
    const server: net.Server = tlsOptions
      ? tls.createServer({
        cert: tlsOptions.cert,
        key: tlsOptions.key,
        minVersion: tlsOptions.minVersion ?? "TLSv1.2",
        ciphers: tlsOptions.ciphers,
        SNICallback: sniCallback(tlsOptions),
        handshakeTimeout: tlsOptions.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS,
        allowHalfOpen: true, // the client's FIN must not end our side: SMTP may still reply
      }, (socket) => onConnection(new NodeTlsConnection(socket, unix, unix)))
      : net.createServer(
        { pauseOnConnect: false, allowHalfOpen: true },
        (socket) => onConnection(new NodeTcpConnection(socket, unix, unix)),
      );
    // A failed or stalled handshake only concerns that one client.
    if (tlsOptions) server.on("tlsClientError", (_err: Error, socket: net.Socket) => socket.destroy());
    if (path !== undefined) {
      const { file } = await bindUnixSocket(
        path,
        (tempPath) => bind(server, { path: tempPath }),
        (bound) => bound.close(),
      );
      return new NodeListener(unixSocketAddress(path), server, file);
    }
    const reusePort = options.reusePort === true && await reusePortHere();
    await bind(server, { host: options.hostname, port: options.port, ...(reusePort ? { reusePort } : {}) });
    const bound = server.address() as net.AddressInfo;
    return new NodeListener(socketAddress(bound.address, bound.port, bound.family), server);
  },
};
