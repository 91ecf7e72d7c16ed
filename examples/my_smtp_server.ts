/**
 * The seed README's example, ported: a subclass that overrides the hooks,
 * logs each step, shows each message, and shuts down gracefully.
 *
 * Run: `deno run -A examples/my_smtp_server.ts`, `bun examples/my_smtp_server.ts`
 * or `npx tsx examples/my_smtp_server.ts`; then send mail to 127.0.0.1:2525
 * (set SMTP_PORT to use another port, 0 for any free one).
 */
import process from "node:process";
import { MidiSmtpServer, Smtpd550Exception, type SmtpdContext } from "../mod.ts";

/** Our server: each hook returns to accept, or throws an Smtpd…Exception to refuse. */
class MySmtpServer extends MidiSmtpServer {
  // get event on HELO/EHLO:
  override onHeloEvent(ctx: SmtpdContext, heloData: string): void {
    console.log(`${new Date().toISOString()}: ${ctx.server.remoteIp} on helo event with data: [${heloData}]`);
  }

  // get address sent in MAIL FROM:
  override onMailFromEvent(ctx: SmtpdContext, mailFromData: string): void {
    console.log(`${new Date().toISOString()}: ${ctx.server.remoteIp} on mail from event with data: [${mailFromData}]`);
  }

  // get each address sent in RCPT TO:
  override onRcptToEvent(ctx: SmtpdContext, rcptToData: string): void {
    console.log(`${new Date().toISOString()}: ${ctx.server.remoteIp} on rcpt to event with data: [${rcptToData}]`);
    // Refuse a recipient: the client gets "550 5.1.1 Requested action not taken: mailbox unavailable".
    if (rcptToData === "<not.name@domain.con>") throw new Smtpd550Exception();
  }

  // get each message after DATA <message> .
  override onMessageDataEvent(ctx: SmtpdContext): void {
    console.log(
      `${new Date().toISOString()}: ${ctx.server.remoteIp} on message data event with sender: ` +
        `[${ctx.envelope.from}] for recipient(s): [${ctx.envelope.to.join(", ")}]`,
    );
    // handle incoming mail, just show the message source
    console.log(ctx.message.text);
  }
}

console.log(`${new Date().toISOString()}: Starting MySmtpServer...`);

// Listen on 127.0.0.1:2525 and serve up to 5 sessions at the same time.
const server = new MySmtpServer({
  hosts: "127.0.0.1",
  ports: process.env.SMTP_PORT ?? 2525,
  maxProcessings: 5,
  loggerSeverity: "info",
});
await server.start();
console.log(`${new Date().toISOString()}: Ready for connections on ${server.addresses.join(", ")}`);

// Shut down gracefully on Ctrl-C or SIGTERM: running sessions get 2 seconds to finish.
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, async () => {
    console.log(`${new Date().toISOString()}: Shutdown MySmtpServer...`);
    await server.stop({ gracefully: true, waitSecondsBeforeClose: 2 });
    console.log(`${new Date().toISOString()}: MySmtpServer down!`);
    process.exit(0);
  });
}

// Run the server until it is stopped.
await server.join();
