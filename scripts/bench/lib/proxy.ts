/**
 * PROXY protocol headers for the load generator, made with the library's own
 * writers (`buildProxyHeaderV1`, `buildProxyHeaderV2` from its `mod.ts`):
 * what a TCP-mode balancer in front of the server sends as the first bytes of
 * every connection. Each connection claims a made-up client from
 * 192.0.2.0/24 (TEST-NET-1) with a varying source port, behind a made-up
 * listener 198.51.100.25:25.
 *
 * The headers are built before a run (like every other byte the generator
 * sends, see message.ts), one per connection up to {@link PROXY_HEADER_RING}
 * distinct ones that the connections then take in turn, so the measured run
 * spends no encoding work on them.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { fileURLToPath, pathToFileURL } from "node:url";

/** The PROXY protocol versions the generator can send. */
export type ProxyVersion = "v1" | "v2";

/** The two writers of the library's mod.ts (the type keeps them in step with the library). */
type Writers = Pick<typeof import("../../../mod.ts"), "buildProxyHeaderV1" | "buildProxyHeaderV2">;

/** Distinct headers built per run at most (every w1-conn run of 3000 connections gets distinct clients). */
export const PROXY_HEADER_RING = 4096;

/** This repository's mod.ts: the default library whose writers are used. */
export const REPO_MOD = fileURLToPath(new URL("../../../mod.ts", import.meta.url));

/** Parses a `--proxy` value. */
export function isProxyVersion(value: string): value is ProxyVersion {
  return value === "v1" || value === "v2";
}

/**
 * Builds `count` (capped at {@link PROXY_HEADER_RING}) PROXY headers of
 * `version` with the writers of the library at `libEntry` (a `mod.ts` or the
 * npm build's `esm/mod.js`; default: this repository's mod.ts). Loaded only
 * when asked for, so a run without PROXY does not load the library at all.
 */
export async function buildProxyHeaders(
  version: ProxyVersion,
  count: number,
  libEntry: string = REPO_MOD,
): Promise<Buffer[]> {
  const lib = (await import(pathToFileURL(libEntry).href)) as Writers;
  const n = Math.max(1, Math.min(count, PROXY_HEADER_RING));
  const headers: Buffer[] = [];
  for (let i = 0; i < n; i++) {
    const init = {
      command: "PROXY",
      family: "IPv4",
      sourceIp: `192.0.2.${1 + (i % 254)}`,
      sourcePort: 1024 + ((i * 7919) % 64512),
      destIp: "198.51.100.25",
      destPort: 25,
    } as const;
    const bytes = version === "v1" ? lib.buildProxyHeaderV1(init) : lib.buildProxyHeaderV2(init);
    headers.push(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  }
  return headers;
}
