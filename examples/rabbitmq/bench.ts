/**
 * Throughput of examples/rabbitmq/server.ts with publisher confirms, and where
 * the time goes (the method and figures are in BENCHMARKS.md, "RabbitMQ
 * hand-off").
 *
 * Against a broker at `AMQP_URL` (default `amqp://guest:guest@127.0.0.1:5672`):
 * 1. amqplib alone, in this process: 1 KiB messages published to a durable
 *    queue by 1, 10 and 50 publishers, each awaiting its confirm before the
 *    next (the broker's round trip per confirm), persistent and transient;
 * 2. per runtime and number of concurrent SMTP sessions: the load generator
 *    (scripts/bench/loadgen.ts, 1 KiB messages, PIPELINING, connections kept)
 *    against the library as a discarding sink (scripts/bench/targets/ours.ts)
 *    and against the hand-off example, with the CPU each process used per
 *    message; after each run the queue must hold exactly the messages that got
 *    their 250.
 *
 *   node --import tsx examples/rabbitmq/bench.ts [--runtimes deno,bun,node] [--sessions 1,10,50]
 *        [--messages 3000] [--runs 3] [--broker-pid PID]
 *
 * `--runtimes ""` runs part 1 only. `--broker-pid` (the broker's beam.smp) adds the broker's CPU per message;
 * without it the table shows what the machine spent beyond server and generator.
 * Linux only (CPU times from /proc).
 */
import { Buffer } from "node:buffer";
import { spawn } from "node:child_process";
import { availableParallelism } from "node:os";
import process from "node:process";
import { parseArgs } from "node:util";
import { connect } from "amqplib";
import { cpuSeconds } from "../../scripts/bench/lib/proc.ts";
import type { LoadReport } from "../../scripts/bench/loadgen.ts";

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: {
    runtimes: { type: "string", default: "deno,bun,node" },
    sessions: { type: "string", default: "1,10,50" },
    messages: { type: "string", default: "3000" },
    runs: { type: "string", default: "3" },
    "broker-pid": { type: "string" },
  },
  strict: true,
});
const AMQP_URL = process.env.AMQP_URL || "amqp://guest:guest@127.0.0.1:5672";
const root = new URL("../..", import.meta.url).pathname;
const MESSAGES = Number(values.messages);
const WARMUP = Math.round(MESSAGES / 10);
const RUNS = Number(values.runs);
const brokerPid = values["broker-pid"] ? Number(values["broker-pid"]) : undefined;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const pct = (xs: number[], p: number) =>
  [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))];

/**
 * Part 1: the broker's own cost of a confirmed publish, without SMTP: 1, 10 and
 * 50 publishers on one confirm channel, each waiting for its confirm before
 * the next publish (as each SMTP session does), with persistent messages (the
 * example's) and with transient ones, whose confirm does not wait for the disk.
 */
async function amqplibAlone(): Promise<void> {
  const connection = await connect(AMQP_URL);
  const channel = await connection.createConfirmChannel();
  const queue = `bench-amqplib-${process.pid}`;
  await channel.assertQueue(queue, { durable: true });
  const body = Buffer.alloc(1024, "x");
  console.log(`amqplib alone (Node ${process.version}), 1 KiB messages to a durable queue, 3000 per line:`);
  for (const persistent of [true, false]) {
    const publish = () =>
      new Promise<void>((resolve, reject) =>
        channel.sendToQueue(queue, body, { persistent, mandatory: true }, (err) => err ? reject(err) : resolve())
      );
    for (const publishers of [1, 10, 50]) {
      await channel.purgeQueue(queue);
      for (let i = 0; i < 300; i++) await publish(); // warm-up
      const latencies: number[] = [];
      let left = 3000;
      const brokerCpu = brokerPid ? cpuSeconds(brokerPid) : NaN;
      const t0 = performance.now();
      await Promise.all(Array.from({ length: publishers }, async () => {
        while (left-- > 0) {
          const t = performance.now();
          await publish();
          latencies.push(performance.now() - t);
        }
      }));
      const rate = 3000 / ((performance.now() - t0) / 1000);
      const brokerMs = brokerPid ? `, broker CPU ${((cpuSeconds(brokerPid) - brokerCpu) / 3).toFixed(2)} ms/msg` : "";
      console.log(
        `  ${persistent ? "persistent" : "transient "}, ${publishers} publisher(s): ${Math.round(rate)} msg/s, ` +
          `publish -> confirm median ${median(latencies).toFixed(2)} ms, p99 ${pct(latencies, 0.99).toFixed(2)} ms` +
          brokerMs,
      );
    }
  }
  await channel.deleteQueue(queue);
  await connection.close();
}

/** How to run a TypeScript file on `runtime`. */
function command(runtime: string, file: string, args: string[] = []): [string, string[]] {
  if (runtime === "deno") return [`${root}node_modules/.bin/deno`, ["run", "-A", file, ...args]];
  if (runtime === "bun") return [`${root}node_modules/.bin/bun`, [file, ...args]];
  return [process.execPath, ["--import", "tsx", file, ...args]];
}

/** Starts `file` and resolves with its pid and the port it printed, once `ready` matched. */
function startProcess(
  runtime: string,
  file: string,
  args: string[],
  env: Record<string, string>,
  ready: RegExp,
): Promise<{ pid: number; port: number; kill: () => void }> {
  const [cmd, argv] = command(runtime, file, args);
  const child = spawn(cmd, argv, { cwd: root, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "inherit"] });
  let out = "";
  return new Promise((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`${file} on ${runtime} exited ${code}: ${out}`)));
    child.stdout.setEncoding("utf8").on("data", (d: string) => {
      out += d;
      const m = ready.exec(out);
      if (m) {
        child.stdout.removeAllListeners("data");
        child.stdout.resume();
        resolve({ pid: child.pid!, port: Number(m[1]), kill: () => void child.kill("SIGKILL") });
      }
    });
  });
}

/** One load generator run against `port`. */
function loadgen(port: number, sessions: number): Promise<LoadReport> {
  const args = ["--import", "tsx", "scripts/bench/loadgen.ts", "--port", String(port), "--sessions", String(sessions)];
  args.push("--messages", String(MESSAGES), "--warmup", String(WARMUP), "--size", "1k", "--json");
  const child = spawn(process.execPath, args, { cwd: root, stdio: ["ignore", "pipe", "inherit"] });
  let out = "";
  child.stdout.setEncoding("utf8").on("data", (d: string) => out += d);
  return new Promise((resolve, reject) =>
    child.once("exit", (code) => code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`loadgen exited ${code}`)))
  );
}

/** One measured run: msg/s and CPU milliseconds per accepted message of each party. */
interface Run {
  msgsPerSec: number;
  ok: number;
  server: number;
  broker: number;
  gen: number;
  /** Share of the machine's CPU time (all cores) that was busy, percent. */
  busy: number;
  /** The part of `busy` that server, broker and generator do not account for: other processes (noise). */
  others: number;
}

/** Runs the load generator once against `port` and reads the CPU `serverPid` (and the broker) used meanwhile. */
async function measure(port: number, serverPid: number, sessions: number): Promise<Run> {
  const before = { server: cpuSeconds(serverPid), broker: brokerPid ? cpuSeconds(brokerPid) : NaN };
  const report = await loadgen(port, sessions);
  if (report.failedMessages > 0) throw new Error(`loadgen: ${report.firstFailure}`);
  const per = (seconds: number) => (seconds * 1000) / (report.okMessages + WARMUP);
  const server = per(cpuSeconds(serverPid) - before.server);
  const broker = brokerPid ? per(cpuSeconds(brokerPid) - before.broker) : NaN;
  const share = (seconds: number) => (100 * seconds) / (report.elapsedMs / 1000) / availableParallelism();
  const busy = share(report.machineBusySec);
  // Server and broker CPU was read around warm-up and run (per message above); the machine's and the
  // generator's only over the run: count the run's messages only.
  const ours = share(((server + (brokerPid ? broker : 0)) * report.okMessages) / 1000 + report.genCpuSec);
  const gen = per(report.genCpuSec);
  return { msgsPerSec: report.msgsPerSec, ok: report.okMessages, server, broker, gen, busy, others: busy - ours };
}

await amqplibAlone();
const check = await connect(AMQP_URL);
const channel = await check.createChannel();
console.log(`\n${MESSAGES} x 1 KiB messages per run (+${WARMUP} warm-up), median of ${RUNS} runs`);
console.log(
  "runtime | sessions | sink msg/s | sink server CPU ms/msg | hand-off msg/s | " +
    "hand-off CPU ms/msg: server / broker / loadgen | machine busy (other processes)",
);
for (const runtime of values.runtimes.split(",").filter(Boolean)) {
  const sink = await startProcess(runtime, "scripts/bench/targets/ours.ts", ["--port", "0"], {}, /READY (\d+)/);
  const queue = `bench-${runtime}-${process.pid}`;
  const handOff = await startProcess(runtime, "examples/rabbitmq/server.ts", [], {
    SMTP_PORT: "0",
    SMTP_PER_IP_LIMITS: "off",
    AMQP_URL,
    AMQP_QUEUE: queue,
  }, /Ready for connections on 127\.0\.0\.1:(\d+)[\s\S]*AMQP connected/);
  try {
    for (const sessions of values.sessions.split(",").map(Number)) {
      const sinkRuns: Run[] = [];
      const runs: Run[] = [];
      for (let r = 0; r < RUNS; r++) {
        sinkRuns.push(await measure(sink.port, sink.pid, sessions));
        await channel.purgeQueue(queue);
        const run = await measure(handOff.port, handOff.pid, sessions);
        // Every 250 is a message in the queue, and nothing else is.
        const held = (await channel.checkQueue(queue)).messageCount;
        if (held !== run.ok + WARMUP) throw new Error(`${held} messages in the queue after ${run.ok + WARMUP} 250s`);
        runs.push(run);
      }
      const m = (key: Exclude<keyof Run, "ok">, xs = runs) => median(xs.map((x) => x[key]));
      console.log(
        `${runtime} | ${sessions} | ${Math.round(m("msgsPerSec", sinkRuns))} | ${m("server", sinkRuns).toFixed(2)} | ` +
          `${Math.round(m("msgsPerSec"))} | ` +
          `${m("server").toFixed(2)} / ${brokerPid ? m("broker").toFixed(2) : "-"} / ${m("gen").toFixed(2)} | ` +
          `${Math.round(m("busy"))} % (${Math.round(m("others"))} %)`,
      );
    }
  } finally {
    sink.kill();
    handOff.kill();
    await channel.deleteQueue(queue);
  }
}
await check.close();
