/**
 * Soak target: MidiSmtpServer with production-style limits on two loopback
 * listeners (plain, and one that requires PROXY headers), a data hook that
 * is sometimes slow, sometimes fails and sometimes never settles, and
 * counters the soak reads.
 *
 *   deno run -A --v8-flags=--expose-gc scripts/soak/target.ts --lib PATH --ids FILE
 *   bun run scripts/soak/target.ts --lib PATH --ids FILE
 *   node --expose-gc --import tsx scripts/soak/target.ts --lib npm-build/esm/mod.js --ids FILE
 *
 * `--lib` is the library entry (source `mod.ts` for Deno and Bun, the npm
 * build for Node, as in the benchmark). Every accepted message's id is
 * appended to `--ids` (one per line, flushed every 200 ms and on `dump`), so
 * the target's own memory does not grow with the message count.
 *
 * Prints `READY <port> <proxyPort>` once listening, then answers commands on
 * stdin, one per line: `stats N` -> `STATS N {json}` (see TargetStats),
 * `gc N` -> `GC N ok` (after a forced garbage collection, where available),
 * `reset-lag N` -> `RESET N ok` (the event-loop lag counters start again),
 * `dump N` -> `DUMPED N ok` (ids flushed). Runs until killed or until its
 * stdin closes.
 *
 * @module
 */
import { appendFileSync, writeFileSync } from "node:fs";
import process from "node:process";
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import { fileURLToPath, pathToFileURL } from "node:url";
import {
  AUTH_PASSWORD,
  AUTH_USER,
  CLAIMED_IP_HEADER,
  DELAY_HEADER,
  ID_HEADER,
  MODE_HEADER,
  PROXY_OPTIONS,
  SERVER_OPTIONS,
  type TargetStats,
} from "./plan.ts";

type Library = typeof import("../../mod.ts");
type Ctx = import("../../mod.ts").SmtpdContext;

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: { lib: { type: "string" }, ids: { type: "string" } },
  strict: true,
});
if (!values.ids) throw new Error("--ids FILE is required");
const idsFile = values.ids;
const lib = values.lib ?? fileURLToPath(new URL("../../mod.ts", import.meta.url));
const { MidiSmtpServer, Smtpd451Exception, Smtpd535Exception } = (await import(pathToFileURL(lib).href)) as Library;

const stats: Omit<TargetStats, "connections" | "processings" | "listeners" | "overloaded" | "memory" | "gc"> = {
  accepted: 0,
  acceptedProxy: 0,
  connects: 0,
  disconnects: 0,
  abortedHooks: 0,
  hookModes: {},
  proxyMismatches: 0,
  proxyMismatchExamples: [],
  logs: {},
  errorLogs: [],
  uncaught: [],
  loopLag: { maxMs: 0, samples: 0, over50: 0, over200: 0, over1000: 0 },
};

// ---- event-loop lag: how late a 100 ms timer fires -----------------------------------------

let lagExpected = Date.now() + 100;
setInterval(() => {
  const lag = Math.max(0, Date.now() - lagExpected);
  lagExpected = Date.now() + 100;
  const l = stats.loopLag;
  l.samples++;
  l.maxMs = Math.max(l.maxMs, lag);
  if (lag > 50) l.over50++;
  if (lag > 200) l.over200++;
  if (lag > 1000) l.over1000++;
}, 100);

// ---- accepted ids, to a file ---------------------------------------------------------------

writeFileSync(idsFile, "");
let pendingIds: string[] = [];
function flushIds(): void {
  if (pendingIds.length === 0) return;
  appendFileSync(idsFile, pendingIds.join("\n") + "\n");
  pendingIds = [];
}
setInterval(flushIds, 200);

// ---- hooks ---------------------------------------------------------------------------------

function header(ctx: Ctx, name: string): string | undefined {
  const m = new RegExp(`^${name}:[ \\t]*(\\S+)`, "mi").exec(ctx.message.headers);
  return m?.[1];
}

/** The application keeps the message: one line in the ids file. */
function record(ctx: Ctx, proxied: boolean): void {
  const claimed = header(ctx, CLAIMED_IP_HEADER);
  if (claimed !== undefined && claimed !== ctx.server.remoteIp) {
    stats.proxyMismatches++;
    if (stats.proxyMismatchExamples.length < 5) {
      stats.proxyMismatchExamples.push(`claimed ${claimed}, remoteIp ${ctx.server.remoteIp}`);
    }
  }
  pendingIds.push(header(ctx, ID_HEADER) ?? "(no id)");
  stats.accepted++;
  if (proxied) stats.acceptedProxy++;
}

function onMessageDataEvent(proxied: boolean) {
  return (ctx: Ctx): void | Promise<void> => {
    const mode = header(ctx, MODE_HEADER) ?? "ok";
    stats.hookModes[mode] = (stats.hookModes[mode] ?? 0) + 1;
    switch (mode) {
      case "slow": {
        // A delivery that takes a while; it keeps the message only if the session still waits for it.
        const signal = ctx.signal;
        const ms = Number(header(ctx, DELAY_HEADER) ?? "500");
        return new Promise((resolve) =>
          setTimeout(() => {
            if (signal.aborted) stats.abortedHooks++;
            else record(ctx, proxied);
            resolve();
          }, ms)
        );
      }
      case "fail":
        throw new Smtpd451Exception();
      case "fail-async":
        return new Promise((_, reject) => setTimeout(() => reject(new Smtpd451Exception()), 20));
      case "hang":
        // A delivery that never settles: only hookTimeout ends it.
        return new Promise(() => {});
      case "hang-signal": {
        // Stuck until the session gives up on it, then returns (late): never kept.
        const signal = ctx.signal;
        return new Promise((resolve) => {
          signal.addEventListener("abort", () => {
            stats.abortedHooks++;
            resolve();
          }, { once: true });
        });
      }
      default:
        record(ctx, proxied);
    }
  };
}

const IPV4 = /\b\d{1,3}(?:\.\d{1,3}){3}\b/g;
const IPV6 = /(?:\b[0-9a-f]{1,4})?(?::[0-9a-f]{0,4}){2,7}\b/gi;
const NUMBER = /\d+(?:\.\d+)?/g;
const QUOTED = /"(?:[^"\\]|\\.)*"/g;
const MAX_LOG_KEYS = 80;

function onLoggingEvent(_ctx: Ctx | null, severity: string, msg: string, err?: unknown): void {
  let key = `${severity} ${
    msg.replace(QUOTED, '"…"').replace(IPV4, "IP").replace(IPV6, "IP").replace(NUMBER, "N").slice(0, 110)
  }`;
  if (!(key in stats.logs) && Object.keys(stats.logs).length >= MAX_LOG_KEYS) key = `${severity} (other)`;
  stats.logs[key] = (stats.logs[key] ?? 0) + 1;
  if ((severity === "error" || severity === "fatal") && stats.errorLogs.length < 10) {
    const stack = err instanceof Error && err.stack ? ` | ${err.stack.split("\n").slice(0, 4).join(" | ")}` : "";
    stats.errorLogs.push(`${severity}: ${msg}${stack}`.slice(0, 600));
    console.error(`target: ${severity}: ${msg}${stack}`);
  }
}

const common = {
  ...SERVER_OPTIONS,
  authMechanisms: [...SERVER_OPTIONS.authMechanisms],
  ports: 0,
  onLoggingEvent,
  onConnectEvent() {
    stats.connects++;
  },
  onDisconnectEvent() {
    stats.disconnects++;
  },
  onAuthEvent(_ctx: Ctx, _authz: string, user: string, password: string) {
    if (user !== AUTH_USER || password !== AUTH_PASSWORD) throw new Smtpd535Exception();
  },
};
const server = new MidiSmtpServer({ ...common, onMessageDataEvent: onMessageDataEvent(false) });
const proxyServer = new MidiSmtpServer({
  ...common,
  ...PROXY_OPTIONS,
  proxyTrustedSources: [...PROXY_OPTIONS.proxyTrustedSources],
  onMessageDataEvent: onMessageDataEvent(true),
});

// ---- the process ---------------------------------------------------------------------------

function describe(err: unknown): string {
  return err instanceof Error
    ? `${err.name}: ${err.message} | ${(err.stack ?? "").split("\n").slice(1, 4).join(" | ")}`
    : String(err);
}
process.on("uncaughtException", (err) => {
  if (stats.uncaught.length < 10) stats.uncaught.push(`uncaughtException ${describe(err)}`.slice(0, 600));
  console.error(`target: uncaught exception: ${describe(err)}`);
});
process.on("unhandledRejection", (err) => {
  if (stats.uncaught.length < 10) stats.uncaught.push(`unhandledRejection ${describe(err)}`.slice(0, 600));
  console.error(`target: unhandled rejection: ${describe(err)}`);
});
process.on("SIGTERM", () => {
  flushIds();
  process.exit(0);
});

// deno-lint-ignore no-explicit-any
const g = globalThis as any;
const gcAvailable = typeof g.gc === "function" || typeof g.Bun?.gc === "function";
function forceGc(): void {
  if (typeof g.Bun?.gc === "function") g.Bun.gc(true);
  else if (typeof g.gc === "function") g.gc();
}

function snapshot(): TargetStats {
  const m = process.memoryUsage();
  return {
    ...stats,
    connections: server.connections() + proxyServer.connections(),
    processings: server.processings() + proxyServer.processings(),
    listeners: {
      plain: { connections: server.connections(), processings: server.processings() },
      proxy: { connections: proxyServer.connections(), processings: proxyServer.processings() },
    },
    overloaded: server.isOverloaded() || proxyServer.isOverloaded(),
    memory: {
      rss: m.rss,
      heapUsed: m.heapUsed,
      heapTotal: m.heapTotal,
      external: m.external,
      arrayBuffers: m.arrayBuffers,
    },
    gc: gcAvailable,
  };
}

await server.start();
await proxyServer.start();
const portOf = (s: InstanceType<Library["MidiSmtpServer"]>) => s.addresses[0].split(":").pop();

const control = createInterface({ input: process.stdin });
// The soak holds stdin open for the target's whole life: its end means the soak is gone, so go too.
control.on("close", () => {
  flushIds();
  process.exit(0);
});
control.on("line", (line) => {
  const [command, n] = line.trim().split(/\s+/);
  if (command === "stats") process.stdout.write(`STATS ${n} ${JSON.stringify(snapshot())}\n`);
  else if (command === "gc") {
    forceGc();
    process.stdout.write(`GC ${n} ok\n`);
  } else if (command === "reset-lag") {
    stats.loopLag = { maxMs: 0, samples: 0, over50: 0, over200: 0, over1000: 0 };
    process.stdout.write(`RESET ${n} ok\n`);
  } else if (command === "dump") {
    flushIds();
    process.stdout.write(`DUMPED ${n} ok\n`);
  }
});
process.stdout.write(`READY ${portOf(server)} ${portOf(proxyServer)}\n`);
