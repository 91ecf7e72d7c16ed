/**
 * The errors that carry an SMTP reply. Thrown from a hook, an
 * {@link SmtpdException} makes the server answer with its code, enhanced
 * status code (RFC 3463) and text; any other error answers 451.
 *
 * @module
 */

/** Marks SmtpdExceptions across copies of the library (see `SmtpdException[Symbol.hasInstance]`). */
const SMTPD_BRAND: unique symbol = Symbol.for("midi-smtp-server.SmtpdException") as never;

/**
 * An SMTP reply as an error.
 *
 * @example
 * ```ts
 * // Thrown from a hook, it answers the command with its reply.
 * const err = new SmtpdException("550", "5.7.1", "Relaying denied", "relay attempt from 192.0.2.1");
 * err.smtpdResult; // => "550 5.7.1 Relaying denied"
 * err.message; // => "relay attempt from 192.0.2.1"
 * // The class of the enhanced status code must match the reply code:
 * new SmtpdException(550, "4.7.1", "Relaying denied"); // throws RangeError
 * ```
 */
export class SmtpdException extends Error {
  /**
   * `err instanceof SmtpdException` holds for an error made by any copy of
   * this library in the process (its ESM and CommonJS builds, or two installed
   * versions), by a brand shared through `Symbol.for`: otherwise a hook that
   * throws the `require()`d class into an `import`ed server would answer 451
   * instead of its reply. Subclasses keep the usual prototype check.
   */
  static override [Symbol.hasInstance](value: unknown): boolean {
    if (this !== SmtpdException) return Function.prototype[Symbol.hasInstance].call(this, value);
    return typeof value === "object" && value !== null && (value as Record<symbol, unknown>)[SMTPD_BRAND] === true;
  }

  /** Three-digit reply code, e.g. `550`. */
  readonly code: number;
  /** Enhanced status code (RFC 3463) such as `"5.7.1"`, or `""` for none. */
  readonly enhancedCode: string;
  /** Reply text shown to the client. */
  readonly text: string;

  /**
   * Creates a reply error.
   * @param code the reply code (200..599)
   * @param enhancedCode RFC 3463 code whose class matches `code`, or `""`
   * @param text the reply text (CR and LF are removed)
   * @param message what goes to the log (default: the reply)
   */
  constructor(code: number | string, enhancedCode: string, text: string, message?: string) {
    const numeric = Number(code);
    if (!Number.isInteger(numeric) || numeric < 200 || numeric > 599) {
      throw new RangeError(`SMTP reply code must be 200..599, got ${code}`);
    }
    if (enhancedCode !== "" && !/^[245]\.\d{1,3}\.\d{1,3}$/.test(enhancedCode)) {
      throw new RangeError(`Enhanced status code must look like "5.1.1", got "${enhancedCode}"`);
    }
    if (enhancedCode !== "" && enhancedCode[0] !== String(numeric)[0]) {
      // RFC 3463 / RFC 2034 4: the class must agree with the reply code.
      throw new RangeError(`Enhanced status code ${enhancedCode} does not match reply code ${numeric}`);
    }
    const cleanText = text.replace(/[\r\n]+/g, " ");
    super(message ?? `${numeric} ${enhancedCode ? enhancedCode + " " : ""}${cleanText}`);
    this.name = new.target.name;
    Object.defineProperty(this, SMTPD_BRAND, { value: true });
    this.code = numeric;
    this.enhancedCode = enhancedCode;
    this.text = cleanText;
  }

  /** The reply as sent: `"550 5.7.1 Relaying denied"`. */
  get smtpdResult(): string {
    return `${this.code} ${this.enhancedCode ? this.enhancedCode + " " : ""}${this.text}`;
  }
}

// One class per common reply, with the seed's texts. Each takes an optional
// log message and, where useful, a different text.

/** `421 4.3.0 Service too busy or not available, closing transmission channel`; the connection closes. */
export class Smtpd421Exception extends SmtpdException {
  /**
   * Creates the reply error.
   * @param message what goes to the log (default: the reply)
   * @param text reply text instead of the default
   * @param enhancedCode enhanced status code instead of the default
   */
  constructor(
    message?: string,
    text = "Service too busy or not available, closing transmission channel",
    enhancedCode = "4.3.0",
  ) {
    super(421, enhancedCode, text, message);
  }
}
/** `450 4.2.1 Requested mail action not taken: mailbox unavailable` */
export class Smtpd450Exception extends SmtpdException {
  /**
   * Creates the reply error.
   * @param message what goes to the log (default: the reply)
   * @param text reply text instead of the default
   * @param enhancedCode enhanced status code instead of the default
   */
  constructor(message?: string, text = "Requested mail action not taken: mailbox unavailable", enhancedCode = "4.2.1") {
    super(450, enhancedCode, text, message);
  }
}
/** `451 4.3.0 Requested action aborted: local error in processing` */
export class Smtpd451Exception extends SmtpdException {
  /**
   * Creates the reply error.
   * @param message what goes to the log (default: the reply)
   * @param text reply text instead of the default
   * @param enhancedCode enhanced status code instead of the default
   */
  constructor(message?: string, text = "Requested action aborted: local error in processing", enhancedCode = "4.3.0") {
    super(451, enhancedCode, text, message);
  }
}
/** `452 4.3.1 Requested action not taken: insufficient system storage` */
export class Smtpd452Exception extends SmtpdException {
  /**
   * Creates the reply error.
   * @param message what goes to the log (default: the reply)
   * @param text reply text instead of the default
   * @param enhancedCode enhanced status code instead of the default
   */
  constructor(
    message?: string,
    text = "Requested action not taken: insufficient system storage",
    enhancedCode = "4.3.1",
  ) {
    super(452, enhancedCode, text, message);
  }
}
/** `500 5.5.2 Syntax error, command unrecognised or error in parameters or arguments` */
export class Smtpd500Exception extends SmtpdException {
  /**
   * Creates the reply error.
   * @param message what goes to the log (default: the reply)
   * @param text reply text instead of the default
   * @param enhancedCode enhanced status code instead of the default
   */
  constructor(
    message?: string,
    text = "Syntax error, command unrecognised or error in parameters or arguments",
    enhancedCode = "5.5.2",
  ) {
    super(500, enhancedCode, text, message);
  }
}
/** `501 5.5.4 Syntax error in parameters or arguments` */
export class Smtpd501Exception extends SmtpdException {
  /**
   * Creates the reply error.
   * @param message what goes to the log (default: the reply)
   * @param text reply text instead of the default
   * @param enhancedCode enhanced status code instead of the default
   */
  constructor(message?: string, text = "Syntax error in parameters or arguments", enhancedCode = "5.5.4") {
    super(501, enhancedCode, text, message);
  }
}
/** `502 5.5.1 Command not implemented` */
export class Smtpd502Exception extends SmtpdException {
  /**
   * Creates the reply error.
   * @param message what goes to the log (default: the reply)
   * @param text reply text instead of the default
   * @param enhancedCode enhanced status code instead of the default
   */
  constructor(message?: string, text = "Command not implemented", enhancedCode = "5.5.1") {
    super(502, enhancedCode, text, message);
  }
}
/** `503 5.5.1 Bad sequence of commands` */
export class Smtpd503Exception extends SmtpdException {
  /**
   * Creates the reply error.
   * @param message what goes to the log (default: the reply)
   * @param text reply text instead of the default
   * @param enhancedCode enhanced status code instead of the default
   */
  constructor(message?: string, text = "Bad sequence of commands", enhancedCode = "5.5.1") {
    super(503, enhancedCode, text, message);
  }
}
/** `504 5.5.4 Command parameter not implemented` */
export class Smtpd504Exception extends SmtpdException {
  /**
   * Creates the reply error.
   * @param message what goes to the log (default: the reply)
   * @param text reply text instead of the default
   * @param enhancedCode enhanced status code instead of the default
   */
  constructor(message?: string, text = "Command parameter not implemented", enhancedCode = "5.5.4") {
    super(504, enhancedCode, text, message);
  }
}
/** `521 5.3.2 Service does not accept mail` */
export class Smtpd521Exception extends SmtpdException {
  /**
   * Creates the reply error.
   * @param message what goes to the log (default: the reply)
   * @param text reply text instead of the default
   * @param enhancedCode enhanced status code instead of the default
   */
  constructor(message?: string, text = "Service does not accept mail", enhancedCode = "5.3.2") {
    super(521, enhancedCode, text, message);
  }
}
/** `550 5.1.1 Requested action not taken: mailbox unavailable` */
export class Smtpd550Exception extends SmtpdException {
  /**
   * Creates the reply error.
   * @param message what goes to the log (default: the reply)
   * @param text reply text instead of the default
   * @param enhancedCode enhanced status code instead of the default
   */
  constructor(message?: string, text = "Requested action not taken: mailbox unavailable", enhancedCode = "5.1.1") {
    super(550, enhancedCode, text, message);
  }
}
/** `552 5.3.4 Requested mail action aborted: exceeded storage allocation` */
export class Smtpd552Exception extends SmtpdException {
  /**
   * Creates the reply error.
   * @param message what goes to the log (default: the reply)
   * @param text reply text instead of the default
   * @param enhancedCode enhanced status code instead of the default
   */
  constructor(
    message?: string,
    text = "Requested mail action aborted: exceeded storage allocation",
    enhancedCode = "5.3.4",
  ) {
    super(552, enhancedCode, text, message);
  }
}
/** `553 5.1.3 Requested action not taken: mailbox name not allowed` */
export class Smtpd553Exception extends SmtpdException {
  /**
   * Creates the reply error.
   * @param message what goes to the log (default: the reply)
   * @param text reply text instead of the default
   * @param enhancedCode enhanced status code instead of the default
   */
  constructor(message?: string, text = "Requested action not taken: mailbox name not allowed", enhancedCode = "5.1.3") {
    super(553, enhancedCode, text, message);
  }
}
/** `554 5.0.0 Transaction failed` */
export class Smtpd554Exception extends SmtpdException {
  /**
   * Creates the reply error.
   * @param message what goes to the log (default: the reply)
   * @param text reply text instead of the default
   * @param enhancedCode enhanced status code instead of the default
   */
  constructor(message?: string, text = "Transaction failed", enhancedCode = "5.0.0") {
    super(554, enhancedCode, text, message);
  }
}
/** `432 4.7.12 Password transition is needed` (RFC 4954) */
export class Smtpd432Exception extends SmtpdException {
  /**
   * Creates the reply error.
   * @param message what goes to the log (default: the reply)
   * @param text reply text instead of the default
   * @param enhancedCode enhanced status code instead of the default
   */
  constructor(message?: string, text = "Password transition is needed", enhancedCode = "4.7.12") {
    super(432, enhancedCode, text, message);
  }
}
/** `454 4.7.0 Temporary authentication failure` (RFC 4954) */
export class Smtpd454Exception extends SmtpdException {
  /**
   * Creates the reply error.
   * @param message what goes to the log (default: the reply)
   * @param text reply text instead of the default
   * @param enhancedCode enhanced status code instead of the default
   */
  constructor(message?: string, text = "Temporary authentication failure", enhancedCode = "4.7.0") {
    super(454, enhancedCode, text, message);
  }
}
/** `530 5.7.0 Authentication required` (RFC 4954) */
export class Smtpd530Exception extends SmtpdException {
  /**
   * Creates the reply error.
   * @param message what goes to the log (default: the reply)
   * @param text reply text instead of the default
   * @param enhancedCode enhanced status code instead of the default
   */
  constructor(message?: string, text = "Authentication required", enhancedCode = "5.7.0") {
    super(530, enhancedCode, text, message);
  }
}
/** `534 5.7.9 Authentication mechanism is too weak` (RFC 4954) */
export class Smtpd534Exception extends SmtpdException {
  /**
   * Creates the reply error.
   * @param message what goes to the log (default: the reply)
   * @param text reply text instead of the default
   * @param enhancedCode enhanced status code instead of the default
   */
  constructor(message?: string, text = "Authentication mechanism is too weak", enhancedCode = "5.7.9") {
    super(534, enhancedCode, text, message);
  }
}
/** `535 5.7.8 Authentication credentials invalid` (RFC 4954) */
export class Smtpd535Exception extends SmtpdException {
  /**
   * Creates the reply error.
   * @param message what goes to the log (default: the reply)
   * @param text reply text instead of the default
   * @param enhancedCode enhanced status code instead of the default
   */
  constructor(message?: string, text = "Authentication credentials invalid", enhancedCode = "5.7.8") {
    super(535, enhancedCode, text, message);
  }
}
/** `538 5.7.11 Encryption required for requested authentication mechanism` (RFC 4954) */
export class Smtpd538Exception extends SmtpdException {
  /**
   * Creates the reply error.
   * @param message what goes to the log (default: the reply)
   * @param text reply text instead of the default
   * @param enhancedCode enhanced status code instead of the default
   */
  constructor(
    message?: string,
    text = "Encryption required for requested authentication mechanism",
    enhancedCode = "5.7.11",
  ) {
    super(538, enhancedCode, text, message);
  }
}
/** `454 4.7.0 TLS not available` (RFC 3207) */
export class Tls454Exception extends SmtpdException {
  /**
   * Creates the reply error.
   * @param message what goes to the log (default: the reply)
   * @param text reply text instead of the default
   * @param enhancedCode enhanced status code instead of the default
   */
  constructor(message?: string, text = "TLS not available", enhancedCode = "4.7.0") {
    super(454, enhancedCode, text, message);
  }
}
/** `530 5.7.0 Must issue a STARTTLS command first` (RFC 3207) */
export class Tls530Exception extends SmtpdException {
  /**
   * Creates the reply error.
   * @param message what goes to the log (default: the reply)
   * @param text reply text instead of the default
   * @param enhancedCode enhanced status code instead of the default
   */
  constructor(message?: string, text = "Must issue a STARTTLS command first", enhancedCode = "5.7.0") {
    super(530, enhancedCode, text, message);
  }
}
/** `500 5.5.0 Bad input, PIPELINING is not allowed` */
export class Smtpd500PipeliningException extends SmtpdException {
  /**
   * Creates the reply error.
   * @param message what goes to the log (default: the reply)
   * @param text reply text instead of the default
   * @param enhancedCode enhanced status code instead of the default
   */
  constructor(message?: string, text = "Bad input, PIPELINING is not allowed", enhancedCode = "5.5.0") {
    super(500, enhancedCode, text, message);
  }
}
/** `500 5.5.2 Bad input, Lines must be terminated by CRLF sequence` */
export class Smtpd500CrLfSequenceException extends SmtpdException {
  /**
   * Creates the reply error.
   * @param message what goes to the log (default: the reply)
   * @param text reply text instead of the default
   * @param enhancedCode enhanced status code instead of the default
   */
  constructor(message?: string, text = "Bad input, Lines must be terminated by CRLF sequence", enhancedCode = "5.5.2") {
    super(500, enhancedCode, text, message);
  }
}
