/**
 * NodeSocketConnection (src/transport/node_socket.ts), the node socket
 * adapter under both the node:net transport's plain connections and every
 * transport's TLS connections, over real loopback sockets: backpressure,
 * half-close, closing, and handing the socket over.
 *
 *   node --import tsx --test tests/transport_node_socket.test.ts
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { once } from "node:events";
import * as net from "node:net";
import { NodeSocketConnection } from "../src/transport/node_socket.ts";
import type { Connection } from "../src/transport/types.ts";
import { bytes, text } from "./fake_connection.ts";

const KiB = 1024;

/** The base class with its protected hand-over exposed, and no TLS. */
class TestConnection extends NodeSocketConnection {
  get rawSocket(): net.Socket {
    return this.socket;
  }
  giveAway(): net.Socket {
    this.stopReading(false);
    return this.handOver();
  }
  startTls(): Promise<Connection> {
    return Promise.reject(new Error("not in this test"));
  }
  acceptTls(): Promise<Connection> {
    return Promise.reject(new Error("not in this test"));
  }
}

/** A connected pair: the adapter on the accepted side, a plain client socket on the other. */
async function pair(): Promise<{ conn: TestConnection; client: net.Socket; done(): void }> {
  const server = net.createServer({ allowHalfOpen: true });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const accepted = once(server, "connection");
  const client = net.connect({
    port: (server.address() as net.AddressInfo).port,
    host: "127.0.0.1",
    allowHalfOpen: true,
  });
  client.on("error", () => {});
  const [[socket]] = await Promise.all([accepted as Promise<[net.Socket]>, once(client, "connect")]);
  const conn = new TestConnection(socket);
  return {
    conn,
    client,
    done() {
      client.destroy();
      conn.close();
      server.close();
    },
  };
}

/** Reads from `conn` until `length` bytes came; checks that they are all `byte`. */
async function readAll(conn: Connection, length: number): Promise<number> {
  let total = 0;
  while (total < length) {
    const chunk = await conn.read();
    if (chunk === null) break;
    assert.ok(chunk.every((b) => b === 0x61));
    total += chunk.length;
  }
  return total;
}

describe("NodeSocketConnection", () => {
  it("reports the socket's addresses and no TLS", async () => {
    const { conn, client, done } = await pair();
    try {
      assert.equal(conn.localAddress.hostname, "127.0.0.1");
      assert.equal(conn.remoteAddress.port, client.localPort);
      assert.equal(conn.remoteAddress.family, "IPv4");
      assert.equal(conn.tls, undefined);
    } finally {
      done();
    }
  });

  it("pauses the socket while more than 256 KiB wait unread, and loses nothing", async () => {
    const { conn, client, done } = await pair();
    try {
      const size = 2048 * KiB;
      client.write(new Uint8Array(size).fill(0x61));
      const deadline = Date.now() + 3000;
      while (!conn.rawSocket.isPaused() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
      assert.equal(conn.rawSocket.isPaused(), true, "paused with nobody reading");
      assert.equal(await readAll(conn, size), size);
    } finally {
      done();
    }
  });

  it("after the client's FIN gives null but can still write (half-close)", async () => {
    const { conn, client, done } = await pair();
    try {
      client.end(bytes("QUIT\r\n"));
      assert.equal(text(await conn.read()), "QUIT\r\n");
      assert.equal(await conn.read(), null);
      const reply = once(client, "data");
      await conn.write(bytes("221 bye\r\n"));
      assert.equal(String(((await reply) as [Uint8Array])[0]), "221 bye\r\n");
      const ended = once(client, "end");
      await conn.closeWrite();
      await ended;
    } finally {
      done();
    }
  });

  it("close() answers a pending read with null and makes writes fail", async () => {
    const { conn, done } = await pair();
    try {
      const pending = conn.read();
      conn.close();
      conn.close();
      assert.equal(await pending, null);
      await assert.rejects(conn.write(bytes("x")), /connection closed/);
      assert.equal(conn.rawSocket.destroyed, true);
    } finally {
      done();
    }
  });

  it("after handing the socket over, reads give null and close() leaves the socket alone", async () => {
    const { conn, client, done } = await pair();
    try {
      const socket = conn.giveAway();
      assert.equal(await conn.read(), null);
      conn.close();
      assert.equal(socket.destroyed, false, "the new owner decides when it closes");
      // The new owner reads what the client sends next.
      socket.resume();
      const data = once(socket, "data");
      client.write("ClientHello");
      assert.equal(String(((await data) as [Uint8Array])[0]), "ClientHello");
      socket.destroy();
    } finally {
      done();
    }
  });
});
