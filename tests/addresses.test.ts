/**
 * src/addresses.ts: the `ip:port` format, host entries to bind addresses, and
 * the bounded reverse lookup. Loopback and documentation addresses only: no
 * test here needs a network or a DNS server.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { isIP } from "node:net";
import { formatAddress, resolveHost, reverseLookup } from "../src/addresses.ts";

test("formatAddress brackets IPv6 only", () => {
  assert.equal(formatAddress("127.0.0.1", 2525), "127.0.0.1:2525");
  assert.equal(formatAddress("::1", 25), "[::1]:25");
  assert.equal(formatAddress("2001:db8::1", 0), "[2001:db8::1]:0");
});

test("resolveHost: an IP is bound as given", async () => {
  assert.deepEqual(await resolveHost("127.0.0.1"), ["127.0.0.1"]);
  assert.deepEqual(await resolveHost("::1"), ["::1"]);
});

test("resolveHost: localhost resolves to loopback addresses (from the hosts file)", async () => {
  const ips = await resolveHost("localhost");
  assert.ok(ips.length > 0);
  for (const ip of ips) assert.ok(ip === "::1" || ip.startsWith("127."), `${ip} is no loopback address`);
  assert.equal(new Set(ips).size, ips.length, "no address twice");
});

test('resolveHost: "*" is every local address but link-local and multicast ones, each once', async () => {
  const ips = await resolveHost("*");
  assert.ok(ips.includes("127.0.0.1"), `no 127.0.0.1 in ${ips.join(", ")}`);
  for (const ip of ips) {
    assert.ok(isIP(ip) !== 0, `${ip} is no IP (zone ids are dropped)`);
    assert.doesNotMatch(ip, /^fe[89ab]|^169\.254\.|^ff/i);
  }
  assert.equal(new Set(ips).size, ips.length);
});

test("reverseLookup gives the IP itself when no name comes in time", async () => {
  // 192.0.2.0/24 (RFC 5737) has no PTR records: either an error or the deadline, both give the IP.
  const started = Date.now();
  assert.equal(await reverseLookup("192.0.2.1", 300), "192.0.2.1");
  assert.ok(Date.now() - started < 3000);
});

test("reverseLookup of loopback gives a name or the IP, never throws", async () => {
  const name = await reverseLookup("127.0.0.1", 300);
  assert.equal(typeof name, "string");
  assert.notEqual(name, "");
});
