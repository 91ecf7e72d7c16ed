/**
 * Unit tests of the DATA framer (src/session/data_reader.ts), run under all three runtimes:
 *
 *   deno test -A tests/data_reader.test.ts
 *   bun test ./tests/data_reader.test.ts
 *   node --import tsx --test tests/data_reader.test.ts
 *
 * Besides hand-written cases, every input is fed whole, split at every byte
 * position and one byte at a time, and a seeded generator makes random inputs
 * that are checked against a naive reference implementation working on the
 * whole string.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { DataReader, type DataReaderOptions } from "../src/session/data_reader.ts";
import type { CrlfMode } from "../src/options.ts";

// ---------------------------------------------------------------------------
// helpers: strings are latin1 (one char per byte) so every byte value can be written

function bytes(s: string): Uint8Array {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

/**
 * `bytes(s)` as a view that starts `offset` bytes into a larger buffer: the
 * reader scans four bytes at a time through an aligned view, so chunks must
 * also arrive at every alignment (as socket reads do).
 */
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

function reader(options: Partial<DataReaderOptions> = {}): DataReader {
  return new DataReader({ crlfMode: "CRLF_ENSURE", maxSize: 0, maxLineLength: 0, ...options });
}

/** Everything observable after feeding some chunks. */
interface Outcome {
  /** The message bytes (`take()` once at the end). */
  data: string;
  /** Sum of `consumed` over the pushes. */
  consumed: number;
  done: boolean;
  size: number;
  oversize: boolean;
  lineTooLong: boolean;
  bareLineBreak: boolean;
  headerSize: number;
  lastLineBreak: string;
}

/** Pushes chunks until one reports `done`; checks that every earlier push consumed its whole chunk. */
function run(chunks: string[], options: Partial<DataReaderOptions> = {}): Outcome {
  const r = reader(options);
  let consumed = 0;
  let done = false;
  for (const [n, chunk] of chunks.entries()) {
    const result = r.push(bytesAt(chunk, (n + chunk.length) % 4));
    assert.ok(
      result.consumed >= 0 && result.consumed <= chunk.length,
      `consumed ${result.consumed} of ${chunk.length}`,
    );
    consumed += result.consumed;
    if (result.done) {
      done = true;
      break;
    }
    assert.equal(result.consumed, chunk.length, "a push that does not finish the message consumes all of its chunk");
  }
  return {
    data: latin1(r.take()),
    consumed,
    done,
    size: r.size,
    oversize: r.oversize,
    lineTooLong: r.lineTooLong,
    bareLineBreak: r.bareLineBreak,
    headerSize: r.headerSize,
    lastLineBreak: r.lastLineBreak,
  };
}

function splitsOf(input: string): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (let at = 1; at < input.length; at++) out.push([input.slice(0, at), input.slice(at)]);
  return out;
}

/**
 * The naive reference: works on the whole input with string functions.
 * - The message ends at the first CRLF "." CRLF (or at ".\r\n" as the very first bytes).
 * - Lines start at the beginning and after each CRLF; a "." opening such a line is dropped.
 * - A bare CR (no LF after it) or bare LF (no CR before it) sets bareLineBreak;
 *   CRLF_ENSURE turns each into CRLF, the other modes keep the bytes.
 * - Line length: the unstuffed bytes up to and including each LF (RFC 5321 4.5.3.1.6
 *   does not count the leading dot duplicated for transparency).
 * - headerSize: the output up to and including the first empty line, or -1.
 * Only meaningful for inputs that contain their end.
 */
function naive(input: string, options: Partial<DataReaderOptions> = {}): Outcome {
  const { crlfMode = "CRLF_ENSURE", maxSize = 0, maxLineLength = 0 } = options;
  let wire: string;
  let consumed: number;
  let done = true;
  if (input.startsWith(".\r\n")) {
    wire = "";
    consumed = 3;
  } else if (input.includes("\r\n.\r\n")) {
    const at = input.indexOf("\r\n.\r\n");
    wire = input.slice(0, at + 2);
    consumed = at + 5;
  } else {
    wire = input;
    consumed = input.length;
    done = false;
  }
  const unstuffed = wire.split("\r\n").map((l) => l.startsWith(".") ? l.slice(1) : l).join("\r\n");
  const bareLineBreak = /\r(?!\n)|(?<!\r)\n/.test(unstuffed);
  const out = crlfMode === "CRLF_ENSURE" ? unstuffed.replace(/\r\n|\r|\n/g, "\r\n") : unstuffed;
  let lineTooLong = false;
  let headerSize = -1;
  const lines = unstuffed.split("\n").slice(0, -1).map((l) => l + "\n");
  for (const l of lines) if (maxLineLength > 0 && l.length > maxLineLength) lineTooLong = true;
  if (crlfMode === "CRLF_ENSURE") {
    if (out.startsWith("\r\n")) headerSize = 2;
    else if (out.includes("\r\n\r\n")) headerSize = out.indexOf("\r\n\r\n") + 4;
  } else {
    let offset = 0;
    for (const l of lines) {
      offset += l.length;
      if (l === "\n" || l === "\r\n") {
        headerSize = offset;
        break;
      }
    }
  }
  const lastLf = wire.lastIndexOf("\n");
  const oversize = maxSize > 0 && out.length > maxSize;
  return {
    data: oversize ? "" : out,
    consumed,
    done,
    size: out.length,
    oversize,
    lineTooLong,
    bareLineBreak,
    headerSize,
    lastLineBreak: lastLf < 0 || wire[lastLf - 1] === "\r" ? "\r\n" : "\n",
  };
}

/** Deterministic PRNG (mulberry32). */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// ---------------------------------------------------------------------------

describe("DataReader: end of data", () => {
  it("ends at CRLF.CRLF and consumes up to right after it; the commands behind it are left", () => {
    const input = "Subject: x\r\n\r\nhello\r\n.\r\nQUIT\r\n";
    const r = reader();
    const result = r.push(bytes(input));
    assert.deepEqual(result, { consumed: input.length - "QUIT\r\n".length, done: true });
    assert.equal(latin1(r.take()), "Subject: x\r\n\r\nhello\r\n");
    assert.equal(input.slice(result.consumed), "QUIT\r\n");
  });

  it("does not end without the end sequence, and consumes the whole chunk", () => {
    const r = reader();
    assert.deepEqual(r.push(bytes("Subject: x\r\n\r\nhello\r\n")), { consumed: 21, done: false });
    assert.deepEqual(r.push(bytes("more\r\n.")), { consumed: 7, done: false });
    assert.deepEqual(r.push(bytes("\r\nRSET\r\n")), { consumed: 2, done: true });
    assert.equal(latin1(r.take()), "Subject: x\r\n\r\nhello\r\nmore\r\n");
  });

  it("accepts the empty message: .CRLF right away", () => {
    const r = reader();
    assert.deepEqual(r.push(bytes(".\r\nQUIT\r\n")), { consumed: 3, done: true });
    assert.equal(r.take().length, 0);
    assert.equal(r.size, 0);
    assert.equal(r.headerSize, -1);
    assert.equal(r.bareLineBreak, false);
  });

  it("accepts the empty message fed one byte at a time", () => {
    assert.deepEqual(run([".", "\r", "\n", "Q"]), { ...naive(".\r\nQ"), consumed: 3 });
  });

  it("ends only once: bytes after the end are never looked at", () => {
    const r = reader();
    assert.deepEqual(r.push(bytes("a\r\n.\r\n.\r\n")), { consumed: 6, done: true });
    assert.equal(latin1(r.take()), "a\r\n");
  });

  const boundaries: Array<[string, string[], number]> = [
    ['"." ends a chunk', ["x\r\n.", "\r\nQUIT"], 2],
    ['".\\r" ends a chunk', ["x\r\n.\r", "\nQUIT"], 1],
    ["the CR of the CRLF before the dot ends a chunk", ["x\r", "\n.\r\nQUIT"], 4],
    ["the dot starts a chunk", ["x\r\n", ".\r\nQUIT"], 3],
    ["the end sequence is split into single bytes", ["x", "\r", "\n", ".", "\r", "\n", "QUIT"], 1],
  ];
  for (const [what, chunks, lastConsumed] of boundaries) {
    it(`reports consumed right when ${what}`, () => {
      const r = reader();
      let last = { consumed: -1, done: false };
      for (const chunk of chunks) {
        last = r.push(bytes(chunk));
        if (last.done) break;
      }
      assert.deepEqual(last, { consumed: lastConsumed, done: true });
      assert.equal(latin1(r.take()), "x\r\n");
    });
  }

  it("treats empty chunks as no-ops, also between the CR and LF before the final dot", () => {
    const r = reader();
    assert.deepEqual(r.push(bytes("a\r")), { consumed: 2, done: false });
    assert.deepEqual(r.push(new Uint8Array(0)), { consumed: 0, done: false });
    assert.deepEqual(r.push(bytes("\n.\r\nQUIT\r\n")), { consumed: 4, done: true });
    assert.equal(latin1(r.take()), "a\r\n");
    assert.equal(r.bareLineBreak, false);
  });

  it("treats empty chunks as no-ops everywhere else", () => {
    const input = "A: b\r\n\r\n..x\r\ny\r\n.\r\nQ";
    const chunks: string[] = [""];
    // (an empty chunk right after a CR is the case of the test above)
    for (const ch of input) chunks.push(...(ch === "\r" ? [ch] : [ch, ""]));
    assert.deepEqual(run(chunks), run([input]));
  });
});

describe("DataReader: dot-unstuffing", () => {
  const cases: Array<[string, string]> = [
    ["..x\r\n", ".x\r\n"],
    ["..\r\n", ".\r\n"],
    ["...\r\n", "..\r\n"],
    [".abc\r\n", "abc\r\n"],
    ["a\r\n..b\r\n", "a\r\n.b\r\n"],
    ["a\r\n.b\r\n", "a\r\nb\r\n"],
    ["a.b\r\n.. \r\n", "a.b\r\n. \r\n"],
    ["a\r\n..\r\n..\r\n", "a\r\n.\r\n.\r\n"],
  ];
  for (const [body, expected] of cases) {
    for (const mode of MODES) {
      it(`${JSON.stringify(body)} -> ${JSON.stringify(expected)} (${mode})`, () => {
        const out = run([body + ".\r\n"], { crlfMode: mode });
        assert.equal(out.data, expected);
        assert.equal(out.done, true);
        assert.equal(out.consumed, body.length + 3);
        assert.equal(out.size, expected.length);
      });
    }
  }

  it("does not unstuff a dot that follows a bare LF or a bare CR (those are not line starts)", () => {
    assert.equal(run(["a\n..b\r\n.\r\n"], { crlfMode: "CRLF_LEAVE" }).data, "a\n..b\r\n");
    assert.equal(run(["a\r..b\r\n.\r\n"], { crlfMode: "CRLF_LEAVE" }).data, "a\r..b\r\n");
  });
});

describe("DataReader: SMTP smuggling sequences never end the message", () => {
  // Each sequence follows "body" and is followed by a smuggled transaction. Only a real
  // CRLF "." CRLF may end the message; every variant with a bare CR or LF must not.
  const SMUGGLED = "MAIL FROM:<evil@example.com>\r\nRCPT TO:<victim@example.com>\r\nDATA\r\nspoofed\r\n";
  const PREFIX = "Subject: s\r\n\r\nbody";
  const table: Array<[string, boolean]> = [
    ["\r\n.\r\n", true],
    ["\n.\n", false],
    ["\n.\r\n", false],
    ["\r\n.\n", false],
    ["\r.\r", false],
    ["\r.\r\n", false],
    ["\n.\r", false],
    ["\r.\n", false],
    ["\r\n.\r", false],
    ["\n.\n\n", false],
    ["\r\n.\r\r\n", false],
    ["\r\n.\n\r\n", false],
    ["\r\n. \r\n", false],
    ["\r\n..\r\n", false],
    ["\r\n\x00.\r\n", false],
    ["\r\r\n.\r\n", true],
    ["\n\r\n.\r\n", true],
  ];
  for (const [sequence, ends] of table) {
    for (const mode of MODES) {
      it(`${JSON.stringify(sequence)} ${ends ? "ends" : "does not end"} the message (${mode})`, () => {
        const input = PREFIX + sequence + SMUGGLED + ".\r\nQUIT\r\n";
        const expectedConsumed = ends ? input.indexOf("\r\n.\r\n") + 5 : input.length - "QUIT\r\n".length;
        const whole = run([input], { crlfMode: mode });
        assert.equal(whole.done, true);
        assert.equal(whole.consumed, expectedConsumed);
        if (ends) assert.ok(!whole.data.includes("MAIL FROM"), "the smuggled commands are not part of the message");
        else assert.ok(whole.data.includes(SMUGGLED), "the smuggled commands are message text");
        // Framing only (the other fields are compared by the split tests below).
        const framing = ({ data, consumed, done }: Outcome) => ({ data, consumed, done });
        for (const [a, b] of splitsOf(input)) {
          assert.deepEqual(framing(run([a, b], { crlfMode: mode })), framing(whole), `split ${JSON.stringify([a, b])}`);
        }
        assert.deepEqual(framing(run([...input], { crlfMode: mode })), framing(whole), "one byte at a time");
      });
    }
  }
});

describe("DataReader: CRLF modes", () => {
  const input = "a\nb\rc\r\nd\r\r\n\re\n\r\r\n.\r\n";
  it("CRLF_ENSURE turns bare LF and bare CR into CRLF and flags them", () => {
    const out = run([input], { crlfMode: "CRLF_ENSURE" });
    assert.equal(out.data, "a\r\nb\r\nc\r\nd\r\n\r\n\r\ne\r\n\r\n\r\n");
    assert.equal(out.bareLineBreak, true);
    assert.equal(out.size, out.data.length);
  });

  it("CRLF_LEAVE keeps the bytes as they are and flags them", () => {
    const out = run([input], { crlfMode: "CRLF_LEAVE" });
    assert.equal(out.data, "a\nb\rc\r\nd\r\r\n\re\n\r\r\n");
    assert.equal(out.bareLineBreak, true);
  });

  it("CRLF_STRICT keeps the bytes and flags bareLineBreak (the session refuses the message)", () => {
    const out = run([input], { crlfMode: "CRLF_STRICT" });
    assert.equal(out.data, "a\nb\rc\r\nd\r\r\n\re\n\r\r\n");
    assert.equal(out.bareLineBreak, true);
  });

  for (const mode of MODES) {
    it(`a CRLF-only message is not flagged and is kept byte-exact (${mode})`, () => {
      const out = run(["A: 1\r\n\r\nline\r\n\r\nend\r\n.\r\n"], { crlfMode: mode });
      assert.equal(out.data, "A: 1\r\n\r\nline\r\n\r\nend\r\n");
      assert.equal(out.bareLineBreak, false);
    });

    it(`flags a bare CR inside a chunk (${mode})`, () => {
      const out = run(["a\rb\r\n.\r\n"], { crlfMode: mode });
      assert.equal(out.bareLineBreak, true);
      assert.equal(out.data, mode === "CRLF_ENSURE" ? "a\r\nb\r\n" : "a\rb\r\n");
    });

    it(`flags a bare LF inside a chunk (${mode})`, () => {
      const out = run(["a\nb\r\n.\r\n"], { crlfMode: mode });
      assert.equal(out.bareLineBreak, true);
      assert.equal(out.data, mode === "CRLF_ENSURE" ? "a\r\nb\r\n" : "a\nb\r\n");
    });

    it(`flags a bare CR that ends a chunk once the next chunk shows no LF (${mode})`, () => {
      const out = run(["a\r", "b\r\n.\r\n"], { crlfMode: mode });
      assert.equal(out.bareLineBreak, true);
      assert.equal(out.data, mode === "CRLF_ENSURE" ? "a\r\nb\r\n" : "a\rb\r\n");
    });

    it(`does not flag a CR that ends a chunk when the next chunk starts with its LF (${mode})`, () => {
      const out = run(["a\r", "\nb\r\n.\r\n"], { crlfMode: mode });
      assert.equal(out.bareLineBreak, false);
      assert.equal(out.data, "a\r\nb\r\n");
    });
  }

  it("lastLineBreak tells the line break of the last line seen (CRLF_LEAVE)", () => {
    const r = reader({ crlfMode: "CRLF_LEAVE" });
    assert.equal(r.lastLineBreak, "\r\n");
    r.push(bytes("a\n"));
    assert.equal(r.lastLineBreak, "\n");
    r.push(bytes("b\r\n"));
    assert.equal(r.lastLineBreak, "\r\n");
    r.push(bytes("c\n"));
    assert.equal(r.lastLineBreak, "\n");
    // The end sequence starts with CRLF, so a finished message always ends with a CRLF line.
    assert.deepEqual(r.push(bytes("d\r\n.\r\n")), { consumed: 6, done: true });
    assert.equal(r.lastLineBreak, "\r\n");
    assert.equal(latin1(r.take()), "a\nb\r\nc\nd\r\n");
  });
});

describe("DataReader: split input gives the same result as whole input", () => {
  const inputs = [
    "Subject: x\r\n\r\nhello\r\n.\r\nQUIT\r\n",
    ".\r\nQUIT\r\n",
    "..\r\n.\r\n",
    "...\r\n..x\r\n.y\r\n.\r\n",
    "a\r\n.\r",
    "a\r\n.",
    "a\r",
    "a\r\n.\rb\r\n.\r\n",
    "a\r\n.\nb\r\n.\r\n",
    "a\n.\r\n.\r\nb",
    "\r\r\r\n\n\n.\r\n",
    "\r\n\r\n.\r\n",
    "\n\n\r\n.\r\n",
    "A: 1\r\nB: 2\r\n\r\n\r\nbody\r\n.\r\nRSET\r\n",
    "A: 1\n\nbody\n.\n\r\n.\r\n",
    "A: 1\r\n\rbody\r\n.\r\n",
    "x\r\n..\r\n.\r\r\n.\r\n",
    "\x00\xff\r\n.\x00\r\n\x80.\r\n.\r\n",
    "long line without break ".repeat(4) + "\r\n.\r\n",
    "no end at all\r\nstill none\r\n.",
  ];
  const configs: Array<Partial<DataReaderOptions>> = [
    ...MODES.map((crlfMode) => ({ crlfMode })),
    { crlfMode: "CRLF_ENSURE", maxLineLength: 8 },
    { crlfMode: "CRLF_LEAVE", maxSize: 10 },
  ];
  for (const input of inputs) {
    for (const options of configs) {
      const label = `${JSON.stringify(input)} ${JSON.stringify(options)}`;
      it(`every 2-way split and one byte at a time: ${label}`, () => {
        const whole = run([input], options);
        for (const [a, b] of splitsOf(input)) {
          assert.deepEqual(run([a, b], options), whole, `split ${JSON.stringify([a, b])}`);
        }
        assert.deepEqual(run([...input], options), whole, "one byte at a time");
      });
    }
  }
});

describe("DataReader: seeded random inputs against a naive reference", () => {
  // Besides the framing bytes: the bytes around the 0x0E bound of the four-bytes-at-once scan, and high bytes.
  const ALPHABET = [
    "\r",
    "\n",
    ".",
    "a",
    "\r\n",
    "\r\n.",
    "..",
    "\r\n.\r\n",
    "\x00",
    "\xff",
    "\x0c\x0e\t",
    "\x8d\x8a",
    "abcdefghij",
  ];
  const random = prng(0x5eed5);
  const inputs: string[] = [];
  for (let n = 0; n < 200; n++) {
    let s = "";
    const tokens = Math.floor(random() * 24);
    for (let t = 0; t < tokens; t++) s += ALPHABET[Math.floor(random() * ALPHABET.length)];
    // Most inputs get a real end (and a command behind it); some stay open.
    if (random() < 0.8) s += "\r\n.\r\nQUIT\r\n";
    inputs.push(s);
  }
  const configs: Array<Partial<DataReaderOptions>> = [
    { crlfMode: "CRLF_ENSURE" },
    { crlfMode: "CRLF_LEAVE" },
    { crlfMode: "CRLF_STRICT" },
    { crlfMode: "CRLF_ENSURE", maxLineLength: 5 },
    { crlfMode: "CRLF_LEAVE", maxLineLength: 4 },
    { crlfMode: "CRLF_ENSURE", maxSize: 12 },
    { crlfMode: "CRLF_LEAVE", maxSize: 9 },
  ];

  /**
   * Checks `pick(actual) === pick(expected)` for every input and config, and on failure
   * shows the shortest failing input (the easiest to read).
   */
  function checkAll(
    pick: (o: Outcome) => unknown,
    actualOf: (input: string, options: Partial<DataReaderOptions>) => Outcome,
    expectedOf: (input: string, options: Partial<DataReaderOptions>) => Outcome,
    onlyDone = true,
  ): void {
    let worst: { input: string; options: Partial<DataReaderOptions>; actual: unknown; expected: unknown } | undefined;
    let failures = 0;
    for (const input of inputs) {
      for (const options of configs) {
        const expectedOutcome = expectedOf(input, options);
        if (onlyDone && !expectedOutcome.done) continue;
        const actual = pick(actualOf(input, options));
        const expected = pick(expectedOutcome);
        try {
          assert.deepEqual(actual, expected);
        } catch {
          failures++;
          if (!worst || input.length < worst.input.length) worst = { input, options, actual, expected };
        }
      }
    }
    if (worst) {
      assert.deepEqual(
        worst.actual,
        worst.expected,
        `${failures} failing cases; shortest: input ${JSON.stringify(worst.input)} options ${
          JSON.stringify(worst.options)
        }`,
      );
    }
  }

  const whole = (input: string, options: Partial<DataReaderOptions>) => run([input], options);

  it("makes inputs of all kinds (sanity check of the generator)", () => {
    assert.equal(inputs.length, 200);
    assert.ok(inputs.filter((s) => naive(s).done).length > 100);
    assert.ok(inputs.filter((s) => !naive(s).done).length > 10);
    assert.ok(inputs.filter((s) => naive(s).bareLineBreak).length > 50);
    assert.ok(inputs.some((s) => s.startsWith(".\r\n")) || inputs.some((s) => s.startsWith("\r\n.\r\n")));
  });

  it("done and consumed match the reference (also for inputs without an end)", () => {
    checkAll((o) => ({ done: o.done, consumed: o.consumed }), whole, naive, false);
  });

  it("message bytes and size match the reference", () => {
    checkAll((o) => ({ data: o.data, size: o.size, oversize: o.oversize }), whole, naive);
  });

  it("bareLineBreak matches the reference", () => {
    checkAll((o) => o.bareLineBreak, whole, naive);
  });

  it("lastLineBreak matches the reference", () => {
    checkAll((o) => o.lastLineBreak, whole, naive);
  });

  it("lineTooLong matches the reference", () => {
    checkAll((o) => o.lineTooLong, whole, naive);
  });

  it("headerSize matches the reference", () => {
    checkAll((o) => o.headerSize, whole, naive);
  });

  /** Every way of cutting an input used below: each 2-way split, one byte at a time, random chunkings. */
  const cut = prng(42);
  const chunkers: Array<[string, (input: string) => string[][]]> = [
    ["every 2-way split", (input) => splitsOf(input)],
    ["one byte at a time", (input) => [[...input]]],
    ["random chunkings", (input) => {
      const chunkings: string[][] = [];
      for (let k = 0; k < 3; k++) {
        const chunks: string[] = [];
        for (let at = 0; at < input.length;) {
          const n = 1 + Math.floor(cut() * 7);
          chunks.push(input.slice(at, at + n));
          at += n;
        }
        chunkings.push(chunks);
      }
      return chunkings;
    }],
  ];

  /** Compares `pick` of every chunked feed with the whole feed; shows the shortest failing input. */
  function checkChunkings(chunkings: (input: string) => string[][], pick: (o: Outcome) => unknown): void {
    let worst:
      | { chunks: string[]; options: Partial<DataReaderOptions>; actual: unknown; expected: unknown }
      | undefined;
    let failures = 0;
    for (const input of inputs) {
      for (const options of configs) {
        const expected = pick(run([input], options));
        for (const chunks of chunkings(input)) {
          const actual = pick(run(chunks, options));
          if (JSON.stringify(actual) === JSON.stringify(expected)) continue;
          failures++;
          if (!worst || chunks.join("").length < worst.chunks.join("").length) {
            worst = { chunks, options, actual, expected };
          }
        }
      }
    }
    if (worst) {
      assert.deepEqual(
        worst.actual,
        worst.expected,
        `${failures} failing feeds; shortest: chunks ${JSON.stringify(worst.chunks)} options ${
          JSON.stringify(worst.options)
        }`,
      );
    }
  }

  const framing = ({ data, consumed, done, size, oversize }: Outcome) => ({ data, consumed, done, size, oversize });
  for (const [name, chunkings] of chunkers) {
    it(`${name}: same message bytes, size and consumed total as the whole input`, () => {
      checkChunkings(chunkings, framing);
    });

    it(`${name}: same flags, headerSize and lastLineBreak as the whole input`, () => {
      checkChunkings(chunkings, (o) => o);
    });
  }
});

describe("DataReader: maxSize", () => {
  it("keeps a message of exactly maxSize bytes", () => {
    const out = run(["123456789\r\n.\r\n"], { maxSize: 11 });
    assert.equal(out.oversize, false);
    assert.equal(out.data, "123456789\r\n");
    assert.equal(out.size, 11);
  });

  it("flags one byte more, still counts the size, keeps nothing, and still finds the end", () => {
    const out = run(["1234567890\r\n.\r\nQUIT\r\n"], { maxSize: 11 });
    assert.equal(out.oversize, true);
    assert.equal(out.size, 12);
    assert.equal(out.data, "");
    assert.equal(out.done, true);
    assert.equal(out.consumed, 15);
  });

  it("counts a big message past the limit over many chunks", () => {
    const r = reader({ maxSize: 1000 });
    const chunk = bytes("x".repeat(1022) + "\r\n");
    for (let i = 0; i < 100; i++) assert.deepEqual(r.push(chunk), { consumed: 1024, done: false });
    assert.deepEqual(r.push(bytes(".\r\n")), { consumed: 3, done: true });
    assert.equal(r.oversize, true);
    assert.equal(r.size, 102400);
    assert.equal(r.take().length, 0);
    assert.equal(r.peek(10).length, 0);
  });

  it("counts the size after unstuffing and after CRLF_ENSURE added CRs", () => {
    const ensure = run(["..a\nb\r\n.\r\n"], { crlfMode: "CRLF_ENSURE", maxSize: 7 });
    assert.equal(ensure.data, ".a\r\nb\r\n");
    assert.equal(ensure.size, 7);
    assert.equal(ensure.oversize, false);
    const over = run(["..a\nb\r\n.\r\n"], { crlfMode: "CRLF_ENSURE", maxSize: 6 });
    assert.equal(over.oversize, true);
    const leave = run(["..a\nb\r\n.\r\n"], { crlfMode: "CRLF_LEAVE", maxSize: 6 });
    assert.equal(leave.data, ".a\nb\r\n");
    assert.equal(leave.oversize, false);
  });

  it("0 means no limit", () => {
    const out = run(["x".repeat(100_000) + "\r\n.\r\n"], { maxSize: 0 });
    assert.equal(out.oversize, false);
    assert.equal(out.size, 100_002);
    assert.equal(out.data.length, 100_002);
  });
});

describe("DataReader: maxLineLength (line break included)", () => {
  it("accepts lines exactly at the limit and flags one byte more", () => {
    assert.equal(run(["abc\r\nxyz\r\n.\r\n"], { maxLineLength: 5 }).lineTooLong, false);
    assert.equal(run(["abc\r\nwxyz\r\n.\r\n"], { maxLineLength: 5 }).lineTooLong, true);
  });

  it("counts a bare LF as one byte", () => {
    assert.equal(run(["abcd\n\r\n.\r\n"], { maxLineLength: 5, crlfMode: "CRLF_LEAVE" }).lineTooLong, false);
    assert.equal(run(["abcde\n\r\n.\r\n"], { maxLineLength: 5, crlfMode: "CRLF_LEAVE" }).lineTooLong, true);
  });

  it("flags a long line that is still open (before its LF)", () => {
    const r = reader({ maxLineLength: 5 });
    r.push(bytes("abcdefgh"));
    assert.equal(r.lineTooLong, true);
  });

  it("flags a too-long line split over chunks", () => {
    assert.equal(run(["ab", "cd", "ef\r", "\n.\r\n"], { maxLineLength: 8 }).lineTooLong, false);
    assert.equal(run(["ab", "cd", "efg\r", "\n.\r\n"], { maxLineLength: 8 }).lineTooLong, true);
  });

  it("does not count the end sequence", () => {
    assert.equal(run(["a\r\n.\r\n"], { maxLineLength: 3 }).lineTooLong, false);
  });

  it("0 means no limit", () => {
    assert.equal(run(["x".repeat(10_000) + "\r\n.\r\n"], { maxLineLength: 0 }).lineTooLong, false);
  });

  it("does not count the dot added for transparency (RFC 5321 4.5.3.1.6)", () => {
    // "..abc\r\n" is 7 bytes on the wire and the line ".abc\r\n" is 6.
    assert.equal(run(["..abc\r\n.\r\n"], { maxLineLength: 6 }).lineTooLong, false);
    assert.equal(run(["..abc\r\n.\r\n"], { maxLineLength: 5 }).lineTooLong, true);
  });

  it("flags a dot-stuffed line at most as long as the wire line", () => {
    // Whatever the reading of the RFC, a 7-byte wire line fits a 7-byte limit.
    assert.equal(run(["..abc\r\n.\r\n"], { maxLineLength: 7 }).lineTooLong, false);
  });
});

describe("DataReader: headerSize", () => {
  it("is the header section up to and including the first empty line", () => {
    const input = "A: 1\r\nB: 2\r\n\r\nbody\r\n\r\nmore\r\n.\r\n";
    const r = reader();
    r.push(bytes(input));
    assert.equal(r.headerSize, 14);
    assert.equal(latin1(r.peek(r.headerSize)), "A: 1\r\nB: 2\r\n\r\n");
  });

  it("is the same for every split and one byte at a time", () => {
    const input = "A: 1\r\nB: 2\r\n\r\nbody\r\n.\r\n";
    for (const [a, b] of splitsOf(input)) assert.equal(run([a, b]).headerSize, 14, JSON.stringify([a, b]));
    assert.equal(run([...input]).headerSize, 14);
  });

  it("is known as soon as the empty line arrived, before the end", () => {
    const r = reader();
    r.push(bytes("A: 1\r\n"));
    assert.equal(r.headerSize, -1);
    r.push(bytes("\r"));
    assert.equal(r.headerSize, -1);
    r.push(bytes("\nbody"));
    assert.equal(r.headerSize, 8);
  });

  it("is -1 without an empty line, and for the empty message", () => {
    assert.equal(run(["A: 1\r\nbody\r\n.\r\n"]).headerSize, -1);
    assert.equal(run([".\r\n"]).headerSize, -1);
  });

  it("is 2 when the message starts with the empty line", () => {
    assert.equal(run(["\r\nbody\r\n.\r\n"]).headerSize, 2);
  });

  it("counts the output bytes: unstuffed dots and the CR added by CRLF_ENSURE", () => {
    assert.equal(run(["..A: 1\r\n\r\n.\r\n"]).headerSize, 9);
    const ensure = run(["A: 1\n\nbody\r\n.\r\n"], { crlfMode: "CRLF_ENSURE" });
    assert.equal(ensure.headerSize, 8);
    assert.equal(ensure.data.slice(0, 8), "A: 1\r\n\r\n");
    const leave = run(["A: 1\n\nbody\r\n.\r\n"], { crlfMode: "CRLF_LEAVE" });
    assert.equal(leave.headerSize, 6);
    assert.equal(leave.data.slice(0, 6), "A: 1\n\n");
  });

  it("ends at an empty line left by unstuffing a dot before a bare LF", () => {
    // "A: b\r\n.\nbody" is "A: b\r\n\nbody" after unstuffing: a bare-LF empty line, like "A: b\n\n".
    const leave = run(["A: b\r\n.\nbody\r\n.\r\n"], { crlfMode: "CRLF_LEAVE" });
    assert.equal(leave.data, "A: b\r\n\nbody\r\n");
    assert.equal(leave.headerSize, 7);
    const ensure = run(["A: b\r\n.\nbody\r\n.\r\n"], { crlfMode: "CRLF_ENSURE" });
    assert.equal(ensure.data, "A: b\r\n\r\nbody\r\n");
    assert.equal(ensure.headerSize, 8);
  });

  it("stays at the first empty line", () => {
    assert.equal(run(["A: 1\r\n\r\n\r\n\r\n.\r\n"]).headerSize, 8);
  });

  it("is counted with retain = false too", () => {
    const r = reader();
    r.retain = false;
    r.push(bytes("A: 1\r\n\r\nbody\r\n.\r\n"));
    assert.equal(r.headerSize, 8);
  });

  it("in CRLF_ENSURE mode, ends where the output has its first empty line, also when a bare CR made it", () => {
    // "A: b\r\n\rX" becomes "A: b\r\n\r\nX": the output's header section is "A: b\r\n\r\n".
    const out = run(["A: b\r\n\rX\r\n.\r\n"], { crlfMode: "CRLF_ENSURE" });
    assert.equal(out.data, "A: b\r\n\r\nX\r\n");
    assert.equal(out.headerSize, 8);
  });
});

describe("DataReader: bytes", () => {
  it("preserves 8-bit and NUL bytes byte-exact in every mode", () => {
    let all = "";
    for (let b = 0; b < 256; b++) if (b !== 0x0a && b !== 0x0d) all += String.fromCharCode(b);
    const body = `${all}\r\n\x00\r\n.\x00.\r\n\xff\xfe\x80\r\n`;
    const expected = `${all}\r\n\x00\r\n\x00.\r\n\xff\xfe\x80\r\n`;
    for (const mode of MODES) {
      const out = run([body + ".\r\n"], { crlfMode: mode });
      assert.equal(out.data, expected, mode);
      assert.equal(out.bareLineBreak, false, mode);
      assert.deepEqual(run([...(body + ".\r\n")], { crlfMode: mode }), out, `${mode}, one byte at a time`);
    }
  });

  it("take() returns Uint8Array bytes equal to the input, not a text round trip", () => {
    const input = new Uint8Array([0xc3, 0x28, 0x00, 0xff, 0x0d, 0x0a, 0x2e, 0x0d, 0x0a]);
    const r = reader();
    assert.deepEqual(r.push(input), { consumed: 9, done: true });
    const out = r.take();
    assert.ok(out instanceof Uint8Array);
    assert.deepEqual([...out], [0xc3, 0x28, 0x00, 0xff, 0x0d, 0x0a]);
  });
});

describe("DataReader: peek, take, retain", () => {
  it("peek(n) copies the first n bytes without taking them", () => {
    const r = reader();
    r.push(bytes("Subject: x\r\n"));
    r.push(bytes("\r\nbody\r\n"));
    assert.equal(latin1(r.peek(5)), "Subje");
    assert.equal(latin1(r.peek(14)), "Subject: x\r\n\r\n");
    assert.equal(latin1(r.take()), "Subject: x\r\n\r\nbody\r\n");
  });

  it("peek(n) past the end returns what there is", () => {
    const r = reader();
    r.push(bytes("abc\r\n"));
    assert.equal(latin1(r.peek(100)), "abc\r\n");
    assert.equal(r.peek(0).length, 0);
    assert.equal(reader().peek(10).length, 0);
  });

  it("peek spans the segments CRLF_ENSURE makes", () => {
    const r = reader({ crlfMode: "CRLF_ENSURE" });
    r.push(bytes("a\nb\rc\n"));
    assert.equal(latin1(r.peek(8)), "a\r\nb\r\nc\r");
  });

  it("peek returns a copy", () => {
    const r = reader();
    r.push(bytes("abc\r\n"));
    const copy = r.peek(3);
    copy[0] = 0x5a;
    assert.equal(latin1(r.take()), "abc\r\n");
  });

  it("take() joins the bytes of many chunks", () => {
    const r = reader();
    for (const part of ["A: 1\r\n", "\r\n", "..one\r\n", "two", "\r\n"]) r.push(bytes(part));
    assert.deepEqual(r.push(bytes(".\r\n")), { consumed: 3, done: true });
    assert.equal(latin1(r.take()), "A: 1\r\n\r\n.one\r\ntwo\r\n");
  });

  it("take() removes what it returns: the next take() has only newer bytes", () => {
    const r = reader();
    r.push(bytes("one\r\n"));
    assert.equal(latin1(r.take()), "one\r\n");
    assert.equal(r.take().length, 0);
    r.push(bytes("two\r\n.\r\n"));
    assert.equal(latin1(r.take()), "two\r\n");
    assert.equal(r.size, 10, "size counts the whole message");
  });

  it("take() after every push (streaming) concatenates to the whole message", () => {
    const input = "A: 1\r\n\r\n..x\ny\rz\r\n.\r\n";
    for (const mode of MODES) {
      const r = reader({ crlfMode: mode });
      let streamed = "";
      for (const ch of input) {
        const result = r.push(bytes(ch));
        streamed += latin1(r.take());
        if (result.done) break;
      }
      assert.equal(streamed, run([input], { crlfMode: mode }).data, mode);
    }
  });

  it("retain = false keeps nothing but still counts and frames", () => {
    const r = reader();
    r.retain = false;
    assert.deepEqual(r.push(bytes("A: 1\r\n\r\n..body\n.\r\n.\r\nQUIT")), { consumed: 21, done: true });
    assert.equal(r.take().length, 0);
    assert.equal(r.peek(5).length, 0);
    assert.equal(r.size, 18);
    assert.equal(r.bareLineBreak, true);
  });

  it("retain = false set midway keeps what came before, nothing after", () => {
    const r = reader();
    r.push(bytes("kept\r\n"));
    r.retain = false;
    r.push(bytes("dropped\r\n.\r\n"));
    assert.equal(latin1(r.take()), "kept\r\n");
    assert.equal(r.size, 15);
  });
});
