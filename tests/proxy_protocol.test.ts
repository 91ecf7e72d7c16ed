/**
 * Unit tests of the PROXY protocol header reader and writers (src/proxy_protocol.ts),
 * run under all three runtimes:
 *
 *   deno test -A tests/proxy_protocol.test.ts
 *   bun test ./tests/proxy_protocol.test.ts
 *   node --import tsx --test tests/proxy_protocol.test.ts
 *
 * v2 headers are mostly written byte by byte here (not with the module's own
 * writer), and the CRC32c is checked against a bit-at-a-time implementation,
 * so a mistake shared by reader and writer cannot hide.
 */
import { concatBytes } from "../src/bytes.ts";
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  buildProxyHeaderV1,
  buildProxyHeaderV2,
  crc32c,
  parseProxyHeader,
  type ProxyHeader,
  ProxyProtocolError,
} from "../src/proxy_protocol.ts";

// ---------------------------------------------------------------------------
// helpers: strings are latin1 (one char per byte) so every byte value can be written

function bytes(s: string): Uint8Array {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

function concat(...parts: ArrayLike<number>[]): Uint8Array {
  return concatBytes(parts.map((p) => Uint8Array.from(p)));
}

const SIG = [0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a];

/** A v2 header written by hand: signature, version/command, family, length (of `body` unless given), body. */
function v2(verCmd: number, family: number, body: ArrayLike<number> = [], length = body.length): Uint8Array {
  return concat(SIG, [verCmd, family, length >> 8, length & 0xff], body);
}

/** One TLV: type, 2-byte length, value (a string is taken as UTF-8). */
function tlv(type: number, value: ArrayLike<number> | string): number[] {
  const v = typeof value === "string" ? [...new TextEncoder().encode(value)] : Array.from(value);
  return [type, v.length >> 8, v.length & 0xff, ...v];
}

const u16 = (n: number) => [n >> 8, n & 0xff];
const u32 = (n: number) => [n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff];
/** The TCP4 address block 192.0.2.10:56324 -> 198.51.100.5:25. */
const TCP4_BLOCK = [192, 0, 2, 10, 198, 51, 100, 5, ...u16(56324), ...u16(25)];

/** CRC32c bit by bit (reflected Castagnoli polynomial), independent of the module's table. */
function referenceCrc32c(data: Uint8Array): number {
  let crc = 0xffffffff;
  for (const byte of data) {
    crc ^= byte;
    for (let k = 0; k < 8; k++) crc = (crc >>> 1) ^ (0x82f63b78 & -(crc & 1));
  }
  return (crc ^ 0xffffffff) >>> 0;
}

/** `header` with the 4 CRC value bytes at `at` filled in with the checksum of the whole header. */
function withCrc(header: Uint8Array, at: number): Uint8Array {
  const out = header.slice();
  out.fill(0, at, at + 4);
  out.set(u32(referenceCrc32c(out)), at);
  return out;
}

function parseDone(input: Uint8Array, maxV2Length?: number): { header: ProxyHeader; consumed: number } {
  const result = parseProxyHeader(input, maxV2Length);
  assert.equal(result.status, "done", "expected a complete header");
  if (result.status !== "done") throw new Error("unreachable");
  return { header: result.header, consumed: result.consumed };
}

function assertInvalid(input: Uint8Array, reason?: RegExp, maxV2Length?: number): void {
  assert.throws(() => parseProxyHeader(input, maxV2Length), (err: unknown) => {
    assert.ok(err instanceof ProxyProtocolError, `expected ProxyProtocolError, got ${err}`);
    if (reason) assert.match(err.reason, reason);
    return true;
  });
}

/** Every strict prefix of a valid header asks for more; the whole is done. */
function assertPrefixesIncomplete(input: Uint8Array, maxV2Length?: number): void {
  for (let n = 0; n < input.length; n++) {
    assert.deepEqual(parseProxyHeader(input.subarray(0, n), maxV2Length), { status: "incomplete" }, `prefix ${n}`);
  }
  parseDone(input, maxV2Length);
}

/** The first `n` bytes of `input` are refused, and all shorter prefixes ask for more. */
function assertRejectedAt(input: Uint8Array, n: number, maxV2Length?: number): void {
  for (let k = 0; k < n; k++) {
    assert.deepEqual(parseProxyHeader(input.subarray(0, k), maxV2Length), { status: "incomplete" }, `prefix ${k}`);
  }
  assertInvalid(input.subarray(0, n), undefined, maxV2Length);
}

const EMPTY_TLVS = { raw: [] };

// ---------------------------------------------------------------------------

describe("v1", () => {
  it("reads a TCP4 line and leaves what follows", () => {
    const input = bytes("PROXY TCP4 192.0.2.10 198.51.100.5 56324 25\r\nEHLO client\r\n");
    const { header, consumed } = parseDone(input);
    assert.deepEqual(header, {
      version: 1,
      command: "PROXY",
      family: "IPv4",
      sourceIp: "192.0.2.10",
      destIp: "198.51.100.5",
      sourcePort: 56324,
      destPort: 25,
      tlvs: EMPTY_TLVS,
    });
    assert.equal(consumed, 45);
    assert.deepEqual(input.subarray(consumed), bytes("EHLO client\r\n"));
  });

  it("reads a TCP6 line and writes the addresses canonically", () => {
    const { header } = parseDone(bytes("PROXY TCP6 2001:DB8:0:0::1 2001:db8::0:25 0 65535\r\n"));
    assert.deepEqual(header, {
      version: 1,
      command: "PROXY",
      family: "IPv6",
      sourceIp: "2001:db8::1",
      destIp: "2001:db8::25",
      sourcePort: 0,
      destPort: 65535,
      tlvs: EMPTY_TLVS,
    });
  });

  it("gives v4-mapped TCP6 addresses (HAProxy's mixed pairs) as IPv4", () => {
    const { header } = parseDone(bytes("PROXY TCP6 ::ffff:192.0.2.10 2001:db8::25 56324 25\r\n"));
    assert.equal(header.family, "IPv6");
    assert.equal(header.sourceIp, "192.0.2.10");
    assert.equal(header.destIp, "2001:db8::25");
  });

  it("takes the longest TCP4 (56 bytes) and TCP6 (104 bytes) lines", () => {
    const tcp4 = bytes("PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n");
    assert.equal(tcp4.length, 56);
    assert.equal(parseDone(tcp4).consumed, 56);
    const full = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
    const tcp6 = bytes(`PROXY TCP6 ${full} ${full} 65535 65535\r\n`);
    assert.equal(tcp6.length, 104);
    assert.equal(parseDone(tcp6).header.sourceIp, full);
  });

  it("reads UNKNOWN and ignores the rest of its line", () => {
    const unknown = { version: 1, command: "UNKNOWN", family: "UNSPEC", tlvs: EMPTY_TLVS };
    assert.deepEqual(parseDone(bytes("PROXY UNKNOWN\r\n")), { header: unknown, consumed: 15 });
    const rest = bytes("PROXY UNKNOWN ffff:f...f:ffff not even addresses \x01\xff\r\nQUIT\r\n");
    const { header, consumed } = parseDone(rest);
    assert.deepEqual(header, unknown);
    assert.deepEqual(rest.subarray(consumed), bytes("QUIT\r\n"));
  });

  it("takes a line of exactly 107 bytes and refuses 108", () => {
    const longest = bytes(`PROXY UNKNOWN ${"x".repeat(91)}\r\n`);
    assert.equal(longest.length, 107);
    assert.equal(parseDone(longest).consumed, 107);
    assertInvalid(bytes(`PROXY UNKNOWN ${"x".repeat(92)}\r\n`), /107/);
    assertInvalid(bytes(`PROXY UNKNOWN ${"x".repeat(300)}`), /107/);
  });

  it("asks for more on every prefix of a valid line", () => {
    for (
      const line of [
        "PROXY TCP4 192.0.2.10 198.51.100.5 56324 25\r\n",
        "PROXY TCP4 0.0.0.0 10.0.0.1 0 0\r\n",
        "PROXY TCP6 ::ffff:192.0.2.10 ::1 1 2\r\n",
        "PROXY TCP6 2001:db8:1:2:3:4:5:6 ::1.2.3.4 65535 1\r\n",
        "PROXY TCP6 :: 1:: 1 2\r\n",
        "PROXY UNKNOWN\r\n",
        "PROXY UNKNOWN whatever\r\n",
      ]
    ) {
      assertPrefixesIncomplete(bytes(line));
    }
  });

  it("refuses malformed lines", () => {
    const cases: Array<[string, RegExp?]> = [
      ["PROXY TCP4 192.0.2.10 198.51.100.5 56324 25\n", /LF without CR/],
      ["PROXY TCP4 192.0.2.10 198.51.100.5 56324 25\rX", /CR without LF/],
      ["PROXY TCP4 192.0.2.10 198.51.100.5 56324 25\r\r\n", /CR without LF/],
      ["PROXY TCP4 192.0.2.10\n198.51.100.5 56324 25\r\n", /LF without CR/],
      ["PROXY TCP4 192.0.2.10  198.51.100.5 56324 25\r\n"],
      ["PROXY  TCP4 192.0.2.10 198.51.100.5 56324 25\r\n"],
      ["PROXY TCP4 192.0.2.10 198.51.100.5 56324 25 \r\n"],
      ["PROXY TCP4 192.0.2.10 198.51.100.5 56324\r\n", /missing/],
      ["PROXY TCP4 192.0.2.10 198.51.100.5 56324 25 7\r\n", /too many/],
      ["PROXY TCP4\r\n", /missing/],
      ["PROXY\r\n"],
      ["PROXY \r\n", /protocol/],
      ["PROXY TCP5 192.0.2.10 198.51.100.5 56324 25\r\n", /protocol/],
      ["PROXY tcp4 192.0.2.10 198.51.100.5 56324 25\r\n", /protocol/],
      ["PROXY UDP4 192.0.2.10 198.51.100.5 56324 25\r\n", /protocol/],
      ["PROXY UNKNOWNX\r\n", /protocol/],
      ["proxy TCP4 192.0.2.10 198.51.100.5 56324 25\r\n"],
      [" PROXY TCP4 192.0.2.10 198.51.100.5 56324 25\r\n"],
      ["PROXY TCP4 2001:db8::1 2001:db8::2 1 2\r\n", /address/],
      ["PROXY TCP4 ::ffff:192.0.2.10 192.0.2.1 1 2\r\n", /address/],
      ["PROXY TCP6 192.0.2.10 198.51.100.5 1 2\r\n", /address/],
      ["PROXY TCP6 ::1 198.51.100.5 1 2\r\n", /address/],
      ["PROXY TCP4 192.0.2.010 198.51.100.5 1 2\r\n", /address/],
      ["PROXY TCP4 192.0.2.1 198.51.100.05 1 2\r\n", /address/],
      ["PROXY TCP4 192.0.2.256 198.51.100.5 1 2\r\n", /address/],
      ["PROXY TCP4 192.0.2 198.51.100.5 1 2\r\n", /address/],
      ["PROXY TCP4 192.0.2.1.5 198.51.100.5 1 2\r\n", /address/],
      ["PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n", /address/],
      ["PROXY TCP6 1::2::3 ::1 1 2\r\n", /address/],
      ["PROXY TCP6 [::1] ::1 1 2\r\n", /address/],
      ["PROXY TCP6 1:2:3:4:5:6:7:8:9 ::1 1 2\r\n", /address/],
      ["PROXY TCP4 192.0.2.10 198.51.100.5 025 25\r\n", /port/],
      ["PROXY TCP4 192.0.2.10 198.51.100.5 56324 00\r\n", /port/],
      ["PROXY TCP4 192.0.2.10 198.51.100.5 65536 25\r\n", /port/],
      ["PROXY TCP4 192.0.2.10 198.51.100.5 -1 25\r\n", /port/],
      ["PROXY TCP4 192.0.2.10 198.51.100.5 +25 25\r\n", /port/],
      ["PROXY TCP4 192.0.2.10 198.51.100.5 0x19 25\r\n", /port/],
      ["PROXY TCP4 192.0.2.10 198.51.100.5 100000 25\r\n", /port/],
      ["PROXY TCP4 192.0.2.10 198.51.100.5 56324 2\x005\r\n", /port/],
      ["PROXY TCP4 192.0.2.10 198.51.100.5 56324 25\t\r\n", /port/],
      ["GET / HTTP/1.1\r\n", /not a PROXY/],
      ["EHLO client\r\n", /not a PROXY/],
    ];
    for (const [line, reason] of cases) assertInvalid(bytes(line), reason);
  });
});

describe("v2", () => {
  it("reads a TCP4 PROXY header and leaves what follows", () => {
    const clientHello = [0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03];
    const input = concat(v2(0x21, 0x11, TCP4_BLOCK), clientHello);
    const { header, consumed } = parseDone(input);
    assert.deepEqual(header, {
      version: 2,
      command: "PROXY",
      family: "IPv4",
      sourceIp: "192.0.2.10",
      destIp: "198.51.100.5",
      sourcePort: 56324,
      destPort: 25,
      tlvs: EMPTY_TLVS,
    });
    assert.equal(consumed, 28);
    assert.deepEqual(input.subarray(consumed), new Uint8Array(clientHello));
  });

  it("reads a TCP6 PROXY header; v4-mapped addresses come out as IPv4", () => {
    const src = [0x20, 0x01, 0x0d, 0xb8, ...new Array(11).fill(0), 1];
    const mapped = [...new Array(10).fill(0), 0xff, 0xff, 192, 0, 2, 10];
    const { header, consumed } = parseDone(v2(0x21, 0x21, [...src, ...mapped, ...u16(40000), ...u16(587)]));
    assert.equal(consumed, 52);
    assert.deepEqual(header, {
      version: 2,
      command: "PROXY",
      family: "IPv6",
      sourceIp: "2001:db8::1",
      destIp: "192.0.2.10",
      sourcePort: 40000,
      destPort: 587,
      tlvs: EMPTY_TLVS,
    });
  });

  it("reads PROXY with family UNSPEC as no addresses", () => {
    const { header, consumed } = parseDone(v2(0x21, 0x00, tlv(0xe0, [1, 2])));
    assert.equal(consumed, 21);
    assert.deepEqual(header, {
      version: 2,
      command: "PROXY",
      family: "UNSPEC",
      tlvs: { raw: [{ type: 0xe0, value: new Uint8Array([1, 2]) }] },
    });
  });

  it("reads LOCAL (health check) and skips all of its length", () => {
    const local = { version: 2, command: "LOCAL", family: "UNSPEC", tlvs: EMPTY_TLVS };
    assert.deepEqual(parseDone(v2(0x20, 0x00)), { header: local, consumed: 16 });
    // Addresses given anyway are ignored, yet every byte of len is consumed.
    const withBlock = concat(v2(0x20, 0x11, [...TCP4_BLOCK, ...tlv(0x04, [0, 0])]), bytes("EHLO x\r\n"));
    const { header, consumed } = parseDone(withBlock);
    assert.deepEqual(header, local);
    assert.equal(consumed, 16 + 12 + 5);
    assert.deepEqual(withBlock.subarray(consumed), bytes("EHLO x\r\n"));
    // Families we refuse for PROXY are fine for LOCAL, even with a length too short for their block.
    for (const family of [0x12, 0x22, 0x31, 0x32]) {
      assert.deepEqual(parseDone(v2(0x20, family, [1, 2, 3])), { header: local, consumed: 19 });
    }
  });

  it("reads the TLVs of a LOCAL header (HAProxy sends e.g. a CRC32C on checks)", () => {
    const header = withCrc(v2(0x20, 0x00, tlv(0x03, [0, 0, 0, 0])), 19);
    assert.equal(parseDone(header).header.tlvs.crc32c, referenceCrc32c(v2(0x20, 0x00, tlv(0x03, [0, 0, 0, 0]))));
    assertInvalid(concat(header.subarray(0, 19), [1, 2, 3, 4]), /CRC32C/);
  });

  it("refuses a wrong signature, version or command", () => {
    for (let i = 0; i < SIG.length; i++) {
      const header = v2(0x21, 0x11, TCP4_BLOCK);
      header[i] ^= 0x40;
      assertInvalid(header);
    }
    for (const verCmd of [0x01, 0x11, 0x31, 0xf1, 0x20 | 2, 0x20 | 3, 0x2f]) {
      assertInvalid(v2(verCmd, 0x11, TCP4_BLOCK), /version|command/);
    }
  });

  it("refuses UDP, UNIX and undefined families for PROXY", () => {
    assertInvalid(v2(0x21, 0x12, TCP4_BLOCK), /UDP/);
    assertInvalid(v2(0x21, 0x22, new Array(36).fill(0)), /UDP/);
    assertInvalid(v2(0x21, 0x31, new Array(216).fill(0)), /UNIX/);
    assertInvalid(v2(0x21, 0x32, new Array(216).fill(0)), /UNIX/);
    for (const family of [0x01, 0x02, 0x10, 0x13, 0x20, 0x23, 0x30, 0x33, 0x40, 0x41, 0xff]) {
      assertInvalid(v2(0x21, family, new Array(36).fill(0)), /family/);
      assertInvalid(v2(0x20, family, new Array(36).fill(0)), /family/);
    }
  });

  it("refuses a length shorter than the address block", () => {
    assertInvalid(v2(0x21, 0x11, TCP4_BLOCK.slice(0, 11)), /short/);
    assertInvalid(v2(0x21, 0x21, new Array(35).fill(0)), /short/);
    assertInvalid(v2(0x21, 0x11, []), /short/);
  });

  it("refuses headers over the size limit", () => {
    const body = [...TCP4_BLOCK, ...tlv(0xe0, new Array(4096 - 16 - 12 - 3).fill(7))];
    assert.equal(parseDone(v2(0x21, 0x11, body)).consumed, 4096);
    assertInvalid(v2(0x21, 0x11, [...body, 0x04, 0, 0]), /limit/);
    assertInvalid(v2(0x21, 0x11, body), /limit/, 536);
    assert.equal(parseDone(v2(0x21, 0x11, TCP4_BLOCK), 28).consumed, 28);
    assertInvalid(v2(0x21, 0x11, TCP4_BLOCK), /limit/, 27);
    // The largest length a header can state, with a limit that allows it.
    const huge = v2(0x21, 0x00, tlv(0xe0, new Array(65535 - 3).fill(1)));
    assert.equal(parseDone(huge, 65551).consumed, 65551);
  });

  it("asks for more on every prefix of a valid header", () => {
    assertPrefixesIncomplete(v2(0x21, 0x11, TCP4_BLOCK));
    assertPrefixesIncomplete(v2(0x20, 0x00));
    assertPrefixesIncomplete(v2(0x21, 0x21, [...new Array(36).fill(1), ...tlv(0x02, "mx"), ...tlv(0x04, [])]));
    assertPrefixesIncomplete(withCrc(v2(0x21, 0x11, [...TCP4_BLOCK, ...tlv(0x03, [0, 0, 0, 0])]), 31));
  });
});

describe("v2 TLVs", () => {
  it("decodes the known types and keeps unknown ones raw, in order", () => {
    const ssl = [
      0x07,
      ...u32(0),
      ...tlv(0x21, "TLSv1.3"),
      ...tlv(0x22, "Jörg Client"),
      ...tlv(0x23, "TLS_AES_256_GCM_SHA384"),
      ...tlv(0x24, "SHA256"),
      ...tlv(0x25, "RSA2048"),
      ...tlv(0x26, "an unknown sub-TLV is skipped"),
    ];
    const body = [
      ...TCP4_BLOCK,
      ...tlv(0xf0, [9]),
      ...tlv(0x01, "smtp"),
      ...tlv(0x02, "mx.exämple.com"),
      ...tlv(0x04, [0, 0, 0]),
      ...tlv(0x05, [1, 2, 3, 4]),
      ...tlv(0x20, ssl),
      ...tlv(0x30, "blue"),
      ...tlv(0xe0, []),
      ...tlv(0x06, [5]),
    ];
    const { header } = parseDone(v2(0x21, 0x11, body));
    assert.deepEqual(header.tlvs, {
      alpn: "smtp",
      authority: "mx.exämple.com",
      uniqueId: new Uint8Array([1, 2, 3, 4]),
      ssl: {
        client: 7,
        verify: 0,
        version: "TLSv1.3",
        cn: "Jörg Client",
        cipher: "TLS_AES_256_GCM_SHA384",
        sigAlg: "SHA256",
        keyAlg: "RSA2048",
      },
      netns: "blue",
      raw: [
        { type: 0xf0, value: new Uint8Array([9]) },
        { type: 0xe0, value: new Uint8Array([]) },
        { type: 0x06, value: new Uint8Array([5]) },
      ],
    });
  });

  it("reads a bare SSL TLV and a failed verification", () => {
    const { header } = parseDone(v2(0x21, 0x11, [...TCP4_BLOCK, ...tlv(0x20, [0x01, ...u32(0xdeadbeef)])]));
    assert.deepEqual(header.tlvs.ssl, { client: 1, verify: 0xdeadbeef });
  });

  it("takes a unique id of 128 bytes and an empty one", () => {
    const id = new Array(128).fill(0xab);
    assert.deepEqual(
      parseDone(v2(0x21, 0x11, [...TCP4_BLOCK, ...tlv(0x05, id)])).header.tlvs.uniqueId,
      new Uint8Array(id),
    );
    assert.deepEqual(
      parseDone(v2(0x21, 0x11, [...TCP4_BLOCK, ...tlv(0x05, [])])).header.tlvs.uniqueId,
      new Uint8Array(),
    );
  });

  it("copies values out of the input buffer", () => {
    const input = v2(0x21, 0x11, [...TCP4_BLOCK, ...tlv(0x05, [1]), ...tlv(0xe0, [2])]);
    const { header } = parseDone(input);
    input.fill(0);
    assert.deepEqual(header.tlvs.uniqueId, new Uint8Array([1]));
    assert.deepEqual(header.tlvs.raw[0].value, new Uint8Array([2]));
  });

  it("refuses malformed TLVs", () => {
    const cases: Array<[number[], RegExp]> = [
      [[0xe0, 0, 5, 1, 2, 3, 4], /past/], // value runs past the header
      [[...tlv(0x04, []), 0xe0, 0], /truncated/], // 2 bytes left: no room for a TLV header
      [[0x04], /truncated/],
      [tlv(0x03, [1, 2, 3]), /CRC32C TLV/],
      [tlv(0x05, new Array(129).fill(0)), /UNIQUE_ID/],
      [tlv(0x20, [1, 0, 0, 0]), /SSL/],
      [tlv(0x20, [1, 0, 0, 0, 0, 0x21, 0, 9, 0x41]), /SSL sub-TLV/],
      [tlv(0x20, [1, 0, 0, 0, 0, 0x21, 0]), /SSL sub-TLV/],
      [[...tlv(0x20, [1, 0, 0, 0, 0, ...tlv(0x22, "a"), ...tlv(0x22, "b")])], /duplicate/],
      [[...tlv(0x02, "a"), ...tlv(0x02, "b")], /duplicate/],
      [[...tlv(0x05, []), ...tlv(0x05, [])], /duplicate/],
      [tlv(0x02, [0x6d, 0xff, 0x78]), /UTF-8/],
      [tlv(0x01, [0xc3]), /UTF-8/],
      [tlv(0x30, [0xed, 0xa0, 0x80]), /UTF-8/], // an encoded surrogate
      [tlv(0x20, [1, 0, 0, 0, 0, ...tlv(0x22, [0xfe])]), /UTF-8/],
    ];
    for (const [tlvs, reason] of cases) assertInvalid(v2(0x21, 0x11, [...TCP4_BLOCK, ...tlvs]), reason);
  });

  it("allows duplicate NOOP and unknown TLVs", () => {
    const { header } = parseDone(
      v2(0x21, 0x11, [...TCP4_BLOCK, ...tlv(0x04, []), ...tlv(0x04, [1]), ...tlv(0xe1, [1]), ...tlv(0xe1, [2])]),
    );
    assert.deepEqual(header.tlvs.raw.map((t) => t.value[0]), [1, 2]);
  });
});

describe("CRC32C", () => {
  it("matches the known answer and a bitwise implementation", () => {
    assert.equal(crc32c(bytes("123456789")), 0xe3069283);
    assert.equal(referenceCrc32c(bytes("123456789")), 0xe3069283);
    assert.equal(crc32c(new Uint8Array()), 0);
    // RFC 3720 B.4 test vectors: 32 bytes of zeros and of 0xff.
    assert.equal(crc32c(new Uint8Array(32)), 0x8a9136aa);
    assert.equal(crc32c(new Uint8Array(32).fill(0xff)), 0x62a8ab43);
    const data = new Uint8Array(1000).map((_, i) => (i * 7919) & 0xff);
    assert.equal(crc32c(data), referenceCrc32c(data));
  });

  it("accepts a header whose checksum is right", () => {
    const body = [...TCP4_BLOCK, ...tlv(0x02, "mx"), ...tlv(0x03, [0, 0, 0, 0]), ...tlv(0x04, [0])];
    const crcAt = 16 + 12 + 5 + 3;
    const header = withCrc(v2(0x21, 0x11, body), crcAt);
    const { tlvs } = parseDone(concat(header, bytes("EHLO"))).header;
    assert.equal(tlvs.crc32c, referenceCrc32c(v2(0x21, 0x11, body)));
    assert.equal(tlvs.authority, "mx");
  });

  it("refuses a header whose checksum is wrong", () => {
    const body = [...TCP4_BLOCK, ...tlv(0x03, [0, 0, 0, 0])];
    const header = withCrc(v2(0x21, 0x11, body), 31);
    parseDone(header);
    // A changed byte in the fixed part (PROXY becomes LOCAL), the addresses or the checksum itself.
    for (const at of [0x0c, 16, 20, 27, 31, 34]) {
      const bad = header.slice();
      bad[at] ^= 0x01;
      assertInvalid(bad, /CRC32C/);
    }
    // The checksum of the header without the TLV zeroed is not accepted either.
    const unzeroed = header.slice();
    unzeroed.set(u32(referenceCrc32c(v2(0x21, 0x11, [...TCP4_BLOCK, ...tlv(0x03, [1, 1, 1, 1])]))), 31);
    assertInvalid(unzeroed, /CRC32C/);
  });
});

describe("early rejection", () => {
  it("refuses at the first byte that cannot belong to a header", () => {
    const cases: Array<[string, number]> = [
      ["GET / HTTP/1.1\r\n", 1],
      ["EHLO x\r\n", 1],
      ["\x16\x03\x01\x02\x00", 1], // a TLS ClientHello
      ["PROXZ", 5],
      ["PROXY\r", 6],
      ["PROXY \n", 7],
      ["PROXY TCP7 1.2.3.4", 10],
      ["PROXY TCP4  ", 12],
      ["PROXY TCP4 01", 13],
      ["PROXY TCP4 ::1", 12],
      ["PROXY TCP4 1.2.3.4.", 19],
      ["PROXY TCP4 1.2.3.256", 20],
      ["PROXY TCP4 1.2.3.4 5.6.7.8 00", 29],
      ["PROXY TCP4 1.2.3.4 5.6.7.8 65536", 32],
      ["PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3", 31],
      ["PROXY TCP6 1.", 13],
      ["PROXY TCP6 1::2::", 17],
      ["PROXY TCP6 12345", 16],
      ["PROXY TCP6 1:2:3:4:5:6:7:8:", 27],
      ["PROXY TCP6 ::ffff:1.2.3.4.", 26],
      ["PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX", 32],
      ["PROXY TCP4 1.2.3.4 5.6.7.8 1\r", 29], // the line ended too early
      ["\r\n\r\nGET", 5],
      // 106 bytes without CR: the CRLF could only end past byte 107.
      [`PROXY UNKNOWN ${"x".repeat(200)}`, 106],
      [`PROXY UNKNOWN ${"x".repeat(92)}\r\n`, 106],
    ];
    for (const [input, at] of cases) assertRejectedAt(bytes(input), at);
  });

  it("refuses a v2 header as soon as its fixed part says so", () => {
    assertRejectedAt(v2(0x11, 0x11, TCP4_BLOCK), 13);
    assertRejectedAt(v2(0x22, 0x11, TCP4_BLOCK), 13);
    assertRejectedAt(v2(0x21, 0x12, TCP4_BLOCK), 14);
    assertRejectedAt(v2(0x21, 0x11, TCP4_BLOCK, 11), 16);
    assertRejectedAt(v2(0x21, 0x11, [], 5000), 16);
    assertRejectedAt(v2(0x21, 0x11, [], 0xffff), 16, 65535);
  });

  it("refuses a TLV that overruns as soon as its length is in", () => {
    const input = v2(0x21, 0x11, [...TCP4_BLOCK, ...tlv(0x04, []), 0xe0, 0x01, 0x00, ...new Array(50).fill(0)]);
    assertRejectedAt(input, 16 + 12 + 3 + 3);
    const badUtf8 = v2(0x21, 0x11, [...TCP4_BLOCK, ...tlv(0x02, [0xff]), ...new Array(50).fill(4)]);
    assertRejectedAt(badUtf8, 16 + 12 + 4);
  });
});

describe("writers", () => {
  it("write v1 lines", () => {
    const dec = (b: Uint8Array) => new TextDecoder().decode(b);
    assert.equal(
      dec(buildProxyHeaderV1({
        command: "PROXY",
        family: "IPv4",
        sourceIp: "192.0.2.10",
        sourcePort: 56324,
        destIp: "198.51.100.5",
        destPort: 25,
      })),
      "PROXY TCP4 192.0.2.10 198.51.100.5 56324 25\r\n",
    );
    assert.equal(
      dec(buildProxyHeaderV1({
        command: "PROXY",
        family: "IPv6",
        sourceIp: "2001:DB8:0::1",
        sourcePort: 1,
        destIp: "198.51.100.5",
        destPort: 2,
      })),
      "PROXY TCP6 2001:db8::1 ::ffff:198.51.100.5 1 2\r\n",
    );
    assert.equal(dec(buildProxyHeaderV1({ command: "UNKNOWN" })), "PROXY UNKNOWN\r\n");
  });

  it("refuse what v1 cannot say", () => {
    const ok = { command: "PROXY", family: "IPv4", sourceIp: "1.2.3.4", sourcePort: 1, destIp: "5.6.7.8", destPort: 2 };
    for (
      const bad of [
        { command: "LOCAL" },
        { ...ok, family: undefined },
        { ...ok, family: "UNSPEC" },
        { ...ok, sourceIp: "2001:db8::1" },
        { ...ok, destIp: "nope" },
        { ...ok, sourceIp: undefined },
        { ...ok, sourcePort: 65536 },
        { ...ok, destPort: 1.5 },
        { ...ok, destPort: undefined },
      ]
    ) {
      assert.throws(() => buildProxyHeaderV1(bad as never), TypeError, JSON.stringify(bad));
    }
  });

  it("write v2 headers byte for byte", () => {
    assert.deepEqual(buildProxyHeaderV2({ command: "LOCAL" }), v2(0x20, 0x00));
    assert.deepEqual(
      buildProxyHeaderV2({
        command: "PROXY",
        family: "IPv4",
        sourceIp: "192.0.2.10",
        sourcePort: 56324,
        destIp: "198.51.100.5",
        destPort: 25,
      }),
      v2(0x21, 0x11, TCP4_BLOCK),
    );
    const written = buildProxyHeaderV2(
      {
        command: "PROXY",
        family: "IPv4",
        sourceIp: "192.0.2.10",
        sourcePort: 56324,
        destIp: "198.51.100.5",
        destPort: 25,
      },
      {
        raw: [{ type: 0xe0, value: new Uint8Array([1]) }],
        netns: "ns",
        ssl: { client: 5, verify: 1, cn: "c", version: "v" },
        uniqueId: new Uint8Array([9]),
        crc32c: true,
        authority: "a",
        alpn: "p",
      },
    );
    const expected = v2(0x21, 0x11, [
      ...TCP4_BLOCK,
      ...tlv(0x01, "p"),
      ...tlv(0x02, "a"),
      ...tlv(0x03, [0, 0, 0, 0]),
      ...tlv(0x05, [9]),
      ...tlv(0x20, [5, ...u32(1), ...tlv(0x21, "v"), ...tlv(0x22, "c")]),
      ...tlv(0x30, "ns"),
      ...tlv(0xe0, [1]),
    ]);
    assert.deepEqual(written, withCrc(expected, 16 + 12 + 4 + 4 + 3));
  });

  it("write a given CRC32C value as is", () => {
    const header = buildProxyHeaderV2({ command: "LOCAL" }, { crc32c: 0x01020304 });
    assert.deepEqual(header, v2(0x20, 0x00, tlv(0x03, [1, 2, 3, 4])));
    assertInvalid(header, /CRC32C/);
  });

  it("write v4-mapped addresses for IPv4 clients of an IPv6 header, and zeros for a LOCAL without addresses", () => {
    const header = buildProxyHeaderV2({
      command: "PROXY",
      family: "IPv6",
      sourceIp: "192.0.2.10",
      sourcePort: 1,
      destIp: "::1",
      destPort: 2,
    });
    assert.deepEqual(header.subarray(16, 32), new Uint8Array([...new Array(10).fill(0), 0xff, 0xff, 192, 0, 2, 10]));
    assert.equal(parseDone(header).header.sourceIp, "192.0.2.10");
    assert.deepEqual(buildProxyHeaderV2({ command: "LOCAL", family: "IPv4" }), v2(0x20, 0x11, new Array(12).fill(0)));
  });

  it("refuse what v2 cannot say", () => {
    const ok = { command: "PROXY", family: "IPv4", sourceIp: "1.2.3.4", sourcePort: 1, destIp: "5.6.7.8", destPort: 2 };
    for (
      const bad of [
        { command: "UNKNOWN" },
        { ...ok, sourceIp: "::1" },
        { ...ok, sourceIp: undefined },
        { ...ok, sourcePort: -1 },
        { ...ok, family: "IPv5" },
      ]
    ) {
      assert.throws(() => buildProxyHeaderV2(bad as never), TypeError, JSON.stringify(bad));
    }
    const local = { command: "LOCAL" } as const;
    assert.throws(() => buildProxyHeaderV2(local, { uniqueId: new Uint8Array(129) }), TypeError);
    assert.throws(() => buildProxyHeaderV2(local, { raw: [{ type: 256, value: new Uint8Array() }] }), TypeError);
    assert.throws(() => buildProxyHeaderV2(local, { ssl: { client: 256, verify: 0 } }), TypeError);
    assert.throws(() => buildProxyHeaderV2(local, { ssl: { client: 0, verify: -1 } }), TypeError);
    assert.throws(() => buildProxyHeaderV2(local, { raw: [{ type: 0xe0, value: new Uint8Array(65533) }] }), TypeError);
    assert.equal(buildProxyHeaderV2(local, { raw: [{ type: 0xe0, value: new Uint8Array(65532) }] }).length, 65551);
  });

  it("round-trip a parsed header", () => {
    const header = buildProxyHeaderV2(
      {
        command: "PROXY",
        family: "IPv6",
        sourceIp: "2001:db8::7",
        sourcePort: 7,
        destIp: "2001:db8::25",
        destPort: 25,
      },
      { authority: "mx.example", uniqueId: new Uint8Array([1, 2]), ssl: { client: 1, verify: 0 }, crc32c: true },
    );
    const parsed = parseDone(header).header;
    assert.deepEqual(buildProxyHeaderV2(parsed, parsed.tlvs), header);
    const line = bytes("PROXY TCP6 2001:db8::7 2001:db8::25 7 25\r\n");
    assert.deepEqual(buildProxyHeaderV1(parseDone(line).header), line);
  });
});

describe("ProxyProtocolError", () => {
  it("is an Error with a name and a short reason", () => {
    try {
      parseProxyHeader(bytes("GET /"));
      assert.fail("no error");
    } catch (err) {
      assert.ok(err instanceof ProxyProtocolError);
      assert.ok(err instanceof Error);
      assert.equal(err.name, "ProxyProtocolError");
      assert.equal(err.reason, "not a PROXY protocol header");
      assert.ok(err.message.includes(err.reason));
    }
  });

  it("asks for more on no bytes at all", () => {
    assert.deepEqual(parseProxyHeader(new Uint8Array()), { status: "incomplete" });
  });
});
