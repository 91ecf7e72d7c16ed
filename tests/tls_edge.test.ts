/**
 * TLS edge cases at the session level, with every transport: clients that
 * leave during the STARTTLS handshake must be noticed at once, not at the
 * handshake timeout.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import * as net from "node:net";
import * as tls from "node:tls";
import { startServer, TRANSPORTS } from "./helpers.ts";

/** Reads from `socket` until `pattern` matches what arrived. */
function waitFor(socket: net.Socket, pattern: RegExp): Promise<void> {
  let text = "";
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${pattern} in ${JSON.stringify(text)}`)), 5000);
    const onData = (chunk: Buffer) => {
      text += chunk.toString("latin1");
      if (!pattern.test(text)) return;
      clearTimeout(timer);
      socket.off("data", onData);
      resolve();
    };
    socket.on("data", onData);
  });
}

for (const transport of TRANSPORTS) {
  describe(`TLS edge cases (${transport.name} transport)`, () => {
    it("notices a client that closes right after its side of the STARTTLS handshake", async () => {
      const s = await startServer(transport, { tlsMode: "TLS_OPTIONAL", tlsHandshakeTimeout: 10 });
      const plain = net.connect(s.port, "127.0.0.1");
      plain.on("error", () => {});
      try {
        await waitFor(plain, /^220 /m);
        plain.write("EHLO x.example\r\n");
        await waitFor(plain, /^250 /m);
        plain.write("STARTTLS\r\n");
        await waitFor(plain, /^220 /m);
        const started = Date.now();
        const secure = tls.connect({ socket: plain, rejectUnauthorized: false }, () => secure.destroy());
        secure.on("error", () => {});
        while (s.server.connections() > 0 && Date.now() - started < 12_000) {
          await new Promise((r) => setTimeout(r, 20));
        }
        assert.equal(s.server.connections(), 0);
        assert.ok(Date.now() - started < 3000, `closed after ${Date.now() - started} ms, not at the 10 s timeout`);
      } finally {
        plain.destroy();
        await s.close();
      }
    });
  });
}
