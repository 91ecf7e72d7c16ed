/**
 * What the dev server says about itself once listening: the LMTP, Unix
 * socket, PROXY, XCLIENT, TLS, AUTH and envelope lines after "listening on"
 * ({@link describeServer}), and warnings when AUTH will not be offered where
 * the user likely expects it ({@link authWarnings}). Passwords are never part
 * of them.
 *
 * @module
 */
import type { DevServerConfig } from "./args.ts";

/** What {@link describeServer} reads of a started server (a `MidiSmtpServer` has all of it). */
export interface DescribedServer {
  /** The SHA-256 fingerprint of the certificate; `undefined` while TLS is off. */
  readonly tlsFingerprint: string | undefined;
  /** The bound implicit TLS listeners. */
  readonly tlsAddresses: readonly string[];
  /** The bound Unix socket paths. */
  readonly socketPaths: readonly string[];
  /** The server's options: who may send a PROXY header, and XCLIENT. */
  readonly options: {
    readonly proxyTrustedSources: { readonly entries: readonly string[] };
    readonly xclientTrustedSources: { readonly entries: readonly string[] };
    readonly xclientTrustsUnix: boolean;
  };
}

/**
 * The lines printed after "listening on" about LMTP, Unix sockets, PROXY,
 * XCLIENT, TLS, AUTH (no passwords) and envelope files, for a server that
 * has started; nothing for what is off.
 *
 * @example
 * ```ts
 * import { DEFAULT_CONFIG, type DevServerConfig } from "@midi/smtp-server/cli";
 *
 * const config: DevServerConfig = {
 *   ...DEFAULT_CONFIG,
 *   tlsMode: "TLS_REQUIRED",
 *   tlsPorts: ["4650"],
 *   authMode: "AUTH_REQUIRED",
 *   authUsers: [{ user: "alice", password: "a" }, { user: "bob", password: "b" }],
 * };
 * // What it reads of the started server (a `MidiSmtpServer` has all of it):
 * const server: DescribedServer = {
 *   tlsFingerprint: "3B:1C:...",
 *   tlsAddresses: ["127.0.0.1:4650"],
 *   socketPaths: [],
 *   options: {
 *     proxyTrustedSources: { entries: ["127.0.0.0/8", "::1/128"] },
 *     xclientTrustedSources: { entries: [] },
 *     xclientTrustsUnix: false,
 *   },
 * };
 * const [tls, certificate, auth] = describeServer(config, server);
 * tls; // => "TLS: STARTTLS required; implicit TLS on 127.0.0.1:4650"
 * certificate; // => "TLS: self-signed certificate, SHA-256 fingerprint 3B:1C:..."
 * auth; // => "AUTH: required, over TLS only; mechanisms PLAIN LOGIN CRAM-MD5; users alice, bob"
 * ```
 */
export function describeServer(config: DevServerConfig, server: DescribedServer): string[] {
  const lines: string[] = [];
  if (config.lmtp) lines.push("LMTP: clients send LHLO, and get one reply per recipient after the message");
  // The paths the server bound, as the library's own log line lists them.
  if (config.socketPaths.length > 0) lines.push(`Unix socket: ${server.socketPaths.join(", ")}`);
  if (config.proxy) lines.push(`PROXY: required from ${server.options.proxyTrustedSources.entries.join(", ")}`);
  if (config.xclientTrusted.length > 0) {
    const unix = server.options.xclientTrustsUnix ? ["unix"] : [];
    lines.push(`XCLIENT: trusted from ${[...server.options.xclientTrustedSources.entries, ...unix].join(", ")}`);
  }
  const fingerprint = server.tlsFingerprint;
  if (fingerprint !== undefined) {
    const starttls = config.tlsMode === "TLS_REQUIRED"
      ? "STARTTLS required"
      : config.tlsMode === "TLS_OPTIONAL"
      ? "STARTTLS offered"
      : "no STARTTLS";
    // The server knows which listeners speak implicit TLS, free ports (0) included.
    const implicit = server.tlsAddresses;
    const where = implicit.length > 0 ? `; implicit TLS on ${implicit.join(", ")}` : "";
    lines.push(`TLS: ${starttls}${where}`);
    const certificate = config.tlsCert === undefined ? "self-signed certificate" : `certificate ${config.tlsCert}`;
    lines.push(`TLS: ${certificate}, SHA-256 fingerprint ${fingerprint}`);
  }
  if (config.authMode !== "AUTH_FORBIDDEN") {
    const mode = config.authMode === "AUTH_REQUIRED" ? "required" : "optional";
    // TLS_REQUIRED refuses AUTH before STARTTLS even with allowInsecureAuth.
    const over = config.allowInsecureAuth && config.tlsMode !== "TLS_REQUIRED"
      ? "with or without TLS"
      : "over TLS only";
    const users = config.authUsers.map(({ user }) => user).join(", ");
    lines.push(`AUTH: ${mode}, ${over}; mechanisms ${config.authMechanisms.join(" ")}; users ${users}`);
  }
  if (config.envelopeDir !== undefined) lines.push(`Envelopes: one JSON file per message in ${config.envelopeDir}`);
  return lines;
}

/**
 * The line about `--workers`: how many processes, their pids, how they share
 * the ports, and the supervisor's pid (the one to signal).
 *
 * @example
 * ```ts
 * const reuse = describeWorkers("reuseport", [4101, 4102], 4100);
 * reuse; // => "Workers: 2 processes (pids 4101, 4102) sharing the ports with SO_REUSEPORT; supervisor pid 4100"
 * const cluster = describeWorkers("cluster", [4101], 4100);
 * cluster; // => "Workers: 1 process (pid 4101) sharing the ports through node:cluster; supervisor pid 4100"
 * ```
 */
export function describeWorkers(
  mechanism: "reuseport" | "cluster",
  pids: readonly (number | undefined)[],
  supervisorPid: number,
): string {
  const known = pids.filter((pid) => pid !== undefined);
  const processes = `${pids.length} process${pids.length === 1 ? "" : "es"}`;
  const list = `pid${known.length === 1 ? "" : "s"} ${known.join(", ")}`;
  const how = mechanism === "reuseport" ? "with SO_REUSEPORT" : "through node:cluster";
  return `Workers: ${processes} (${list}) sharing the ports ${how}; supervisor pid ${supervisorPid}`;
}

/**
 * Why AUTH may not be offered where the user expects it: it is offered only
 * over TLS (unless `--allow-insecure-auth`), so with STARTTLS off it is
 * offered nowhere, or only on the implicit TLS ports.
 *
 * @example
 * ```ts
 * import { DEFAULT_CONFIG } from "@midi/smtp-server/cli";
 *
 * authWarnings({ ...DEFAULT_CONFIG, authMode: "AUTH_OPTIONAL", authUsers: [{ user: "a", password: "b" }] });
 * // ["AUTH will not be offered: it is offered only over TLS, and TLS is off (--tls-mode TLS_FORBIDDEN); ..."]
 * ```
 */
export function authWarnings(config: DevServerConfig): string[] {
  if (config.authMode === "AUTH_FORBIDDEN" || config.allowInsecureAuth || config.tlsMode !== "TLS_FORBIDDEN") {
    return [];
  }
  const fix = "add --tls-mode TLS_OPTIONAL (or TLS_REQUIRED) for STARTTLS, " +
    "or --allow-insecure-auth to offer AUTH without TLS";
  const required = config.authMode === "AUTH_REQUIRED";
  if (config.tlsPorts.length === 0) {
    return [
      `AUTH will not be offered: it is offered only over TLS, and TLS is off (--tls-mode TLS_FORBIDDEN)` +
      (required ? ", so with AUTH_REQUIRED no client can send mail" : "") + `; ${fix}`,
    ];
  }
  return [
    `AUTH will be offered only on the implicit TLS ports (--tls-port), not on --ports, which have no STARTTLS` +
    (required ? ", so with AUTH_REQUIRED clients there cannot send mail" : "") + `; ${fix}`,
  ];
}
