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
 * Loads the transport for `runtime` (default: the one we run on).
 *
 * @example
 * ```ts
 * const transport = await loadTransport(); // Deno.listen under Deno, Bun.listen under Bun, node:net on Node
 * ```
 */
export async function loadTransport(runtime: RuntimeName = detectRuntime()): Promise<Transport> {
  switch (runtime) {
    case "deno":
      return (await import("./deno.ts")).denoTransport;
    case "bun":
      return (await import("./bun.ts")).bunTransport;
    default:
      return (await import("./node.ts")).nodeTransport;
  }
}
