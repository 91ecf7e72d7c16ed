/**
 * PrefixedConnection (src/transport/prefixed.ts) on its own, over a scripted
 * connection: the bytes read past a PROXY header come first, are dropped on
 * STARTTLS and handed to the TLS layer on implicit TLS. The same over real
 * sockets is in transport_accept_tls.test.ts.
 *
 *   node --import tsx --test tests/transport_prefixed.test.ts
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { PrefixedConnection } from "../src/transport/prefixed.ts";
import { bytes, FakeConnection, text } from "./fake_connection.ts";

const TLS = { cert: "cert", key: "key" };

describe("PrefixedConnection", () => {
  it("reads the prefix first, then the inner connection, and passes the rest through", async () => {
    const inner = new FakeConnection();
    const conn = new PrefixedConnection(inner, bytes("EHLO a\r\n"));
    assert.equal(conn.localAddress, inner.localAddress);
    assert.equal(conn.remoteAddress, inner.remoteAddress);
    assert.equal(conn.tls, undefined);
    inner.feed(bytes("QUIT\r\n"));
    assert.equal(text(await conn.read()), "EHLO a\r\n");
    assert.equal(text(await conn.read()), "QUIT\r\n");
    await conn.write(bytes("221 bye\r\n"));
    await conn.closeWrite();
    assert.deepEqual(inner.written.map(text), ["221 bye\r\n"]);
    assert.equal(inner.closeWrites, 1);
  });

  it("with an empty prefix reads straight from the inner connection", async () => {
    const inner = new FakeConnection();
    const conn = new PrefixedConnection(inner, new Uint8Array(0));
    inner.end();
    assert.equal(await conn.read(), null);
  });

  it("drops the unread prefix on STARTTLS: it is plaintext sent before the 220", async () => {
    const inner = new FakeConnection();
    const conn = new PrefixedConnection(inner, bytes("MAIL FROM:<injected>\r\n"));
    const reply = bytes("220 go ahead\r\n");
    assert.equal(await conn.startTls(TLS, reply), inner);
    assert.equal(inner.startedTls?.reply, reply);
    inner.end();
    assert.equal(await conn.read(), null, "the prefix is gone");
  });

  it("hands the prefix, and what the caller read, to the TLS layer on implicit TLS", async () => {
    const cases: Array<[string, string | undefined, string | undefined]> = [
      ["\x16\x03", "\x01\x02", "\x16\x03\x01\x02"],
      ["\x16\x03", undefined, "\x16\x03"],
      ["", "\x16\x03", "\x16\x03"],
      ["", undefined, undefined],
    ];
    for (const [prefix, received, expected] of cases) {
      const inner = new FakeConnection();
      const conn = new PrefixedConnection(inner, bytes(prefix));
      await conn.acceptTls(TLS, received === undefined ? undefined : bytes(received));
      assert.equal(inner.acceptedTls?.options, TLS);
      assert.equal(text(inner.acceptedTls?.received), expected ?? null, `prefix ${JSON.stringify(prefix)}`);
    }
  });

  it("forgets the prefix when closed", async () => {
    const inner = new FakeConnection();
    const conn = new PrefixedConnection(inner, bytes("unread"));
    conn.close();
    assert.equal(inner.closes, 1);
    assert.equal(await conn.read(), null);
  });
});
