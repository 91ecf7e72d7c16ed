/**
 * The error of a bad command line (or a bad dev server configuration made in
 * code): its own class so that the CLI can tell it from a failure to start.
 *
 * @module
 */

/**
 * A bad command line; the message says what is wrong, naming the flag.
 *
 * @example
 * ```ts
 * import { parseCliArgs } from "@midi/smtp-server/cli";
 *
 * try {
 *   parseCliArgs(["--ports", "x"]);
 * } catch (err) {
 *   if (err instanceof CliError) console.error(err.message); // exit status 2
 * }
 * ```
 */
export class CliError extends Error {
  /** Makes the error; `message` says what is wrong with the arguments. */
  constructor(message: string) {
    super(message);
    this.name = "CliError";
  }
}
