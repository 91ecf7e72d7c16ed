/**
 * certificateByClientHello (src/transport/client_hello.ts): with `sni`, the
 * ClientHello is read off the connection, the certificate picked by its
 * server name, and the bytes handed back for replay into the TLS layer. The
 * ClientHello parser itself is tested against a real one in transport.test.ts.
 *
 *   node --import tsx --test tests/transport_client_hello.test.ts
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { certificateByClientHello, clientHelloServerName } from "../src/transport/client_hello.ts";
import type { TlsServerOptions } from "../src/transport/types.ts";
import { bytes, FakeConnection } from "./fake_connection.ts";

/** A minimal TLS 1.2 ClientHello record with `serverName` in its SNI extension (none when empty). */
function clientHello(serverName: string): Uint8Array {
  const name = bytes(serverName);
  const u16 = (n: number) => [n >> 8, n & 0xff];
  const sni = name.length === 0 ? [] : [
    ...u16(0), // extension type server_name
    ...u16(name.length + 5),
    ...u16(name.length + 3), // server name list
    0, // host_name
    ...u16(name.length),
    ...name,
  ];
  const body = [
    3,
    3, // client_version
    ...new Array(32).fill(7), // random
    0, // session_id
    ...u16(2),
    0x13,
    0x01, // one cipher suite
    1,
    0, // compression: null
    ...u16(sni.length),
    ...sni,
  ];
  const handshake = [1, 0, ...u16(body.length), ...body];
  return new Uint8Array([22, 3, 1, ...u16(handshake.length), ...handshake]);
}

const DEFAULT = { cert: "default-cert", key: "default-key" };
const OTHER = { cert: "other-cert", key: "other-key" };

function sniOptions(extra: Partial<TlsServerOptions> = {}): TlsServerOptions & { asked: string[] } {
  const asked: string[] = [];
  return {
    ...DEFAULT,
    sni: (name) => {
      asked.push(name);
      return name === "other.test" ? OTHER : undefined;
    },
    handshakeTimeoutMs: 2000,
    asked,
    ...extra,
  };
}

describe("certificateByClientHello", () => {
  it("without sni reads nothing and replays what was given", async () => {
    const conn = new FakeConnection();
    const initial = bytes("\x16\x03\x01");
    const result = await certificateByClientHello(conn, DEFAULT, initial);
    assert.equal(result.tlsOptions, DEFAULT);
    assert.equal(result.replay, initial);
  });

  it("reads the whole ClientHello, picks the certificate by its name and returns the bytes to replay", async () => {
    const hello = clientHello("other.test");
    assert.equal(clientHelloServerName(hello), "other.test", "the synthetic ClientHello parses");
    const conn = new FakeConnection();
    const options = sniOptions();
    // 10 bytes came behind a PROXY header; the rest arrives in two reads.
    const pending = certificateByClientHello(conn, options, hello.subarray(0, 10));
    conn.feed(hello.subarray(10, 50));
    conn.feed(hello.subarray(50));
    const { tlsOptions, replay } = await pending;
    assert.deepEqual(replay, hello);
    assert.deepEqual(options.asked, ["other.test"]);
    assert.equal(tlsOptions.cert, OTHER.cert);
    assert.equal(tlsOptions.key, OTHER.key);
    assert.equal(tlsOptions.sni, undefined, "the TLS layer must not ask again");
    assert.ok(tlsOptions.handshakeTimeoutMs! >= 1 && tlsOptions.handshakeTimeoutMs! <= 2000);
    assert.equal(conn.closes, 0);
  });

  it("keeps the default certificate for an unknown name or none", async () => {
    for (const name of ["unknown.test", ""]) {
      const conn = new FakeConnection();
      const options = sniOptions();
      conn.feed(clientHello(name));
      const { tlsOptions } = await certificateByClientHello(conn, options, undefined);
      assert.deepEqual(options.asked, [name]);
      assert.equal(tlsOptions.cert, DEFAULT.cert);
    }
  });

  it("lets bytes that are no ClientHello through, for the TLS layer to reject", async () => {
    const conn = new FakeConnection();
    const garbage = bytes("EHLO plain.example\r\n");
    const { replay } = await certificateByClientHello(conn, sniOptions(), garbage);
    assert.equal(replay, garbage);
  });

  it("closes the connection when the client leaves before the ClientHello is whole", async () => {
    const conn = new FakeConnection();
    const pending = certificateByClientHello(conn, sniOptions(), clientHello("other.test").subarray(0, 20));
    conn.end();
    await assert.rejects(pending, /connection closed during the TLS handshake/);
    assert.equal(conn.closes, 1);
  });

  it("closes the connection when no ClientHello comes within the handshake timeout", async () => {
    const conn = new FakeConnection();
    await assert.rejects(
      certificateByClientHello(conn, sniOptions({ handshakeTimeoutMs: 30 }), undefined),
      /TLS handshake timed out/,
    );
    assert.equal(conn.closes, 1);
  });
});
