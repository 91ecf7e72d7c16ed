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
