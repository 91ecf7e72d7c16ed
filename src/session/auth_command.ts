/**
 * The AUTH command (RFC 4954) of one session: the checks before an exchange,
 * the SASL exchange itself (334 challenges, the client's base64 responses,
 * `*` to cancel), the `onAuthEvent` hook, and the count of failures that
 * ends the session. The session routes the client's lines here while an
 * exchange waits for a response ({@link AuthCommand.awaitingResponse}).
 *
 * @module
 */
import type { SaslExchange, SaslStep } from "../auth/types.ts";
import { decodeBase64Response, encodeBase64 } from "../auth/mod.ts";
import type { ResolvedOptions } from "../options.ts";
import type { SmtpdContext } from "../context.ts";
import { isPromiseLike } from "../hooks.ts";
import {
  Smtpd454Exception,
  Smtpd501Exception,
  Smtpd502Exception,
  Smtpd503Exception,
  Smtpd504Exception,
  Smtpd538Exception,
  SmtpdException,
  Tls530Exception,
} from "../exceptions.ts";
import { channels } from "../events.ts";
import { errorText, syntaxError } from "./errors.ts";
import type { SessionState } from "./registry.ts";
import type { SessionHost } from "./session.ts";

/** What AUTH needs from its session. */
export interface AuthSession {
  readonly ctx: SmtpdContext;
  readonly host: SessionHost;
  readonly state: SessionState;
  /** Whether the session is already closing (no second 421). */
  readonly closing: boolean;
  /** Whether the EHLO keyword is offered to this client now. */
  offers(keyword: string): boolean;
  /** Queues a one-line reply. */
  reply(code: number, enhancedCode: string, text: string): void;
  /** Queues a raw line (a 334 challenge, which carries no enhanced code). */
  write(line: string): void;
  /** Answers an error; `countsAsBad` false: it does not count towards maxBadCommands. */
  fail(err: unknown, countsAsBad: boolean): void;
  /** Awaits a hook's promise under the hook deadline. */
  awaitHook<T>(name: string, pending: PromiseLike<T>): Promise<T>;
  /** Ends the session after the replies queued so far. */
  close(): void;
}

/** Whether AUTH is offered now: enabled, and over TLS unless plaintext AUTH is allowed. */
export function authOffered(options: ResolvedOptions, encrypted: boolean): boolean {
  return options.authMode !== "AUTH_FORBIDDEN" && (encrypted || options.allowInsecureAuth);
}

/** One session's AUTH state: the exchange in progress, its mechanism, and the failures so far. */
export class AuthCommand {
  readonly #session: AuthSession;
  #exchange: SaslExchange | undefined;
  #mechanism = "";
  #failures = 0;

  constructor(session: AuthSession) {
    this.#session = session;
  }

  /** Whether an exchange waits for the client's next response (the next line is that, not a command). */
  get awaitingResponse(): boolean {
    return this.#exchange !== undefined;
  }

  /** `AUTH mechanism [initial-response]`: checks, then starts the exchange. Throws the error that answers it. */
  async start(args: string): Promise<void> {
    const { ctx, host } = this.#session;
    const o = host.options;
    if (o.authMode === "AUTH_FORBIDDEN") throw new Smtpd502Exception();
    const heloMode = ctx.server.heloMode;
    if (heloMode !== "EHLO" && heloMode !== "LHLO") throw new Smtpd503Exception(undefined, "Send EHLO first");
    if (o.tlsMode === "TLS_REQUIRED" && !ctx.server.encrypted) throw new Tls530Exception();
    if (!authOffered(o, ctx.server.encrypted !== null)) throw new Smtpd538Exception();
    if (!this.#session.offers("AUTH")) throw new Smtpd502Exception(); // hidden from this client by ehloKeywords
    if (ctx.server.authenticated) throw new Smtpd503Exception(undefined, "Already authenticated");
    if (this.#session.state !== "RSET") {
      throw new Smtpd503Exception(undefined, "AUTH not permitted during a mail transaction");
    }
    const locked = host.limits.authLocked(ctx.server.remoteIp);
    if (locked) {
      host.logRefusal(ctx, ctx.server.remoteIp, locked);
      throw new SmtpdException(locked.code, locked.enhancedCode, locked.text, locked.reason);
    }
    const [name, initial, extra] = args.split(" ");
    if (!name || extra !== undefined) throw syntaxError("AUTH mechanism [initial-response]");
    const mechanism = host.authMechanisms.get(name.toUpperCase());
    if (!mechanism) throw new Smtpd504Exception(undefined, "Unrecognized authentication type");
    this.#mechanism = mechanism.name.toUpperCase();
    const exchange = mechanism.start(ctx.server.localHost);
    // "=" is an empty initial response; no argument means none (RFC 4954 4).
    const response = initial === undefined ? undefined : decodeBase64Response(initial);
    await this.#step(exchange, exchange.next(response));
  }

  /** The client's response to a 334 (`*` cancels). Answers everything itself. */
  async respond(line: string): Promise<void> {
    const exchange = this.#exchange!;
    this.#exchange = undefined;
    if (line === "*") {
      return this.#failed(new Smtpd501Exception(undefined, "Authentication canceled", "5.7.0"));
    }
    let step: SaslStep;
    try {
      step = exchange.next(decodeBase64Response(line));
    } catch (err) {
      return this.#failed(err);
    }
    await this.#step(exchange, step);
  }

  async #step(exchange: SaslExchange, step: SaslStep): Promise<void> {
    const session = this.#session;
    if (step.kind === "challenge") {
      this.#exchange = exchange;
      session.write(`334 ${encodeBase64(step.challenge)}\r\n`);
      return;
    }
    const { ctx, host } = session;
    const c = step.credentials;
    let result: string | void;
    try {
      const checked = host.hooks.onAuthEvent(ctx, c.authorizationId, c.authenticationId, c.authentication, c);
      result = isPromiseLike(checked) ? await session.awaitHook("onAuthEvent", checked) : checked;
    } catch (err) {
      const refusal = err instanceof SmtpdException ? err : this.#temporaryFailure(err);
      // Refused credentials count against the client's address across connections (not temporary failures).
      if (refusal.code >= 500) host.limits.authFailed(ctx.server.remoteIp);
      return this.#failed(refusal);
    }
    const server = ctx.server;
    server.authenticated = new Date();
    server.authenticationId = c.authenticationId;
    server.authorizationId = typeof result === "string" && result !== ""
      ? result
      : c.authorizationId || c.authenticationId;
    session.reply(235, "2.7.0", "Authentication successful");
    if (channels.auth.hasSubscribers) {
      channels.auth.publish({
        sessionId: ctx.sessionId,
        time: Date.now(),
        ok: true,
        mechanism: this.#mechanism,
        authenticationId: server.authenticationId,
      });
    }
  }

  /** Answers a failed AUTH; too many failures end the session. */
  #failed(err: unknown): void {
    const session = this.#session;
    if (channels.auth.hasSubscribers) {
      channels.auth.publish({
        sessionId: session.ctx.sessionId,
        time: Date.now(),
        ok: false,
        mechanism: this.#mechanism,
        code: err instanceof SmtpdException ? err.code : 451,
      });
    }
    session.fail(err, false);
    this.#failures++;
    if (this.#failures >= session.host.options.maxAuthFailures && !session.closing) {
      session.reply(421, "4.7.0", "Too many authentication failures, closing transmission channel");
      session.close();
    }
  }

  #temporaryFailure(err: unknown): SmtpdException {
    this.#session.host.log(this.#session.ctx, "error", `onAuthEvent failed: ${errorText(err)}`, err);
    return new Smtpd454Exception();
  }
}
