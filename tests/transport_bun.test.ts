/**
 * BunConnection (src/transport/bun.ts) over a scripted Bun socket, so it runs
 * on every runtime: the read queue that pauses the socket, partial writes
 * finished on `drain`, half-close, and the hand-over to TLS. The same over
 * real sockets runs under Bun in transport.test.ts.
 *
 *   node --import tsx --test tests/transport_bun.test.ts
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { BunConnection, bunTransport } from "../src/transport/bun.ts";
import { detectRuntime } from "../src/transport/detect.ts";
import { scratchFolder } from "./scratch.ts";
import { bytes, text } from "./fake_connection.ts";

const KiB = 1024;

/** The parts of Bun's socket that BunConnection uses, scripted. */
class FakeBunSocket {
  data: BunConnection | undefined;
  readonly remoteAddress = "::1";
  readonly remotePort = 40000;
  readonly remoteFamily = "IPv6";
  readonly localAddress = ""; // Bun sometimes reports none: the listen address stands in
  readonly localPort = 2525;
  /** Bytes the "kernel" still takes before write() returns short. */
  room = Infinity;
  sent = "";
  paused = false;
  shutdowns = 0;
  ends = 0;
  #closed = false;

  write(data: Uint8Array, offset: number, length: number): number {
    if (this.#closed) return -1;
    const n = Math.min(length, this.room);
    this.room -= n;
    this.sent += text(data.subarray(offset, offset + n));
    return n;
  }

  shutdown(): void {
    this.shutdowns++;
  }

  end(): void {
    // Like Bun: the close handler runs at once.
    this.ends++;
    this.#closed = true;
    this.data?.onClose();
  }

  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
  }
}

function open(): { socket: FakeBunSocket; conn: BunConnection } {
  const socket = new FakeBunSocket();
  return { socket, conn: new BunConnection(socket, "127.0.0.1") };
}

let certificate: { cert: string; key: string } | undefined;
/** A throw-away self-signed certificate. */
function tlsOptions() {
  certificate ??= scratchFolder("bun-conn").selfSigned("a", { cn: "a.test", san: "DNS:a.test" });
  return { cert: certificate.cert, key: certificate.key, handshakeTimeoutMs: 3000 };
}

describe("BunConnection (scripted Bun socket)", () => {
  it("registers as the socket's data and reports its addresses", () => {
    const { socket, conn } = open();
    assert.equal(socket.data, conn);
    assert.deepEqual(conn.localAddress, { hostname: "127.0.0.1", port: 2525, family: "IPv4" });
    assert.deepEqual(conn.remoteAddress, { hostname: "::1", port: 40000, family: "IPv6" });
  });

  it("hands data to a waiting read, queues the rest, and pauses the socket past the high-water mark", async () => {
    const { socket, conn } = open();
    const waiting = conn.read();
    conn.onData(bytes("EHLO a\r\n"));
    assert.equal(text(await waiting), "EHLO a\r\n");
    for (let i = 0; i < 5; i++) conn.onData(new Uint8Array(64 * KiB).fill(i));
    assert.equal(socket.paused, true, "320 KiB queued");
  });

  it("allows one pending read at a time", async () => {
    const { conn } = open();
    const first = conn.read();
    await assert.rejects(conn.read(), /already pending/);
    conn.onData(bytes("x"));
    assert.equal(text(await first), "x");
  });

  it("resumes the socket once reads drained the queue to half", async () => {
    const { socket, conn } = open();
    for (let i = 0; i < 5; i++) conn.onData(new Uint8Array(64 * KiB).fill(i));
    assert.equal(socket.paused, true);
    assert.equal((await conn.read())?.[0], 0);
    assert.equal((await conn.read())?.[0], 1);
    assert.equal(socket.paused, true, "192 KiB still queued");
    assert.equal((await conn.read())?.[0], 2);
    assert.equal(socket.paused, false);
  });

  it("finishes partial writes on drain, in order, and sends FIN only after them", async () => {
    const { socket, conn } = open();
    socket.room = 4;
    let firstDone = false;
    const first = conn.write(bytes("250-first\r\n")).then(() => firstDone = true);
    const second = conn.write(bytes("250 second\r\n"));
    const fin = conn.closeWrite();
    await assert.rejects(conn.write(bytes("late")), /connection closed/);
    await Promise.resolve();
    assert.equal(socket.sent, "250-");
    assert.equal(firstDone, false);
    socket.room = Infinity;
    conn.onDrain();
    await Promise.all([first, second, fin]);
    assert.equal(socket.sent, "250-first\r\n250 second\r\n");
    assert.equal(socket.shutdowns, 1);
  });

  it("keeps queued data readable after the client's FIN, then gives null; writing still works", async () => {
    const { socket, conn } = open();
    conn.onData(bytes("QUIT\r\n"));
    conn.onEnd();
    assert.equal(text(await conn.read()), "QUIT\r\n");
    assert.equal(await conn.read(), null);
    await conn.write(bytes("221 bye\r\n"));
    assert.equal(socket.sent, "221 bye\r\n");
  });

  it("answers a pending read with null and fails pending writes when the socket goes away", async () => {
    const { socket, conn } = open();
    const pending = conn.read();
    socket.room = 0;
    const write = conn.write(bytes("250 ok\r\n"));
    conn.onClose();
    assert.equal(await pending, null);
    await assert.rejects(write, /connection closed/);
    conn.close(); // already closed: nothing more
    assert.equal(socket.ends, 0);
  });

  it("close() ends the socket and answers a pending read with null", async () => {
    const { socket, conn } = open();
    const pending = conn.read();
    conn.close();
    assert.equal(await pending, null);
    assert.equal(socket.ends, 1);
  });

  it("on STARTTLS drops queued plaintext, writes the reply and moves the socket to the TLS reader", async () => {
    const { socket, conn } = open();
    conn.onData(bytes("MAIL FROM:<injected>\r\n")); // sent without waiting for the 220
    const upgrade = conn.startTls(tlsOptions(), bytes("220 go\r\n"));
    await new Promise((resolve) => setTimeout(resolve, 10));
    assert.equal(socket.sent, "220 go\r\n");
    assert.notEqual(socket.data, conn, "a fresh connection object reads for TLS now");
    assert.equal(await conn.read(), null, "the old one is inert");
    socket.data!.onData(bytes("GET / HTTP/1.1\r\n\r\n")); // not a ClientHello
    await assert.rejects(upgrade);
    assert.equal(socket.ends, 1, "a failed handshake closes the socket");
  });

  it("on implicit TLS replays what the caller read into the handshake", async () => {
    const { socket, conn } = open();
    await assert.rejects(conn.acceptTls(tlsOptions(), bytes("GET / HTTP/1.1\r\n\r\n")));
    assert.equal(socket.ends, 1);
    await assert.rejects(conn.acceptTls(tlsOptions()), /connection closed/);
  });

  it("cannot listen outside Bun", { skip: detectRuntime() === "bun" }, async () => {
    await assert.rejects(bunTransport.listen({ hostname: "127.0.0.1", port: 0 }, () => {}), /needs the Bun runtime/);
  });
});
