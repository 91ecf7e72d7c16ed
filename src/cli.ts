#!/usr/bin/env node
/**
 * `midi-smtp-server`: an SMTP sink for development and tests. It accepts
 * every message, stores it in a Maildir and prints one line per message.
 *
 * ```sh
 * deno run -A src/cli.ts --ports 2525 --maildir ./mail
 * npx midi-smtp-server --ports 2525 --maildir ./mail
 * npx midi-smtp-server --tls-mode TLS_REQUIRED --auth-mode AUTH_REQUIRED --auth-user alice:s3cret
 * ```
 *
 * This file is the program (the npm `bin`, the `./cli` export) and the
 * dev server's public API; the code lives in `src/dev_server/`. The logic is
 * exported ({@link parseCliArgs}, {@link runDevServer}, {@link stopDevServer},
 * {@link runCli}) so tests and scripts can run the dev server in-process; the
 * command line only runs when this module is the program's entry point.
 *
 * @module
 */
import { isEntryPoint, programArgs } from "./dev_server/entry_point.ts";
import { runCli } from "./dev_server/run.ts";

export {
  type CliCommand,
  CliError,
  DEFAULT_CONFIG,
  type DevServerConfig,
  type DevServerUser,
  parseCliArgs,
  USAGE,
  VERSION,
} from "./dev_server/args.ts";
export {
  type DevServerIo,
  runCli,
  runDevServer,
  START_TIMEOUT_SECONDS,
  STOP_TIMEOUT_SECONDS,
  stopDevServer,
} from "./dev_server/run.ts";
export type { LogFormat } from "./dev_server/log_format.ts";
// The Maildir store DevServerIo hands out (tests replace it); exported so the entry documents every type it uses.
export type { DeliverOptions, Maildir } from "./dev_server/maildir.ts";

if (isEntryPoint(import.meta)) await runCli(programArgs());
