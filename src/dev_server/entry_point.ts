/**
 * What `src/cli.ts` needs to act as a program on every runtime: whether it is
 * the entry point ({@link isEntryPoint}) and its arguments
 * ({@link programArgs}).
 *
 * @module
 */
import process from "node:process";
import { realpathSync } from "node:fs";
import { fileURLToPath } from "node:url";

/** The program's arguments: Deno keeps them in Deno.args; Bun and Node after the script path. */
export function programArgs(): string[] {
  const deno = (globalThis as { Deno?: { args?: readonly string[] } }).Deno;
  return Array.isArray(deno?.args) ? [...deno.args] : process.argv.slice(2);
}

/**
 * Whether the module whose `import.meta` is given is the program's entry
 * point rather than imported. It must be the caller's own `import.meta`:
 * that is what the runtime marks as main.
 *
 * @example
 * ```ts
 * import { runCli } from "@midi/smtp-server/cli";
 *
 * if (isEntryPoint(import.meta)) await runCli(programArgs());
 * ```
 */
export function isEntryPoint(meta: { readonly url: string; readonly main?: unknown }): boolean {
  if (typeof meta.main === "boolean") return meta.main; // Deno, Bun (and Node >= 24.2)
  // Older Node: compare real paths, so an npm bin symlink counts as the module.
  const script = process.argv[1];
  if (!script) return false;
  try {
    return realpathSync(script) === realpathSync(fileURLToPath(meta.url));
  } catch {
    return false;
  }
}
