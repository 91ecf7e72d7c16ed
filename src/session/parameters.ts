/**
 * MAIL and RCPT parameters: the built-in ones (SIZE, BODY, AUTH, SMTPUTF8,
 * DSN's RET/ENVID/NOTIFY/ORCPT, REQUIRETLS) declared the same way as an
 * application's, and the table a session looks them up in. A parameter that
 * is not declared, or whose EHLO keyword is not offered to the client, gets
 * `555 5.5.4` (RFC 5321 4.1.1.11).
 *
 * @module
 */
import type { EsmtpParamValue } from "../context.ts";
import type { ResolvedOptions } from "../options.ts";
import { Smtpd501Exception, Smtpd552Exception, SmtpdException } from "../exceptions.ts";
import type { EsmtpParameter, ParameterTarget } from "./registry.ts";
import { parseEnvid, parseNotify, parseOrcpt, parseRequireTls, parseRet } from "./dsn_params.ts";

/** A parameter the session may not accept: never declared, or its extension is not offered. */
export function unsupportedParameter(name: string): SmtpdException {
  return new SmtpdException(555, "5.5.4", `Unsupported parameter ${name}`);
}

/** The parameters every server knows; `options` decides limits and which are accepted. */
export function builtinParameters(options: ResolvedOptions): EsmtpParameter[] {
  const maxSize = options.maxMessageSize;
  return [
    {
      name: "SIZE",
      command: "MAIL",
      keyword: "SIZE",
      apply(value) {
        const size = typeof value === "string" && /^\d{1,20}$/.test(value) ? Number(value) : NaN;
        if (Number.isNaN(size)) throw new Smtpd501Exception(undefined, "Syntax error in SIZE parameter");
        if (maxSize > 0 && size > maxSize) {
          throw new Smtpd552Exception(undefined, "Message size exceeds fixed maximum message size");
        }
      },
    },
    {
      name: "BODY",
      command: "MAIL",
      apply(value, target) {
        const body = typeof value === "string" ? value.toUpperCase() : "";
        const binary = target.offers("BINARYMIME");
        if (!target.offers("8BITMIME") && !binary) throw unsupportedParameter("BODY");
        if (body === "7BIT") target.envelope.encodingBody = "7bit";
        else if (body === "8BITMIME") target.envelope.encodingBody = "8bitmime";
        else if (body === "BINARYMIME" && binary) target.envelope.encodingBody = "binarymime";
        else {
          const words = binary ? "7BIT, 8BITMIME or BINARYMIME" : "7BIT or 8BITMIME";
          throw new Smtpd501Exception(undefined, `Syntax error in BODY parameter (${words})`);
        }
      },
    },
    {
      name: "AUTH",
      command: "MAIL",
      keyword: "AUTH",
      apply() {
        // RFC 4954 5: accepted from authenticated clients (and ignored otherwise); only recorded in mailParams.
        if (options.authMode === "AUTH_FORBIDDEN") throw unsupportedParameter("AUTH");
      },
    },
    {
      name: "SMTPUTF8",
      command: "MAIL",
      keyword: "SMTPUTF8",
      apply(value, target) {
        if (value !== true) throw new Smtpd501Exception(undefined, "SMTPUTF8 takes no value");
        target.envelope.encodingUtf8 = "utf8";
      },
    },
    {
      name: "RET",
      command: "MAIL",
      keyword: "DSN",
      apply(value, target) {
        target.envelope.dsn.ret = parseRet(value);
      },
    },
    {
      name: "ENVID",
      command: "MAIL",
      keyword: "DSN",
      apply(value, target) {
        target.envelope.dsn.envid = parseEnvid(value);
      },
    },
    {
      name: "REQUIRETLS",
      command: "MAIL",
      keyword: "REQUIRETLS",
      apply(value, target) {
        parseRequireTls(value);
        target.envelope.requireTls = true;
      },
    },
    {
      name: "NOTIFY",
      command: "RCPT",
      keyword: "DSN",
      apply(value, target) {
        target.recipient!.notify = parseNotify(value);
      },
    },
    {
      name: "ORCPT",
      command: "RCPT",
      keyword: "DSN",
      apply(value, target) {
        target.recipient!.orcpt = parseOrcpt(value);
      },
    },
  ];
}

/** The parameters one server accepts, by command and upper-case name. */
export class ParameterTable {
  readonly #byKey = new Map<string, EsmtpParameter>();

  /** Built-ins first; an application's declaration of the same name replaces the built-in one. */
  constructor(options: ResolvedOptions) {
    for (const param of [...builtinParameters(options), ...options.esmtpParameters]) {
      this.#byKey.set(`${param.command} ${param.name.toUpperCase()}`, param);
    }
  }

  /**
   * Applies every parameter of one MAIL or RCPT command to `target`, in the
   * order sent; throws the reply for the first one refused.
   */
  apply(command: "MAIL" | "RCPT", params: Record<string, EsmtpParamValue>, target: ParameterTarget): void {
    for (const name in params) {
      const param = this.#byKey.get(`${command} ${name}`);
      if (!param || (param.keyword !== undefined && !target.offers(param.keyword))) {
        throw unsupportedParameter(name);
      }
      param.apply(params[name], target);
    }
  }
}
