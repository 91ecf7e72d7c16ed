/**
 * Benchmark target: nodemailer's smtp-server as a discarding sink on 127.0.0.1,
 * set up like ours: no TLS, no AUTH, no reverse DNS, a 100 MiB size limit,
 * and a data handler that drains the stream and accepts.
 *
 *   node --import tsx scripts/bench/targets/smtp-server.ts --port 0
 *
 * Prints `READY <port>` once listening; runs until killed.
 *
 * @module
 */
import process from "node:process";
import type { AddressInfo } from "node:net";
import { parseArgs } from "node:util";
import { SMTPServer } from "smtp-server";

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: { port: { type: "string" } },
  strict: true,
});

const server = new SMTPServer({
  disableReverseLookup: true,
  authOptional: true,
  disabledCommands: ["STARTTLS", "AUTH"],
  size: 100 * 1024 * 1024,
  logger: false,
  onData(stream, _session, callback) {
    stream.on("data", () => {});
    stream.on("end", () => callback());
  },
});
// Exit cleanly on SIGTERM (how run.ts stops targets), so `--cpu-prof` and similar write their files.
process.on("SIGTERM", () => process.exit(0));
server.on("error", (err) => console.error(`smtp-server: ${err.message}`));
server.listen(Number(values.port ?? "0"), "127.0.0.1", () => {
  const address = server.server.address() as AddressInfo;
  process.stdout.write(`READY ${address.port}\n`);
});
