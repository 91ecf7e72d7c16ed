/**
 * Target of the TLS throughput benchmark (`tls_throughput.ts`): a
 * MidiSmtpServer that accepts every message and throws it away, on 127.0.0.1,
 * with one plaintext port that offers STARTTLS and one implicit TLS port.
 *
 *   deno run -A scripts/bench/tls_target.ts --cert cert.pem --key key.pem
 *   bun scripts/bench/tls_target.ts --cert cert.pem --key key.pem
 *   node --import tsx scripts/bench/tls_target.ts --cert cert.pem --key key.pem
 *
 * Without `--cert` / `--key` the PEM files named by `TLS_BENCH_CERT` /
 * `TLS_BENCH_KEY` are used. Prints `READY <plainPort> <tlsPort>` once both
 * listeners are bound; runs until killed.
 *
 * @module
 */
import process from "node:process";
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { MidiSmtpServer } from "../../mod.ts";

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: { cert: { type: "string" }, key: { type: "string" } },
  strict: true,
});
const certPath = values.cert ?? process.env.TLS_BENCH_CERT;
const keyPath = values.key ?? process.env.TLS_BENCH_KEY;
if (!certPath || !keyPath) {
  process.stderr.write("tls_target: give --cert and --key (or TLS_BENCH_CERT and TLS_BENCH_KEY)\n");
  process.exit(2);
}

const server = new MidiSmtpServer({
  hosts: "127.0.0.1",
  // 0 and 0: the kernel picks free ports, so several targets (and other benchmarks) never collide.
  ports: 0,
  tlsPorts: 0,
  // STARTTLS offered but not forced, so the same plaintext port also serves the plaintext comparison.
  tlsMode: "TLS_OPTIONAL",
  // The client sends MAIL, RCPT and DATA in one write, as real senders do.
  pipeliningExtension: true,
  // The load comes from one address: the per-client limits would refuse it.
  maxConnectionsPerIp: null,
  maxConnectionRatePerIp: null,
  maxMessageRatePerIp: null,
  // No SIZE limit: the benchmark chooses the message size, and refusing one would only fail the run.
  maxMessageSize: 0,
  // Read as text here (not tlsCertPath) so that file reading is outside the library and every runtime does the same.
  tlsCert: readFileSync(certPath, "utf8"),
  tlsKey: readFileSync(keyPath, "utf8"),
  // The sink: the message is received, checked and answered 250, then dropped.
  onMessageDataEvent() {},
});
await server.start();
// With one host, `addresses` lists the plaintext listener first, then the implicit TLS one (see MidiSmtpServer.start).
const [plainPort, tlsPort] = server.addresses.map((address) => address.slice(address.lastIndexOf(":") + 1));
process.stdout.write(`READY ${plainPort} ${tlsPort}\n`);

// A clean exit on SIGTERM lets the orchestrator tell a crash from being stopped.
process.on("SIGTERM", () => {
  server.stop({ gracefully: false }).finally(() => process.exit(0));
});
