/**
 * Extending the session (README: "Extending the session"): a SITE command of
 * our own with multi-line replies, the MT-PRIORITY MAIL parameter (RFC 6710)
 * offered in EHLO and recorded for the message hook, and VRFY/EXPN disabled.
 *
 * Run: `deno run -A examples/site_command.ts`, `bun examples/site_command.ts`
 * or `npx tsx examples/site_command.ts`; then talk to 127.0.0.1:2525 (set
 * SMTP_PORT to use another port, 0 for any free one):
 *
 *   EHLO me                          -> 250-... 250 MT-PRIORITY
 *   SITE STATS                       -> 250-0 message(s) received / 250 you are 127.0.0.1
 *   MAIL FROM:<a@b.c> MT-PRIORITY=12 -> 501 5.5.4 MT-PRIORITY takes -9 to 9
 */
import process from "node:process";
import { type CommandDefinition, type EsmtpParameter, MidiSmtpServer, Smtpd501Exception } from "../mod.ts";

let received = 0;

// SITE HELP / SITE STATS: the handler gets a SessionControl and the text after the verb.
const site: CommandDefinition = {
  name: "SITE",
  handler(session, args) {
    switch (args.toUpperCase()) {
      case "HELP":
        return session.replyLines(214, ["SITE HELP: this text", "SITE STATS: messages received"]);
      case "STATS":
        return session.replyLines(250, [`${received} message(s) received`, `you are ${session.ctx.server.remoteIp}`]);
      default:
        // Thrown exceptions are the reply, as in hooks.
        throw new Smtpd501Exception(undefined, "Syntax: SITE HELP|STATS");
    }
  },
};

// MAIL FROM:<...> MT-PRIORITY=n: accepted only where EHLO offers MT-PRIORITY (else 555).
const priority: EsmtpParameter = {
  name: "MT-PRIORITY",
  command: "MAIL",
  keyword: "MT-PRIORITY",
  apply(value, { envelope }) {
    if (typeof value !== "string" || !/^[-+]?[0-9]$/.test(value)) {
      throw new Smtpd501Exception(undefined, "MT-PRIORITY takes -9 to 9");
    }
    envelope.values.priority = Number(value);
  },
};

const server = new MidiSmtpServer({
  hosts: "127.0.0.1",
  ports: process.env.SMTP_PORT ?? 2525,
  commands: [site],
  esmtpParameters: [priority],
  // Called at each EHLO with the built-in keyword lines; may differ per client (ctx.server.remoteIp ...).
  ehloKeywords: (_ctx, keywords) => [...keywords, "MT-PRIORITY"],
  disabledCommands: ["VRFY", "EXPN"],
  onMessageDataEvent(ctx) {
    received++;
    console.log(`priority ${ctx.envelope.values.priority ?? 0}: ${ctx.envelope.from} -> ${ctx.envelope.to.join(", ")}`);
  },
});
await server.start();
console.log(`Ready for connections on ${server.addresses.join(", ")}`);

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, async () => {
    await server.stop({ gracefully: true, waitSecondsBeforeClose: 2 });
    console.log("SiteServer down!");
    process.exit(0);
  });
}
await server.join();
