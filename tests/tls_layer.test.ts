/**
 * The TLS layer all transports share (src/transport/node_tls.ts): secure
 * contexts, the SNI callback, and the server handshake over a node socket or
 * over a wrapped byte source, with what it resolves to and how it fails.
 *
 *   node --import tsx --test tests/tls_layer.test.ts
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { once } from "node:events";
import * as net from "node:net";
import * as tls from "node:tls";
import {
  createServerSecureContext,
  NodeTlsConnection,
  sniCallback,
  upgradeDuplexToTls,
} from "../src/transport/node_tls.ts";
import { ConnectionDuplex } from "../src/transport/connection_duplex.ts";
import type { Connection, TlsServerOptions } from "../src/transport/types.ts";
import { bytes, FakeConnection, text } from "./fake_connection.ts";
import { scratchFolder, type TestCertificate } from "./scratch.ts";

let certCache: { a: TestCertificate; b: TestCertificate } | undefined;
/** Two throw-away self-signed certificates, for `a.test` and `b.test`. */
function certs(): { a: TestCertificate; b: TestCertificate } {
  if (certCache) return certCache;
  const scratch = scratchFolder("tls-layer");
  certCache = {
    a: scratch.selfSigned("a", { cn: "a.test", san: "DNS:a.test" }),
    b: scratch.selfSigned("b", { cn: "b.test", san: "DNS:b.test" }),
  };
  return certCache;
}

const ADDRESSES = {
  local: { hostname: "127.0.0.1", port: 465, family: "IPv4" as const },
  remote: { hostname: "127.0.0.1", port: 40000, family: "IPv4" as const },
};

/** `sniCallback(options)` as a promise for `name`. */
function askSni(options: TlsServerOptions, name: string): Promise<tls.SecureContext | undefined> {
  const callback = sniCallback(options)!;
  return new Promise((resolve, reject) => callback(name, (err, ctx) => err ? reject(err) : resolve(ctx)));
}

/** A loopback pair: the accepted server socket, and a client socket for node:tls to run on. */
async function pair(): Promise<{ socket: net.Socket; client: net.Socket; close(): void }> {
  const server = net.createServer({ allowHalfOpen: true });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const accepted = once(server, "connection");
  const client = net.connect((server.address() as net.AddressInfo).port, "127.0.0.1");
  client.on("error", () => {});
  const [[socket]] = await Promise.all([accepted as Promise<[net.Socket]>, once(client, "connect")]);
  return {
    socket,
    client,
    close() {
      client.destroy();
      socket.destroy();
      server.close();
    },
  };
}

describe("node_tls: secure contexts and SNI", () => {
  it("makes a secure context from the options", () => {
    const { a } = certs();
    // (A bad certificate throws here on Node and Bun, but only at the handshake on Deno.)
    assert.ok(createServerSecureContext({ cert: a.cert, key: a.key, minVersion: "TLSv1.3", ciphers: "HIGH" }));
  });

  it("has no SNI callback without options.sni", () => {
    assert.equal(sniCallback({ ...certs().a }), undefined);
  });

  it("asks options.sni, caching one context per certificate it returns", async () => {
    const { a, b } = certs();
    const asked: string[] = [];
    const options: TlsServerOptions = {
      ...a,
      sni: (name) => {
        asked.push(name);
        if (name === "boom.test") throw new Error("lookup failed");
        return name === "b.test" ? b : undefined;
      },
    };
    const callback = sniCallback(options)!;
    const ask = (name: string) =>
      new Promise<tls.SecureContext | undefined>((resolve, reject) =>
        callback(name, (err, ctx) => err ? reject(err) : resolve(ctx))
      );
    const first = await ask("b.test");
    assert.ok(first);
    assert.equal(await ask("b.test"), first, "cached");
    assert.equal(await ask("other.test"), undefined, "the default certificate");
    await assert.rejects(ask("boom.test"), /lookup failed/);
    assert.deepEqual(asked, ["b.test", "b.test", "other.test", "boom.test"]);
    // A fresh callback has a fresh cache.
    assert.notEqual(await askSni(options, "b.test"), first);
  });
});

describe("node_tls: upgradeDuplexToTls", () => {
  it("over a node socket resolves with a TLS connection that reports the session", async () => {
    const { a, b } = certs();
    const { socket, client, close } = await pair();
    try {
      const options: TlsServerOptions = { ...a, sni: (name) => name === "b.test" ? b : undefined };
      const upgrade = upgradeDuplexToTls(socket, options, ADDRESSES);
      const secure = tls.connect({ socket: client, servername: "b.test", ca: b.cert });
      secure.on("error", () => {});
      const [conn] = await Promise.all([upgrade, once(secure, "secureConnect")]);
      assert.ok(conn instanceof NodeTlsConnection);
      assert.equal(conn.localAddress, ADDRESSES.local);
      assert.equal(conn.remoteAddress, ADDRESSES.remote);
      assert.match(conn.tls!.protocol, /^TLSv1\.[23]$/);
      assert.notEqual(conn.tls!.cipher, "unknown");
      assert.equal(conn.tls!.serverName, "b.test");
      assert.equal(secure.getPeerCertificate().subject.CN, "b.test");
      // Data both ways.
      secure.write("EHLO b.test\r\n");
      assert.equal(text(await conn.read()), "EHLO b.test\r\n");
      const reply = once(secure, "data");
      await conn.write(bytes("250 ok\r\n"));
      assert.equal(String(((await reply) as [Uint8Array])[0]), "250 ok\r\n");
      // It runs TLS already: no second upgrade.
      await assert.rejects(conn.startTls(options, bytes("220\r\n")), /runs TLS already/);
      await assert.rejects(conn.acceptTls(options), /runs TLS already/);
      conn.close();
      secure.destroy();
    } finally {
      close();
    }
  });

  it("over a byte source fails and closes it when the client leaves mid-handshake", async () => {
    const source = new FakeConnection();
    const upgrade = upgradeDuplexToTls(new ConnectionDuplex(source), { ...certs().a }, ADDRESSES);
    source.end();
    await assert.rejects(upgrade, /connection closed during the TLS handshake/);
    assert.ok(source.closes >= 1);
  });

  it("fails and closes the source when the handshake does not finish in time", async () => {
    const source = new FakeConnection();
    const started = Date.now();
    const upgrade = upgradeDuplexToTls(
      new ConnectionDuplex(source),
      { ...certs().a, handshakeTimeoutMs: 100 },
      ADDRESSES,
    );
    await assert.rejects(upgrade, /TLS handshake timed out/);
    assert.ok(Date.now() - started < 2000);
    assert.ok(source.closes >= 1);
  });

  it("fails on bytes that are no ClientHello", async () => {
    const source = new FakeConnection();
    const upgrade = upgradeDuplexToTls(new ConnectionDuplex(source, bytes("EHLO x\r\n")), { ...certs().a }, ADDRESSES);
    await assert.rejects(upgrade as Promise<Connection>);
    assert.ok(source.closes >= 1);
  });
});
