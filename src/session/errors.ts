/**
 * Why a session stops waiting: a hook past `hookTimeout`, or the session
 * ending under it (client gone, server stopped). Both are replies, so every
 * path that answers a hook's error handles them without a special case; the
 * session recognises them to end at once instead of going on. Also the two
 * small helpers the session's commands share: a 501 for bad syntax, and an
 * error's text for the log.
 *
 * @module
 */
import { Smtpd501Exception, SmtpdException } from "../exceptions.ts";

/** A hook did not settle within `hookTimeout`: `421 4.3.0`, and the session ends. */
export class HookTimeoutException extends SmtpdException {
  /** @param hook the hook's name, for the log */
  constructor(hook: string) {
    super(
      421,
      "4.3.0",
      "Local processing timed out, closing transmission channel",
      `${hook} did not finish within hookTimeout`,
    );
  }
}

/** The session ended while something was awaited (the client left, or the server stopped): nothing is sent. */
export class SessionEndedException extends SmtpdException {
  /** @param why for the log */
  constructor(why: string) {
    super(421, "4.4.2", "Session ended, closing transmission channel", why);
  }
}

/** `501 Syntax: <usage>`, for a command whose arguments do not parse. */
export function syntaxError(usage: string): SmtpdException {
  return new Smtpd501Exception(undefined, `Syntax: ${usage}`);
}

/** An error's message (or the thrown value as text), for a log line. */
export function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
