/**
 * The DATA phase (src/session/data_phase.ts): one owner for a message's bytes,
 * size, header section and refusal, run under all three runtimes.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { DataPhase } from "../src/session/data_phase.ts";
import { MessageStream } from "../src/session/message_stream.ts";
import { concatBytes } from "../src/bytes.ts";
import { Smtpd550Exception } from "../src/exceptions.ts";

const enc = new TextEncoder();
const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
const OPTIONS = { crlfMode: "CRLF_ENSURE", maxSize: 0, maxLineLength: 0 } as const;

describe("DataPhase", () => {
  it("reads a message to its final dot; the header section is handed out once", () => {
    const phase = new DataPhase(OPTIONS);
    const { consumed, done } = phase.push(enc.encode("Subject: hi\r\n\r\nbody\r\n.\r\nQUIT\r\n"));
    assert.equal(done, true);
    assert.equal(consumed, 24);
    assert.equal(phase.size, 21);
    assert.equal(phase.headersPending, true);
    assert.equal(phase.takeHeaders(), "Subject: hi\r\n\r\n");
    assert.equal(phase.headersPending, false);
    assert.equal(phase.refusalAtEnd(), undefined);
    assert.equal(text(concatBytes(phase.takeSegments())), "Subject: hi\r\n\r\nbody\r\n");
  });

  it("a message without a blank line has no header section until it ends", () => {
    const phase = new DataPhase(OPTIONS);
    phase.push(enc.encode("no headers here\r\n"));
    assert.equal(phase.headersPending, false);
  });

  it("refuse(): the rest is read and dropped, and the refusal answers the dot", () => {
    const phase = new DataPhase(OPTIONS);
    phase.push(enc.encode("Subject: x\r\n\r\n"));
    const refusal = new Smtpd550Exception();
    phase.refuse(refusal);
    assert.equal(phase.headersPending, false);
    const { done } = phase.push(enc.encode("more\r\n.\r\n"));
    assert.equal(done, true);
    assert.equal(phase.refusalAtEnd(), refusal);
    assert.deepEqual(phase.takeSegments().reduce((n, s) => n + s.length, 0), 0);
  });

  it("too large, bare line breaks in CRLF_STRICT and lines too long each earn their refusal", () => {
    const big = new DataPhase({ ...OPTIONS, maxSize: 4 });
    big.push(enc.encode("12345678\r\n.\r\n"));
    assert.equal(big.refusalAtEnd()?.code, 552);
    assert.equal(big.takeHeaders(), "");
    const strict = new DataPhase({ ...OPTIONS, crlfMode: "CRLF_STRICT" });
    strict.push(enc.encode("a\nb\r\n.\r\n"));
    assert.equal(strict.refusalAtEnd()?.code, 500);
    const long = new DataPhase({ ...OPTIONS, maxLineLength: 5 });
    long.push(enc.encode("0123456789\r\n.\r\n"));
    assert.equal(long.refusalAtEnd()?.text, "Line too long");
  });

  it("streaming: the bytes go to the stream and the header section is still found", async () => {
    let received = "";
    const stream = new MessageStream(async (s) => {
      for await (const chunk of s) received += text(chunk);
    });
    const phase = new DataPhase(OPTIONS, stream);
    phase.push(enc.encode("Subject: streamed\r\n"));
    await phase.pump(() => false);
    const { done } = phase.push(enc.encode("\r\nbody\r\n.\r\n"));
    assert.equal(phase.takeHeaders(), "Subject: streamed\r\n\r\n");
    await phase.pump(() => false);
    assert.equal(done, true);
    stream.close();
    assert.deepEqual(await stream.hookResult, { ok: true });
    assert.equal(received, "Subject: streamed\r\n\r\nbody\r\n");
  });
});

describe("DataPhase for DATA: the chunk members", () => {
  it("complete after the final dot; no chunks; wouldExceed counts the message so far", () => {
    const phase = new DataPhase({ ...OPTIONS, maxSize: 10 });
    assert.equal(phase.chunked, false);
    assert.equal(phase.chunkRemaining, 0);
    assert.throws(() => phase.beginChunk(3, true), /DATA message has no chunks/);
    phase.push(enc.encode("12345"));
    assert.equal(phase.complete, false);
    assert.equal(phase.wouldExceed(5), false);
    assert.equal(phase.wouldExceed(6), true);
    phase.push(enc.encode("\r\n.\r\n"));
    assert.equal(phase.complete, true);
  });
});

describe("DataPhase.chunked (BDAT)", () => {
  const CHUNKED = { ...OPTIONS, binary: false };

  /** Starts a chunk and pushes it followed by the next command; returns what the push said. */
  function chunk(phase: DataPhase, body: string, last: boolean): { consumed: number; done: boolean } {
    phase.beginChunk(enc.encode(body).length, last);
    return phase.push(enc.encode(body + "QUIT\r\n"));
  }

  it("done ends each chunk, complete only the LAST one; the header section is handed out once", () => {
    const phase = DataPhase.chunked(CHUNKED);
    assert.equal(phase.chunked, true);
    phase.beginChunk(24, false);
    assert.deepEqual(phase.push(enc.encode("Subject: hi\r")), { consumed: 12, done: false });
    assert.equal(phase.chunkRemaining, 12);
    assert.equal(phase.headersPending, false);
    assert.deepEqual(phase.push(enc.encode("\n\r\nbody\r\n.\r\nBDAT")), { consumed: 12, done: true });
    assert.equal(phase.complete, false);
    assert.equal(phase.headersPending, true);
    assert.equal(phase.takeHeaders(), "Subject: hi\r\n\r\n");
    assert.equal(phase.headersPending, false);
    assert.deepEqual(chunk(phase, "more\n", true), { consumed: 5, done: true });
    assert.equal(phase.complete, true);
    assert.equal(phase.size, 30);
    assert.equal(phase.refusalAtEnd(), undefined);
    assert.equal(text(concatBytes(phase.takeSegments())), "Subject: hi\r\n\r\nbody\r\n.\r\nmore\r\n");
    assert.equal(phase.lastLineBreak, "\n", "noted as for DATA (only CRLF_LEAVE uses it)");
  });

  it("BDAT 0 LAST completes the message without a push", () => {
    const phase = DataPhase.chunked(CHUNKED);
    chunk(phase, "Subject: x\r\n\r\nhi\r\n", false);
    phase.beginChunk(0, true);
    assert.equal(phase.complete, true);
    assert.equal(text(concatBytes(phase.takeSegments())), "Subject: x\r\n\r\nhi\r\n");
  });

  it("streaming: each chunk's bytes go to the stream, and the header section is still found", async () => {
    let received = "";
    const stream = new MessageStream(async (s) => {
      for await (const piece of s) received += text(piece);
    });
    const phase = DataPhase.chunked(CHUNKED, stream);
    const pieces = ["Subject: stre", "amed\r", "\n\r\nbody\r", "\n.\r\n", ""];
    let headers = "";
    // Pumping after every chunk, as the session does.
    for (const [k, piece] of pieces.entries()) {
      chunk(phase, piece, k === pieces.length - 1);
      if (phase.headersPending) headers = phase.takeHeaders();
      await phase.pump(() => false);
    }
    assert.equal(phase.complete, true);
    stream.close();
    assert.deepEqual(await stream.hookResult, { ok: true });
    assert.equal(headers, "Subject: streamed\r\n\r\n");
    assert.equal(received, "Subject: streamed\r\n\r\nbody\r\n.\r\n");
  });

  it("refusals: a chunk past the limit before it is read (552), too large, strict, line too long", () => {
    const big = DataPhase.chunked({ ...CHUNKED, maxSize: 10 });
    assert.equal(big.wouldExceed(11), true);
    assert.equal(big.wouldExceed(10), false);
    chunk(big, "12345678", false);
    assert.equal(big.wouldExceed(2), false);
    assert.equal(big.wouldExceed(3), true);
    // Read anyway (the octets must be read to keep byte sync): too large at the end.
    chunk(big, "9abc", true);
    assert.equal(big.refusalAtEnd()?.code, 552);
    assert.equal(big.takeHeaders(), "");
    const strict = DataPhase.chunked({ ...CHUNKED, crlfMode: "CRLF_STRICT" });
    chunk(strict, "a\r", false);
    chunk(strict, "\nb\n", true);
    assert.equal(strict.refusalAtEnd()?.code, 500);
    const long = DataPhase.chunked({ ...CHUNKED, maxLineLength: 5 });
    chunk(long, "012", false);
    chunk(long, "345\r\n", true);
    assert.equal(long.refusalAtEnd()?.text, "Line too long");
  });

  it("binary (BINARYMIME): bare line breaks, NUL and long lines are body, never refused", () => {
    const phase = DataPhase.chunked({ ...CHUNKED, crlfMode: "CRLF_STRICT", maxLineLength: 5, binary: true });
    const body = new Uint8Array([...enc.encode("Subject: b\r\n\r\n"), 0, 10, 13, 255, 10, 10, 13, 0, 1, 2, 3, 4, 5, 6]);
    phase.beginChunk(20, false);
    phase.push(body.subarray(0, 20));
    phase.beginChunk(body.length - 20, true);
    phase.push(body.subarray(20));
    assert.equal(phase.complete, true);
    assert.equal(phase.refusalAtEnd(), undefined);
    assert.equal(phase.takeHeaders(), "Subject: b\r\n\r\n");
    assert.deepEqual(concatBytes(phase.takeSegments()), body);
  });

  it("refuse(): the remaining chunks are read and dropped, and the refusal answers the LAST one", () => {
    const phase = DataPhase.chunked(CHUNKED);
    chunk(phase, "Subject: x\r\n\r\n", false);
    const refusal = new Smtpd550Exception();
    phase.refuse(refusal);
    assert.equal(phase.headersPending, false);
    assert.deepEqual(chunk(phase, "more\r\n", true), { consumed: 6, done: true });
    assert.equal(phase.complete, true);
    assert.equal(phase.refusalAtEnd(), refusal);
    assert.equal(phase.takeSegments().reduce((n, s) => n + s.length, 0), 0);
  });
});
