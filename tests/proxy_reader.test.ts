/**
 * src/proxy_reader.ts: reading a PROXY header off a fresh connection, over
 * as many reads as it takes, keeping the client bytes behind it, with a
 * deadline. The header grammar itself: tests/proxy_protocol.test.ts.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { MAX_PROXY_HEADER, readProxyHeader } from "../src/proxy_reader.ts";
import { Deadlines } from "../src/session/deadlines.ts";
import { buildProxyHeaderV2, ProxyProtocolError } from "../src/proxy_protocol.ts";
import { bytes, FakeConnection, text } from "./fake_connection.ts";

/** The shared deadline clock (the server's), checked every 10 ms here. */
const clock = new Deadlines(10);

const V1 = "PROXY TCP4 192.0.2.10 198.51.100.5 56324 25\r\n";

test("a header and the client's first bytes in one read: the bytes are kept", async () => {
  const conn = new FakeConnection();
  conn.feed(bytes(`${V1}EHLO a\r\n`));
  const { header, rest } = await readProxyHeader(conn, 1000, clock);
  assert.equal(header.sourceIp, "192.0.2.10");
  assert.equal(header.sourcePort, 56324);
  assert.equal(text(rest), "EHLO a\r\n");
});

test("a header split over several reads, byte by byte", async () => {
  const conn = new FakeConnection();
  const wire = buildProxyHeaderV2({
    command: "PROXY",
    family: "IPv6",
    sourceIp: "2001:db8::1",
    sourcePort: 40000,
    destIp: "2001:db8::25",
    destPort: 25,
  }, { authority: "mx.example.com" });
  for (const byte of wire) conn.feed(new Uint8Array([byte]));
  const { header, rest } = await readProxyHeader(conn, 1000, clock);
  assert.equal(header.version, 2);
  assert.equal(header.sourceIp, "2001:db8::1");
  assert.equal(header.tlvs.authority, "mx.example.com");
  assert.equal(rest.length, 0);
});

test("the client closing before the header is complete is a ProxyProtocolError", async () => {
  const conn = new FakeConnection();
  conn.feed(bytes("PROXY TCP4 192.0.2.10"));
  conn.end();
  await assert.rejects(readProxyHeader(conn, 1000, clock), (err: unknown) => {
    assert.ok(err instanceof ProxyProtocolError);
    assert.equal(err.reason, "connection closed before a complete PROXY header");
    return true;
  });
});

test("no complete header within the deadline is a ProxyProtocolError", async () => {
  const conn = new FakeConnection();
  conn.feed(bytes("PROXY TCP4 "));
  const started = Date.now();
  await assert.rejects(readProxyHeader(conn, 100, clock), (err: unknown) => {
    assert.ok(err instanceof ProxyProtocolError);
    assert.equal(err.reason, "no complete PROXY header within 0.1 s");
    return true;
  });
  assert.ok(Date.now() - started < 2000);
});

test("something that is no header fails at its first byte, without waiting for more", async () => {
  const conn = new FakeConnection();
  conn.feed(bytes("EHLO a\r\n"));
  await assert.rejects(readProxyHeader(conn, 60_000, clock), ProxyProtocolError);
});

test(`a v2 header longer than MAX_PROXY_HEADER (${MAX_PROXY_HEADER}) is refused at its length field`, async () => {
  const conn = new FakeConnection();
  const header = buildProxyHeaderV2({ command: "LOCAL" });
  const length = MAX_PROXY_HEADER - 16 + 1;
  header[14] = length >> 8;
  header[15] = length & 0xff;
  conn.feed(header);
  await assert.rejects(readProxyHeader(conn, 60_000, clock), ProxyProtocolError);
});
