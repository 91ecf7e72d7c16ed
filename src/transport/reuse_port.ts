/**
 * Whether `node:net` honours `listen({ reusePort })` on the runtime we run on
 * ({@link nodeNetHasReusePort}). Node 20 and 22.0-22.11 silently ignore the
 * option, so a second process gets EADDRINUSE instead of a share of the
 * port: the node transport and `runWorkers` must know beforehand.
 *
 * @module
 */
import { detectRuntime, type RuntimeName, runtimeVersion, versionAtLeast } from "./detect.ts";

/**
 * Whether `node:net` binds with SO_REUSEPORT when asked: Node 22.12 and
 * later in the 22 line, 23.1 and later; Deno's and Bun's node:net always
 * (measured on Deno 2.9 and Bun 1.4).
 *
 * @example
 * ```ts
 * nodeNetHasReusePort("node", "20.20.2"); // => false
 * nodeNetHasReusePort("node", "22.12.0"); // => true
 * nodeNetHasReusePort("bun", "1.4.5"); // => true
 * ```
 */
export function nodeNetHasReusePort(
  runtime: RuntimeName = detectRuntime(),
  version: string = runtimeVersion(runtime),
): boolean {
  if (runtime !== "node") return true;
  // The option came to 23.1 first and was backported to 22.12.
  if (versionAtLeast(version, "23.1.0")) return true;
  return versionAtLeast(version, "22.12.0") && !versionAtLeast(version, "23.0.0");
}
