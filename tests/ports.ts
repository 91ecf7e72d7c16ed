/**
 * A port for a process a test starts later (HAProxy, Postfix, RabbitMQ, a
 * dev server child), which must be told its port before it binds.
 *
 * `listen(0)` would hand out a port from the kernel's ephemeral range, the
 * same range every outgoing connection takes its source port from. With two
 * test runs at once (npm test), a port picked that way and released could be
 * taken meanwhile by the other run's client connection or `listen(0)` server,
 * and the daemon would then share or lose it. So the pick is below the
 * ephemeral range, at random, and checked to be free on 127.0.0.1: only
 * another pick of the same kind can clash, about once in ten thousand.
 */
import { readFileSync } from "node:fs";
import net from "node:net";

/** Linux's default ephemeral range starts at 32768; elsewhere that is assumed. */
function ephemeralStart(): number {
  try {
    const [low] = readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/).map(Number);
    if (Number.isInteger(low) && low > 2048) return low;
  } catch { /* not Linux */ }
  return 32768;
}

/** The lowest port picked: above the well-known and the usual registered service ports tests might meet. */
const LOWEST = 20000;

/** Listens on 127.0.0.1:`port` (no port sharing), or gives the error that kept it from listening. */
function listenOn(port: number): Promise<net.Server | NodeJS.ErrnoException> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once("error", resolve);
    server.listen({ port, host: "127.0.0.1", exclusive: true }, () => resolve(server));
  });
}

const close = (server: net.Server) => new Promise<void>((resolve) => server.close(() => resolve()));

/**
 * A free port on 127.0.0.1 outside the ephemeral range (bound, then released).
 *
 * @example
 * const port = await freePort();
 * spawn("/usr/sbin/haproxy", ["-f", configFile]); // configFile says `bind 127.0.0.1:${port}`
 */
export async function freePort(): Promise<number> {
  const high = ephemeralStart();
  const low = Math.min(LOWEST, high - 1024);
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = low + Math.floor(Math.random() * (high - low));
    const listening = await listenOn(port);
    if (listening instanceof net.Server) {
      await close(listening);
      return port;
    }
  }
  throw new Error(`no free port on 127.0.0.1 in ${low}..${high - 1} after 200 tries`);
}

/** A lock held by this process until `release()`; the kernel releases it when the process ends, however it ends. */
export interface MachineLock {
  release(): Promise<void>;
}

/**
 * Takes a machine-wide lock (two `npm test` runs, or `npm test` and a single
 * file): a listening socket on 127.0.0.1:`port`, which only one process can
 * have. It waits up to `waitMs`, then fails saying `what` it was for.
 *
 * Not a socket in Linux's abstract namespace, though that needs no port:
 * Node 20 names one with its padding (108 bytes), Node 22 and later without,
 * so a Node 20 and a Node 22 run each had a lock of their own.
 *
 * @example
 * const lock = await takePortLock(2524, 180_000, "the README's ports 2525 and 4650");
 * try { await runTheServers(); } finally { await lock.release(); }
 */
export async function takePortLock(port: number, waitMs: number, what: string): Promise<MachineLock> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    const listening = await listenOn(port);
    if (listening instanceof net.Server) {
      // Nobody connects to a lock; one that does (a port scan) is dropped.
      listening.on("connection", (socket) => socket.destroy());
      return { release: () => close(listening) };
    }
    if (listening.code !== "EADDRINUSE") throw listening;
    if (Date.now() >= deadline) {
      throw new Error(
        `the lock for ${what} (127.0.0.1:${port}) is still held after ${waitMs} ms: ` +
          `another test process, or something else listening there`,
      );
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}
