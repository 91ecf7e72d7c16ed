/**
 * Unit tests of the IP address helpers (src/cidr.ts), run under all three runtimes:
 *
 *   deno test -A tests/cidr.test.ts
 *   bun test ./tests/cidr.test.ts
 *   node --import tsx --test tests/cidr.test.ts
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { CidrList, clientKey, formatIp, type IpAddress, normalizeIp, parseIp } from "../src/cidr.ts";

const v4 = (...b: number[]): IpAddress => ({ family: "IPv4", bytes: new Uint8Array(b) });
const v6 = (...words: number[]): IpAddress => {
  const bytes = new Uint8Array(16);
  words.forEach((w, i) => {
    bytes[2 * i] = w >> 8;
    bytes[2 * i + 1] = w & 0xff;
  });
  return { family: "IPv6", bytes };
};

describe("parseIp", () => {
  it("reads IPv4 dotted quads", () => {
    assert.deepEqual(parseIp("192.0.2.1"), v4(192, 0, 2, 1));
    assert.deepEqual(parseIp("0.0.0.0"), v4(0, 0, 0, 0));
    assert.deepEqual(parseIp("255.255.255.255"), v4(255, 255, 255, 255));
    assert.deepEqual(parseIp("10.0.100.9"), v4(10, 0, 100, 9));
  });

  it("refuses IPv4 that is not four plain decimal octets", () => {
    for (
      const bad of [
        "",
        "1.2.3",
        "1.2.3.4.5",
        "256.1.1.1",
        "1.2.3.999",
        "01.2.3.4",
        "1.2.3.00",
        "1.2.3.010",
        "1..2.3",
        ".1.2.3",
        "1.2.3.",
        " 1.2.3.4",
        "1.2.3.4 ",
        "+1.2.3.4",
        "-1.2.3.4",
        "0x7f.0.0.1",
        "127.1",
        "2130706433",
        "1.2.3.4/8",
        "a.b.c.d",
        "１.2.3.4", // full-width digit
      ]
    ) {
      assert.equal(parseIp(bad), undefined, bad);
    }
  });

  it("reads IPv6 in full, compressed and mixed forms", () => {
    assert.deepEqual(parseIp("2001:db8:0:0:0:0:0:1"), v6(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1));
    assert.deepEqual(parseIp("2001:DB8::1"), v6(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1));
    assert.deepEqual(parseIp("2001:0db8:0000:0000:0000:0000:0000:0001"), v6(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1));
    assert.deepEqual(parseIp("::"), v6());
    assert.deepEqual(parseIp("::1"), v6(0, 0, 0, 0, 0, 0, 0, 1));
    assert.deepEqual(parseIp("1::"), v6(1));
    assert.deepEqual(parseIp("1:2:3:4:5:6:7::"), v6(1, 2, 3, 4, 5, 6, 7, 0));
    assert.deepEqual(parseIp("::2:3:4:5:6:7:8"), v6(0, 2, 3, 4, 5, 6, 7, 8));
    assert.deepEqual(parseIp("1:2:3:4:5:6:1.2.3.4"), v6(1, 2, 3, 4, 5, 6, 0x102, 0x304));
    assert.deepEqual(parseIp("64:ff9b::192.0.2.33"), v6(0x64, 0xff9b, 0, 0, 0, 0, 0xc000, 0x221));
    // IPv4-compatible (not mapped) stays IPv6.
    assert.deepEqual(parseIp("::1.2.3.4"), v6(0, 0, 0, 0, 0, 0, 0x102, 0x304));
  });

  it("returns v4-mapped IPv6 as IPv4, in dotted or hex form", () => {
    assert.deepEqual(parseIp("::ffff:192.0.2.10"), v4(192, 0, 2, 10));
    assert.deepEqual(parseIp("::FFFF:c000:020a"), v4(192, 0, 2, 10));
    assert.deepEqual(parseIp("0:0:0:0:0:ffff:127.0.0.1"), v4(127, 0, 0, 1));
    // Only ::ffff:0:0/96 is mapped.
    assert.deepEqual(parseIp("::ff00:192.0.2.10"), v6(0, 0, 0, 0, 0, 0xff00, 0xc000, 0x20a));
    assert.deepEqual(parseIp("::fff:192.0.2.10"), v6(0, 0, 0, 0, 0, 0xfff, 0xc000, 0x20a));
    assert.deepEqual(parseIp("1::ffff:192.0.2.10"), v6(1, 0, 0, 0, 0, 0xffff, 0xc000, 0x20a));
  });

  it("refuses malformed IPv6", () => {
    for (
      const bad of [
        ":",
        ":::",
        "1::2::3",
        "::1::",
        "1:2:3:4:5:6:7:8:9",
        "1:2:3:4:5:6:7",
        "1:2:3:4:5:6:7:8::",
        "::1:2:3:4:5:6:7:8",
        "1::2:3:4:5:6:7:8",
        ":1:2:3:4:5:6:7",
        "1:2:3:4:5:6:7:",
        "12345::",
        "g::1",
        "1:2:3:4:5:6:7:1.2.3.4",
        "1.2.3.4::",
        "::1.2.3.4:5",
        "::ffff:1.2.3",
        "::ffff:1.2.3.04",
        "::ffff:256.2.3.4",
        "fe80::1%eth0",
        "fe80::1%1",
        "[::1]",
        " ::1",
        "::1 ",
        "1:2:3:4:5:6:7:8/64",
      ]
    ) {
      assert.equal(parseIp(bad), undefined, bad);
    }
  });
});

describe("formatIp", () => {
  it("writes IPv6 per RFC 5952", () => {
    const cases: Array<[string, string]> = [
      ["2001:0DB8:0000:0000:0000:0000:0000:0001", "2001:db8::1"],
      ["2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"], // equal runs: the first one
      ["2001:0:0:1:0:0:0:1", "2001:0:0:1::1"], // the longest run
      ["2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"], // a single zero group stays
      ["0:0:0:0:0:0:0:0", "::"],
      ["0:0:0:0:0:0:0:1", "::1"],
      ["1:0:0:0:0:0:0:0", "1::"],
      ["1:0:1:0:1:0:1:0", "1:0:1:0:1:0:1:0"],
      ["::1.2.3.4", "::102:304"],
      ["ABCD:EF01::", "abcd:ef01::"],
    ];
    for (const [input, expected] of cases) assert.equal(formatIp(parseIp(input)!), expected, input);
  });

  it("writes IPv4 dotted and v4-mapped IPv6 bytes in mixed form", () => {
    assert.equal(formatIp({ family: "IPv4", bytes: new Uint8Array([10, 0, 0, 255]) }), "10.0.0.255");
    assert.equal(formatIp(v6(0, 0, 0, 0, 0, 0xffff, 0xc000, 0x20a)), "::ffff:192.0.2.10");
  });

  it("refuses byte arrays of the wrong size", () => {
    assert.throws(() => formatIp({ family: "IPv4", bytes: new Uint8Array(16) }), TypeError);
    assert.throws(() => formatIp({ family: "IPv6", bytes: new Uint8Array(4) }), TypeError);
  });
});

describe("normalizeIp", () => {
  it("gives the canonical form", () => {
    assert.equal(normalizeIp("2001:DB8:0:0::1"), "2001:db8::1");
    assert.equal(normalizeIp("::ffff:192.0.2.1"), "192.0.2.1");
    assert.equal(normalizeIp("192.0.2.1"), "192.0.2.1");
  });

  it("returns anything else unchanged", () => {
    for (const other of ["", "mx.example.com", "/var/run/smtp.sock", "01.2.3.4", "fe80::1%eth0"]) {
      assert.equal(normalizeIp(other), other);
    }
  });
});

describe("clientKey", () => {
  it("is the IPv4 address itself", () => {
    assert.equal(clientKey("192.0.2.77"), "192.0.2.77");
    assert.equal(clientKey("::ffff:192.0.2.77"), "192.0.2.77");
  });

  it("is the /64 of an IPv6 address", () => {
    assert.equal(clientKey("2001:db8:1:2:aaaa:bbbb:cccc:dddd"), "2001:db8:1:2::/64");
    assert.equal(clientKey("2001:DB8:1:2::5"), "2001:db8:1:2::/64");
    assert.equal(clientKey("2001:db8:1:3::5"), "2001:db8:1:3::/64");
    assert.equal(clientKey("::1"), "::/64");
    assert.equal(clientKey("fe80::1"), "fe80::/64");
  });

  it("returns what is not an IP unchanged", () => {
    assert.equal(clientKey("unknown"), "unknown");
  });
});

describe("CidrList", () => {
  it("matches networks of both families", () => {
    const list = new CidrList(["10.0.0.0/8", "192.0.2.128/25", "2001:db8::/32", "198.51.100.7", "::1"]);
    assert.ok(list.contains("10.255.0.1"));
    assert.ok(!list.contains("11.0.0.1"));
    assert.ok(list.contains("192.0.2.200"));
    assert.ok(!list.contains("192.0.2.127"));
    assert.ok(list.contains("2001:db8:ffff::1"));
    assert.ok(!list.contains("2001:db9::1"));
    assert.ok(list.contains("198.51.100.7"));
    assert.ok(!list.contains("198.51.100.8"));
    assert.ok(list.contains("0:0:0:0:0:0:0:1"));
    assert.ok(!list.contains("::2"));
  });

  it("matches v4-mapped clients against IPv4 entries, and v4-mapped entries against IPv4 clients", () => {
    const list = new CidrList(["127.0.0.0/8", "::ffff:10.1.0.0/112"]);
    assert.ok(list.contains("::ffff:127.0.0.1"));
    assert.ok(list.contains("10.1.2.3"));
    assert.ok(list.contains("::ffff:10.1.200.3"));
    assert.ok(!list.contains("10.2.0.1"));
    assert.deepEqual(list.entries, ["127.0.0.0/8", "10.1.0.0/16"]);
  });

  it("keeps the families apart otherwise", () => {
    assert.ok(!new CidrList(["::/0"]).contains("192.0.2.1"));
    assert.ok(new CidrList(["::/0"]).contains("2001:db8::1"));
    assert.ok(new CidrList(["0.0.0.0/0"]).contains("192.0.2.1"));
    assert.ok(!new CidrList(["0.0.0.0/0"]).contains("2001:db8::1"));
  });

  it("handles prefixes that end inside a byte", () => {
    const list = new CidrList(["172.16.0.0/12", "2001:db8:8000::/33"]);
    assert.ok(list.contains("172.31.255.255"));
    assert.ok(!list.contains("172.32.0.0"));
    assert.ok(!list.contains("172.15.255.255"));
    assert.ok(list.contains("2001:db8:ffff::"));
    assert.ok(!list.contains("2001:db8:7fff::"));
  });

  it("is false for text that is not an IP", () => {
    const list = new CidrList(["0.0.0.0/0", "::/0"]);
    for (const other of ["", "localhost", "01.2.3.4", "fe80::1%eth0", "[::1]"]) assert.ok(!list.contains(other), other);
  });

  it("lists its entries canonically", () => {
    const list = new CidrList(["2001:DB8:0::/48", " 10.0.0.1 ", "::1/128"]);
    assert.deepEqual(list.entries, ["2001:db8::/48", "10.0.0.1/32", "::1/128"]);
  });

  it("has the loopback networks", () => {
    assert.deepEqual(CidrList.LOOPBACK, ["127.0.0.0/8", "::1/128"]);
    const list = new CidrList(CidrList.LOOPBACK);
    assert.ok(list.contains("127.0.0.1"));
    assert.ok(list.contains("127.255.255.254"));
    assert.ok(list.contains("::1"));
    assert.ok(list.contains("::ffff:127.0.0.1"));
    assert.ok(!list.contains("128.0.0.1"));
    assert.ok(!list.contains("::2"));
    assert.throws(() => (CidrList.LOOPBACK as string[]).push("0.0.0.0/0"), TypeError);
  });

  it("refuses bad entries with a TypeError naming them", () => {
    for (
      const bad of [
        "",
        "10.0.0.0/33",
        "::/129",
        "10.0.0.0/",
        "10.0.0.0/08",
        "10.0.0.0/-1",
        "10.0.0.0/8/8",
        "10.0.0/8",
        "example.com",
        "10.1.2.3/8", // host bits set
        "2001:db8::1/32",
        "fe80::%eth0/64",
      ]
    ) {
      assert.throws(() => new CidrList([bad]), (err: unknown) => {
        assert.ok(err instanceof TypeError, bad);
        assert.ok(err.message.includes(`"${bad}"`), err.message);
        return true;
      });
    }
    assert.throws(() => new CidrList(["10.0.0.0/8", "nope"]), /"nope"/);
  });

  it("takes an empty list and any iterable", () => {
    assert.ok(!new CidrList([]).contains("127.0.0.1"));
    assert.ok(new CidrList(new Set(["10.0.0.0/8"])).contains("10.1.1.1"));
  });
});
