/**
 * Why a session stops waiting: a hook past `hookTimeout`, or the session
 * ending under it (client gone, server stopped). Both are replies, so every
 * path that answers a hook's error handles them without a special case; the
 * session recognises them to end at once instead of going on.
 *
 * @module
 */
import { SmtpdException } from "../exceptions.ts";

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
