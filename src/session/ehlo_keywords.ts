/**
 * The EHLO keywords a session offers: the built-in list for the client's
 * situation (TLS, AUTH, trust), then the application's `ehloKeywords`
 * adjustment, checked line by line so that nothing it returns can break the
 * reply. What is offered is also what is accepted: the session asks this
 * list before it takes STARTTLS, AUTH, BDAT or an extension's parameter.
 *
 * @module
 */
import type { SmtpdContext } from "../context.ts";
import type { ResolvedOptions } from "../options.ts";
import { ehloKeyword, isEhloKeywordLine } from "./registry.ts";
import { XCLIENT_ATTRIBUTES, XFORWARD_ATTRIBUTES } from "./xclient_attributes.ts";

/** What the session knows about the client that decides the built-in keywords. */
export interface KeywordSituation {
  /** PIPELINING is on (or the server speaks LMTP). */
  readonly pipelining: boolean;
  /** STARTTLS can be offered now (configured, and not yet encrypted). */
  readonly startTls: boolean;
  /** The connection runs over TLS. */
  readonly encrypted: boolean;
  /** The AUTH mechanisms offered now (empty: no AUTH). */
  readonly authMechanisms: readonly string[];
  /** The client may use XCLIENT and XFORWARD. */
  readonly xclient: boolean;
}

/**
 * The built-in keyword lines, in the order they are advertised.
 *
 * @example
 * ```ts
 * const options = { maxMessageSize: 1000, enhancedStatusCodesExtension: true, chunkingExtension: true } as never;
 * const situation = { pipelining: true, startTls: false, encrypted: false, authMechanisms: [], xclient: false };
 * builtinKeywords(options, situation); // => ["PIPELINING", "SIZE 1000", "ENHANCEDSTATUSCODES", "CHUNKING"]
 * ```
 */
export function builtinKeywords(options: ResolvedOptions, situation: KeywordSituation): string[] {
  const o = options;
  const list: string[] = [];
  if (situation.pipelining) list.push("PIPELINING");
  list.push(o.maxMessageSize > 0 ? `SIZE ${o.maxMessageSize}` : "SIZE");
  if (o.internationalizationExtensions) list.push("8BITMIME", "SMTPUTF8");
  if (o.enhancedStatusCodesExtension) list.push("ENHANCEDSTATUSCODES");
  if (o.chunkingExtension) list.push("CHUNKING");
  if (o.binaryMimeExtension) list.push("BINARYMIME");
  if (o.dsnExtension) list.push("DSN");
  if (situation.startTls) list.push("STARTTLS");
  // RFC 8689 2: only inside TLS, where the promise can mean something.
  if (o.requireTlsExtension && situation.encrypted) list.push("REQUIRETLS");
  if (situation.authMechanisms.length > 0) list.push(`AUTH ${situation.authMechanisms.join(" ")}`);
  if (situation.xclient) {
    list.push(`XCLIENT ${XCLIENT_ATTRIBUTES.join(" ")}`, `XFORWARD ${XFORWARD_ATTRIBUTES.join(" ")}`);
  }
  return list;
}

/**
 * The keywords to offer, by upper-case keyword: `builtin` as `adjust`
 * changes it (a returned array, or the same array changed in place). A line
 * that is not a valid keyword line is left out and reported; an `adjust`
 * that throws leaves the built-in list.
 *
 * @example
 * ```ts
 * const hideAuth = (_ctx: unknown, lines: string[]) => lines.filter((l) => !l.startsWith("AUTH"));
 * const offered = offeredKeywords({} as never, ["SIZE", "AUTH PLAIN"], hideAuth, () => {});
 * [...offered.keys()]; // => ["SIZE"]
 * ```
 */
export function offeredKeywords(
  ctx: SmtpdContext,
  builtin: string[],
  adjust: ((ctx: SmtpdContext, keywords: string[]) => string[] | void) | undefined,
  report: (msg: string, err?: unknown) => void,
): Map<string, string> {
  let lines = builtin;
  if (adjust) {
    // A copy: an adjustment that changes the array in place and then throws must not leave half its changes.
    const copy = [...builtin];
    try {
      const adjusted = adjust(ctx, copy);
      lines = Array.isArray(adjusted) ? adjusted : copy;
    } catch (err) {
      report(
        `ehloKeywords failed: ${err instanceof Error ? err.message : String(err)}: the built-in list is offered`,
        err,
      );
    }
  }
  const offered = new Map<string, string>();
  for (const line of lines) {
    if (typeof line === "string" && isEhloKeywordLine(line)) offered.set(ehloKeyword(line), line);
    else report(`ehloKeywords: invalid keyword line ${JSON.stringify(line)} left out`);
  }
  return offered;
}
