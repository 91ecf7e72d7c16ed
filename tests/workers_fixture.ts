/**
 * A program that runs `runWorkers` as an application would, for
 * tests/workers.test.ts, which runs it under the runtime running the test.
 * Its one argument is a JSON object: `port`, `workers`, `mode`, and
 * `killTimeout`. Modes:
 * - `"serve"`: every worker serves SMTP on `port`;
 * - `"hang-stop"`: like serve, but a worker's stop never finishes (the
 *   supervisor must kill it after `killTimeout`);
 * - `"fail-start"`: worker 2's `start` throws (the supervisor must give up).
 *
 * The supervisor prints every event as a JSON line on stdout
 * (`{"event": ...}`), then `{"ready": [pids]}` once all listen.
 */
import process from "node:process";
import { MidiSmtpServer, runWorkers } from "../mod.ts";

interface FixtureArgs {
  port: number;
  workers: number;
  mode: "serve" | "hang-stop" | "fail-start";
  killTimeout?: number;
}

const deno = (globalThis as { Deno?: { args: string[] } }).Deno;
const args = JSON.parse((deno ? deno.args : process.argv.slice(2))[0]) as FixtureArgs;

const pool = await runWorkers({
  workers: args.workers,
  killTimeout: args.killTimeout,
  restartDelay: 0.2,
  log: (line) => process.stderr.write(`fixture: ${line}\n`),
  onEvent: (event) => process.stdout.write(`${JSON.stringify({ event: event.type, id: event.worker.id })}\n`),
  start(worker) {
    if (args.mode === "fail-start" && worker.id === 2) throw new Error("no configuration for worker 2");
    return new MidiSmtpServer({ ports: args.port, reusePort: true });
  },
  stop: args.mode === "hang-stop" ? () => new Promise(() => {}) : undefined,
});
if (pool.role === "supervisor") process.stdout.write(`${JSON.stringify({ ready: pool.status().map((w) => w.pid) })}\n`);
