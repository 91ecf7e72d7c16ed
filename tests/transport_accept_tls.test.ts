/**
 * `Connection.acceptTls()` (implicit TLS on a plain listener, after the server may have read some
 * bytes itself) and `PrefixedConnection` (src/transport/prefixed.ts), over real sockets for every
 * transport of the runtime, run under all three runtimes:
 *
 *   deno test -A tests/transport_accept_tls.test.ts
 *   bun test ./tests/transport_accept_tls.test.ts
 *   node --import tsx --test tests/transport_accept_tls.test.ts
 *
 * Clients are node:net / node:tls sockets; certificates are made with openssl at run time.
 */
import { describe, it } from "node:test";
import { Buffer } from "node:buffer";
import assert from "node:assert/strict";
import * as net from "node:net";
import { Duplex } from "node:stream";
import * as tls from "node:tls";
import { TRANSPORTS, withTimeout } from "./helpers.ts";
import { scratchFolder, type TestCertificate } from "./scratch.ts";
import { PrefixedConnection } from "../src/transport/prefixed.ts";
import type {
  Connection,
  Listener,
  SocketAddress,
  TlsInfo,
  TlsServerOptions,
  Transport,
} from "../src/transport/types.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();
/** Per-test limit inside the test body (below the runner's limit, so the message says what hung). */
const BODY_TIMEOUT_MS = 8000;
const TEST_OPTIONS = { timeout: 15_000 };
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

// ---------------------------------------------------------------------------
// certificates and TLS options

let certCache: { a: TestCertificate; b: TestCertificate } | undefined;

/** Two throw-away self-signed certificates, for `a.test` and `b.test`. */
function certs(): { a: TestCertificate; b: TestCertificate } {
  if (certCache) return certCache;
  const scratch = scratchFolder("accept-tls");
  certCache = {
    a: scratch.selfSigned("a", { cn: "a.test", san: "DNS:a.test" }),
    b: scratch.selfSigned("b", { cn: "b.test", san: "DNS:b.test" }),
  };
  return certCache;
}

/** The server's TLS options in two forms: one certificate, and SNI (which Bun's transport handles apart). */
interface TlsVariant {
  readonly name: string;
  /** The SNI name the client sends. */
  readonly servername: string;
  /** The CN of the certificate the client must get. */
  readonly expectedCn: string;
  options(extra?: Partial<TlsServerOptions>): TlsServerOptions;
}

const VARIANTS: readonly TlsVariant[] = [
  {
    name: "one certificate",
    servername: "a.test",
    expectedCn: "a.test",
    options: (extra = {}) => ({ cert: certs().a.cert, key: certs().a.key, handshakeTimeoutMs: 5000, ...extra }),
  },
  {
    name: "SNI",
    servername: "b.test",
    expectedCn: "b.test",
    options: (extra = {}) => {
      const { a, b } = certs();
      return {
        cert: a.cert,
        key: a.key,
        sni: (name) => (name === "b.test" ? { cert: b.cert, key: b.key } : undefined),
        handshakeTimeoutMs: 5000,
        ...extra,
      };
    },
  },
];

// ---------------------------------------------------------------------------
// server side

/** A plain listener plus everything a test opened, so that all of it is closed afterwards. */
class TestServer {
  listener!: Listener;
  #accepted: Connection[] = [];
  #waiters: Array<(conn: Connection) => void> = [];
  #closables: Array<{ close?(): unknown; destroy?(): unknown }> = [];

  static async start(transport: Transport): Promise<TestServer> {
    const server = new TestServer();
    server.listener = await transport.listen({ hostname: "127.0.0.1", port: 0 }, (conn) => {
      server.track(conn);
      const waiter = server.#waiters.shift();
      if (waiter) waiter(conn);
      else server.#accepted.push(conn);
    });
    return server;
  }

  get port(): number {
    return this.listener.address.port;
  }

  /** The next accepted connection. */
  next(): Promise<Connection> {
    const ready = this.#accepted.shift();
    if (ready) return Promise.resolve(ready);
    return withTimeout(new Promise((resolve) => this.#waiters.push(resolve)), 3000, "accepted connection");
  }

  track<T extends { close?(): unknown; destroy?(): unknown }>(thing: T): T {
    this.#closables.push(thing);
    return thing;
  }

  /** Tracks the connection a TLS upgrade resolves with. */
  trackUpgrade(upgrade: Promise<Connection>): Promise<Connection> {
    upgrade.then((conn) => this.track(conn), () => {});
    return upgrade;
  }

  async close(): Promise<void> {
    for (const thing of this.#closables.reverse()) {
      try {
        if (thing.destroy) thing.destroy();
        else thing.close?.();
      } catch { /* closing is best effort */ }
    }
    await withTimeout(this.listener.close(), 2000, "listener.close()");
  }
}

/** Runs `body` with a fresh server and always closes everything. */
async function withServer(transport: Transport, body: (server: TestServer) => Promise<void>): Promise<void> {
  const server = await TestServer.start(transport);
  try {
    await withTimeout(body(server), BODY_TIMEOUT_MS, "test body");
  } finally {
    await server.close();
  }
}

/** Reads from `conn` until the bytes read so far contain `needle` (or EOF); returns them all. */
async function readUntil(conn: Connection, needle: string): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let text = "";
  while (!text.includes(needle)) {
    const chunk = await conn.read();
    if (chunk === null) break;
    chunks.push(chunk);
    text += Buffer.from(chunk).toString("latin1");
  }
  return new Uint8Array(Buffer.concat(chunks));
}

/** Reads exactly `length` bytes (fails on an early EOF). */
async function readBytes(conn: Connection, length: number): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let total = 0;
  while (total < length) {
    const chunk = await conn.read();
    if (chunk === null) throw new Error(`EOF after ${total} of ${length} bytes`);
    chunks.push(chunk);
    total += chunk.length;
  }
  return new Uint8Array(Buffer.concat(chunks));
}

/** A byte pattern that shows lost, doubled or reordered data. */
function pattern(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = Math.imul(i + seed, 2654435761) >>> 24;
  return out;
}

// ---------------------------------------------------------------------------
// client side

/**
 * A Duplex over a node:net socket for node:tls to run on, which shapes the
 * client's first write (the ClientHello): `prefix` goes out in front of it in
 * the same socket write (a proxy's PROXY header), or it is split in two
 * writes `splitAt` bytes in, 50 ms apart.
 */
class ShapingDuplex extends Duplex {
  #socket: net.Socket;
  #prefix: Uint8Array | undefined;
  #splitAt: number | undefined;

  constructor(socket: net.Socket, shape: { prefix?: Uint8Array; splitAt?: number }) {
    super({ allowHalfOpen: true });
    this.#socket = socket;
    this.#prefix = shape.prefix;
    this.#splitAt = shape.splitAt;
    socket.on("data", (chunk: Uint8Array) => {
      if (!this.push(chunk)) socket.pause();
    });
    socket.on("end", () => this.push(null));
    socket.on("error", (err) => this.destroy(err));
  }

  override _read(): void {
    this.#socket.resume();
  }

  override _write(chunk: Uint8Array, _encoding: string, callback: (err?: Error | null) => void): void {
    let data = chunk;
    if (this.#prefix) {
      data = Buffer.concat([this.#prefix, chunk]);
      this.#prefix = undefined;
    }
    const at = this.#splitAt;
    if (at !== undefined) {
      this.#splitAt = undefined;
      this.#socket.write(data.subarray(0, at));
      setTimeout(() => this.#socket.write(data.subarray(at), (err) => callback(err)), 50);
      return;
    }
    this.#socket.write(data, (err) => callback(err));
  }

  override _final(callback: (err?: Error | null) => void): void {
    this.#socket.end(() => callback());
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    this.#socket.destroy();
    callback(err);
  }
}

/** Connects a plain node:net socket. */
function connectRaw(server: TestServer): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = server.track(net.connect({ host: "127.0.0.1", port: server.port, allowHalfOpen: true }));
    socket.once("error", reject);
    socket.once("connect", () => {
      socket.off("error", reject);
      socket.on("error", () => {});
      resolve(socket);
    });
  });
}

/**
 * Starts a node:tls client handshake: on a new connection, or over `over` (a
 * raw socket or a {@link ShapingDuplex}). The promise resolves once it is done.
 */
function tlsClient(
  server: TestServer,
  variant: TlsVariant,
  over?: Duplex,
): Promise<tls.TLSSocket> {
  const secure = promiseTls(server, variant, over);
  secure.catch(() => {});
  return secure;
}

function promiseTls(server: TestServer, variant: TlsVariant, over?: Duplex): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const secure = tls.connect({
      ...(over ? { socket: over } : { host: "127.0.0.1", port: server.port }),
      servername: variant.servername,
      rejectUnauthorized: false, // self-signed: the tests check the certificate's name instead
    }, () => {
      secure.off("error", reject);
      secure.on("error", () => {});
      resolve(secure);
    });
    server.track(secure);
    secure.once("error", reject);
  });
}

/** Reads from a client TLS socket until `needle` arrives. */
function clientReadUntil(secure: tls.TLSSocket, needle: string | number): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const chunks: Uint8Array[] = [];
    let total = 0;
    const done = () =>
      typeof needle === "number" ? total >= needle : Buffer.concat(chunks).toString("latin1").includes(needle);
    const onData = (chunk: Uint8Array) => {
      chunks.push(chunk);
      total += chunk.length;
      if (done()) {
        secure.off("data", onData);
        secure.off("close", onClose);
        resolve(new Uint8Array(Buffer.concat(chunks)));
      }
    };
    const onClose = () => reject(new Error(`closed before ${JSON.stringify(needle)}; got ${total} bytes`));
    secure.on("data", onData);
    secure.once("close", onClose);
  });
}

function peerCn(secure: tls.TLSSocket): string | undefined {
  const subject = secure.getPeerCertificate()?.subject as { CN?: string | string[] } | undefined;
  return Array.isArray(subject?.CN) ? subject.CN[0] : subject?.CN;
}

/** Waits until `socket` is closed or has seen the server's end of the stream. */
function closedOrEnded(socket: net.Socket): Promise<void> {
  if (socket.destroyed || socket.readableEnded) return Promise.resolve();
  return withTimeout(
    new Promise<void>((resolve) => {
      socket.once("close", () => resolve());
      socket.once("end", () => resolve());
      socket.resume(); // 'end' comes only on a flowing stream
    }),
    3000,
    "the client socket closing",
  );
}

/**
 * Checks a finished upgrade: the certificate, the TLS info and addresses of
 * the new connection, and application data both ways (short lines, then
 * 256 KiB each way at once).
 */
async function assertTlsWorks(
  raw: Connection,
  conn: Connection,
  client: tls.TLSSocket,
  variant: TlsVariant,
  clientPort = client.localPort,
): Promise<void> {
  assert.equal(peerCn(client), variant.expectedCn);
  assert.match(conn.tls?.protocol ?? "", /^TLSv1\.[23]$/);
  assert.equal(conn.tls?.protocol, client.getProtocol());
  assert.ok((conn.tls?.cipher ?? "") !== "", "a cipher is named");
  if (variant.name === "SNI") assert.equal(conn.tls?.serverName, variant.servername);
  assert.deepEqual(conn.localAddress, raw.localAddress);
  assert.deepEqual(conn.remoteAddress, raw.remoteAddress);
  assert.equal(conn.remoteAddress.port, clientPort, "the client's port");

  client.write("hello from the client\r\n");
  assert.equal(dec.decode(await readUntil(conn, "\r\n")), "hello from the client\r\n");
  const greeting = clientReadUntil(client, "\r\n");
  await conn.write(enc.encode("hello from the server\r\n"));
  assert.equal(dec.decode(await greeting), "hello from the server\r\n");

  const size = 256 * 1024;
  const up = pattern(size, 1);
  const down = pattern(size, 2);
  const received = clientReadUntil(client, size);
  client.write(up);
  const [fromClient] = await Promise.all([readBytes(conn, size), conn.write(down)]);
  assert.ok(Buffer.from(fromClient).equals(up), "client-to-server data arrived intact");
  assert.ok(Buffer.from(await received).equals(down), "server-to-client data arrived intact");

  // The client's end of the stream reaches the server.
  client.end();
  assert.equal(await conn.read(), null);
}

// ---------------------------------------------------------------------------
// tests over real sockets

for (const transport of TRANSPORTS) {
  for (const variant of VARIANTS) {
    describe(`${transport.name} transport: acceptTls (${variant.name})`, () => {
      it("no bytes read first: acceptTls(options) right away", TEST_OPTIONS, async () => {
        await withServer(transport, async (server) => {
          const secure = tlsClient(server, variant);
          const raw = await server.next();
          const conn = await server.trackUpgrade(raw.acceptTls(variant.options()));
          await assertTlsWorks(raw, conn, await secure, variant);
        });
      });

      it("no bytes read first, the ClientHello already arrived", TEST_OPTIONS, async () => {
        await withServer(transport, async (server) => {
          const secure = tlsClient(server, variant);
          const raw = await server.next();
          await sleep(100);
          const conn = await server.trackUpgrade(raw.acceptTls(variant.options()));
          await assertTlsWorks(raw, conn, await secure, variant);
        });
      });

      it("an empty `received` (a PROXY header with nothing behind it) is the same as none", TEST_OPTIONS, async () => {
        await withServer(transport, async (server) => {
          const secure = tlsClient(server, variant);
          const raw = await server.next();
          await sleep(100);
          const conn = await server.trackUpgrade(raw.acceptTls(variant.options(), new Uint8Array(0)));
          await assertTlsWorks(raw, conn, await secure, variant);
        });
      });

      it("the first chunk read first, then handed to acceptTls", TEST_OPTIONS, async () => {
        await withServer(transport, async (server) => {
          const secure = tlsClient(server, variant);
          const raw = await server.next();
          const first = await raw.read();
          assert.ok(first !== null && first.length > 5, "a chunk of the ClientHello");
          assert.equal(first[0], 22, "a TLS handshake record");
          const conn = await server.trackUpgrade(raw.acceptTls(variant.options(), first));
          await assertTlsWorks(raw, conn, await secure, variant);
        });
      });

      it(
        "a ClientHello in two writes: the first part read first, the rest still on the socket",
        TEST_OPTIONS,
        async () => {
          await withServer(transport, async (server) => {
            const socket = await connectRaw(server);
            const raw = await server.next();
            const secure = tlsClient(server, variant, new ShapingDuplex(socket, { splitAt: 7 }));
            const first = await raw.read();
            assert.deepEqual(first?.length, 7, "only the first write is read");
            assert.equal(first![0], 22);
            const conn = await server.trackUpgrade(raw.acceptTls(variant.options(), first!));
            await assertTlsWorks(raw, conn, await secure, variant, socket.localPort);
          });
        },
      );

      it("a PROXY header in front of the ClientHello, cut off with PrefixedConnection", TEST_OPTIONS, async () => {
        await withServer(transport, async (server) => {
          const socket = await connectRaw(server);
          const raw = await server.next();
          const header = "PROXY TCP4 192.0.2.1 198.51.100.2 40000 465\r\n";
          const secure = tlsClient(server, variant, new ShapingDuplex(socket, { prefix: enc.encode(header) }));
          const read = await readUntil(raw, "\r\n");
          const eol = Buffer.from(read).indexOf("\r\n");
          assert.equal(Buffer.from(read.subarray(0, eol + 2)).toString("latin1"), header);
          const rest = read.subarray(eol + 2);
          assert.ok(rest.length > 0, "the ClientHello came in the same read as the header");
          assert.equal(rest[0], 22, "a TLS handshake record follows the header");
          const prefixed = new PrefixedConnection(raw, rest);
          const conn = await server.trackUpgrade(prefixed.acceptTls(variant.options()));
          await assertTlsWorks(raw, conn, await secure, variant, socket.localPort);
        });
      });

      it("a PROXY header, the rest split between the prefix and `received`", TEST_OPTIONS, async () => {
        await withServer(transport, async (server) => {
          const socket = await connectRaw(server);
          const raw = await server.next();
          const header = "PROXY TCP6 2001:db8::1 2001:db8::2 40000 465\r\n";
          const secure = tlsClient(server, variant, new ShapingDuplex(socket, { prefix: enc.encode(header) }));
          const read = await readUntil(raw, "\r\n");
          const rest = read.subarray(Buffer.from(read).indexOf("\r\n") + 2);
          assert.ok(rest.length > 20, `${rest.length} bytes of ClientHello behind the header`);
          const prefixed = new PrefixedConnection(raw, rest.subarray(0, 10));
          const conn = await server.trackUpgrade(prefixed.acceptTls(variant.options(), rest.subarray(10)));
          await assertTlsWorks(raw, conn, await secure, variant, socket.localPort);
        });
      });

      it("a PROXY header alone, the ClientHello in a later write", TEST_OPTIONS, async () => {
        await withServer(transport, async (server) => {
          const socket = await connectRaw(server);
          const raw = await server.next();
          const header = "PROXY UNKNOWN\r\n";
          socket.write(header);
          assert.equal(dec.decode(await readUntil(raw, "\r\n")), header);
          const prefixed = new PrefixedConnection(raw, new Uint8Array(0));
          const upgrade = server.trackUpgrade(prefixed.acceptTls(variant.options()));
          const secure = tlsClient(server, variant, socket);
          const conn = await upgrade;
          await assertTlsWorks(raw, conn, await secure, variant, socket.localPort);
        });
      });

      it("a failed handshake (the client sends garbage) rejects and closes the connection", TEST_OPTIONS, async () => {
        await withServer(transport, async (server) => {
          const socket = await connectRaw(server);
          const raw = await server.next();
          const upgrade = raw.acceptTls(variant.options());
          upgrade.catch(() => {});
          socket.write("EHLO this is not a TLS ClientHello\r\n\r\n");
          await assert.rejects(withTimeout(upgrade, 4000, "the failed handshake"));
          await closedOrEnded(socket);
          assert.equal(await withTimeout(raw.read(), 1000, "read() after the failure"), null);
        });
      });

      it("a failed handshake on bytes read first rejects and closes the connection", TEST_OPTIONS, async () => {
        await withServer(transport, async (server) => {
          const socket = await connectRaw(server);
          const raw = await server.next();
          socket.write("EHLO this is not a TLS ClientHello\r\n\r\n");
          const garbage = await readUntil(raw, "\r\n\r\n");
          const upgrade = raw.acceptTls(variant.options(), garbage);
          upgrade.catch(() => {});
          await assert.rejects(withTimeout(upgrade, 4000, "the failed handshake"));
          await closedOrEnded(socket);
          assert.equal(await withTimeout(raw.read(), 1000, "read() after the failure"), null);
        });
      });

      it("a client that leaves mid-handshake fails it at once, not at the timeout", TEST_OPTIONS, async () => {
        await withServer(transport, async (server) => {
          const socket = await connectRaw(server);
          const raw = await server.next();
          socket.write(new Uint8Array([22, 3, 1, 2, 0, 1, 0])); // the start of a ClientHello record
          const first = await raw.read();
          assert.equal(first?.[0], 22);
          const started = Date.now();
          const upgrade = raw.acceptTls(variant.options({ handshakeTimeoutMs: 6000 }), first!);
          upgrade.catch(() => {});
          socket.end();
          await assert.rejects(withTimeout(upgrade, 4000, "the abandoned handshake"));
          assert.ok(Date.now() - started < 3000, `rejected after ${Date.now() - started} ms`);
        });
      });
    });
  }

  describe(`${transport.name} transport: PrefixedConnection.startTls`, () => {
    it(
      "drops the plaintext that came behind STARTTLS: it is never read after the handshake",
      TEST_OPTIONS,
      async () => {
        await withServer(transport, async (server) => {
          const socket = await connectRaw(server);
          const raw = await server.next();
          let received = "";
          const onData = (chunk: Uint8Array) => received += dec.decode(chunk);
          socket.on("data", onData);
          socket.write("STARTTLS\r\nMAIL FROM:<evil@example.com>\r\n");
          const read = await readUntil(raw, "\r\n");
          const eol = Buffer.from(read).indexOf("\r\n");
          assert.equal(dec.decode(read.subarray(0, eol)), "STARTTLS");
          const rest = read.subarray(eol + 2);
          // On loopback one write arrives in one read; if not, the injected line is still on the socket.
          const prefixed = new PrefixedConnection(raw, rest);
          const upgrade = server.trackUpgrade(prefixed.startTls(VARIANTS[0].options(), enc.encode("220 ready\r\n")));
          const deadline = Date.now() + 3000;
          while (!received.includes("\r\n") && Date.now() < deadline) await sleep(5);
          assert.equal(received, "220 ready\r\n");
          socket.off("data", onData);
          const secure = await tlsClient(server, VARIANTS[0], socket);
          const conn = await upgrade;
          secure.end("QUIT\r\n");
          let text = "";
          for (let chunk = await conn.read(); chunk !== null; chunk = await conn.read()) text += dec.decode(chunk);
          assert.equal(text, "QUIT\r\n");
        });
      },
    );
  });
}

// ---------------------------------------------------------------------------
// PrefixedConnection over a fake connection

/** A scripted inner connection that records what is done to it. */
class FakeConnection implements Connection {
  readonly localAddress: SocketAddress = { hostname: "127.0.0.1", port: 25, family: "IPv4" };
  readonly remoteAddress: SocketAddress = { hostname: "192.0.2.1", port: 40000, family: "IPv4" };
  tls: TlsInfo | undefined = undefined;
  readonly reads: Array<Uint8Array | null>;
  readonly calls: string[] = [];
  readonly written: string[] = [];
  /** What `acceptTls` got as `received`. */
  accepted: Array<string | undefined> = [];
  readonly upgraded: Connection = { tls: { protocol: "TLSv1.3", cipher: "X" } } as Connection;

  constructor(...reads: string[]) {
    this.reads = reads.map((r) => enc.encode(r));
  }

  read(): Promise<Uint8Array | null> {
    this.calls.push("read");
    return Promise.resolve(this.reads.shift() ?? null);
  }
  write(data: Uint8Array): Promise<void> {
    this.written.push(dec.decode(data));
    return Promise.resolve();
  }
  closeWrite(): Promise<void> {
    this.calls.push("closeWrite");
    return Promise.resolve();
  }
  close(): void {
    this.calls.push("close");
  }
  startTls(_options: TlsServerOptions, reply: Uint8Array): Promise<Connection> {
    this.calls.push(`startTls ${JSON.stringify(dec.decode(reply))}`);
    return Promise.resolve(this.upgraded);
  }
  acceptTls(_options: TlsServerOptions, received?: Uint8Array): Promise<Connection> {
    this.calls.push("acceptTls");
    this.accepted.push(received === undefined ? undefined : dec.decode(received));
    return Promise.resolve(this.upgraded);
  }
}

const FAKE_TLS: TlsServerOptions = { cert: "", key: "" };

async function readText(conn: Connection): Promise<string | null> {
  const chunk = await conn.read();
  return chunk === null ? null : dec.decode(chunk);
}

describe("PrefixedConnection", () => {
  it("read() returns the prefix first, then the inner reads", async () => {
    const inner = new FakeConnection("second", "third");
    const conn = new PrefixedConnection(inner, enc.encode("first"));
    assert.equal(await readText(conn), "first");
    assert.deepEqual(inner.calls, [], "the prefix came without touching the inner connection");
    assert.equal(await readText(conn), "second");
    assert.equal(await readText(conn), "third");
    assert.equal(await readText(conn), null);
    assert.deepEqual(inner.calls, ["read", "read", "read"]);
  });

  it("an empty prefix is skipped", async () => {
    const inner = new FakeConnection("data");
    const conn = new PrefixedConnection(inner, new Uint8Array(0));
    assert.equal(await readText(conn), "data");
    assert.equal(await readText(conn), null);
  });

  it("passes writes, closeWrite, close and the addresses through", async () => {
    const inner = new FakeConnection();
    inner.tls = { protocol: "TLSv1.3", cipher: "TLS_AES_128_GCM_SHA256" };
    const conn = new PrefixedConnection(inner, enc.encode("x"));
    assert.equal(conn.localAddress, inner.localAddress);
    assert.equal(conn.remoteAddress, inner.remoteAddress);
    assert.equal(conn.tls, inner.tls);
    await conn.write(enc.encode("250 OK\r\n"));
    await conn.closeWrite();
    assert.deepEqual(inner.written, ["250 OK\r\n"]);
    conn.close();
    assert.deepEqual(inner.calls, ["closeWrite", "close"]);
  });

  it("close() drops the unread prefix", async () => {
    const inner = new FakeConnection();
    const conn = new PrefixedConnection(inner, enc.encode("unread"));
    conn.close();
    assert.equal(await readText(conn), null);
  });

  it("startTls() drops an unread prefix: it is plaintext sent before the 220", async () => {
    const inner = new FakeConnection("after");
    const conn = new PrefixedConnection(inner, enc.encode("MAIL FROM:<evil@example.com>\r\n"));
    const upgraded = await conn.startTls(FAKE_TLS, enc.encode("220 ready\r\n"));
    assert.equal(upgraded, inner.upgraded);
    assert.deepEqual(inner.calls, ['startTls "220 ready\\r\\n"']);
    assert.equal(await readText(conn), "after", "the prefix is gone");
  });

  it("acceptTls() hands the unread prefix to the inner acceptTls", async () => {
    const inner = new FakeConnection();
    const upgraded = await new PrefixedConnection(inner, enc.encode("hello")).acceptTls(FAKE_TLS);
    assert.equal(upgraded, inner.upgraded);
    assert.deepEqual(inner.accepted, ["hello"]);
  });

  it("acceptTls() puts the prefix in front of `received`", async () => {
    const inner = new FakeConnection();
    await new PrefixedConnection(inner, enc.encode("hel")).acceptTls(FAKE_TLS, enc.encode("lo"));
    assert.deepEqual(inner.accepted, ["hello"]);
  });

  it("acceptTls() after the prefix was read passes only `received` (or nothing)", async () => {
    const inner = new FakeConnection();
    const conn = new PrefixedConnection(inner, enc.encode("read already"));
    assert.equal(await readText(conn), "read already");
    await conn.acceptTls(FAKE_TLS, enc.encode("new"));
    const other = new PrefixedConnection(inner, new Uint8Array(0));
    await other.acceptTls(FAKE_TLS);
    assert.deepEqual(inner.accepted, ["new", undefined]);
  });
});
