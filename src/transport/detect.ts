/**
 * Picks the socket transport of the runtime we run on. Only that one module is
 * imported, so Node never loads the Deno or Bun code and vice versa.
 *
 * @module
 */
import type { Transport } from "./types.ts";

/** The runtimes this library knows how to listen on. */
export type RuntimeName = "deno" | "bun" | "node";

/** Tells which runtime runs this code, from its global object. */
export function detectRuntime(): RuntimeName {
  const g = globalThis as { Deno?: { version?: { deno?: string } }; Bun?: { version?: string } };
  if (typeof g.Deno?.version?.deno === "string") return "deno";
  if (typeof g.Bun?.version === "string") return "bun";
  return "node";
}

/**
 * Oldest runtime versions supported: the oldest on which the whole test suite
 * passes (`npm test` runs each of them; README "Supported runtimes" says what
 * fails on older ones). The library refuses to start on anything older.
 */
export const MINIMUM_VERSIONS: Readonly<Record<RuntimeName, string>> = { deno: "2.9.6", bun: "1.4.4", node: "20.10.0" };

/** The version of the runtime running this code. */
export function runtimeVersion(runtime: RuntimeName = detectRuntime()): string {
  const g = globalThis as { Deno?: { version?: { deno?: string } }; Bun?: { version?: string } };
  if (runtime === "deno") return g.Deno?.version?.deno ?? "0";
  if (runtime === "bun") return g.Bun?.version ?? "0";
  const process = (globalThis as { process?: { versions?: { node?: string } } }).process;
  return process?.versions?.node ?? "0";
}

/** Whether dotted version `a` is at least `b`. */
export function versionAtLeast(a: string, b: string): boolean {
  const pa = a.split(/[.-]/).map((n) => parseInt(n, 10) || 0);
  const pb = b.split(/[.-]/).map((n) => parseInt(n, 10) || 0);
  for (let i = 0; i < 3; i++) {
    if ((pa[i] ?? 0) !== (pb[i] ?? 0)) return (pa[i] ?? 0) > (pb[i] ?? 0);
  }
  return true;
}

/** Throws, saying why, when `version` of `runtime` is older than {@link MINIMUM_VERSIONS} allows. */
export function assertSupportedVersion(runtime: RuntimeName, version: string): void {
  if (versionAtLeast(version, MINIMUM_VERSIONS[runtime])) return;
  throw new Error(
    `midi-smtp-server needs ${runtime} >= ${MINIMUM_VERSIONS[runtime]} (this is ${version}): ` +
      "older versions fail its tests (README: Supported runtimes)",
  );
}

/**
 * Loads the transport for `runtime` (default: the one we run on).
 *
 * @example
 * ```ts
 * const transport = await loadTransport(); // Deno.listen under Deno, Bun.listen under Bun, node:net on Node
 * ```
 */
export async function loadTransport(runtime: RuntimeName = detectRuntime()): Promise<Transport> {
  if (runtime === detectRuntime()) assertSupportedVersion(runtime, runtimeVersion(runtime));
  switch (runtime) {
    case "deno":
      return (await import("./deno.ts")).denoTransport;
    case "bun":
      return (await import("./bun.ts")).bunTransport;
    default:
      return (await import("./node.ts")).nodeTransport;
  }
}
