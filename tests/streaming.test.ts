/**
 * The streaming mode of DATA (onMessageDataStreamEvent) over real sockets,
 * with every transport of the running runtime: exact bytes, backpressure,
 * refusals and vanishing clients.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import * as net from "node:net";
import { Smtpd554Exception, type SmtpdContext } from "../mod.ts";
import { delay, ehloClient, startServer, TRANSPORTS } from "./helpers.ts";

async function readAll(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for await (const part of stream) parts.push(part);
  return Buffer.concat(parts);
}

/** A body of `size` bytes in 76-character lines, with dot lines to unstuff. */
function body(size: number): { wire: Buffer; expected: Buffer } {
  const lines: string[] = [];
  let total = 0;
  for (let i = 0; total < size; i++) {
    const line = i % 97 === 0 ? "." + "d".repeat(40) : `line ${i} `.padEnd(76, "x");
    lines.push(line);
    total += line.length + 2;
  }
  const text = "Subject: stream\r\n\r\n" + lines.join("\r\n") + "\r\n";
  const wire = text.replace(/\r\n\./g, "\r\n..");
  return { wire: Buffer.from(wire + ".\r\n", "latin1"), expected: Buffer.from(text, "latin1") };
}

for (const transport of TRANSPORTS) {
  describe(`streaming DATA (${transport.name} transport)`, () => {
    it("hands a 3 MiB message over as a stream, byte-exact, with headers and size", async () => {
      const got: Array<{ data: Uint8Array; headers: string; size: number }> = [];
      let bufferedCalled = false;
      const s = await startServer(transport, {
        maxMessageSize: 0,
        async onMessageDataStreamEvent(ctx: SmtpdContext, stream: ReadableStream<Uint8Array>) {
          const data = await readAll(stream);
          got.push({ data, headers: ctx.message.headers, size: ctx.message.bytesize });
        },
        onMessageDataEvent() {
          bufferedCalled = true;
        },
      });
      const c = await ehloClient(s.port);
      try {
        const { wire, expected } = body(3 * 1024 * 1024);
        await c.command("MAIL FROM:<a@example.com>");
        await c.command("RCPT TO:<b@example.com>");
        await c.send("DATA\r\n");
        await c.expect(354);
        await c.send(wire);
        assert.equal((await c.reply(20000)).code, 250);
        assert.equal(got.length, 1);
        assert.ok(Buffer.from(got[0].data).equals(expected), "stream bytes equal the unstuffed message");
        assert.equal(got[0].headers, "Subject: stream\r\n\r\n");
        assert.equal(got[0].size, expected.length);
        assert.equal(bufferedCalled, false, "onMessageDataEvent is not used in streaming mode");
      } finally {
        c.close();
        await s.close();
      }
    });

    it("applies backpressure: a paused reader stops the server reading from the client", async () => {
      let release!: () => void;
      const released = new Promise<void>((r) => release = r);
      let received = 0;
      const s = await startServer(transport, {
        maxMessageSize: 0,
        ioDataTimeout: 60,
        pipeliningExtension: true,
        async onMessageDataStreamEvent(_ctx, stream) {
          await released;
          for await (const part of stream) received += part.length;
        },
      });
      const socket = net.connect(s.port, "127.0.0.1");
      try {
        await new Promise((r) => socket.once("connect", r));
        let replies = "";
        socket.on("data", (d) => replies += d.toString("latin1"));
        socket.write("EHLO x.example\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\n");
        await delay(100);
        socket.write("DATA\r\n");
        for (let i = 0; i < 100 && !replies.includes("354"); i++) await delay(20);
        assert.ok(replies.includes("354"), replies);
        const chunk = Buffer.alloc(1024 * 1024, 0x61);
        chunk[chunk.length - 2] = 0x0d;
        chunk[chunk.length - 1] = 0x0a;
        let flushed = 0;
        const total = 64;
        for (let i = 0; i < total; i++) socket.write(chunk, () => flushed++);
        await delay(700);
        // Loopback socket buffers hold a few MiB; without backpressure all 64 MiB would be taken.
        assert.ok(flushed < 24, `only part of the message can be sent while nobody reads (flushed ${flushed} MiB)`);
        release();
        socket.write(".\r\n");
        for (let i = 0; i < 500 && !/250 2\.0\.0/.test(replies); i++) await delay(20);
        assert.match(replies, /250 2\.0\.0/);
        assert.equal(received, total * chunk.length);
      } finally {
        socket.destroy();
        await s.close();
      }
    });

    it("errors the stream and answers 552 when the message is too large", async () => {
      let streamError: unknown;
      const s = await startServer(transport, {
        maxMessageSize: 10_000,
        async onMessageDataStreamEvent(_ctx, stream) {
          try {
            await readAll(stream);
          } catch (err) {
            streamError = err;
            throw err;
          }
        },
      });
      const c = await ehloClient(s.port);
      try {
        await c.command("MAIL FROM:<a@example.com>");
        await c.command("RCPT TO:<b@example.com>");
        await c.send("DATA\r\n");
        await c.expect(354);
        await c.send(body(50_000).wire);
        const r = await c.reply(10000);
        assert.equal(r.code, 552);
        assert.ok(streamError instanceof Error, "the reader saw an error");
        assert.equal((await c.command("NOOP")).code, 250);
      } finally {
        c.close();
        await s.close();
      }
    });

    it("answers with the hook's error, and 250 when the hook returns without reading", async () => {
      const s = await startServer(transport, {
        async onMessageDataStreamEvent(ctx, stream) {
          if (ctx.envelope.to[0] === "<skip@example.com>") return;
          const text = new TextDecoder().decode(await readAll(stream));
          if (text.includes("spam")) throw new Smtpd554Exception(undefined, "Looks like spam", "5.7.1");
        },
      });
      const c = await ehloClient(s.port);
      try {
        for (
          const [rcpt, text, code] of [
            ["<b@example.com>", "this is spam\r\n", 554],
            ["<skip@example.com>", "x".repeat(200_000) + "\r\n", 250],
            ["<b@example.com>", "fine\r\n", 250],
          ] as const
        ) {
          await c.command("MAIL FROM:<a@example.com>");
          await c.command(`RCPT TO:${rcpt}`);
          await c.send("DATA\r\n");
          await c.expect(354);
          await c.send(text + ".\r\n");
          assert.equal((await c.reply(10000)).code, code, rcpt + " " + text.slice(0, 10));
        }
      } finally {
        c.close();
        await s.close();
      }
    });

    it("errors the stream when the client vanishes mid-message", async () => {
      let streamError: unknown;
      let finished = false;
      const s = await startServer(transport, {
        async onMessageDataStreamEvent(_ctx, stream) {
          try {
            await readAll(stream);
            finished = true;
          } catch (err) {
            streamError = err;
          }
        },
      });
      const c = await ehloClient(s.port);
      await c.command("MAIL FROM:<a@example.com>");
      await c.command("RCPT TO:<b@example.com>");
      await c.send("DATA\r\n");
      await c.expect(354);
      await c.send("half a message\r\n");
      await delay(50);
      c.reset();
      for (let i = 0; i < 100 && streamError === undefined; i++) await delay(20);
      assert.ok(streamError instanceof Error, "the reader saw an error");
      assert.equal(finished, false);
      await s.close();
    });
  });
}
