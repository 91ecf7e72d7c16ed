/**
 * XCLIENT and XFORWARD (Postfix's extensions for proxies and content
 * filters), built on the public command registry: they use nothing a
 * registered application command could not. Both are offered and accepted
 * only from `xclientTrustedSources`, judged on the client the session sees
 * now (after PROXY, and after an earlier XCLIENT ADDR=).
 *
 * @module
 */
import type { XforwardInfo } from "../context.ts";
import { SmtpdException } from "../exceptions.ts";
import type { CommandDefinition, SessionControl } from "./registry.ts";
import { parseXclient, parseXforward } from "./xclient_attributes.ts";

function insufficientAuthorization(): SmtpdException {
  return new SmtpdException(550, "5.7.0", "Error: insufficient authorization");
}

function inTransaction(session: SessionControl): boolean {
  const state = session.state;
  return state === "MAIL" || state === "RCPT" || state === "BDAT" || state === "DATA";
}

/**
 * `XCLIENT attr=value ...`: the proxy in front hands over the real client's
 * facts; they replace the session's, and the session starts again with a
 * new `220` (as Postfix does), so the client sends EHLO again.
 */
export const XCLIENT_COMMAND: CommandDefinition = {
  name: "XCLIENT",
  // A proxy sends XCLIENT before STARTTLS even where TLS is enforced (Postfix allows it).
  allowedBeforeTls: true,
  async handler(session, args) {
    if (!session.offers("XCLIENT")) throw insufficientAuthorization();
    if (inTransaction(session)) throw new SmtpdException(503, "5.5.1", "Error: MAIL transaction in progress");
    const attrs = parseXclient(args);
    const server = session.ctx.server;
    server.xclient = { ...server.xclient, ...attrs };
    if (attrs.addr !== undefined) server.remoteIp = attrs.addr ?? "";
    // Postfix's word for a client whose name (or address) is not known.
    if (attrs.name !== undefined) server.remoteHost = attrs.name ?? "unknown";
    else if (attrs.addr !== undefined) server.remoteHost = attrs.addr ?? "unknown";
    if (attrs.port !== undefined) server.remotePort = attrs.port ?? 0;
    if (attrs.destaddr !== undefined) server.localIp = attrs.destaddr ?? server.localIp;
    if (attrs.destport !== undefined) server.localPort = attrs.destport ?? server.localPort;
    // HELO and LOGIN survive the restart only when sent now, as Postfix does; the connect hook sees them.
    await session.restart({
      helo: attrs.helo ?? undefined,
      heloMode: attrs.proto === "SMTP" ? "HELO" : "EHLO",
      login: attrs.login ?? undefined,
    });
  },
};

/** Every XFORWARD attribute, unset (`[UNAVAILABLE]`): the first XFORWARD of a transaction starts from this. */
function unavailable(): XforwardInfo {
  return { name: null, addr: null, port: null, proto: null, helo: null, ident: null, source: null };
}

/**
 * `XFORWARD attr=value ...`: a content filter passes on the upstream
 * client's facts for the next transaction, for logging only; they land in
 * `ctx.envelope.xforward` and end with the transaction.
 */
export const XFORWARD_COMMAND: CommandDefinition = {
  name: "XFORWARD",
  allowedBeforeTls: false,
  handler(session, args) {
    if (!session.offers("XFORWARD")) throw insufficientAuthorization();
    if (inTransaction(session)) throw new SmtpdException(503, "5.5.1", "Error: MAIL transaction in progress");
    const attrs = parseXforward(args);
    const envelope = session.ctx.envelope;
    envelope.xforward = { ...(envelope.xforward ?? unavailable()), ...attrs };
    session.reply(250, "2.0.0", "Ok");
  },
};
