/**
 * Unit and property tests of the BDAT framer (src/session/chunk_reader.ts),
 * run under all three runtimes:
 *
 *   deno test -A tests/chunk_reader.test.ts
 *   bun test ./tests/chunk_reader.test.ts
 *   node --import tsx --test tests/chunk_reader.test.ts
 *
 * Every case is byte-exact. Messages are given as their BDAT chunks; each
 * chunk is pushed together with the command that follows it on the wire, so
 * that every push also proves the framer stops at the chunk's last octet.
 * The properties check that however a message is cut into chunks and reads,
 * the result is the one of a single chunk in a single push, and the one of a
 * simple model on the whole string.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import type { BodyFramer } from "../src/session/body_framer.ts";
import { ChunkReader, type ChunkReaderOptions } from "../src/session/chunk_reader.ts";
import { DataPhase } from "../src/session/data_phase.ts";
import type { CrlfMode } from "../src/options.ts";
import { concatBytes } from "../src/bytes.ts";

// ---------------------------------------------------------------------------
// helpers: strings are latin1 (one char per byte) so every byte value can be written

function bytes(s: string): Uint8Array {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

/** `bytes(s)` starting `offset` bytes into a larger buffer: the text scan reads aligned words, so test every alignment. */
function bytesAt(s: string, offset: number): Uint8Array {
  const out = new Uint8Array(offset + s.length + 3).subarray(offset, offset + s.length);
  out.set(bytes(s));
  return out;
}

function latin1(b: Uint8Array): string {
  let s = "";
  for (let i = 0; i < b.length; i += 4096) s += String.fromCharCode(...b.subarray(i, i + 4096));
  return s;
}

const MODES: readonly CrlfMode[] = ["CRLF_ENSURE", "CRLF_LEAVE", "CRLF_STRICT"];
/** What follows a chunk on the wire: the framer must never take it. */
const NEXT = "BDAT 9 LAST\r\n";

function options(o: Partial<ChunkReaderOptions> = {}): ChunkReaderOptions {
  return { crlfMode: "CRLF_ENSURE", maxSize: 0, maxLineLength: 0, binary: false, ...o };
}

/** Everything observable after a whole message. */
interface Outcome {
  data: string;
  size: number;
  wireSize: number;
  oversize: boolean;
  lineTooLong: boolean;
  bareLineBreak: boolean;
  headerSize: number;
  lastLineBreak: string;
}

function outcome(r: ChunkReader): Outcome {
  return {
    data: latin1(concatBytes(r.takeSegments())),
    size: r.size,
    wireSize: r.wireSize,
    oversize: r.oversize,
    lineTooLong: r.lineTooLong,
    bareLineBreak: r.bareLineBreak,
    headerSize: r.headerSize,
    lastLineBreak: r.lastLineBreak,
  };
}

/**
 * Reads one chunk as a session does: `beginChunk`, then the chunk's bytes
 * followed by the next command, cut into reads of `readSize` (0: one read),
 * pushed until the chunk is done. Checks what every push consumed.
 */
function readChunk(r: ChunkReader, chunk: string, last: boolean, readSize = 0, align = 0): void {
  r.beginChunk(chunk.length, last);
  const wire = chunk + NEXT;
  let at = 0;
  while (r.chunkRemaining > 0) {
    const end = readSize > 0 ? Math.min(at + readSize, wire.length) : wire.length;
    const before = r.chunkRemaining;
    const { consumed, done } = r.push(bytesAt(wire.slice(at, end), (at + align) % 4));
    assert.equal(consumed, Math.min(end - at, before), "a push consumes the chunk's octets and nothing after them");
    assert.equal(done, r.chunkRemaining === 0);
    at += consumed;
  }
  assert.equal(at, chunk.length);
  assert.equal(r.lastChunk, last);
}

/** A whole message from its chunks (the last one carries LAST). */
function read(chunks: readonly string[], o: Partial<ChunkReaderOptions> = {}, readSize = 0): Outcome {
  const r = new ChunkReader(options(o));
  chunks.forEach((chunk, k) => readChunk(r, chunk, k === chunks.length - 1, readSize, k));
  return outcome(r);
}

/** The message as one chunk and as every cut of it into two chunks: all must read alike. */
function readAnyCut(message: string, o: Partial<ChunkReaderOptions> = {}): Outcome {
  const whole = read([message], o);
  for (let at = 0; at <= message.length; at++) {
    const cut = [message.slice(0, at), message.slice(at)];
    assert.deepEqual(read(cut, o), whole, `chunks ${JSON.stringify(cut)}`);
  }
  assert.deepEqual(read([message], o, 1), whole, "one byte per read");
  return whole;
}

// ---------------------------------------------------------------------------

describe("ChunkReader", () => {
  it("is a BodyFramer", () => {
    const framer: BodyFramer = new ChunkReader(options());
    assert.equal(framer.size, 0);
    assert.equal(framer.headerSize, -1);
  });

  it("counts octets: a push takes at most the rest of the chunk, and the next command stays", () => {
    const r = new ChunkReader(options());
    r.beginChunk(5, false);
    assert.deepEqual(r.push(bytes("abc")), { consumed: 3, done: false });
    assert.equal(r.chunkRemaining, 2);
    assert.deepEqual(r.push(bytes("de" + NEXT)), { consumed: 2, done: true });
    assert.equal(r.chunkRemaining, 0);
    assert.equal(r.lastChunk, false);
    assert.deepEqual(r.push(bytes(NEXT)), { consumed: 0, done: true }, "no chunk running: nothing is taken");
    r.beginChunk(2, true);
    assert.deepEqual(r.push(bytes("fg" + NEXT)), { consumed: 2, done: true });
    assert.equal(r.lastChunk, true);
    assert.deepEqual(outcome(r), {
      data: "abcdefg",
      size: 7,
      wireSize: 7,
      oversize: false,
      lineTooLong: false,
      bareLineBreak: false,
      headerSize: -1,
      lastLineBreak: "\r\n",
    });
  });

  it("keeps the octets as views of the input (zero-copy)", () => {
    const r = new ChunkReader(options());
    const input = bytes("Subject: x\r\n\r\nbody\r\n" + NEXT);
    r.beginChunk(20, true);
    r.push(input);
    const segments = r.takeSegments();
    assert.equal(segments.length, 1);
    assert.equal(segments[0].buffer, input.buffer);
    assert.equal(segments[0].byteOffset, input.byteOffset);
  });

  it("a CRLF split between chunks is one CRLF, in every mode", () => {
    for (const crlfMode of MODES) {
      const out = read(["Subject: x\r", "\n\r", "\nline\r", "\n"], { crlfMode });
      assert.equal(out.data, "Subject: x\r\n\r\nline\r\n", crlfMode);
      assert.equal(out.bareLineBreak, false, crlfMode);
      assert.equal(out.headerSize, 14, crlfMode);
      assert.equal(readAnyCut("Subject: x\r\n\r\nline\r\n", { crlfMode }).data, out.data);
    }
  });

  it("CRLF.CRLF inside a chunk means nothing: kept verbatim, the chunk goes on", () => {
    for (const crlfMode of MODES) {
      const out = readAnyCut("a\r\n.\r\nMAIL FROM:<x@y>\r\n..\r\n.", { crlfMode });
      assert.equal(out.data, "a\r\n.\r\nMAIL FROM:<x@y>\r\n..\r\n.", crlfMode);
      assert.equal(out.size, 28);
    }
  });

  it("CRLF_ENSURE: bare LF and bare CR become CRLF, across chunk borders too", () => {
    assert.equal(read(["a\n", "b\n"]).data, "a\r\nb\r\n");
    assert.equal(read(["a", "\nb"]).data, "a\r\nb");
    assert.equal(read(["a\r", "b"]).data, "a\r\nb", "a CR that ends a chunk, with no LF after it");
    assert.equal(read(["a\r", "\r\n"]).data, "a\r\n\r\n");
    assert.equal(read(["a\r"]).data, "a\r\n", "a CR that ends the message is bare");
    assert.equal(read(["a\r", ""]).data, "a\r\n", "... also when BDAT 0 LAST ends it");
    const out = readAnyCut("x\ny\rz\r\r\n\n\r");
    assert.equal(out.data, "x\r\ny\r\nz\r\n\r\n\r\n\r\n");
    assert.equal(out.size, out.data.length);
    assert.equal(out.wireSize, 10);
    assert.equal(out.bareLineBreak, true);
  });

  it("CRLF_LEAVE keeps bare line breaks and notes the last one; CRLF_STRICT marks them", () => {
    const leave = readAnyCut("a\nb\rc\r\nd\n", { crlfMode: "CRLF_LEAVE" });
    assert.equal(leave.data, "a\nb\rc\r\nd\n");
    assert.equal(leave.bareLineBreak, true);
    assert.equal(leave.lastLineBreak, "\n");
    const strict = readAnyCut("a\r\nb\n", { crlfMode: "CRLF_STRICT" });
    assert.equal(strict.data, "a\r\nb\n");
    assert.equal(strict.bareLineBreak, true);
    assert.equal(read(["a\r"], { crlfMode: "CRLF_STRICT" }).bareLineBreak, true);
    assert.equal(read(["a\r", "\n"], { crlfMode: "CRLF_STRICT" }).bareLineBreak, false);
  });

  it("line length counts across chunk borders, line break included", () => {
    assert.equal(read(["abc", "\r\n"], { maxLineLength: 5 }).lineTooLong, false);
    assert.equal(read(["abc", "d\r\n"], { maxLineLength: 5 }).lineTooLong, true);
    assert.equal(read(["ab", "cd", "ef"], { maxLineLength: 5 }).lineTooLong, true, "a last line without break");
    assert.equal(readAnyCut("abc\r\nabc\r\n", { maxLineLength: 5 }).lineTooLong, false);
    assert.equal(readAnyCut("abc\r\nabcd\r\n", { maxLineLength: 5 }).lineTooLong, true);
  });

  it("binary (BINARYMIME): every octet 0..255 kept exactly, no line policy at all", () => {
    let all = "";
    for (let b = 0; b < 256; b++) all += String.fromCharCode(b);
    const body = "Subject: bin\r\n\r\n" + all + "\n\r" + all + "\r";
    for (const crlfMode of MODES) {
      const out = read([body.slice(0, 7), body.slice(7, 300), body.slice(300)], {
        crlfMode,
        maxLineLength: 10,
        binary: true,
      });
      assert.equal(out.data, body, crlfMode);
      assert.equal(out.size, body.length);
      assert.equal(out.bareLineBreak, false);
      assert.equal(out.lineTooLong, false);
      assert.equal(out.headerSize, 16);
    }
  });

  it("the header section ends at the first empty line, found across chunk borders", () => {
    assert.equal(read(["Subject: x\r\n\r", "\nbody"]).headerSize, 14);
    assert.equal(read(["Subject: x\r\n", "\r\nbody"]).headerSize, 14);
    assert.equal(read(["Subject: x\r", "\n", "\r", "\nbody"], { binary: true }).headerSize, 14);
    assert.equal(read(["\r\nbody"]).headerSize, 2, "an empty header section");
    assert.equal(read(["Subject: x\r\nbody"]).headerSize, -1);
    // Text: the output's first empty line (CRLF_ENSURE made it CRLF; CRLF_LEAVE keeps a bare LF one).
    assert.equal(read(["Subject: x\n", "\nbody"]).headerSize, 14);
    assert.equal(read(["Subject: x\n", "\nbody"], { crlfMode: "CRLF_LEAVE" }).headerSize, 12);
    // Binary: only CRLF ends a header line, a bare LF is just an octet.
    assert.equal(read(["a\n\nb\r\n", "\r\nbody"], { binary: true }).headerSize, 8);
    assert.equal(read(["a\n\r\n", "\r\n"], { binary: true }).headerSize, 6);
  });

  it("maxSize: past it the octets are counted, not kept", () => {
    const r = new ChunkReader(options({ maxSize: 10 }));
    readChunk(r, "12345678", false);
    assert.equal(r.oversize, false);
    readChunk(r, "9abc", true);
    assert.deepEqual(outcome(r), {
      data: "",
      size: 12,
      wireSize: 12,
      oversize: true,
      lineTooLong: false,
      bareLineBreak: false,
      headerSize: -1,
      lastLineBreak: "\r\n",
    });
    // CRLF_ENSURE's repairs count toward the size too, as for DATA.
    assert.equal(read(["123456789\n"], { maxSize: 10 }).oversize, true);
  });

  it("BDAT 0 LAST: done at once, with or without earlier chunks", () => {
    const empty = new ChunkReader(options());
    empty.beginChunk(0, true);
    assert.equal(empty.lastChunk, true);
    assert.equal(empty.chunkRemaining, 0);
    assert.deepEqual(empty.push(bytes(NEXT)), { consumed: 0, done: true });
    assert.equal(outcome(empty).data, "");
    assert.equal(outcome(empty).size, 0);
    assert.equal(read(["Subject: x\r\n\r\nhi\r\n", ""]).data, "Subject: x\r\n\r\nhi\r\n");
    const nonFinal = new ChunkReader(options());
    nonFinal.beginChunk(0, false);
    assert.equal(nonFinal.lastChunk, false, "a non-final BDAT 0 is legal grammar and ends nothing");
  });

  it("beginChunk refuses while a chunk is running, after LAST, and a bad size", () => {
    const r = new ChunkReader(options());
    r.beginChunk(4, false);
    r.push(bytes("ab"));
    assert.throws(() => r.beginChunk(1, true), /still has 2 octets/);
    r.push(bytes("cd"));
    r.beginChunk(1, true);
    r.push(bytes("e"));
    assert.throws(() => r.beginChunk(1, false), /LAST chunk was read/);
    const fresh = new ChunkReader(options());
    for (const size of [-1, 1.5, NaN, 2 ** 53]) assert.throws(() => fresh.beginChunk(size, false), RangeError);
  });

  it("retain = false only counts (streaming takes the bytes as they come)", () => {
    const r = new ChunkReader(options());
    r.beginChunk(4, false);
    r.push(bytes("ab\r\n"));
    assert.equal(latin1(r.take()), "ab\r\n");
    r.retain = false;
    r.beginChunk(3, true);
    r.push(bytes("cd\n"));
    assert.equal(r.take().length, 0);
    assert.equal(r.size, 8);
  });
});

// ---------------------------------------------------------------------------
// properties

const RUNS = { numRuns: 300 };

/** Bytes biased towards the ones framing cares about. */
const bodyArb = fc.array(
  fc.constantFrom("\r", "\n", ".", "a", "b", " ", "\r\n", "\r\n.\r\n", "\r\n\r\n", "\x00", "\xff"),
  { maxLength: 40 },
).map((parts) => parts.join(""));
const cutsArb = fc.array(fc.nat(), { maxLength: 8 });
const optionsArb: fc.Arbitrary<ChunkReaderOptions> = fc.record({
  crlfMode: fc.constantFrom<CrlfMode>(...MODES),
  maxSize: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 60 })),
  maxLineLength: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 20 })),
  binary: fc.boolean(),
});

/** `s` cut at the given points (modulo its length + 1; repeats give empty pieces). */
function cut(s: string, cuts: readonly number[]): string[] {
  const points = cuts.map((c) => c % (s.length + 1)).sort((a, b) => a - b);
  const pieces: string[] = [];
  let from = 0;
  for (const p of points) {
    pieces.push(s.slice(from, p));
    from = p;
  }
  pieces.push(s.slice(from));
  return pieces;
}

/** The whole message by string functions, as the reader must see it. */
function model(body: string, o: ChunkReaderOptions): Outcome {
  const out = o.binary || o.crlfMode !== "CRLF_ENSURE" ? body : body.replace(/\r\n|\r|\n/g, "\r\n");
  let headerSize = -1;
  if (o.binary) {
    if (out.startsWith("\r\n")) headerSize = 2;
    else if (out.includes("\r\n\r\n")) headerSize = out.indexOf("\r\n\r\n") + 4;
  } else {
    const empty = /(^|\n)(\r?\n)/.exec(out);
    if (empty) headerSize = empty.index + empty[0].length;
  }
  const lines = body.split("\n");
  const lineTooLong = !o.binary && o.maxLineLength > 0 &&
    lines.some((line, k) => line.length + (k < lines.length - 1 ? 1 : 0) > o.maxLineLength);
  const oversize = o.maxSize > 0 && out.length > o.maxSize;
  const lastLf = body.lastIndexOf("\n");
  return {
    data: oversize ? "" : out,
    size: out.length,
    wireSize: body.length,
    oversize,
    lineTooLong,
    bareLineBreak: !o.binary && /\r(?!\n)|(?<!\r)\n/.test(body),
    headerSize,
    lastLineBreak: o.binary || lastLf < 0 || body[lastLf - 1] === "\r" ? "\r\n" : "\n",
  };
}

describe("ChunkReader properties", () => {
  it("one byte per push reads like everything in one push", () => {
    fc.assert(
      fc.property(bodyArb, optionsArb, (body, o) => {
        assert.deepEqual(read([body], o, 1), read([body], o));
      }),
      RUNS,
    );
  });

  it("any cut into chunks and reads reads like one chunk in one push, and as the model says", () => {
    fc.assert(
      fc.property(bodyArb, optionsArb, cutsArb, fc.nat({ max: 7 }), (body, o, chunkCuts, readSize) => {
        const whole = read([body], o);
        assert.deepEqual(read(cut(body, chunkCuts), o, readSize), whole);
        assert.deepEqual(whole, model(body, o));
      }),
      RUNS,
    );
  });

  it("wouldExceed refuses exactly the chunks that would take the octets sent past maxSize", () => {
    fc.assert(
      fc.property(bodyArb, cutsArb, fc.integer({ min: 1, max: 40 }), (body, chunkCuts, maxSize) => {
        const phase = DataPhase.chunked({ ...options({ maxSize }), binary: true });
        let sent = 0;
        for (const chunk of cut(body, chunkCuts)) {
          assert.equal(phase.wouldExceed(chunk.length), sent + chunk.length > maxSize);
          if (phase.wouldExceed(chunk.length)) break;
          phase.beginChunk(chunk.length, false);
          phase.push(bytes(chunk));
          sent += chunk.length;
        }
        assert.equal(phase.refusalAtEnd(), undefined, "a binary body within the limit is never refused");
      }),
      RUNS,
    );
  });
});
