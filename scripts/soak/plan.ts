/**
 * What the soak's target and load generator agree on: the server options,
 * the message headers that tell the target's data hook what to do, the
 * AUTH account, the stats the target reports, and which loopback address
 * each client population connects from.
 *
 * @module
 */

/** Options of the plain listener (the proxy listener adds `proxyExtension` and its own settings). */
export const SERVER_OPTIONS = {
  hosts: "127.0.0.1",
  pipeliningExtension: true,
  maxProcessings: 200,
  maxConnections: 300,
  maxMessageSize: 1024 * 1024,
  ioBufferMaxSize: 64 * 1024,
  ioGreetingTimeout: 5,
  ioCmdTimeout: 5,
  ioDataTimeout: 10,
  hookTimeout: 2,
  queueTimeout: 5,
  overloadThreshold: 0.8,
  overloadTimeout: 2,
  greetingDelay: 0.2,
  maxConnectionsPerIp: 50,
  maxConnectionRatePerIp: 1200,
  maxMessageRatePerIp: 1200,
  maxAuthFailuresPerIp: 10,
  authLockoutTime: 20,
  softErrorLimit: 3,
  errorSleepTime: 0.2,
  authMode: "AUTH_OPTIONAL",
  authMechanisms: ["PLAIN", "LOGIN"],
  allowInsecureAuth: true,
  loggerSeverity: "info",
} as const;

/** What the proxy listener changes: PROXY headers required, trusted from 127.0.0.1 only. */
export const PROXY_OPTIONS = {
  proxyExtension: true,
  proxyTrustedSources: ["127.0.0.1/32"],
  proxyTimeout: 3,
} as const;

/** The one account AUTH accepts. */
export const AUTH_USER = "soak";
/** Its password. */
export const AUTH_PASSWORD = "soak-secret";

/** Header with the message's id: the target records it, the clients record the ids they got a 250 for. */
export const ID_HEADER = "X-Soak-Id";
/** Header telling the data hook what to do: `ok`, `slow`, `fail`, `fail-async`, `hang`, `hang-signal`. */
export const MODE_HEADER = "X-Soak-Mode";
/** Milliseconds the `slow` mode waits before it accepts. */
export const DELAY_HEADER = "X-Soak-Delay";
/** The client address a proxied client claims; the target checks it against `ctx.server.remoteIp`. */
export const CLAIMED_IP_HEADER = "X-Soak-Claimed-Ip";

/** What the data hook does with a message. */
export type HookMode = "ok" | "slow" | "fail" | "fail-async" | "hang" | "hang-signal";

/** Which loopback addresses each population uses (every one is its own client for the per-IP limits). */
export const SOURCES = {
  /** Well-behaved senders, 127.0.0.1 to 127.0.0.8. */
  good: ["127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5", "127.0.0.6", "127.0.0.7", "127.0.0.8"],
  /** One sender that goes as fast as it can (meets maxMessageRatePerIp). */
  greedy: ["127.0.0.9"],
  /** A connection flood from one address (meets maxConnectionRatePerIp). */
  flood: ["127.0.0.10"],
  /** Many idle connections from one address (meets maxConnectionsPerIp). */
  holders: ["127.0.0.11"],
  /** Trickling and idle clients (meet the command and data timeouts). */
  slow: ["127.0.0.12", "127.0.0.13", "127.0.0.14"],
  /** Random bytes, HTTP, early talkers, huge lines, bad commands, oversize mail. */
  garbage: ["127.0.0.15", "127.0.0.16"],
  /** Clients that vanish in the middle of DATA (or while the data hook runs). */
  vanish: ["127.0.0.17"],
  /** AUTH password guessers (meet maxAuthFailures and maxAuthFailuresPerIp). */
  auth: ["127.0.0.18", "127.0.0.19"],
  /** Proxies: the trusted one, and an untrusted address that sends valid headers anyway. */
  proxy: ["127.0.0.1"],
  proxyUntrusted: ["127.0.0.20"],
  /** Waves of idle connections that push the server past maxProcessings (overload, queueing, shedding). */
  waves: ["127.0.1.1", "127.0.1.2", "127.0.1.3", "127.0.1.4", "127.0.1.5", "127.0.1.6"],
} as const;

/** Client addresses proxied clients claim in their PROXY headers. */
export const PROXIED_V4 = Array.from({ length: 16 }, (_, i) => `198.51.100.${i + 1}`);
/** IPv6 client addresses proxied clients claim (one /64: one client for the per-IP limits). */
export const PROXIED_V6 = Array.from({ length: 8 }, (_, i) => `2001:db8::${i + 1}`);

/** What the target answers to `stats`. */
export interface TargetStats {
  /** Messages the data hook accepted (and recorded), both listeners. */
  accepted: number;
  /** Of those, on the proxy listener. */
  acceptedProxy: number;
  /** onConnectEvent and onDisconnectEvent calls. */
  connects: number;
  disconnects: number;
  /** `server.connections()` and `server.processings()`, both listeners summed. */
  connections: number;
  processings: number;
  /** The same per listener (each is its own server, with its own maxProcessings). */
  listeners: {
    plain: { connections: number; processings: number };
    proxy: { connections: number; processings: number };
  };
  /** Whether either listener is in overload mode now. */
  overloaded: boolean;
  /** Data hooks that finished after the session had given up on them (signal aborted): not accepted. */
  abortedHooks: number;
  /** Data hooks by mode (how often each ran). */
  hookModes: Record<string, number>;
  /** Proxied messages whose `ctx.server.remoteIp` differed from the address the client claimed. */
  proxyMismatches: number;
  /** The first few of those, described. */
  proxyMismatchExamples: string[];
  /** Log lines by severity and normalised text (addresses and numbers replaced). */
  logs: Record<string, number>;
  /** The first error- or fatal-severity log lines, in full. */
  errorLogs: string[];
  /** Uncaught exceptions and unhandled rejections in the target process, described. */
  uncaught: string[];
  /** Event-loop lag of the target: a 100 ms interval timer's lateness, worst and how often past 50, 200 and 1000 ms. */
  loopLag: { maxMs: number; samples: number; over50: number; over200: number; over1000: number };
  /** `process.memoryUsage()` of the target. */
  memory: { rss: number; heapUsed: number; heapTotal: number; external: number; arrayBuffers: number };
  /** Whether a forced GC is available (`--expose-gc`, `Bun.gc`). */
  gc: boolean;
}
