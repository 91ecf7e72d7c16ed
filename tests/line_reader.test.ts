/**
 * Unit tests of the command-line framer (src/session/line_reader.ts), run under all three runtimes:
 *
 *   deno test -A tests/line_reader.test.ts
 *   bun test ./tests/line_reader.test.ts
 *   node --import tsx --test tests/line_reader.test.ts
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { type LineItem, LineReader } from "../src/session/line_reader.ts";

// ---------------------------------------------------------------------------
// helpers: strings are latin1 (one char per byte) so every byte value can be written

function bytes(s: string): Uint8Array {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

function latin1(b: Uint8Array): string {
  let s = "";
  for (let i = 0; i < b.length; i += 4096) s += String.fromCharCode(...b.subarray(i, i + 4096));
  return s;
}

/** A framed item in comparable form. */
type Item = { kind: "line"; text: string; crlf: boolean } | { kind: "too-long" } | { kind: "overflow" };

function simplify(item: LineItem): Item {
  return item.kind === "line" ? { kind: "line", text: latin1(item.bytes), crlf: item.crlf } : { kind: item.kind };
}

const line = (text: string, crlf = true): Item => ({ kind: "line", text, crlf });
const TOO_LONG: Item = { kind: "too-long" };
const OVERFLOW: Item = { kind: "overflow" };

/** Calls `next()` until it returns `undefined`. */
function drain(reader: LineReader): Item[] {
  const out: Item[] = [];
  for (let item = reader.next(); item; item = reader.next()) {
    out.push(simplify(item));
    if (out.length > 100_000) throw new Error("next() never returns undefined");
  }
  return out;
}

interface FeedResult {
  items: Item[];
  /** What `takeRest()` returned after the last chunk. */
  rest: string;
}

/** Pushes every chunk (draining after each one, as the session does), then takes the rest. */
function feed(chunks: string[], maxLineLength = 512, maxBufferSize: number | null = null): FeedResult {
  const reader = new LineReader(maxLineLength, maxBufferSize);
  const items: Item[] = [];
  for (const chunk of chunks) {
    reader.push(bytes(chunk));
    items.push(...drain(reader));
  }
  return { items, rest: latin1(reader.takeRest()) };
}

/**
 * Obviously-correct reference over the whole input (no buffer limit): split at LF,
 * a line longer than `maxLineLength` (LF included) is `too-long`, the unterminated
 * tail stays in the reader unless it is already too long to ever be accepted.
 */
function reference(input: string, maxLineLength: number): FeedResult {
  const items: Item[] = [];
  let start = 0;
  for (let lf = input.indexOf("\n"); lf >= 0; lf = input.indexOf("\n", start)) {
    const raw = input.slice(start, lf);
    if (lf + 1 - start > maxLineLength) items.push(TOO_LONG);
    else if (raw.endsWith("\r")) items.push(line(raw.slice(0, -1), true));
    else items.push(line(raw, false));
    start = lf + 1;
  }
  const tail = input.slice(start);
  return { items, rest: tail.length >= maxLineLength ? "" : tail };
}

function splitsOf(input: string): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (let at = 1; at < input.length; at++) out.push([input.slice(0, at), input.slice(at)]);
  return out;
}

// ---------------------------------------------------------------------------

describe("LineReader: framing", () => {
  it("frames CRLF lines with crlf=true and strips the line break", () => {
    assert.deepEqual(feed(["EHLO a.example\r\nMAIL FROM:<a@b.example>\r\n"]).items, [
      line("EHLO a.example"),
      line("MAIL FROM:<a@b.example>"),
    ]);
  });

  it("frames bare-LF lines with crlf=false", () => {
    assert.deepEqual(feed(["NOOP\nRSET\r\nQUIT\n"]).items, [line("NOOP", false), line("RSET"), line("QUIT", false)]);
  });

  it("frames empty lines: CRLF alone and LF alone", () => {
    assert.deepEqual(feed(["\r\n\n\r\n"]).items, [line(""), line("", false), line("")]);
  });

  it("keeps a CR that is not right before the LF inside the line", () => {
    assert.deepEqual(feed(["a\rb\r\nc\r\r\n\r\r\n"]).items, [line("a\rb"), line("c\r"), line("\r")]);
  });

  it("returns undefined while a line has no LF yet, and the line once it arrives in the same buffer", () => {
    const reader = new LineReader(512, null);
    reader.push(bytes("EHLO a"));
    assert.equal(reader.next(), undefined);
    reader.push(bytes(".example\r"));
    assert.equal(reader.next(), undefined);
    reader.push(bytes("\nNO"));
    assert.deepEqual(drain(reader), [line("EHLO a.example")]);
    assert.equal(latin1(reader.takeRest()), "NO");
  });

  it("ignores empty chunks", () => {
    const reader = new LineReader(512, null);
    reader.push(new Uint8Array(0));
    assert.equal(reader.next(), undefined);
    reader.push(bytes("HELO x\r"));
    reader.push(new Uint8Array(0));
    reader.push(bytes("\n"));
    assert.deepEqual(drain(reader), [line("HELO x")]);
  });

  it("preserves 8-bit and NUL bytes in lines byte-exact", () => {
    let all = "";
    for (let b = 0; b < 256; b++) if (b !== 0x0a) all += String.fromCharCode(b);
    assert.deepEqual(feed([all + "\n" + "\x00\xff\x80\r\n"]).items, [line(all, false), line("\x00\xff\x80")]);
  });

  it("finds a line that arrives in a new chunk after the buffer was drained (EHLO, then QUIT)", () => {
    // A plain SMTP dialogue: every command arrives in its own chunk, after the previous one was framed.
    const reader = new LineReader(512, 65536);
    reader.push(bytes("EHLO client.example\r\n"));
    assert.deepEqual(drain(reader), [line("EHLO client.example")]);
    reader.push(bytes("QUIT\r\n"));
    assert.equal(reader.hasCompleteLine(), true);
    assert.deepEqual(drain(reader), [line("QUIT")]);
  });

  it("finds a short bare-LF line after a longer line was framed", () => {
    assert.deepEqual(feed(["MAIL FROM:<a@b.example>\r\n", "\n"]).items, [
      line("MAIL FROM:<a@b.example>"),
      line("", false),
    ]);
  });
});

describe("LineReader: split input gives the same result as whole input", () => {
  const inputs = [
    "EHLO client.example\r\nQUIT\r\n",
    "EHLO client.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\n",
    "a\nb\r\n\n\r\nc\n",
    "x\r\r\n\r\n\n\n\n",
    "NOOP\r\nNOOP\r\nNOOP\r\nrest",
    "12345678\r\n123456789\r\nok\r\n1234567890\nok2\n",
    "far too long line without a break for a while\r\nnext\r\nshort\n",
    "far too long line without a break and no LF at all",
    "\x00\xff\r\n\x80\n",
  ];
  const MAX = 10;

  for (const input of inputs) {
    const expected = reference(input, MAX);

    it(`whole input matches the reference: ${JSON.stringify(input)}`, () => {
      assert.deepEqual(feed([input], MAX), expected);
    });

    it(`every 2-way split matches: ${JSON.stringify(input)}`, () => {
      for (const [a, b] of splitsOf(input)) {
        assert.deepEqual(feed([a, b], MAX), expected, `split ${JSON.stringify([a, b])}`);
      }
    });

    it(`one byte at a time matches: ${JSON.stringify(input)}`, () => {
      assert.deepEqual(feed([...input], MAX), expected);
    });
  }
});

describe("LineReader: maxLineLength (line break included)", () => {
  it("accepts a CRLF line exactly at the limit and refuses one byte more", () => {
    // limit 10: "12345678\r\n" is 10 bytes, "123456789\r\n" is 11
    assert.deepEqual(feed(["12345678\r\n123456789\r\n"], 10).items, [line("12345678"), TOO_LONG]);
  });

  it("counts a bare LF as one byte", () => {
    assert.deepEqual(feed(["123456789\n1234567890\n"], 10).items, [line("123456789", false), TOO_LONG]);
  });

  it("frames the line after a too-long one normally again", () => {
    assert.deepEqual(feed(["123456789\r\nok\r\n12345678\r\n"], 10).items, [TOO_LONG, line("ok"), line("12345678")]);
  });

  it("reports a too-long line once, when its LF arrives, even when it came in many chunks", () => {
    const chunks = ["0123456789", "abcdefghij", "klmnop", "\r", "\nNEXT\r\n"];
    assert.deepEqual(feed(chunks, 10).items, [TOO_LONG, line("NEXT")]);
  });

  it("starts dropping as soon as the pending bytes reach the limit (their LF would make them too long)", () => {
    const reader = new LineReader(5, null);
    reader.push(bytes("12345"));
    assert.equal(reader.next(), undefined);
    reader.push(bytes("\nok\n"));
    assert.deepEqual(drain(reader), [TOO_LONG, line("ok", false)]);
  });

  it("keeps pending bytes below the limit: the line is accepted when its LF comes", () => {
    const reader = new LineReader(5, null);
    reader.push(bytes("1234"));
    assert.equal(reader.next(), undefined);
    reader.push(bytes("\n"));
    assert.deepEqual(drain(reader), [line("1234", false)]);
  });

  it("drops the bytes of an over-long line instead of buffering them", () => {
    const reader = new LineReader(16, null);
    reader.push(bytes("x".repeat(1000)));
    assert.equal(reader.next(), undefined);
    assert.equal(reader.hasCompleteLine(), false);
    // Nothing of the 1000 bytes is held any more.
    assert.equal(reader.takeRest().length, 0);
  });

  it("drops megabytes of one over-long line without overflow when maxBufferSize is null", () => {
    const reader = new LineReader(16, null);
    const chunk = bytes("y".repeat(64 * 1024));
    for (let i = 0; i < 32; i++) {
      reader.push(chunk);
      assert.equal(reader.next(), undefined, `chunk ${i}`);
    }
    reader.push(bytes("\r\nQUIT\r\n"));
    assert.deepEqual(drain(reader), [TOO_LONG, line("QUIT")]);
  });
});

describe("LineReader: maxBufferSize overflow", () => {
  it("reports overflow when more than maxBufferSize bytes arrive without LF", () => {
    assert.deepEqual(feed(["x".repeat(21)], 10, 20).items, [OVERFLOW]);
  });

  it("does not report overflow at exactly maxBufferSize bytes, but at one more", () => {
    const reader = new LineReader(10, 20);
    reader.push(bytes("x".repeat(20)));
    assert.equal(reader.next(), undefined);
    reader.push(bytes("x"));
    assert.deepEqual(drain(reader), [OVERFLOW]);
  });

  it("counts the bytes over several chunks", () => {
    const reader = new LineReader(10, 20);
    for (let i = 0; i < 6; i++) {
      reader.push(bytes("xyz"));
      assert.equal(reader.next(), undefined, `after ${3 * (i + 1)} bytes`);
    }
    reader.push(bytes("xyz"));
    assert.deepEqual(drain(reader), [OVERFLOW]);
  });

  it("reports overflow also when maxBufferSize is below maxLineLength", () => {
    // e.g. ioBufferMaxSize 100 with maxCommandLineLength 512, which resolveOptions accepts
    const reader = new LineReader(512, 100);
    reader.push(bytes("x".repeat(101)));
    assert.deepEqual(drain(reader), [OVERFLOW]);
  });

  it("counts only the bytes after the last LF", () => {
    assert.deepEqual(feed(["abc\n" + "x".repeat(20)], 10, 20).items, [line("abc", false)]);
    assert.deepEqual(feed(["abc\n" + "x".repeat(21)], 10, 20).items, [line("abc", false), OVERFLOW]);
  });

  it("an over-long line whose LF comes before maxBufferSize is only too-long", () => {
    assert.deepEqual(feed(["x".repeat(15), "x".repeat(5) + "\nok\n"], 10, 20).items, [TOO_LONG, line("ok", false)]);
  });
});

describe("LineReader: hasCompleteLine", () => {
  it("is false on a fresh reader and with a partial line", () => {
    const reader = new LineReader(512, null);
    assert.equal(reader.hasCompleteLine(), false);
    reader.push(bytes("EHLO a"));
    assert.equal(reader.hasCompleteLine(), false);
  });

  it("is true while a complete line is buffered, false once all are taken", () => {
    const reader = new LineReader(512, null);
    reader.push(bytes("MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDA"));
    assert.equal(reader.hasCompleteLine(), true);
    assert.deepEqual(simplify(reader.next()!), line("MAIL FROM:<a@b.example>"));
    assert.equal(reader.hasCompleteLine(), true, "the RCPT line is pipelined behind it");
    assert.deepEqual(simplify(reader.next()!), line("RCPT TO:<c@d.example>"));
    assert.equal(reader.hasCompleteLine(), false, "DA has no LF");
    assert.equal(reader.next(), undefined);
    reader.push(bytes("TA\n"));
    assert.equal(reader.hasCompleteLine(), true);
  });

  it("sees a bare LF as a line end", () => {
    const reader = new LineReader(512, null);
    reader.push(bytes("NOOP\n"));
    assert.equal(reader.hasCompleteLine(), true);
  });
});

describe("LineReader: takeRest", () => {
  it("returns the bytes after the last framed line (message data sent right behind DATA)", () => {
    const reader = new LineReader(512, null);
    reader.push(bytes("DATA\r\nSubject: x\r\n\r\nbody"));
    assert.deepEqual(simplify(reader.next()!), line("DATA"));
    assert.equal(latin1(reader.takeRest()), "Subject: x\r\n\r\nbody");
  });

  it("empties the reader", () => {
    const reader = new LineReader(512, null);
    reader.push(bytes("DATA\r\nA\r\nB\r\n"));
    reader.next();
    reader.takeRest();
    assert.equal(reader.hasCompleteLine(), false);
    assert.equal(reader.next(), undefined);
    assert.equal(reader.takeRest().length, 0);
  });

  it("returns an empty array on a fresh reader", () => {
    assert.equal(new LineReader(512, null).takeRest().length, 0);
  });

  it("returns a partial line joined over chunks", () => {
    const reader = new LineReader(512, null);
    reader.push(bytes("abc"));
    assert.equal(reader.next(), undefined);
    reader.push(bytes("def"));
    assert.equal(reader.next(), undefined);
    assert.equal(latin1(reader.takeRest()), "abcdef");
  });
});

describe("LineReader: clear", () => {
  it("drops buffered complete and partial lines", () => {
    const reader = new LineReader(512, null);
    reader.push(bytes("RSET\r\nNOOP\r\npart"));
    reader.clear();
    assert.equal(reader.hasCompleteLine(), false);
    assert.equal(reader.next(), undefined);
    assert.equal(reader.takeRest().length, 0);
  });

  it("frames new input normally after clear (plaintext before STARTTLS is never run)", () => {
    const reader = new LineReader(512, null);
    reader.push(bytes("STARTTLS\r\nMAIL FROM:<injected@evil.example>\r\n"));
    assert.deepEqual(simplify(reader.next()!), line("STARTTLS"));
    reader.clear();
    reader.push(bytes("EHLO secure.example\r\n"));
    assert.deepEqual(drain(reader), [line("EHLO secure.example")]);
  });

  it("ends the dropping of an over-long line", () => {
    const reader = new LineReader(5, null);
    reader.push(bytes("xxxxxxxxxx"));
    assert.equal(reader.next(), undefined);
    reader.clear();
    reader.push(bytes("ab\r\n"));
    assert.deepEqual(drain(reader), [line("ab")]);
  });
});
