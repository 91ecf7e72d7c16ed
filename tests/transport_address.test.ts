/**
 * socketAddress (src/transport/address.ts): the addresses every transport reports.
 *
 *   node --import tsx --test tests/transport_address.test.ts
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { socketAddress } from "../src/transport/address.ts";

describe("socketAddress", () => {
  it("keeps IPv4 as it is", () => {
    assert.deepEqual(socketAddress("127.0.0.1", 25, "IPv4"), { hostname: "127.0.0.1", port: 25, family: "IPv4" });
    assert.deepEqual(socketAddress("10.0.0.1", 25), { hostname: "10.0.0.1", port: 25, family: "IPv4" });
  });

  it("drops IPv6 brackets and infers the family when the runtime gives none", () => {
    assert.deepEqual(socketAddress("[::1]", 587), { hostname: "::1", port: 587, family: "IPv6" });
    assert.deepEqual(socketAddress("::ffff:127.0.0.1", 1), { hostname: "::ffff:127.0.0.1", port: 1, family: "IPv6" });
    assert.equal(socketAddress("fe80::1", 1, 6).family, "IPv6", "a numeric family, as some node versions report it");
  });

  it("stands in empty values for missing ones (a socket already gone)", () => {
    assert.deepEqual(socketAddress(undefined, undefined), { hostname: "", port: 0, family: "IPv4" });
  });
});
