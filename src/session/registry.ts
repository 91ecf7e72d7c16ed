/**
 * The public extension points of a session: commands, EHLO keywords and
 * MAIL/RCPT parameters. The built-in commands are registered through the
 * same table, so an application's command is dispatched exactly like
 * `MAIL` or `BDAT`.
 *
 * @module
 */
import type { EnvelopeContext, EsmtpParamValue, RecipientContext, SmtpdContext } from "../context.ts";

/** Where a session is: before HELO/EHLO, between transactions, or inside one. */
export type SessionState = "HELO" | "RSET" | "MAIL" | "RCPT" | "DATA" | "BDAT" | "QUIT";

/**
 * What a command handler may do with its session. Every method is safe to
 * call from an async handler; the session reads no further command until the
 * handler's promise settles (except through {@link readLine} and
 * {@link readBytes}, which take the client's next input for the handler).
 */
export interface SessionControl {
  /** The session's context (the same object every hook gets). */
  readonly ctx: SmtpdContext;
  /** Where the session is. */
  readonly state: SessionState;
  /** Whether this EHLO keyword (e.g. `"CHUNKING"`) is offered to this client now. */
  offers(keyword: string): boolean;
  /** Adds a one-line reply, e.g. `reply(250, "2.0.0", "OK")` (CR/LF in `text` become spaces). */
  reply(code: number, enhancedCode: string, text: string): void;
  /**
   * Adds a multi-line reply: one line per entry, the same code on each.
   * Throws a `TypeError` for a code outside 200..599 or an empty list.
   */
  replyLines(code: number, lines: readonly string[]): void;
  /** Ends the mail transaction (as `RSET` does): a fresh envelope and message. */
  reset(): void;
  /**
   * Starts the session again as if the client had just connected (XCLIENT):
   * forgets HELO/EHLO, AUTH and the transaction (except what `keep` hands
   * over), runs `onConnectEvent` and sends the `220` greeting again. TLS
   * stays. If the hook refuses the client, `state` is `"QUIT"` afterwards.
   */
  restart(keep?: RestartFacts): Promise<void>;
  /** Reads the client's next line (without its line break); rejects if the client leaves. */
  readLine(): Promise<string>;
  /** Reads exactly `count` bytes from the client; rejects if the client leaves first. */
  readBytes(count: number): Promise<Uint8Array>;
  /** Counts a failed command towards `maxBadCommands` (the session may end with 421). */
  countFailure(): void;
  /** Closes the connection once the replies so far are sent. */
  close(): void;
}

/** What {@link SessionControl.restart} keeps: facts a proxy handed over for the new client. */
export interface RestartFacts {
  /** The client's HELO/EHLO name: the session counts as greeted (MAIL may follow). */
  readonly helo?: string;
  /** Which greeting `helo` came with (default `"EHLO"`). */
  readonly heloMode?: "HELO" | "EHLO" | "LHLO";
  /** An identity the client counts as authenticated with. */
  readonly login?: string;
}

/**
 * A command the session dispatches. Return normally after adding the
 * reply; throw an `Smtpd…Exception` to answer with it.
 *
 * @example
 * ```ts
 * import type { CommandDefinition } from "@midi/smtp-server";
 *
 * const site: CommandDefinition = {
 *   name: "SITE",
 *   handler(session, args) {
 *     session.replyLines(214, ["SITE commands:", `you said ${args}`]);
 *   },
 * };
 * site.name; // => "SITE"
 * ```
 */
export interface CommandDefinition {
  /** The verb, ASCII letters (case does not matter): `"SITE"`, `"XCLIENT"`. */
  readonly name: string;
  /** Runs the command; `args` is the text after the verb and one space. */
  handler(session: SessionControl, args: string, line: string): void | Promise<void>;
  /** Allowed before STARTTLS when `tlsMode` is `TLS_REQUIRED` (default `false`: 530). */
  readonly allowedBeforeTls?: boolean;
  /**
   * The command reads input that the client may send right behind its line
   * (with {@link SessionControl.readLine} or {@link SessionControl.readBytes}),
   * so such bytes are not refused as pipelining when PIPELINING is off.
   */
  readonly readsInput?: boolean;
}

/** What a parameter's `apply` is given: the context and the envelope (and for RCPT the recipient) it fills. */
export interface ParameterTarget {
  /** The session's context. */
  readonly ctx: SmtpdContext;
  /** The envelope being built (for MAIL, the new one; not yet `ctx.envelope` until the hook accepts it). */
  readonly envelope: EnvelopeContext;
  /** For RCPT: the recipient being added. */
  readonly recipient?: RecipientContext;
  /** Whether this EHLO keyword is offered to the client now (see {@link SessionControl.offers}). */
  offers(keyword: string): boolean;
}

/**
 * A MAIL or RCPT parameter the server accepts (every other one is refused
 * with `555 5.5.4`).
 *
 * @example
 * ```ts
 * import { Smtpd501Exception, type EsmtpParameter } from "@midi/smtp-server";
 *
 * const priority: EsmtpParameter = {
 *   name: "MT-PRIORITY",
 *   command: "MAIL",
 *   keyword: "MT-PRIORITY",
 *   apply(value, { envelope }) {
 *     if (typeof value !== "string" || !/^-?[0-9]$/.test(value)) throw new Smtpd501Exception(undefined, "Bad MT-PRIORITY");
 *     envelope.values["MT-PRIORITY"] = Number(value);
 *   },
 * };
 * priority.command; // => "MAIL"
 * ```
 */
export interface EsmtpParameter {
  /** The keyword, e.g. `"MT-PRIORITY"` (matched case-insensitively). */
  readonly name: string;
  /** The command it belongs to. */
  readonly command: "MAIL" | "RCPT";
  /** Accepted only when this EHLO keyword is offered in the session (else 555, as for an unknown parameter). */
  readonly keyword?: string;
  /** Checks the value (throw an `Smtpd…Exception`, usually 501, to refuse) and records what it means. */
  apply(value: EsmtpParamValue, target: ParameterTarget): void;
}

/** EHLO keyword text: a keyword, then parameters separated by spaces (RFC 5321 4.1.1.1). */
const EHLO_LINE = /^[A-Za-z0-9][A-Za-z0-9-]*(?: [\x21-\x7e]+)*$/;

/** Whether `line` may be sent as an EHLO keyword line (no CR/LF, printable ASCII). */
export function isEhloKeywordLine(line: string): boolean {
  return EHLO_LINE.test(line);
}

/** The keyword of an EHLO line, upper-cased: `"SIZE 1000"` -> `"SIZE"`. */
export function ehloKeyword(line: string): string {
  const space = line.indexOf(" ");
  return (space < 0 ? line : line.slice(0, space)).toUpperCase();
}

const VERB = /^[A-Za-z][A-Za-z0-9-]{0,31}$/;

/** Checks a command definition from the options; throws a `TypeError` that says what is wrong. */
export function checkCommandDefinition(def: CommandDefinition): void {
  if (typeof def?.name !== "string" || !VERB.test(def.name)) {
    throw new TypeError(`commands: invalid command name ${JSON.stringify(def?.name)} (letters, digits, "-")`);
  }
  if (typeof def.handler !== "function") throw new TypeError(`commands: ${def.name} needs a handler function`);
}

/** Checks a parameter declaration from the options; throws a `TypeError` that says what is wrong. */
export function checkParameter(param: EsmtpParameter): void {
  if (typeof param?.name !== "string" || !/^[A-Za-z0-9][A-Za-z0-9-]*$/.test(param.name)) {
    throw new TypeError(`esmtpParameters: invalid parameter name ${JSON.stringify(param?.name)}`);
  }
  if (param.command !== "MAIL" && param.command !== "RCPT") {
    throw new TypeError(`esmtpParameters: ${param.name} must say command "MAIL" or "RCPT"`);
  }
  if (typeof param.apply !== "function") throw new TypeError(`esmtpParameters: ${param.name} needs an apply function`);
}
