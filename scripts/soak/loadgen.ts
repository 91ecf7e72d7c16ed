/**
 * The soak's load generator (Node, via tsx): runs the client populations of
 * scripts/soak/populations.ts against the target's two listeners, each
 * from its own loopback addresses, and writes what it saw.
 *
 *   node --import tsx scripts/soak/loadgen.ts --port P --proxy-port Q --phase load \
 *     --seconds 60 --out result.json --ids acked.txt [--only good,flood,...]
 *
 * Phases: `warmup` (a few well-behaved senders, to get the target's lazy
 * set-up done before the baseline), `load` (every population), `probe`
 * (after the load, with every client gone: each source address once, and
 * one message through each listener). `--ids` gets one line per message
 * the server acknowledged with 250; `--out` the {@link Tally} as JSON.
 * `--only` runs only the named populations of the load phase (see
 * {@link POPULATIONS}), to narrow down what causes something.
 * After `--seconds` no new session starts; sessions in progress finish
 * (the server's timeouts bound them) and whatever is still open 45 s later
 * is destroyed and counted.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { writeFileSync } from "node:fs";
import process from "node:process";
import { parseArgs } from "node:util";
import { setTimeout as sleep } from "node:timers/promises";
import { intOption, UsageError } from "../bench/lib/args.ts";
import type { SmtpConn } from "./conn.ts";
import { bump, newTally, percentiles } from "./tally.ts";
import {
  authGuessSession,
  floodOne,
  garbageSession,
  goodSession,
  holdIdle,
  Outbox,
  probe,
  proxySession,
  type Run,
  slowSession,
  vanishSession,
} from "./populations.ts";
import { PROXIED_V4, PROXIED_V6, SOURCES } from "./plan.ts";

/** Populations whose deliveries show that mail still flows (counted per 10 s window). */
const WELL_BEHAVED = new Set(["good", "greedy", "proxy-good", "slow-legit"]);
/** How long sessions may go on after the load phase before they are cut off (the server's timeouts are 10 s at most). */
const HARD_STOP_MS = 45_000;

const rand = (n: number) => Math.floor(Math.random() * n);

/** Runs `body` again and again until the load phase is over. */
async function loop(run: Run, body: () => Promise<unknown>): Promise<void> {
  while (!run.stopping()) await body();
}

/** The load phase's populations, by the names `--only` takes. */
export const POPULATIONS = [
  "good",
  "greedy",
  "flood",
  "holders",
  "slow",
  "garbage",
  "vanish",
  "auth",
  "proxy",
  "waves",
];

function loadPhase(run: Run, seconds: number, only: ReadonlySet<string>): Promise<unknown>[] {
  const workers: Promise<unknown>[] = [];
  const want = (population: string) => only.size === 0 || only.has(population);
  // Well-behaved senders: 3 workers per address, 1-5 messages per connection, a short pause between sessions.
  for (const [i, source] of SOURCES.good.entries()) {
    for (let w = 0; w < 3 && want("good"); w++) {
      const outbox = new Outbox(run, "good");
      workers.push(loop(run, async () => {
        await goodSession(run, {
          pop: "good",
          source,
          outbox,
          batch: 1 + rand(5),
          pipelined: Math.random() < 0.5,
          auth: i < 2 && Math.random() < 0.3,
        });
        await sleep(rand(300));
      }));
    }
  }
  // One greedy sender: as fast as it can, until the message rate limit (450) makes it back off.
  for (let w = 0; w < 6 && want("greedy"); w++) {
    const outbox = new Outbox(run, "greedy");
    workers.push(loop(run, async () => {
      const r = await goodSession(run, {
        pop: "greedy",
        source: SOURCES.greedy[0],
        outbox,
        batch: 10,
        pipelined: true,
        auth: false,
        onlyOk: true,
      });
      if (r === "refused") await sleep(1000);
    }));
  }
  // A connection flood from one address: 150 new connections a second, 100 at most at a time.
  if (want("flood")) {
    workers.push((async () => {
      const inFlight = new Set<Promise<void>>();
      while (!run.stopping()) {
        for (let k = 0; k < 3 && inFlight.size < 100; k++) {
          const p: Promise<void> = floodOne(run).finally(() => inFlight.delete(p));
          inFlight.add(p);
        }
        await sleep(20);
      }
      await Promise.all(inFlight);
    })());
  }
  // 60 clients holding idle connections from one address (50 are let in).
  for (let w = 0; w < 60 && want("holders"); w++) {
    workers.push(loop(run, async () => {
      const r = await holdIdle(run, "holders", SOURCES.holders[0]);
      await sleep(r === "refused" ? 2000 : rand(200));
    }));
  }
  // Slow clients.
  for (let w = 0; w < 12 && want("slow"); w++) {
    const source = SOURCES.slow[w % SOURCES.slow.length];
    const outbox = new Outbox(run, "slow-legit");
    workers.push(loop(run, async () => {
      await slowSession(run, source, outbox);
      await sleep(rand(500));
    }));
  }
  // Garbage, vanishing clients, AUTH guessers, proxies.
  for (let w = 0; w < 6 && want("garbage"); w++) {
    const source = SOURCES.garbage[w % SOURCES.garbage.length];
    workers.push(loop(run, async () => {
      await garbageSession(run, source);
      await sleep(rand(300));
    }));
  }
  for (let w = 0; w < 4 && want("vanish"); w++) {
    workers.push(loop(run, async () => {
      await vanishSession(run, SOURCES.vanish[0]);
      await sleep(rand(300));
    }));
  }
  for (let w = 0; w < 4 && want("auth"); w++) {
    const source = SOURCES.auth[w % SOURCES.auth.length];
    workers.push(loop(run, async () => {
      await authGuessSession(run, source);
      await sleep(100 + rand(300));
    }));
  }
  for (let w = 0; w < 6 && want("proxy"); w++) {
    const outbox = new Outbox(run, "proxy-good");
    workers.push(loop(run, async () => {
      await proxySession(run, outbox);
      await sleep(rand(200));
    }));
  }
  // Two waves of 180 idle connections (30 from each of 6 addresses): past maxProcessings (200) with the
  // rest, so clients queue (queueTimeout), the server goes into overload mode and sheds idle sessions,
  // and maxConnections (300) refuses some.
  for (const at of want("waves") ? [0.25, 0.65] : []) {
    workers.push((async () => {
      await sleep(seconds * 1000 * at);
      if (run.stopping()) return;
      const wave: Promise<unknown>[] = [];
      for (let k = 0; k < 180; k++) {
        wave.push(holdIdle(run, "wave", SOURCES.waves[k % SOURCES.waves.length]));
        if (k % 30 === 29) await sleep(100);
      }
      await Promise.all(wave);
    })());
  }
  return workers;
}

function warmupPhase(run: Run): Promise<unknown>[] {
  const workers: Promise<unknown>[] = [];
  for (const source of SOURCES.good.slice(0, 2)) {
    const outbox = new Outbox(run, "good");
    workers.push(
      loop(run, () => goodSession(run, { pop: "good", source, outbox, batch: 3, pipelined: true, auth: true })),
    );
  }
  const outbox = new Outbox(run, "proxy-good");
  workers.push(loop(run, () => proxySession(run, outbox)));
  return workers;
}

async function probePhase(run: Run): Promise<void> {
  const all = new Set<string>(Object.values(SOURCES).flat());
  for (const source of all) await probe(run, source);
  for (const proxied of [...PROXIED_V4, PROXIED_V6[0]]) await probe(run, SOURCES.proxy[0], proxied);
  // Mail still flows through both listeners.
  for (const viaProxy of [false, true]) {
    const pop = viaProxy ? "probe-proxy" : "probe";
    const before = run.tally.delivered[pop] ?? 0;
    await goodSession(run, {
      pop,
      source: SOURCES.good[0],
      outbox: new Outbox(run, pop),
      batch: 1,
      pipelined: false,
      auth: false,
      onlyOk: true,
      proxy: viaProxy
        ? { header: Buffer.from(`PROXY TCP4 ${PROXIED_V4[0]} 192.0.2.25 40000 25\r\n`), claimedIp: PROXIED_V4[0] }
        : undefined,
    });
    if ((run.tally.delivered[pop] ?? 0) === before) {
      run.tally.probeFailures.push(
        `${viaProxy ? "proxy" : "plain"} listener: a message after the soak was not accepted`,
      );
    }
  }
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: {
      host: { type: "string" },
      port: { type: "string" },
      "proxy-port": { type: "string" },
      phase: { type: "string" },
      seconds: { type: "string" },
      out: { type: "string" },
      ids: { type: "string" },
      only: { type: "string" },
    },
    strict: true,
  });
  const phase = values.phase ?? "load";
  if (!["warmup", "load", "probe"].includes(phase)) throw new UsageError(`--phase: warmup, load or probe`);
  if (!values.out || !values.ids) throw new UsageError("--out and --ids are required");
  const seconds = intOption("seconds", values.seconds, 60, 1);
  const tally = newTally();
  const acked: string[] = [];
  const greetings: number[] = [];
  const startedAt = Date.now();
  let stopped = false;
  const open = new Set<SmtpConn>();
  const run: Run = {
    host: values.host ?? "127.0.0.1",
    port: intOption("port", values.port, 0, 1),
    proxyPort: intOption("proxy-port", values["proxy-port"], 0, 1),
    tally,
    idPrefix: `${phase[0]}${Math.random().toString(36).slice(2, 7)}-`,
    startedAt,
    stopping: () => stopped,
    greeted(ms) {
      greetings.push(ms);
    },
    ack(pop, id) {
      acked.push(id);
      bump(tally.delivered, pop);
      if (WELL_BEHAVED.has(pop)) {
        const w = Math.floor((Date.now() - startedAt) / 10_000);
        while (tally.deliveredPerWindow.length <= w) tally.deliveredPerWindow.push(0);
        tally.deliveredPerWindow[w]++;
      }
    },
    open,
  };
  if (phase === "probe") {
    await probePhase(run);
  } else {
    const only = new Set((values.only ?? "").split(",").map((p) => p.trim()).filter(Boolean));
    const unknown = [...only].filter((p) => !POPULATIONS.includes(p));
    if (unknown.length > 0) {
      throw new UsageError(`--only: unknown ${unknown.join(", ")}; known: ${POPULATIONS.join(", ")}`);
    }
    const workers = phase === "warmup" ? warmupPhase(run) : loadPhase(run, seconds, only);
    const all = Promise.all(
      workers.map((w) => w.catch((err) => tally.unexpectedExamples.push(`worker crashed: ${err}`))),
    );
    await sleep(seconds * 1000);
    stopped = true;
    // Sessions in progress end by themselves (the server's timeouts bound them): wait, but not for ever.
    const finished = await Promise.race([all.then(() => true), sleep(HARD_STOP_MS).then(() => false)]);
    if (!finished) {
      tally.openAtHardStop = open.size;
      for (const conn of open) conn.destroy();
      await Promise.race([all, sleep(5000)]);
    }
  }
  tally.elapsedSec = (Date.now() - startedAt) / 1000;
  tally.greetingMs = percentiles(greetings);
  for (const conn of open) conn.destroy();
  writeFileSync(values.ids, acked.length ? acked.join("\n") + "\n" : "");
  writeFileSync(values.out, JSON.stringify(tally));
  return 0;
}

// Exit explicitly: a socket left over must not keep the process alive.
main().then((code) => {
  process.exit(code);
}, (err) => {
  console.error(`soak loadgen: ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
  process.exit(err instanceof UsageError ? 2 : 1);
});
