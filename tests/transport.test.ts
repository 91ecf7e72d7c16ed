/**
 * Transport tests over real sockets, run under all three runtimes:
 *
 *   deno test -A tests/transport.test.ts
 *   bun test ./tests/transport.test.ts
 *   node --import tsx --test tests/transport.test.ts
 *
 * The node:net transport is tested everywhere; the runtime's own transport
 * (Deno.listen or Bun.listen) too when running there. Clients are node:net /
 * node:tls sockets. Certificates are made with openssl at run time. Unix
 * sockets get their own block (the server-level tests are unix_socket.test.ts,
 * the path checks of unix_socket.ts are transport_unix_socket.test.ts).
 */
import { describe, it } from "node:test";
import { Buffer } from "node:buffer";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, lstatSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as tls from "node:tls";
import { detectRuntime, loadTransport } from "../src/transport/detect.ts";
import { nodeTransport } from "../src/transport/node.ts";
import type { Connection, Listener, ListenOptions, TlsServerOptions, Transport } from "../src/transport/types.ts";

const runtime = detectRuntime();
const transports: Transport[] = [nodeTransport];
if (runtime !== "node") transports.push(await loadTransport(runtime));

const enc = new TextEncoder();
const dec = new TextDecoder();
/** Per-test limit inside the test body (below Bun's default 5 s test timeout). */
const BODY_TIMEOUT_MS = 4500;
const TEST_OPTIONS = { timeout: 10_000 };
const MiB = 1024 * 1024;

// ---------------------------------------------------------------------------
// helpers

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** A byte pattern that reveals lost, duplicated or reordered data. */
function patternByte(i: number): number {
  return Math.imul(i, 2654435761) >>> 24;
}

function pattern(length: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = patternByte(i);
  return out;
}

/** Checks a stream of chunks against {@link pattern} as it arrives. */
class PatternChecker {
  received = 0;
  mismatchAt = -1;
  add(chunk: Uint8Array): void {
    for (let i = 0; i < chunk.length; i++) {
      if (this.mismatchAt < 0 && chunk[i] !== patternByte(this.received + i)) this.mismatchAt = this.received + i;
    }
    this.received += chunk.length;
  }
}

/** A listener plus everything a test opened, so all of it is closed afterwards. */
class TestServer {
  listener!: Listener;
  #accepted: Connection[] = [];
  #waiters: Array<(conn: Connection) => void> = [];
  #closables: Array<{ close?(): unknown; destroy?(): unknown }> = [];

  static async start(transport: Transport, options: ListenOptions): Promise<TestServer> {
    const server = new TestServer();
    server.listener = await transport.listen(options, (conn) => server.#deliver(conn));
    return server;
  }

  get port(): number {
    return this.listener.address.port;
  }

  /** Where a client connects: the Unix socket path, or host and port. */
  target(host = "127.0.0.1"): { path: string } | { host: string; port: number } {
    const { path } = this.listener.address;
    return path !== undefined ? { path } : { host, port: this.port };
  }

  #deliver(conn: Connection): void {
    this.track(conn);
    const waiter = this.#waiters.shift();
    if (waiter) waiter(conn);
    else this.#accepted.push(conn);
  }

  /** The next accepted connection. */
  next(what = "accepted connection"): Promise<Connection> {
    const ready = this.#accepted.shift();
    if (ready) return Promise.resolve(ready);
    return withTimeout(new Promise((resolve) => this.#waiters.push(resolve)), 3000, what);
  }

  track<T extends { close?(): unknown; destroy?(): unknown }>(thing: T): T {
    this.#closables.push(thing);
    return thing;
  }

  async close(): Promise<void> {
    for (const thing of this.#closables) {
      try {
        if (thing.destroy) thing.destroy();
        else thing.close?.();
      } catch { /* closing is best effort */ }
    }
    await withTimeout(this.listener.close(), 2000, "listener.close()");
  }
}

/** Runs `body` with a server on a Unix socket in a fresh temporary directory, removed afterwards. */
async function withUnixServer(
  transport: Transport,
  options: Partial<ListenOptions>,
  body: (server: TestServer, path: string) => Promise<void>,
): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "smtp-unix-"));
  const path = join(dir, "smtp.sock");
  try {
    await withServer(transport, { path, ...options }, (server) => body(server, path));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Runs `body` with a fresh server and always closes everything. */
async function withServer(
  transport: Transport,
  options: Partial<ListenOptions>,
  body: (server: TestServer) => Promise<void>,
): Promise<void> {
  const server = await TestServer.start(transport, { hostname: "127.0.0.1", port: 0, ...options });
  try {
    await withTimeout(body(server), BODY_TIMEOUT_MS, "test body");
  } finally {
    await server.close();
  }
}

/** A node:net client that records everything it receives. */
class Client {
  readonly socket: net.Socket;
  chunks: Uint8Array[] = [];
  ended = false;
  closed = false;
  #changed: Array<() => void> = [];

  constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on("data", this.#onData);
    socket.on("end", () => {
      this.ended = true;
      this.#notify();
    });
    socket.on("close", () => {
      this.closed = true;
      this.#notify();
    });
    socket.on("error", () => {}); // resets are expected in some tests
  }

  static connect(server: TestServer, host = "127.0.0.1"): Promise<Client> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ ...server.target(host), allowHalfOpen: true });
      server.track(socket);
      socket.once("error", reject);
      socket.once("connect", () => {
        socket.off("error", reject);
        resolve(new Client(socket));
      });
    });
  }

  #onData = (chunk: Uint8Array) => {
    this.chunks.push(chunk);
    this.#notify();
  };

  #notify(): void {
    for (const wake of this.#changed.splice(0)) wake();
  }

  text(): string {
    return dec.decode(Buffer.concat(this.chunks));
  }

  /** Waits until `done()` holds, re-checking on every event. */
  async until(done: () => boolean, what: string, ms = 3000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!done()) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}; received ${JSON.stringify(this.text())}`);
      await withTimeout(new Promise<void>((resolve) => this.#changed.push(resolve)), left, what).catch(() => {});
    }
  }

  waitForText(needle: string): Promise<void> {
    return this.until(() => this.text().includes(needle), JSON.stringify(needle));
  }

  /** Stops recording so another reader (node:tls) can take over the socket. */
  detach(): net.Socket {
    this.socket.off("data", this.#onData);
    return this.socket;
  }

  write(text: string | Uint8Array): void {
    this.socket.write(text);
  }
}

/** Reads from `conn` until the text read so far contains `needle` (or EOF). */
async function readUntil(conn: Connection, needle: string): Promise<string> {
  let text = "";
  while (!text.includes(needle)) {
    const chunk = await conn.read();
    if (chunk === null) break;
    text += dec.decode(chunk);
  }
  return text;
}

/** Reads everything until EOF. */
async function readAll(conn: Connection): Promise<string> {
  let text = "";
  for (let chunk = await conn.read(); chunk !== null; chunk = await conn.read()) text += dec.decode(chunk);
  return text;
}

/** Reads and writes back until EOF, then closes. */
async function echo(conn: Connection): Promise<void> {
  for (let chunk = await conn.read(); chunk !== null; chunk = await conn.read()) await conn.write(chunk);
  conn.close();
}

/** Settles to "pending" if `promise` has not settled by now. */
async function state(promise: Promise<unknown>): Promise<"resolved" | "rejected" | "pending"> {
  const pending = {};
  try {
    return (await Promise.race([promise, sleep(0).then(() => pending)])) === pending ? "pending" : "resolved";
  } catch {
    return "rejected";
  }
}

// ---------------------------------------------------------------------------
// certificates

interface Cert {
  cert: string;
  key: string;
}

let certCache: { a: Cert; b: Cert } | undefined;

/** Two throw-away self-signed certificates for `a.test` and `b.test`. */
function certs(): { a: Cert; b: Cert } {
  if (certCache) return certCache;
  const dir = mkdtempSync(join(tmpdir(), "transport-test-"));
  try {
    const make = (name: string): Cert => {
      const key = join(dir, `${name}.key`);
      const cert = join(dir, `${name}.crt`);
      execFileSync("/usr/bin/openssl", [
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        `/CN=${name}`,
        "-addext",
        `subjectAltName=DNS:${name}`,
        "-days",
        "1",
        "-keyout",
        key,
        "-out",
        cert,
      ], { stdio: "ignore" });
      return { cert: readFileSync(cert, "utf8"), key: readFileSync(key, "utf8") };
    };
    certCache = { a: make("a.test"), b: make("b.test") };
    return certCache;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function tlsOptions(extra: Partial<TlsServerOptions> = {}): TlsServerOptions {
  const { a, b } = certs();
  return { ...a, sni: (name) => (name === "b.test" ? b : name === "a.test" ? a : undefined), ...extra };
}

/** Runs a client TLS handshake over `socket` (or a new connection) with SNI `servername`. */
function tlsConnect(
  server: TestServer,
  options: { socket?: net.Socket; servername?: string },
): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const secure = tls.connect({
      ...(options.socket ? { socket: options.socket } : server.target()),
      servername: options.servername ?? "a.test",
      rejectUnauthorized: false, // self-signed; the tests check the certificate's name instead
    }, () => {
      secure.off("error", reject);
      resolve(secure);
    });
    server.track(secure);
    secure.once("error", reject);
  });
}

/** Reads from a client TLS socket until `needle` arrives. */
function tlsReadUntil(secure: tls.TLSSocket, needle: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = "";
    const onData = (chunk: Uint8Array) => {
      text += dec.decode(chunk);
      if (text.includes(needle)) {
        secure.off("data", onData);
        resolve(text);
      }
    };
    secure.on("data", onData);
    secure.once("error", reject);
    secure.once(
      "close",
      () => reject(new Error(`closed before ${JSON.stringify(needle)}; got ${JSON.stringify(text)}`)),
    );
  });
}

function peerName(secure: tls.TLSSocket): string | undefined {
  const subject = secure.getPeerCertificate()?.subject as { CN?: string | string[] } | undefined;
  return Array.isArray(subject?.CN) ? subject.CN[0] : subject?.CN;
}

/** Client side of STARTTLS: sends `request`, waits for the 220, then handshakes over the same socket. */
async function clientStartTls(
  server: TestServer,
  request = "STARTTLS\r\n",
  servername?: string,
): Promise<{ client: Client; conn: Connection; secure: Promise<tls.TLSSocket>; upgraded: Promise<Connection> }> {
  const client = await Client.connect(server);
  const conn = await server.next();
  client.write(request);
  // The server side, like an SMTP core: read the command line, drop whatever came with it.
  const line = await readUntil(conn, "STARTTLS\r\n");
  assert.ok(line.startsWith("STARTTLS\r\n"), `server read ${JSON.stringify(line)}`);
  const upgraded = conn.startTls(tlsOptions({ handshakeTimeoutMs: 2000 }), enc.encode("220 ready\r\n"));
  upgraded.then((c) => server.track(c), () => {});
  await client.waitForText("220 ready\r\n");
  assert.equal(client.text(), "220 ready\r\n");
  const secure = tlsConnect(server, { socket: client.detach(), servername });
  secure.catch(() => {});
  return { client, conn, secure, upgraded };
}

// ---------------------------------------------------------------------------
// tests

for (const transport of transports) {
  describe(`${transport.name} transport`, () => {
    it("listens on port 0 and reports the real IPv4 addresses", TEST_OPTIONS, async () => {
      await withServer(transport, {}, async (server) => {
        const address = server.listener.address;
        assert.equal(address.hostname, "127.0.0.1");
        assert.equal(address.family, "IPv4");
        assert.ok(address.port > 0 && address.port < 65536, `port ${address.port}`);
        const client = await Client.connect(server);
        const conn = await server.next();
        assert.deepEqual(conn.localAddress, { hostname: "127.0.0.1", port: address.port, family: "IPv4" });
        assert.deepEqual(conn.remoteAddress, { hostname: "127.0.0.1", port: client.socket.localPort, family: "IPv4" });
        assert.equal(conn.tls, undefined);
      });
    });

    it("listen() rejects when the port is taken", TEST_OPTIONS, async () => {
      await withServer(transport, {}, async (server) => {
        await assert.rejects(transport.listen({ hostname: "127.0.0.1", port: server.port }, () => {}));
      });
    });

    it("listens on IPv6 ::1", TEST_OPTIONS, async () => {
      await withServer(transport, { hostname: "::1" }, async (server) => {
        assert.equal(server.listener.address.hostname, "::1");
        assert.equal(server.listener.address.family, "IPv6");
        assert.ok(server.port > 0);
        const client = await Client.connect(server, "::1");
        const conn = await server.next();
        assert.deepEqual(conn.localAddress, { hostname: "::1", port: server.port, family: "IPv6" });
        assert.deepEqual(conn.remoteAddress, { hostname: "::1", port: client.socket.localPort, family: "IPv6" });
        client.write("ping");
        assert.equal(await readUntil(conn, "ping"), "ping");
      });
    });

    it("echoes bytes; arrays returned by read() are never reused", TEST_OPTIONS, async () => {
      await withServer(transport, {}, async (server) => {
        const client = await Client.connect(server);
        const conn = await server.next();
        const kept: Uint8Array[] = [];
        const copies: Uint8Array[] = [];
        const serving = (async () => {
          for (let chunk = await conn.read(); chunk !== null; chunk = await conn.read()) {
            kept.push(chunk);
            copies.push(chunk.slice());
            await conn.write(chunk);
          }
          conn.close();
        })();
        const sent = pattern(300_000);
        for (let offset = 0; offset < sent.length; offset += 1000) client.write(sent.subarray(offset, offset + 1000));
        await client.until(() => client.chunks.reduce((n, c) => n + c.length, 0) >= sent.length, "echo");
        client.socket.end();
        await serving;
        assert.deepEqual(new Uint8Array(Buffer.concat(client.chunks)), sent);
        assert.deepEqual(kept, copies, "a chunk changed after read() returned it");
        assert.deepEqual(new Uint8Array(Buffer.concat(kept)), sent);
      });
    });

    it(
      "reads nothing beyond a small queue until read() is called (backpressure to the client)",
      TEST_OPTIONS,
      async () => {
        await withServer(transport, {}, async (server) => {
          const client = await Client.connect(server);
          const conn = await server.next();
          const size = 32 * MiB;
          client.socket.end(pattern(size));
          await sleep(300);
          // Kernel buffers take a few MiB; the rest must still wait in the client.
          assert.ok(
            client.socket.writableLength > 12 * MiB,
            `server took too much unread data: ${size - client.socket.writableLength} bytes`,
          );
          const checker = new PatternChecker();
          for (let chunk = await conn.read(); chunk !== null; chunk = await conn.read()) checker.add(chunk);
          assert.equal(checker.received, size);
          assert.equal(checker.mismatchAt, -1, `data corrupted at byte ${checker.mismatchAt}`);
        });
      },
    );

    it("a large write() reaches a slow reader whole and resolves only as it reads", TEST_OPTIONS, async () => {
      await withServer(transport, {}, async (server) => {
        const client = await Client.connect(server);
        const conn = await server.next();
        const checker = new PatternChecker();
        client.detach().pause();
        const size = 16 * MiB;
        const writing = conn.write(pattern(size));
        await sleep(300);
        assert.equal(await state(writing), "pending", "write() resolved while the client read nothing");
        // Read slowly: a pause after every chunk.
        client.socket.on("data", (chunk: Uint8Array) => {
          checker.add(chunk);
          client.socket.pause();
          setTimeout(() => client.socket.resume(), 1);
        });
        client.socket.resume();
        await writing;
        await conn.closeWrite();
        await client.until(() => client.ended, "end of the large write");
        assert.equal(checker.received, size);
        assert.equal(checker.mismatchAt, -1, `data corrupted at byte ${checker.mismatchAt}`);
      });
    });

    it(
      "read() gives null at the client's FIN; the server can still write, then closeWrite()",
      TEST_OPTIONS,
      async () => {
        await withServer(transport, {}, async (server) => {
          const client = await Client.connect(server);
          const conn = await server.next();
          client.socket.end("hello");
          assert.equal(await readAll(conn), "hello");
          assert.equal(await conn.read(), null, "read() after EOF");
          await sleep(50); // the socket must stay writable, not just for a moment after the FIN
          await conn.write(enc.encode("bye"));
          await conn.closeWrite();
          await client.until(() => client.ended, "server FIN");
          assert.equal(client.text(), "bye");
          conn.close();
        });
      },
    );

    it("closeWrite() sends FIN and reading continues", TEST_OPTIONS, async () => {
      await withServer(transport, {}, async (server) => {
        const client = await Client.connect(server);
        const conn = await server.next();
        await conn.write(enc.encode("first"));
        await conn.closeWrite();
        await client.until(() => client.ended, "server FIN");
        assert.equal(client.text(), "first");
        await assert.rejects(conn.write(enc.encode("too late")));
        client.socket.end("more from the client");
        assert.equal(await readAll(conn), "more from the client");
        conn.close();
      });
    });

    it("close() resolves a pending read with null and is idempotent", TEST_OPTIONS, async () => {
      await withServer(transport, {}, async (server) => {
        const client = await Client.connect(server);
        const conn = await server.next();
        const pending = conn.read();
        await sleep(20);
        assert.equal(await state(pending), "pending");
        conn.close();
        assert.equal(await withTimeout(pending, 1000, "pending read after close()"), null);
        conn.close();
        assert.equal(await conn.read(), null);
        await assert.rejects(conn.write(enc.encode("x")));
        await conn.closeWrite(); // harmless once closed
        await client.until(() => client.closed || client.ended, "client sees the close");
      });
    });

    it("a client reset mid-stream ends the connection without a crash", TEST_OPTIONS, async () => {
      await withServer(transport, {}, async (server) => {
        const client = await Client.connect(server);
        const conn = await server.next();
        client.write("hi");
        assert.equal(await readUntil(conn, "hi"), "hi");
        // Closing with unread data in the receive buffer makes the kernel send RST.
        client.detach().pause();
        const chunk = new Uint8Array(MiB);
        let rejected: unknown;
        const writing = (async () => {
          try {
            for (let i = 0; i < 200; i++) await conn.write(chunk);
          } catch (err) {
            rejected = err;
          }
        })();
        await sleep(100);
        client.socket.destroy();
        await writing;
        assert.ok(rejected instanceof Error, "write() kept succeeding after the reset");
        assert.equal(await withTimeout(conn.read(), 1000, "read after reset"), null);
        conn.close();
        // The listener still serves.
        const other = await Client.connect(server);
        const next = await server.next();
        other.write("still alive");
        assert.equal(await readUntil(next, "alive"), "still alive");
      });
    });

    it("listener.close() stops accepting but keeps accepted connections open", TEST_OPTIONS, async () => {
      await withServer(transport, {}, async (server) => {
        const client = await Client.connect(server);
        const conn = await server.next();
        await withTimeout(server.listener.close(), 1000, "listener.close() with a connection open");
        await assert.rejects(Client.connect(server), "a new connection was accepted after close()");
        const serving = echo(conn);
        client.write("still here");
        await client.waitForText("still here");
        client.socket.end();
        await serving;
      });
    });

    describe("Unix socket", () => {
      it("listens on a path; the listener and both ends report it, family unix", TEST_OPTIONS, async () => {
        await withUnixServer(transport, {}, async (server, path) => {
          const unix = { hostname: "", port: 0, family: "unix", path };
          assert.deepEqual(server.listener.address, unix);
          assert.ok(lstatSync(path).isSocket(), "a socket file at the path");
          await Client.connect(server);
          const conn = await server.next();
          assert.deepEqual(conn.localAddress, unix);
          assert.deepEqual(conn.remoteAddress, unix);
          assert.equal(conn.tls, undefined);
        });
      });

      it("echoes bytes and half-closes in both directions", TEST_OPTIONS, async () => {
        await withUnixServer(transport, {}, async (server) => {
          const client = await Client.connect(server);
          const conn = await server.next();
          const sent = pattern(300_000);
          client.socket.end(sent);
          const checker = new PatternChecker();
          for (let chunk = await conn.read(); chunk !== null; chunk = await conn.read()) checker.add(chunk);
          assert.equal(checker.received, sent.length);
          assert.equal(checker.mismatchAt, -1, `data corrupted at byte ${checker.mismatchAt}`);
          await sleep(50); // still writable after the client's FIN
          await conn.write(enc.encode("bye"));
          await conn.closeWrite();
          await client.until(() => client.ended, "server FIN");
          assert.equal(client.text(), "bye");
          conn.close();
        });
      });

      it("STARTTLS over a Unix socket", TEST_OPTIONS, async () => {
        await withUnixServer(transport, {}, async (server, path) => {
          const { secure, upgraded } = await clientStartTls(server);
          const tlsConn = await upgraded;
          const client = await secure;
          assert.match(tlsConn.tls?.protocol ?? "", /^TLSv1\.[23]$/);
          assert.deepEqual(tlsConn.remoteAddress, { hostname: "", port: 0, family: "unix", path });
          assert.equal(peerName(client), "a.test");
          client.write("EHLO over tls\r\n");
          assert.equal(await readUntil(tlsConn, "\r\n"), "EHLO over tls\r\n");
          const reply = tlsReadUntil(client, "250 ok\r\n");
          await tlsConn.write(enc.encode("250 ok\r\n"));
          assert.equal(await reply, "250 ok\r\n");
          client.end();
          assert.equal(await tlsConn.read(), null);
          tlsConn.close();
        });
      });

      it("implicit TLS: listen({ path, tls }) hands over connections after the handshake", TEST_OPTIONS, async () => {
        await withUnixServer(transport, { tls: tlsOptions() }, async (server, path) => {
          const client = await tlsConnect(server, {});
          const conn = await server.next();
          assert.match(conn.tls?.protocol ?? "", /^TLSv1\.[23]$/);
          assert.equal(conn.remoteAddress.path, path);
          const greeting = tlsReadUntil(client, "220 hi\r\n");
          await conn.write(enc.encode("220 hi\r\n"));
          assert.equal(await greeting, "220 hi\r\n");
          conn.close();
        });
      });

      it("listener.close() removes the file and keeps accepted connections open", TEST_OPTIONS, async () => {
        await withUnixServer(transport, {}, async (server, path) => {
          const client = await Client.connect(server);
          const conn = await server.next();
          await withTimeout(server.listener.close(), 1000, "listener.close()");
          assert.equal(existsSync(path), false, "the socket file is gone");
          await assert.rejects(Client.connect(server), "a new connection was accepted after close()");
          const serving = echo(conn);
          client.write("still here");
          await client.waitForText("still here");
          client.socket.end();
          await serving;
        });
      });

      it("listener.close() leaves a file that replaced the socket alone", TEST_OPTIONS, async () => {
        await withUnixServer(transport, {}, async (server, path) => {
          rmSync(path);
          writeFileSync(path, "someone else's");
          await server.listener.close();
          assert.equal(readFileSync(path, "utf8"), "someone else's");
        });
      });

      it("listen() replaces a stale socket file; refuses a live one and a regular file", TEST_OPTIONS, async () => {
        const dir = mkdtempSync(join(tmpdir(), "smtp-unix-"));
        const path = join(dir, "smtp.sock");
        try {
          // A live socket: the first listener keeps it.
          const first = await transport.listen({ hostname: "", port: 0, path }, (conn) => conn.close());
          const inode = lstatSync(path).ino;
          await assert.rejects(
            transport.listen({ hostname: "", port: 0, path }, () => {}),
            /a server is listening on it already/,
          );
          assert.equal(lstatSync(path).ino, inode, "the live socket was not replaced");
          await first.close();
          // A stale one: left behind by a runtime that died (made here by renaming a bound socket away).
          const stale = net.createServer();
          await new Promise<void>((resolve) => stale.listen({ path: join(dir, "old.sock") }, resolve));
          renameSync(join(dir, "old.sock"), path);
          await new Promise((resolve) => stale.close(resolve));
          assert.ok(lstatSync(path).isSocket(), "a stale socket is there");
          const server = await TestServer.start(transport, { hostname: "", port: 0, path });
          try {
            await Client.connect(server);
            await server.next();
          } finally {
            await server.close();
          }
          // A regular file.
          writeFileSync(path, "not a socket");
          await assert.rejects(transport.listen({ hostname: "", port: 0, path }, () => {}), /not a socket/);
          assert.equal(readFileSync(path, "utf8"), "not a socket");
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      });
    });

    describe("TLS", () => {
      it("STARTTLS: 220 via startTls(), handshake, then data over TLS", TEST_OPTIONS, async () => {
        await withServer(transport, {}, async (server) => {
          const { secure, upgraded } = await clientStartTls(server);
          const tlsConn = await upgraded;
          const client = await secure;
          assert.match(tlsConn.tls?.protocol ?? "", /^TLSv1\.[23]$/);
          assert.ok(tlsConn.tls?.cipher, "cipher is set");
          assert.equal(tlsConn.remoteAddress.port, client.localPort);
          assert.equal(peerName(client), "a.test");
          client.write("EHLO over tls\r\n");
          assert.equal(await readUntil(tlsConn, "\r\n"), "EHLO over tls\r\n");
          const reply = tlsReadUntil(client, "250 ok\r\n");
          await tlsConn.write(enc.encode("250 ok\r\n"));
          assert.equal(await reply, "250 ok\r\n");
          client.end();
          assert.equal(await tlsConn.read(), null);
          tlsConn.close();
        });
      });

      it("STARTTLS: after the client's close_notify + FIN the server can still reply", TEST_OPTIONS, async () => {
        await withServer(transport, {}, async (server) => {
          const { secure, upgraded } = await clientStartTls(server);
          const tlsConn = await upgraded;
          const client = await secure;
          let ended = false;
          client.on("end", () => ended = true);
          const closed = new Promise((resolve) => client.once("close", resolve));
          client.end("QUIT\r\n");
          assert.equal(await readAll(tlsConn), "QUIT\r\n");
          if (transport.name === "bun") {
            // Known Bun 1.4 limitation: its node:tls over a stream answers close_notify by
            // shutting the session down, so a reply is refused (cleanly, without a crash).
            await assert.rejects(tlsConn.write(enc.encode("221 bye\r\n")));
            await withTimeout(closed, 2000, "client close");
            return;
          }
          const bye = tlsReadUntil(client, "221 bye\r\n");
          await tlsConn.write(enc.encode("221 bye\r\n"));
          assert.equal(await bye, "221 bye\r\n");
          await tlsConn.closeWrite();
          await withTimeout(closed, 2000, "client close");
          assert.ok(ended, "the client saw the server's end of the stream");
          tlsConn.close();
        });
      });

      it(
        "STARTTLS: plaintext sent along with the command is never read after the handshake",
        TEST_OPTIONS,
        async () => {
          await withServer(transport, {}, async (server) => {
            const injected = "STARTTLS\r\nMAIL FROM:<evil@example.com>\r\n";
            const { secure, upgraded } = await clientStartTls(server, injected);
            const tlsConn = await upgraded;
            const client = await secure;
            client.end("QUIT\r\n");
            assert.equal(await readAll(tlsConn), "QUIT\r\n");
          });
        },
      );

      it(
        "STARTTLS: plaintext sent before the 220 is dropped or fails the handshake, never read",
        TEST_OPTIONS,
        async () => {
          await withServer(transport, {}, async (server) => {
            const client = await Client.connect(server);
            const conn = await server.next();
            client.write("STARTTLS\r\n");
            assert.equal(await readUntil(conn, "\r\n"), "STARTTLS\r\n");
            // The injection arrives as a separate segment while the server is busy.
            await sleep(30);
            client.write("MAIL FROM:<evil@example.com>\r\n");
            await sleep(50);
            const upgraded = conn.startTls(tlsOptions({ handshakeTimeoutMs: 2000 }), enc.encode("220 ready\r\n"));
            upgraded.then((c) => server.track(c), () => {});
            await client.waitForText("220 ready\r\n");
            const secure = tlsConnect(server, { socket: client.detach() });
            secure.catch(() => {});
            let tlsConn: Connection;
            try {
              tlsConn = await upgraded;
            } catch {
              // Fed to the TLS layer as a bogus ClientHello: also safe.
              await assert.rejects(secure);
              return;
            }
            (await secure).end("QUIT\r\n");
            assert.equal(await readAll(tlsConn), "QUIT\r\n");
          });
        },
      );

      it("STARTTLS: SNI picks the certificate", TEST_OPTIONS, async () => {
        await withServer(transport, {}, async (server) => {
          const { secure, upgraded } = await clientStartTls(server, undefined, "b.test");
          const tlsConn = await upgraded;
          const client = await secure;
          assert.equal(peerName(client), "b.test");
          assert.equal(tlsConn.tls?.serverName, "b.test");
        });
      });

      it("implicit TLS: listen({ tls }) hands over connections after the handshake", TEST_OPTIONS, async () => {
        await withServer(transport, { tls: tlsOptions() }, async (server) => {
          const client = await tlsConnect(server, {});
          const conn = await server.next();
          assert.match(conn.tls?.protocol ?? "", /^TLSv1\.[23]$/);
          assert.equal(peerName(client), "a.test");
          // A greeting written straight away must arrive (Bun drops writes made before its handshake).
          const greeting = tlsReadUntil(client, "220 hi\r\n");
          await conn.write(enc.encode("220 hi\r\n"));
          assert.equal(await greeting, "220 hi\r\n");
          client.write("QUIT\r\n");
          assert.equal(await readUntil(conn, "\r\n"), "QUIT\r\n");
          const bye = tlsReadUntil(client, "221 bye\r\n");
          await conn.write(enc.encode("221 bye\r\n"));
          await bye;
          conn.close();
        });
      });

      it("implicit TLS: SNI picks the certificate", TEST_OPTIONS, async () => {
        await withServer(transport, { tls: tlsOptions() }, async (server) => {
          const b = await tlsConnect(server, { servername: "b.test" });
          const connB = await server.next();
          assert.equal(peerName(b), "b.test");
          assert.equal(connB.tls?.serverName, "b.test");
          const a = await tlsConnect(server, { servername: "a.test" });
          await server.next();
          assert.equal(peerName(a), "a.test");
          // A name the callback does not know gets the default certificate.
          const other = await tlsConnect(server, { servername: "c.test" });
          await server.next();
          assert.equal(peerName(other), "a.test");
        });
      });

      it("a failed STARTTLS handshake rejects and leaves other connections alone", TEST_OPTIONS, async () => {
        await withServer(transport, {}, async (server) => {
          const bystander = await Client.connect(server);
          const bystanderConn = await server.next();
          const serving = echo(bystanderConn);

          const client = await Client.connect(server);
          const conn = await server.next();
          client.write("STARTTLS\r\n");
          await readUntil(conn, "\r\n");
          const upgraded = conn.startTls(tlsOptions({ handshakeTimeoutMs: 2000 }), enc.encode("220 ready\r\n"));
          upgraded.catch(() => {});
          await client.waitForText("220 ready\r\n");
          client.write("this is not a TLS ClientHello\r\n\r\n");
          await assert.rejects(withTimeout(upgraded, 3000, "failed handshake"));
          await client.until(() => client.closed || client.ended, "the failed connection closing");
          assert.equal(await conn.read(), null, "the plain connection is closed too");

          bystander.write("still fine");
          await bystander.waitForText("still fine");
          bystander.socket.end();
          await serving;
        });
      });

      it("a stalled handshake times out (handshakeTimeoutMs)", TEST_OPTIONS, async () => {
        await withServer(transport, {}, async (server) => {
          const client = await Client.connect(server);
          const conn = await server.next();
          const started = Date.now();
          const upgraded = conn.startTls(tlsOptions({ handshakeTimeoutMs: 300 }), enc.encode("220 ready\r\n"));
          await assert.rejects(withTimeout(upgraded, 2000, "handshake timeout"));
          assert.ok(Date.now() - started >= 250, "rejected too early");
          await client.until(() => client.closed || client.ended, "the stalled connection closing");
        });
      });

      it("implicit TLS: a failed handshake closes only that connection", TEST_OPTIONS, async () => {
        await withServer(transport, { tls: tlsOptions({ handshakeTimeoutMs: 2000 }) }, async (server) => {
          const bad = await Client.connect(server);
          bad.write("EHLO plain text\r\n\r\n");
          await bad.until(() => bad.closed || bad.ended, "the bad connection closing");
          const good = await tlsConnect(server, {});
          const conn = await server.next("the good TLS connection (the bad one must not be handed over)");
          good.write("ok\r\n");
          assert.equal(await readUntil(conn, "\r\n"), "ok\r\n");
        });
      });
    });
  });
}

/** The raw ClientHello record(s) a node:tls client sends with SNI `servername`. */
function captureClientHello(servername: string): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const chunks: Uint8Array[] = [];
    const server = net.createServer((socket) => {
      socket.on("data", (chunk: Uint8Array) => {
        chunks.push(chunk);
        const data = Buffer.concat(chunks);
        if (data.length >= 5 && data.length >= 5 + data.readUInt16BE(3)) {
          socket.destroy();
          server.close();
          resolve(new Uint8Array(data.subarray(0, 5 + data.readUInt16BE(3))));
        }
      });
      socket.on("error", () => {});
    });
    server.listen(0, "127.0.0.1", () => {
      const client = tls.connect({
        host: "127.0.0.1",
        port: (server.address() as net.AddressInfo).port,
        servername,
        rejectUnauthorized: false,
      });
      client.on("error", () => {});
      setTimeout(() => {
        client.destroy();
        server.close();
        reject(new Error("no ClientHello captured"));
      }, 3000).unref?.();
    });
  });
}

describe("ClientHello SNI parser (Bun's SNI path)", () => {
  it("finds the name only once the ClientHello is whole, also across split records", TEST_OPTIONS, async () => {
    const { clientHelloServerName } = await import("../src/transport/client_hello.ts");
    const record = await captureClientHello("mail.example.test");
    assert.equal(record[0], 22, "a handshake record");
    assert.equal(clientHelloServerName(record), "mail.example.test");
    for (const cut of [0, 1, 4, 5, 9, 40, record.length - 1]) {
      assert.equal(clientHelloServerName(record.subarray(0, cut)), undefined, `prefix of ${cut} bytes`);
    }
    // The same handshake message split over two records.
    const message = record.subarray(5);
    const frame = (part: Uint8Array) => [22, record[1], record[2], part.length >> 8, part.length & 0xff, ...part];
    const split = new Uint8Array([...frame(message.subarray(0, 3)), ...frame(message.subarray(3))]);
    assert.equal(clientHelloServerName(split.subarray(0, split.length - 1)), undefined);
    assert.equal(clientHelloServerName(split), "mail.example.test");
    // Not a ClientHello: no name, so the TLS layer gets to reject it.
    assert.equal(clientHelloServerName(enc.encode("EHLO plain text\r\n")), "");
    assert.equal(clientHelloServerName(new Uint8Array([22, 3, 1, 0, 4, 2, 0, 0, 0])), "");
  });
});
