/**
 * ConnectionDuplex (src/transport/connection_duplex.ts): the node `Duplex`
 * that node:tls runs over on Deno, on Bun, and for connections whose first
 * bytes were already read. Its source here is a scripted Connection.
 *
 *   node --import tsx --test tests/transport_connection_duplex.test.ts
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { once } from "node:events";
import { writeFileSync } from "node:fs";
import process from "node:process";
import { pathToFileURL } from "node:url";
import { ConnectionDuplex } from "../src/transport/connection_duplex.ts";
import { detectRuntime } from "../src/transport/detect.ts";
import { bytes, FakeConnection, text } from "./fake_connection.ts";
import { scratchFolder } from "./scratch.ts";

/**
 * A server process (the runtime running this test) that reads what a client
 * sends, replays it into acceptTls() and expects the handshake to fail,
 * once per transport; prints `survived` if it is still alive afterwards.
 */
const REPLAY_CHILD = `
import * as net from "node:net";
import { readFileSync } from "node:fs";
import process from "node:process";
const { loadTransport } = await import(process.argv.at(-3));
const options = { cert: readFileSync(process.argv.at(-2), "utf8"), key: readFileSync(process.argv.at(-1), "utf8") };
for (const transport of new Set([await loadTransport(), await loadTransport("node")])) {
  let settle;
  const outcome = new Promise((resolve) => settle = resolve);
  const listener = await transport.listen({ hostname: "127.0.0.1", port: 0 }, async (conn) => {
    const received = await conn.read();
    conn.acceptTls(options, received).then(() => settle("handshake succeeded"), () => settle("rejected"));
  });
  const client = net.connect(listener.address.port, "127.0.0.1", () => client.write("GET / HTTP/1.1\\r\\n\\r\\n"));
  client.on("error", () => {});
  const result = await outcome;
  client.destroy();
  await listener.close();
  if (result !== "rejected") throw new Error(transport.name + ": " + result);
}
await new Promise((resolve) => setTimeout(resolve, 50)); // a crash would come a tick or two after the rejection
console.log("survived");
process.exit(0);
`;

/** Everything `duplex` emits until its readable side ends. */
async function readAll(duplex: ConnectionDuplex): Promise<string> {
  let all = "";
  duplex.on("data", (chunk: Uint8Array) => all += text(chunk));
  await once(duplex, "end");
  return all;
}

describe("ConnectionDuplex", () => {
  it("gives the replayed bytes first, then what the source reads, then EOF", async () => {
    const conn = new FakeConnection();
    const duplex = new ConnectionDuplex(conn, bytes("replayed|"));
    const all = readAll(duplex);
    conn.feed(bytes("one|"));
    conn.feed(bytes("two"));
    conn.end();
    assert.equal(await all, "replayed|one|two");
    duplex.destroy();
  });

  it("reads nothing from the source before it is read itself", async () => {
    const conn = new FakeConnection();
    conn.feed(bytes("ClientHello"));
    const duplex = new ConnectionDuplex(conn, new Uint8Array(0)); // an empty replay is no replay
    await new Promise((resolve) => setTimeout(resolve, 10));
    assert.equal(duplex.readableLength, 0, "not pulled yet");
    const all = readAll(duplex);
    conn.end();
    assert.equal(await all, "ClientHello");
    duplex.destroy();
  });

  it("writes through to the source, sends FIN on end() and closes it on destroy()", async () => {
    const conn = new FakeConnection();
    const duplex = new ConnectionDuplex(conn);
    duplex.write(bytes("220 ready\r\n"));
    duplex.end(bytes("bye"));
    await once(duplex, "finish");
    assert.deepEqual(conn.written.map(text), ["220 ready\r\n", "bye"]);
    assert.equal(conn.closeWrites, 1);
    assert.equal(conn.closes, 0, "half-close: the source stays open for reading");
    duplex.destroy();
    assert.equal(conn.closes, 1);
  });

  it("is destroyed with the source's read error", async () => {
    const conn = new FakeConnection();
    conn.readError = new Error("ECONNRESET");
    const duplex = new ConnectionDuplex(conn);
    duplex.resume();
    const [err] = await once(duplex, "error");
    assert.match((err as Error).message, /ECONNRESET/);
    assert.equal(conn.closes, 1);
  });

  it("does not crash the process when replayed bytes fail the handshake at once (Deno's TLSSocket)", async () => {
    // Only a separate process shows it: the crash was an uncaught TypeError inside node:tls under `deno run`.
    const scratch = scratchFolder("replay");
    const cert = scratch.selfSigned("a", { cn: "a.test", san: "DNS:a.test" });
    const script = scratch.path("replay_child.mts");
    writeFileSync(script, REPLAY_CHILD);
    const detect = pathToFileURL(new URL("../src/transport/detect.ts", import.meta.url).pathname).href;
    const args = { deno: ["run", "-A", script], bun: [script], node: ["--import", "tsx", script] }[detectRuntime()];
    const { stdout, stderr, code } = await new Promise<{ stdout: string; stderr: string; code: number }>((resolve) => {
      execFile(
        process.execPath,
        [...args, detect, cert.certPath, cert.keyPath],
        { timeout: 30_000 },
        (err, out, errOut) => {
          resolve({ stdout: out, stderr: errOut, code: (err as { code?: number } | null)?.code ?? 0 });
        },
      );
    });
    assert.equal(stdout.trim(), "survived", `exit ${code}, stderr: ${stderr}`);
  });
});
