/**
 * Number parsing for the bench command lines (`node:util` `parseArgs` gives strings).
 *
 * @module
 */

/** Thrown for a bad command-line value; the scripts print its message and exit with status 2. */
export class UsageError extends Error {}

/** Parses a non-negative integer option, or returns `fallback` when it is absent. */
export function intOption(name: string, value: string | undefined, fallback: number, min = 0): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (value.trim() === "" || !Number.isInteger(n) || n < min) {
    throw new UsageError(`--${name} must be an integer >= ${min}, got ${JSON.stringify(value)}`);
  }
  return n;
}

/** Parses a byte size: `1024`, `1k` (1024), `1m` (1048576); returns `fallback` when absent. */
export function sizeOption(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const m = /^(\d+)\s*([kKmM]?)(?:i?[bB])?$/.exec(value.trim());
  if (!m) throw new UsageError(`--${name} must be a size like 1024, 1k or 1m, got ${JSON.stringify(value)}`);
  const unit = m[2].toLowerCase() === "k" ? 1024 : m[2].toLowerCase() === "m" ? 1048576 : 1;
  return Number(m[1]) * unit;
}

/** Parses a comma-separated list of names out of `known`, in the order given; all of `known` when absent. */
export function listOption<T extends string>(name: string, value: string | undefined, known: readonly T[]): T[] {
  if (value === undefined) return [...known];
  const items = value.split(",").map((s) => s.trim()).filter((s) => s !== "");
  const unknown = items.filter((s) => !(known as readonly string[]).includes(s));
  if (unknown.length > 0 || items.length === 0) {
    throw new UsageError(`--${name}: unknown ${unknown.join(", ") || "(empty)"}; known: ${known.join(", ")}`);
  }
  return items as T[];
}
