/**
 * Property tests (fast-check) of the sans-I/O readers: the PROXY header
 * reader, the command-line framer and the DATA framer. Run under all three
 * runtimes:
 *
 *   deno test -A tests/properties.test.ts
 *   bun test ./tests/properties.test.ts
 *   node --import tsx --test tests/properties.test.ts
 *
 * The main property of each reader: however the same bytes are cut into
 * chunks, the result is the one of a single push (and, where a simple model
 * exists, the model's). Run counts are bounded so the file stays fast; a
 * failure prints the seed and the shrunk counterexample.
 */
import { concatBytes } from "../src/bytes.ts";
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { normalizeIp, parseIp } from "../src/cidr.ts";
import { DataReader, type DataReaderOptions } from "../src/session/data_reader.ts";
import { type LineItem, LineReader } from "../src/session/line_reader.ts";
import type { CrlfMode } from "../src/options.ts";
import {
  buildProxyHeaderV1,
  buildProxyHeaderV2,
  parseProxyHeader,
  type ProxyHeader,
  type ProxyHeaderInit,
  ProxyProtocolError,
  type ProxyTlvsInit,
} from "../src/proxy_protocol.ts";

const RUNS = { numRuns: 200 };

// ---------------------------------------------------------------------------
// helpers

function bytes(s: string): Uint8Array {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

function latin1(b: Uint8Array): string {
  let s = "";
  for (const byte of b) s += String.fromCharCode(byte);
  return s;
}

const concat = concatBytes;

/**
 * `input` cut at the given positions (taken modulo its length + 1, sorted;
 * repeats give empty chunks). Each chunk is a copy in its own buffer, as
 * socket reads are.
 */
function split(input: Uint8Array, cuts: readonly number[]): Uint8Array[] {
  const points = cuts.map((c) => c % (input.length + 1)).sort((a, b) => a - b);
  const chunks: Uint8Array[] = [];
  let from = 0;
  for (const p of points) {
    chunks.push(input.slice(from, p));
    from = p;
  }
  chunks.push(input.slice(from));
  return chunks;
}

const cutsArb = fc.array(fc.nat(), { maxLength: 12 });
/** Bytes biased towards the ones framing cares about. */
const framingBytesArb = (maxLength: number) =>
  fc.array(fc.constantFrom("\r", "\n", ".", "a", "b", " ", "\r\n", ".\r\n", "\r\n.", "\x00", "\xff"), { maxLength })
    .map((parts) => bytes(parts.join("")));

// ---------------------------------------------------------------------------
// PROXY protocol

type Outcome =
  | { kind: "done"; header: ProxyHeader; consumed: number }
  | { kind: "incomplete" }
  | { kind: "invalid"; reason: string };

/** One parse call as a value; anything thrown but a ProxyProtocolError fails the property. */
function outcome(input: Uint8Array, maxV2Length?: number): Outcome {
  try {
    const result = parseProxyHeader(input, maxV2Length);
    return result.status === "done"
      ? { kind: "done", header: result.header, consumed: result.consumed }
      : { kind: "incomplete" };
  } catch (err) {
    if (err instanceof ProxyProtocolError) return { kind: "invalid", reason: err.reason };
    throw err;
  }
}

/** Grows a buffer chunk by chunk and parses after each one, as a server would, until the outcome is decided. */
function feedProxy(chunks: readonly Uint8Array[], maxV2Length?: number): Outcome {
  let buffer: Uint8Array = new Uint8Array();
  for (const chunk of chunks) {
    buffer = concat([buffer, chunk]);
    const result = outcome(buffer, maxV2Length);
    if (result.kind !== "incomplete") return result;
  }
  return { kind: "incomplete" };
}

/** Same outcome; the reason of an error may differ (a prefix can be refused for an earlier fault). */
function assertSameOutcome(actual: Outcome, expected: Outcome): void {
  if (actual.kind === "invalid" && expected.kind === "invalid") return;
  assert.deepEqual(actual, expected);
}

/** Checks what a parse that said "done" must satisfy whatever the input was. */
function assertSaneDone(input: Uint8Array, result: Outcome): void {
  if (result.kind !== "done") return;
  const { header, consumed } = result;
  assert.ok(consumed > 0 && consumed <= input.length);
  if (header.version === 1) {
    assert.ok(consumed <= 107);
    assert.equal(latin1(input.subarray(0, 6)), "PROXY ");
    assert.equal(latin1(input.subarray(consumed - 2, consumed)), "\r\n");
    assert.equal(latin1(input.subarray(0, consumed - 2)).search(/[\r\n]/), -1);
  } else {
    assert.equal(consumed, 16 + ((input[14] << 8) | input[15]));
  }
  if (header.command === "PROXY" && header.family !== "UNSPEC") {
    for (const ip of [header.sourceIp, header.destIp]) assert.equal(normalizeIp(ip!), ip);
    for (const port of [header.sourcePort, header.destPort]) assert.ok(Number.isInteger(port) && port! <= 65535);
  } else {
    assert.equal(header.sourceIp ?? header.destIp ?? header.sourcePort ?? header.destPort, undefined);
  }
}

const portArb = fc.integer({ min: 0, max: 65535 });
/** IPv6 text in every form fast-check writes (compressed, uncompressed, with a dotted tail). */
const ipv6TextArb = fc.ipV6();

/** A header to write, and what the reader must make of it. */
interface HeaderCase {
  init: ProxyHeaderInit;
  tlvs?: ProxyTlvsInit;
  version: 1 | 2;
}

const addressesArb = fc.oneof(
  fc.record({
    family: fc.constant("IPv4" as const),
    sourceIp: fc.ipV4(),
    destIp: fc.ipV4(),
    sourcePort: portArb,
    destPort: portArb,
  }),
  fc.record({
    family: fc.constant("IPv6" as const),
    sourceIp: fc.oneof(ipv6TextArb, fc.ipV4()),
    destIp: fc.oneof(ipv6TextArb, fc.ipV4()),
    sourcePort: portArb,
    destPort: portArb,
  }),
);

const textArb = fc.string({ unit: "grapheme", maxLength: 20 });
const KNOWN_TLV_TYPES = new Set([0x01, 0x02, 0x03, 0x04, 0x05, 0x20, 0x30]);
const tlvsArb: fc.Arbitrary<ProxyTlvsInit> = fc.record({
  alpn: textArb,
  authority: textArb,
  uniqueId: fc.uint8Array({ maxLength: 128 }),
  ssl: fc.record({
    client: fc.integer({ min: 0, max: 255 }),
    verify: fc.integer({ min: 0, max: 0xffffffff }),
    version: textArb,
    cn: textArb,
    cipher: textArb,
    sigAlg: textArb,
    keyAlg: textArb,
  }, { requiredKeys: ["client", "verify"] }),
  netns: textArb,
  crc32c: fc.boolean(),
  raw: fc.array(
    fc.record({
      type: fc.integer({ min: 0, max: 255 }).filter((t) => !KNOWN_TLV_TYPES.has(t)),
      value: fc.uint8Array({ maxLength: 40 }),
    }),
    { maxLength: 4 },
  ),
}, { requiredKeys: [] });

const headerCaseArb: fc.Arbitrary<HeaderCase> = fc.oneof(
  addressesArb.map((a) => ({ version: 1 as const, init: { command: "PROXY" as const, ...a } })),
  fc.constant({ version: 1 as const, init: { command: "UNKNOWN" as const } }),
  fc.record({
    version: fc.constant(2 as const),
    init: fc.oneof(
      addressesArb.map((a) => ({ command: "PROXY" as const, ...a })),
      fc.constant({ command: "PROXY" as const, family: "UNSPEC" as const }),
      fc.constant({ command: "LOCAL" as const }),
    ),
    tlvs: tlvsArb,
  }),
);

function encode(c: HeaderCase): Uint8Array {
  return c.version === 1 ? buildProxyHeaderV1(c.init) : buildProxyHeaderV2(c.init, c.tlvs);
}

/** What the reader must return for a written header, worked out from the input alone. */
function expectedHeader(c: HeaderCase): ProxyHeader {
  const { init } = c;
  const header: ProxyHeader = {
    version: c.version,
    command: init.command,
    family: init.command === "PROXY" ? init.family ?? "UNSPEC" : "UNSPEC",
    tlvs: { raw: [] },
  };
  if (init.command === "PROXY" && init.family !== "UNSPEC") {
    // Canonical text from the parsed bytes: IPv4 dotted, IPv6 lower-case and compressed.
    header.sourceIp = normalizeIp(init.sourceIp!);
    header.destIp = normalizeIp(init.destIp!);
    header.sourcePort = init.sourcePort;
    header.destPort = init.destPort;
  }
  if (c.version === 2 && c.tlvs) {
    // fast-check records have no prototype: copy them into plain objects as the reader makes.
    const { crc32c: _, raw, ssl, ...known } = c.tlvs;
    Object.assign(header.tlvs, known, { raw: (raw ?? []).map((t) => ({ type: t.type, value: t.value })) });
    if (ssl) header.tlvs.ssl = { ...ssl };
  }
  return header;
}

/** A change to a valid header: a byte changed, dropped or inserted, or the input cut short. */
type Mutation =
  | { op: "set" | "insert"; at: number; value: number }
  | { op: "delete" | "truncate"; at: number };

const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({
    op: fc.constantFrom("set" as const, "insert" as const),
    at: fc.nat(),
    value: fc.integer({ min: 0, max: 255 }),
  }),
  fc.record({ op: fc.constantFrom("delete" as const, "truncate" as const), at: fc.nat() }),
);

function mutate(input: Uint8Array, m: Mutation): Uint8Array {
  const at = m.at % (input.length + 1);
  switch (m.op) {
    case "set":
      return concat([input.subarray(0, at), new Uint8Array([m.value]), input.subarray(at + 1)]);
    case "insert":
      return concat([input.subarray(0, at), new Uint8Array([m.value]), input.subarray(at)]);
    case "delete":
      return concat([input.subarray(0, at), input.subarray(at + 1)]);
    case "truncate":
      return input.slice(0, at);
  }
}

describe("PROXY header reader properties", () => {
  it("round-trips written headers, and the bytes after them stay the client's", () => {
    fc.assert(
      fc.property(headerCaseArb, fc.uint8Array({ maxLength: 30 }), (c, rest) => {
        const header = encode(c);
        const result = outcome(concat([header, rest]), 65551);
        const expected = expectedHeader(c);
        // The checksum itself was verified by the reader; here only whether one was sent.
        const crc = result.kind === "done" ? result.header.tlvs.crc32c : undefined;
        assert.equal(crc !== undefined, c.version === 2 && c.tlvs?.crc32c === true);
        if (crc !== undefined) expected.tlvs.crc32c = crc;
        assert.deepEqual(result, { kind: "done", header: expected, consumed: header.length });
      }),
      RUNS,
    );
  });

  it("reads a header cut into any chunks as it reads it whole", () => {
    fc.assert(
      fc.property(headerCaseArb, fc.uint8Array({ maxLength: 20 }), cutsArb, (c, rest, cuts) => {
        const input = concat([encode(c), rest]);
        const whole = outcome(input, 65551);
        assert.equal(whole.kind, "done");
        assert.deepEqual(feedProxy(split(input, cuts), 65551), whole);
      }),
      RUNS,
    );
  });

  it("reads hand-written v1 lines in any address spelling, in any chunks", () => {
    const lineArb = fc.oneof(
      fc.tuple(fc.constant("TCP4"), fc.ipV4(), fc.ipV4(), portArb, portArb),
      fc.tuple(fc.constant("TCP6"), ipv6TextArb, ipv6TextArb, portArb, portArb),
    );
    fc.assert(
      fc.property(lineArb, cutsArb, ([protocol, src, dst, sport, dport], cuts) => {
        const input = bytes(`PROXY ${protocol} ${src} ${dst} ${sport} ${dport}\r\nQUIT\r\n`);
        const whole = outcome(input);
        if (input.length - 6 > 107) {
          assert.equal(whole.kind, "invalid");
        } else {
          assert.deepEqual(whole, {
            kind: "done",
            header: {
              version: 1,
              command: "PROXY",
              family: protocol === "TCP4" ? "IPv4" : "IPv6",
              sourceIp: normalizeIp(src),
              destIp: normalizeIp(dst),
              sourcePort: sport,
              destPort: dport,
              tlvs: { raw: [] },
            },
            consumed: input.length - 6,
          });
        }
        assertSameOutcome(feedProxy(split(input, cuts)), whole);
      }),
      RUNS,
    );
  });

  it("decides damaged headers the same in any chunks, and never asks for more once they are bad", () => {
    fc.assert(
      fc.property(headerCaseArb, fc.array(mutationArb, { minLength: 1, maxLength: 3 }), cutsArb, (c, ms, cuts) => {
        let input = concat([encode(c), bytes("EHLO x\r\n")]);
        for (const m of ms) input = mutate(input, m);
        const whole = outcome(input, 2048);
        assertSaneDone(input, whole);
        assertSameOutcome(feedProxy(split(input, cuts), 2048), whole);
        // Once refused, no longer input makes it acceptable.
        if (whole.kind === "invalid") assert.equal(outcome(concat([input, bytes("\r\n")]), 2048).kind, "invalid");
      }),
      RUNS,
    );
  });

  it("throws nothing but ProxyProtocolError on random bytes, and what it accepts is well formed", () => {
    const starts = ["", "PROXY ", "PROXY TCP4 ", "PROXY TCP6 ", "PROXY UNKNOWN", "\r\n\r\n\x00\r\nQUIT\n"];
    const inputArb = fc.oneof(
      fc.uint8Array({ maxLength: 200 }),
      fc.tuple(fc.constantFrom(...starts), fc.uint8Array({ maxLength: 120 })).map(([s, b]) => concat([bytes(s), b])),
      fc.tuple(
        fc.constantFrom(...starts),
        fc.string({ unit: fc.constantFrom(..."0123456789abcdef:. \r\n"), maxLength: 60 }),
      )
        .map(([s, t]) => bytes(s + t)),
      fc.tuple(
        fc.constantFrom(0x20, 0x21),
        fc.constantFrom(0x00, 0x11, 0x21, 0x12, 0x31),
        fc.uint8Array({ maxLength: 80 }),
      )
        .map(([verCmd, family, body]) =>
          concat([bytes(starts[5]), new Uint8Array([verCmd, family, 0, body.length]), body])
        ),
    );
    fc.assert(
      fc.property(inputArb, fc.integer({ min: 0, max: 300 }), (input, maxV2Length) => {
        const result = outcome(input, maxV2Length);
        assertSaneDone(input, result);
        if (result.kind === "done" && result.header.version === 2) assert.ok(result.consumed <= maxV2Length);
      }),
      { numRuns: 400 },
    );
  });

  it("never refuses a prefix of a valid IPv6 address in a v1 line", () => {
    fc.assert(
      fc.property(ipv6TextArb, (ip) => {
        const parsed = parseIp(ip);
        assert.ok(parsed, ip);
        const line = `PROXY TCP6 ${ip} ::1 1 2`;
        for (let n = 11; n <= line.length; n++) {
          assert.deepEqual(parseProxyHeader(bytes(line.slice(0, n))), { status: "incomplete" }, line.slice(0, n));
        }
      }),
      RUNS,
    );
  });
});

// ---------------------------------------------------------------------------
// LineReader

type Item = { kind: "line"; text: string; crlf: boolean } | { kind: "too-long" } | { kind: "overflow" };

function simplify(item: LineItem): Item {
  return item.kind === "line" ? { kind: "line", text: latin1(item.bytes), crlf: item.crlf } : { kind: item.kind };
}

/** Pushes every chunk and drains after each one (as the session does), then takes the rest. */
function feedLines(chunks: readonly Uint8Array[], maxLineLength: number, maxBufferSize: number | null) {
  const reader = new LineReader(maxLineLength, maxBufferSize);
  const items: Item[] = [];
  for (const chunk of chunks) {
    reader.push(chunk);
    for (let item = reader.next(); item; item = reader.next()) {
      items.push(simplify(item));
      assert.ok(items.length <= 10_000, "next() never returns undefined");
    }
  }
  return { items, rest: latin1(reader.takeRest()) };
}

/** The same framing done the obvious way on the whole input (no buffer limit). */
function modelLines(input: string, maxLineLength: number) {
  const parts = input.split("\n");
  const last = parts.pop()!;
  const items: Item[] = parts.map((p) => {
    if (p.length + 1 > maxLineLength) return { kind: "too-long" };
    const crlf = p.endsWith("\r");
    return { kind: "line", text: crlf ? p.slice(0, -1) : p, crlf };
  });
  // A tail that already reached the limit was dropped instead of buffered.
  return { items, rest: last.length >= maxLineLength ? "" : last };
}

describe("LineReader properties", () => {
  it("frames any chunking like the whole input, and like a plain split at LF", () => {
    fc.assert(
      fc.property(framingBytesArb(60), fc.integer({ min: 1, max: 16 }), cutsArb, (input, maxLineLength, cuts) => {
        const whole = feedLines([input], maxLineLength, null);
        assert.deepEqual(whole, modelLines(latin1(input), maxLineLength));
        assert.deepEqual(feedLines(split(input, cuts), maxLineLength, null), whole);
        // A buffer limit the input never reaches changes nothing.
        assert.deepEqual(feedLines(split(input, cuts), maxLineLength, input.length), whole);
      }),
      RUNS,
    );
  });

  it("never throws on random bytes and keeps its limits", () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.uint8Array({ maxLength: 120 }), framingBytesArb(60)),
        fc.integer({ min: 1, max: 40 }),
        fc.option(fc.integer({ min: 0, max: 40 })),
        cutsArb,
        (input, maxLineLength, maxBufferSize, cuts) => {
          const { items, rest } = feedLines(split(input, cuts), maxLineLength, maxBufferSize);
          for (const item of items) {
            if (item.kind !== "line") continue;
            assert.ok(!item.text.includes("\n"));
            assert.ok(item.text.length + (item.crlf ? 2 : 1) <= maxLineLength);
          }
          assert.ok(!rest.includes("\n"));
          assert.ok(rest.length < maxLineLength);
        },
      ),
      RUNS,
    );
  });
});

// ---------------------------------------------------------------------------
// DataReader

interface DataResult {
  done: boolean;
  /** Bytes of the input that belonged to the message (the rest follow it). */
  consumed: number;
  data: string;
  size: number;
  oversize: boolean;
  lineTooLong: boolean;
  bareLineBreak: boolean;
  headerSize: number;
  lastLineBreak: string;
}

/** Pushes chunks until the end of data; `consumed` counts over all of them. */
function feedData(chunks: readonly Uint8Array[], options: DataReaderOptions): DataResult {
  const reader = new DataReader(options);
  let consumed = 0;
  let done = false;
  for (const chunk of chunks) {
    const result = reader.push(chunk);
    assert.ok(result.consumed >= 0 && result.consumed <= chunk.length);
    consumed += result.consumed;
    if (result.done) {
      done = true;
      break;
    }
    assert.equal(result.consumed, chunk.length);
  }
  return {
    done,
    consumed,
    data: latin1(concat(reader.takeSegments())),
    size: reader.size,
    oversize: reader.oversize,
    lineTooLong: reader.lineTooLong,
    bareLineBreak: reader.bareLineBreak,
    headerSize: reader.headerSize,
    lastLineBreak: reader.lastLineBreak,
  };
}

/**
 * The message as CRLF_LEAVE must give it: lines start after CRLF only,
 * `.CRLF` there ends the message, a leading dot of another line is dropped.
 * Without the end, a line start holding just `.` or `.\r` stays undecided.
 */
function modelData(s: string): { done: boolean; consumed: number; data: string } {
  let data = "";
  let i = 0;
  let atLineStart = true;
  for (;;) {
    if (atLineStart) {
      if (i >= s.length) break;
      if (s[i] === ".") {
        if (s.startsWith(".\r\n", i)) return { done: true, consumed: i + 3, data };
        if (s.slice(i) === "." || s.slice(i) === ".\r") break;
        i++;
      }
      atLineStart = false;
    }
    const lf = s.indexOf("\n", i);
    if (lf < 0) {
      data += s.slice(i);
      break;
    }
    data += s.slice(i, lf + 1);
    atLineStart = lf > 0 && s[lf - 1] === "\r";
    i = lf + 1;
  }
  return { done: false, consumed: s.length, data };
}

const dataOptionsArb: fc.Arbitrary<DataReaderOptions> = fc.record({
  crlfMode: fc.constantFrom<CrlfMode>("CRLF_ENSURE", "CRLF_LEAVE", "CRLF_STRICT"),
  maxSize: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 80 })),
  maxLineLength: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 30 })),
});

describe("DataReader properties", () => {
  it("reads any chunking of a message like one push", () => {
    fc.assert(
      fc.property(framingBytesArb(60), dataOptionsArb, cutsArb, (input, options, cuts) => {
        const whole = feedData([input], options);
        assert.deepEqual(feedData(split(input, cuts), options), whole);
      }),
      RUNS,
    );
  });

  it("ends, unstuffs and keeps bytes as the model does (CRLF_LEAVE, no limits)", () => {
    fc.assert(
      fc.property(framingBytesArb(60), cutsArb, (input, cuts) => {
        const model = modelData(latin1(input));
        const result = feedData(split(input, cuts), { crlfMode: "CRLF_LEAVE", maxSize: 0, maxLineLength: 0 });
        assert.deepEqual({ done: result.done, consumed: result.consumed, data: result.data }, model);
        assert.equal(result.size, model.data.length);
      }),
      RUNS,
    );
  });

  it("ends a message followed by more commands exactly at its terminator", () => {
    fc.assert(
      fc.property(framingBytesArb(40), dataOptionsArb, cutsArb, (body, options, cuts) => {
        // Dot-stuff the body as a client must, and end it with CRLF.CRLF, then pipeline a command.
        let text = latin1(body).replace(/\r\n\./g, "\r\n..");
        if (text.startsWith(".")) text = "." + text;
        const message = bytes(text + "\r\n.\r\n");
        const input = concat([message, bytes("QUIT\r\n")]);
        const result = feedData(split(input, cuts), options);
        assert.equal(result.done, true);
        assert.equal(result.consumed, message.length);
      }),
      RUNS,
    );
  });

  it("never throws on random bytes and keeps its limits", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 150 }), dataOptionsArb, cutsArb, (input, options, cuts) => {
        const result = feedData(split(input, cuts), options);
        assert.ok(result.consumed <= input.length);
        if (result.oversize) assert.equal(result.data, "");
        else assert.equal(result.data.length, result.size);
        if (options.maxSize > 0) assert.equal(result.oversize, result.size > options.maxSize);
        // CRLF_ENSURE repairs every bare CR and LF (a CR at the very end still waits for its next byte).
        const settled = result.done ? result.data : result.data.replace(/\r$/, "");
        if (options.crlfMode === "CRLF_ENSURE") assert.equal(/\r(?!\n)|(?<!\r)\n/.test(settled), false);
      }),
      RUNS,
    );
  });
});
