/**
 * The values of the dev server's flags: numbers, seconds, `off`, modes,
 * lists. Each parser is strict (Number() alone would take `""`, `"1e3"` and
 * `" 7"`) and throws a {@link CliError} that names the flag.
 *
 * @module
 */
import { parsePorts } from "../options.ts";
import { CliError } from "./cli_error.ts";
import type { DevServerUser } from "./args.ts";

/**
 * A plain decimal integer, or `fallback` if the flag was not given.
 *
 * @example
 * ```ts
 * integer("--max-size", "1048576", 0); // => 1048576
 * integer("--max-size", "1e3", 0); // throws CliError: --max-size needs a whole number, got "1e3"
 * ```
 */
export function integer(flag: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!/^\d{1,15}$/.test(value)) throw new CliError(`${flag} needs a whole number, got "${value}"`);
  return Number(value);
}

/** A whole number, or `off` for none (`null`); `fallback` if the flag was not given. */
export function integerOrOff(flag: string, value: string | undefined, fallback: number | null): number | null {
  if (value === undefined) return fallback;
  if (value.toLowerCase() === "off") return null;
  if (!/^\d{1,15}$/.test(value)) throw new CliError(`${flag} needs a whole number or off, got "${value}"`);
  return Number(value);
}

/**
 * Longest time accepted, in seconds: timers take at most 2^31-1 ms (about
 * 24.8 days), and a longer one would fire at once instead.
 */
export const MAX_SECONDS = 2_147_483;

/**
 * A number of seconds (decimals allowed), more than 0 unless `zero` is
 * allowed; `off` gives `null` if allowed.
 *
 * @example
 * ```ts
 * seconds("--hook-timeout", "2.5"); // => 2.5
 * seconds("--hook-timeout", "off", { off: true }); // => null
 * seconds("--greeting-delay", "0", { zero: true }); // => 0
 * ```
 */
export function seconds(flag: string, value: string, allow: { zero?: boolean; off?: boolean } = {}): number | null {
  if (allow.off && value.toLowerCase() === "off") return null;
  if (!/^\d{1,9}(\.\d{1,6})?$/.test(value)) {
    throw new CliError(`${flag} needs a number of seconds${allow.off ? " or off" : ""}, got "${value}"`);
  }
  const number = Number(value);
  if (number === 0 && !allow.zero) {
    throw new CliError(`${flag} must be more than 0 seconds${allow.off ? " (off for no limit)" : ""}`);
  }
  if (number > MAX_SECONDS) throw new CliError(`${flag} must be at most ${MAX_SECONDS} seconds (about 24 days)`);
  return number;
}

/** A number of seconds, or `off` for none (`null`); `fallback` if the flag was not given. */
export function secondsOrOff(flag: string, value: string | undefined, fallback: number | null): number | null {
  return value === undefined ? fallback : seconds(flag, value, { off: true });
}

/**
 * One of `choices`, case-insensitively; `fallback` if the flag was not given.
 *
 * @example
 * ```ts
 * oneOf("--tls-mode", "tls_optional", ["TLS_FORBIDDEN", "TLS_OPTIONAL", "TLS_REQUIRED"], "TLS_FORBIDDEN"); // => "TLS_OPTIONAL"
 * ```
 */
export function oneOf<T extends string>(
  flag: string,
  value: string | undefined,
  choices: readonly T[],
  fallback: T,
): T {
  if (value === undefined) return fallback;
  const choice = value.toUpperCase() as T;
  if (!choices.includes(choice)) throw new CliError(`${flag} must be one of ${choices.join(", ")}, got "${value}"`);
  return choice;
}

/**
 * `"10.0.0.0/8, 192.0.2.1"`: one or more CIDR entries, split at commas and
 * white space (their syntax is checked with the rest of the configuration).
 * `flag` names the flag in the error (one value of a repeatable flag each).
 */
export function cidrEntries(value: string, flag = "--proxy-trusted"): string[] {
  const entries = value.split(/[\s,]+/).filter((entry) => entry !== "");
  if (entries.length === 0) throw new CliError(`${flag} needs an address or network, e.g. 10.0.0.0/8`);
  return entries;
}

/**
 * `--xclient-trusted`: CIDR entries as {@link cidrEntries}, and `unix` (any
 * case) for Unix-socket clients, spelt the way the server's
 * `xclientTrustedSources` wants it.
 *
 * @example
 * ```ts
 * xclientEntries("10.0.0.0/8, UNIX"); // => ["10.0.0.0/8", "unix"]
 * ```
 */
export function xclientEntries(value: string): string[] {
  return cidrEntries(value, "--xclient-trusted").map((entry) => entry.toLowerCase() === "unix" ? "unix" : entry);
}

/**
 * `user:password`, split at the first colon, so a password may hold colons.
 * The value is never echoed in an error: it holds a password.
 *
 * @example
 * ```ts
 * authUser("bob:pa:ss"); // => { user: "bob", password: "pa:ss" }
 * ```
 */
export function authUser(value: string): DevServerUser {
  const colon = value.indexOf(":");
  if (colon < 0) throw new CliError("--auth-user needs USER:PASSWORD (a colon between user name and password)");
  return { user: value.slice(0, colon), password: value.slice(colon + 1) };
}

/**
 * `"PLAIN,LOGIN"` or `"plain login"`: upper-cased, each at most once (which
 * names exist is checked with the rest of the configuration).
 */
export function authMechanismList(value: string): string[] {
  const names = value.split(/[\s,]+/).filter((name) => name !== "").map((name) => name.toUpperCase());
  if (names.length === 0) throw new CliError("--auth-mechanisms needs at least one mechanism");
  const duplicate = names.find((name, i) => names.indexOf(name) !== i);
  if (duplicate !== undefined) throw new CliError(`--auth-mechanisms lists ${duplicate} twice`);
  return names;
}

/**
 * Every port of a value in the server's `ports` syntax (`"2525"`,
 * `"2525:2526"`, `"25, 587"`), all hosts' entries together.
 *
 * @example
 * ```ts
 * portList("--tls-port", "465:4650"); // => [465, 4650]
 * ```
 */
export function portList(flag: string, value: string): number[] {
  try {
    return parsePorts(value).flat();
  } catch (err) {
    throw new CliError(`${flag}: ${err instanceof Error ? err.message : String(err)}`);
  }
}
