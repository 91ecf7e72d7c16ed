/**
 * DenoConnection (src/transport/deno.ts) over a scripted `Deno.Conn`, so it
 * runs on every runtime: the read buffer that grows and shrinks, partial
 * writes, closing, and TLS over the raw conn (read with a reused 64 KiB
 * buffer). The same over real sockets runs under Deno in transport.test.ts.
 *
 *   node --import tsx --test tests/transport_deno.test.ts
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { DenoConnection, denoTransport } from "../src/transport/deno.ts";
import { detectRuntime } from "../src/transport/detect.ts";
import { scratchFolder } from "./scratch.ts";
import { bytes, text } from "./fake_connection.ts";

const KiB = 1024;

/** The parts of a `Deno.Conn` that DenoConnection uses, scripted. */
class FakeDenoConn {
  readonly localAddr = { hostname: "127.0.0.1", port: 2525 };
  readonly remoteAddr = { hostname: "::1", port: 40000 };
  /** The size of every buffer passed to read(). */
  readonly readSizes: number[] = [];
  /** Every distinct buffer passed to read(). */
  readonly readBuffers = new Set<Uint8Array>();
  /** What each write() call took. */
  readonly writes: Uint8Array[] = [];
  /** Most bytes one write() takes (Deno may write less than asked). */
  maxWrite = Infinity;
  closes = 0;
  closeWrites = 0;
  #input: Array<Uint8Array | null> = [];
  #waiter: { buffer: Uint8Array; resolve(n: number | null): void; reject(err: Error): void } | undefined;

  feed(chunk: Uint8Array | null): void {
    this.#input.push(chunk);
    const waiter = this.#waiter;
    this.#waiter = undefined;
    if (waiter) waiter.resolve(this.#take(waiter.buffer));
  }

  #take(buffer: Uint8Array): number | null {
    const chunk = this.#input[0];
    if (chunk === null) return null;
    const n = Math.min(chunk.length, buffer.length);
    buffer.set(chunk.subarray(0, n));
    if (n === chunk.length) this.#input.shift();
    else this.#input[0] = chunk.subarray(n);
    return n;
  }

  read(buffer: Uint8Array): Promise<number | null> {
    this.readSizes.push(buffer.length);
    this.readBuffers.add(buffer);
    if (this.closes > 0) return Promise.reject(Object.assign(new Error("closed"), { name: "BadResource" }));
    if (this.#input.length > 0) return Promise.resolve(this.#take(buffer));
    return new Promise((resolve, reject) => this.#waiter = { buffer, resolve, reject });
  }

  write(data: Uint8Array): Promise<number> {
    if (this.closes > 0) return Promise.reject(new Error("BadResource"));
    const n = Math.min(data.length, this.maxWrite);
    this.writes.push(data.slice(0, n));
    return Promise.resolve(n);
  }

  closeWrite(): Promise<void> {
    this.closeWrites++;
    return Promise.resolve();
  }

  close(): void {
    // Like Deno: closing twice throws, and a pending read fails.
    if (this.closes++ > 0) throw Object.assign(new Error("closed twice"), { name: "BadResource" });
    this.#waiter?.reject(Object.assign(new Error("closed"), { name: "Interrupted" }));
    this.#waiter = undefined;
  }

  setNoDelay(): void {}
}

let certificate: { cert: string; key: string } | undefined;
/** A throw-away self-signed certificate. */
function tlsOptions() {
  certificate ??= scratchFolder("deno-conn").selfSigned("a", { cn: "a.test", san: "DNS:a.test" });
  return { cert: certificate.cert, key: certificate.key, handshakeTimeoutMs: 3000 };
}

describe("DenoConnection (scripted Deno.Conn)", () => {
  it("reports the conn's addresses", () => {
    const conn = new DenoConnection(new FakeDenoConn());
    assert.deepEqual(conn.localAddress, { hostname: "127.0.0.1", port: 2525, family: "IPv4" });
    assert.deepEqual(conn.remoteAddress, { hostname: "::1", port: 40000, family: "IPv6" });
    assert.equal(conn.tls, undefined);
  });

  it("grows its read buffer from 1 to 64 KiB while reads fill it, and shrinks it after a small read", async () => {
    const raw = new FakeDenoConn();
    const conn = new DenoConnection(raw);
    const message = new Uint8Array(200 * KiB).map((_, i) => i % 251);
    raw.feed(message);
    const received: number[] = [];
    let total = 0;
    while (total < message.length) {
      const chunk = (await conn.read())!;
      assert.deepEqual(chunk, message.subarray(total, total + chunk.length));
      received.push(chunk.length);
      total += chunk.length;
    }
    raw.feed(bytes("QUIT\r\n"));
    assert.equal(text(await conn.read()), "QUIT\r\n");
    raw.feed(bytes("x"));
    await conn.read();
    assert.deepEqual(received, [1, 4, 16, 64, 64, 51].map((k) => k * KiB));
    // An idle connection holds 1 KiB again, not 64.
    assert.deepEqual(raw.readSizes, [1, 4, 16, 64, 64, 64, 64, 1].map((k) => k * KiB));
  });

  it("never hands out memory that a later read overwrites", async () => {
    const raw = new FakeDenoConn();
    const conn = new DenoConnection(raw);
    raw.feed(bytes("EHLO a\r\n"));
    const first = await conn.read();
    raw.feed(bytes("MAIL b\r\n"));
    await conn.read();
    assert.equal(text(first), "EHLO a\r\n");
  });

  it("writes all of every write, in order, when the conn takes only part at a time", async () => {
    const raw = new FakeDenoConn();
    raw.maxWrite = 3;
    const conn = new DenoConnection(raw);
    await Promise.all([conn.write(bytes("250-first line\r\n")), conn.write(bytes("250 second\r\n"))]);
    assert.equal(raw.writes.map(text).join(""), "250-first line\r\n250 second\r\n");
    assert.ok(raw.writes.every((w) => w.length <= 3));
    await conn.closeWrite();
    assert.equal(raw.closeWrites, 1);
  });

  it("gives null at EOF and after close(), and rejects writes once closed", async () => {
    const raw = new FakeDenoConn();
    const conn = new DenoConnection(raw);
    const pending = conn.read();
    conn.close();
    conn.close(); // twice is fine
    assert.equal(await pending, null);
    assert.equal(await conn.read(), null);
    await assert.rejects(conn.write(bytes("x")), /connection closed/);
    await conn.closeWrite(); // nothing left to finish
    assert.equal(raw.closes, 1);
    assert.equal(raw.closeWrites, 0);

    const ended = new FakeDenoConn();
    const eof = new DenoConnection(ended);
    ended.feed(null);
    assert.equal(await eof.read(), null);
    assert.equal(await eof.read(), null);
  });

  it("runs TLS on the raw conn with a reused 64 KiB read buffer, and closes it when the handshake fails", async () => {
    const raw = new FakeDenoConn();
    const conn = new DenoConnection(raw);
    raw.feed(bytes("GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")); // not a ClientHello
    await assert.rejects(conn.acceptTls(tlsOptions()));
    assert.ok(raw.readSizes.length > 0 && raw.readSizes.every((size) => size === 64 * KiB), `${raw.readSizes}`);
    assert.equal(raw.readBuffers.size, 1, "one buffer, reused");
    assert.equal(raw.closes, 1);
    assert.equal(await conn.read(), null, "the connection was handed to TLS");
    await assert.rejects(conn.acceptTls(tlsOptions()), /connection closed/);
  });

  it("replays bytes read before acceptTls() into the handshake", async () => {
    const raw = new FakeDenoConn();
    const conn = new DenoConnection(raw);
    // Garbage as the replay: TLS fails on it before it needs the conn at all.
    await assert.rejects(conn.acceptTls(tlsOptions(), bytes("\x15\x03\x03\x00\x02\x02\x28")));
    assert.equal(raw.closes, 1);
  });

  it("writes the STARTTLS reply before the handshake, and refuses with a read pending", async () => {
    const busy = new DenoConnection(new FakeDenoConn());
    const pending = busy.read();
    await assert.rejects(busy.startTls(tlsOptions(), bytes("220 go\r\n")), /read\(\) pending/);
    busy.close();
    await pending;

    const raw = new FakeDenoConn();
    const conn = new DenoConnection(raw);
    const upgrade = conn.startTls(tlsOptions(), bytes("220 go\r\n"));
    await new Promise((resolve) => setTimeout(resolve, 10));
    assert.equal(raw.writes.map(text).join(""), "220 go\r\n");
    raw.feed(null); // the client leaves instead of sending a ClientHello
    await assert.rejects(upgrade, /connection closed during the TLS handshake/);
    assert.equal(raw.closes, 1);
  });

  it("a client gone before accept() (NotConnected) does not pause accepting", async () => {
    // 20 clients that connected and left before accept(): with a 100 ms pause each (as for EMFILE)
    // the next real client would wait 2 s; a stream of them stalled the listener.
    let calls = 0;
    const fakeListener = {
      addr: { hostname: "127.0.0.1", port: 4242 },
      accept(): Promise<FakeDenoConn> {
        calls++;
        if (calls <= 20) return Promise.reject(Object.assign(new Error("gone"), { name: "NotConnected" }));
        if (calls === 21) return Promise.resolve(new FakeDenoConn());
        return new Promise(() => {}); // no more clients
      },
      close() {},
    };
    const saved = Object.getOwnPropertyDescriptor(globalThis, "Deno");
    let accepted!: Promise<number>;
    const started = Date.now();
    Object.defineProperty(globalThis, "Deno", { value: { listen: () => fakeListener }, configurable: true });
    try {
      accepted = new Promise((resolve) => {
        denoTransport.listen({ hostname: "127.0.0.1", port: 0 }, () => resolve(Date.now() - started));
      });
    } finally {
      if (saved) Object.defineProperty(globalThis, "Deno", saved);
      else delete (globalThis as { Deno?: unknown }).Deno;
    }
    const took = await accepted;
    assert.ok(calls >= 21);
    assert.ok(took < 500, `the client behind 20 vanished ones waited ${took} ms`);
  });

  it("cannot listen outside Deno", { skip: detectRuntime() === "deno" }, async () => {
    await assert.rejects(denoTransport.listen({ hostname: "127.0.0.1", port: 0 }, () => {}), /needs the Deno runtime/);
  });
});
