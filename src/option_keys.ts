/**
 * Unknown option keys: from plain JavaScript a typo (`{ portz: 1 }`) would
 * otherwise be ignored without a word and the server would run on defaults.
 * The list of known keys is checked against the `ServerOptions` type at
 * compile time, so a new option cannot be forgotten here.
 *
 * @module
 */
import type { ServerOptions } from "./options.ts";

/** Every `ServerOptions` key; a `Record` over the type, so a missing or extra key fails to compile. */
const OPTION_KEYS: Record<keyof ServerOptions, true> = {
  ports: true,
  hosts: true,
  maxProcessings: true,
  maxConnections: true,
  crlfMode: true,
  doDnsReverseLookup: true,
  ioGreetingTimeout: true,
  ioCmdTimeout: true,
  ioDataTimeout: true,
  ioBufferMaxSize: true,
  maxCommandLineLength: true,
  maxDataLineLength: true,
  maxMessageSize: true,
  maxRecipients: true,
  maxBadCommands: true,
  pipeliningExtension: true,
  internationalizationExtensions: true,
  enhancedStatusCodesExtension: true,
  loggerSeverity: true,
  transport: true,
  reusePort: true,
  tlsMode: true,
  tlsPorts: true,
  tlsCertPath: true,
  tlsKeyPath: true,
  tlsCert: true,
  tlsKey: true,
  tlsSni: true,
  tlsCertCn: true,
  tlsCertSan: true,
  tlsMinVersion: true,
  tlsCiphers: true,
  tlsHandshakeTimeout: true,
  authMode: true,
  authMechanisms: true,
  allowInsecureAuth: true,
  maxAuthFailures: true,
  proxyExtension: true,
  proxyTrustedSources: true,
  proxyTimeout: true,
  maxConnectionsPerIp: true,
  maxConnectionRatePerIp: true,
  maxMessageRatePerIp: true,
  maxAuthFailuresPerIp: true,
  authLockoutTime: true,
  perIpLimitsExempt: true,
  softErrorLimit: true,
  errorSleepTime: true,
  queueTimeout: true,
  overloadThreshold: true,
  overloadTimeout: true,
  greetingDelay: true,
  hookTimeout: true,
  chunkingExtension: true,
  binaryMimeExtension: true,
  dsnExtension: true,
  requireTlsExtension: true,
  xclientTrustedSources: true,
  lmtp: true,
  socketPaths: true,
  commands: true,
  disabledCommands: true,
  esmtpParameters: true,
  ehloKeywords: true,
};

/** The `ServerOptions` keys, sorted. */
export const SERVER_OPTION_KEYS: readonly string[] = Object.freeze(Object.keys(OPTION_KEYS).sort());

/** Edit distance (insert, delete, replace, swap of neighbours), for "did you mean". */
function distance(a: string, b: string): number {
  const rows: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i]);
  for (let j = 1; j <= b.length; j++) rows[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      rows[i][j] = Math.min(rows[i - 1][j] + 1, rows[i][j - 1] + 1, rows[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        rows[i][j] = Math.min(rows[i][j], rows[i - 2][j - 2] + 1);
      }
    }
  }
  return rows[a.length][b.length];
}

/** The known key nearest to `key` (case ignored), if one is near enough to be a likely typo. */
export function nearestKey(key: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  const lower = key.toLowerCase();
  for (const candidate of known) {
    // A key cut short (`onMessageData` for `onMessageDataEvent`) is as likely a slip as a typo.
    const prefix = lower.length >= 4 && candidate.toLowerCase().startsWith(lower);
    const d = prefix ? 1 + (candidate.length - key.length) / 1000 : distance(lower, candidate.toLowerCase());
    if (d < bestDistance) [best, bestDistance] = [candidate, d];
  }
  return bestDistance <= Math.max(2, Math.floor(key.length / 3)) ? best : undefined;
}

/**
 * Throws a `TypeError` naming the first key of `options` that is not in
 * `known`, and the nearest valid one.
 *
 * @example
 * ```ts
 * checkOptionKeys({ ports: 25 }, ["ports", "hosts"]); // => undefined
 * checkOptionKeys({ portz: 25 }, ["ports", "hosts"]); // throws TypeError: Unknown option "portz" (did you mean "ports"?)
 * ```
 */
export function checkOptionKeys(options: object, known: readonly string[]): void {
  for (const key of Object.keys(options)) {
    if (known.includes(key)) continue;
    const near = nearestKey(key, known);
    throw new TypeError(
      `Unknown option ${JSON.stringify(key)}${near ? ` (did you mean ${JSON.stringify(near)}?)` : ""}`,
    );
  }
}
