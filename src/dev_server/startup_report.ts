/**
 * What the dev server says about itself once listening: the PROXY, TLS and
 * AUTH lines after "listening on" ({@link describeServer}), and warnings
 * when AUTH will not be offered where the user likely expects it
 * ({@link authWarnings}). Passwords are never part of them.
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
  /** The server's options: who may send a PROXY header. */
  readonly options: { readonly proxyTrustedSources: { readonly entries: readonly string[] } };
}

/**
 * The lines printed after "listening on" about PROXY, TLS and AUTH (no
 * passwords), for a server that has started.
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
 *   options: { proxyTrustedSources: { entries: ["127.0.0.0/8", "::1/128"] } },
 * };
 * const [tls, certificate, auth] = describeServer(config, server);
 * tls; // => "TLS: STARTTLS required; implicit TLS on 127.0.0.1:4650"
 * certificate; // => "TLS: self-signed certificate, SHA-256 fingerprint 3B:1C:..."
 * auth; // => "AUTH: required, over TLS only; mechanisms PLAIN LOGIN CRAM-MD5; users alice, bob"
 * ```
 */
export function describeServer(config: DevServerConfig, server: DescribedServer): string[] {
  const lines: string[] = [];
  if (config.proxy) lines.push(`PROXY: required from ${server.options.proxyTrustedSources.entries.join(", ")}`);
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
  return lines;
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
