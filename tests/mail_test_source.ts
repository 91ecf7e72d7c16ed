/**
 * The text of an application's mail test, as a user of the testing entry
 * writes it, for a scratch project run by a test runner of its own
 * (tests/testing_entry.test.ts: `Deno.test`, `bun test`, `node --test`;
 * tests/npm_package.test.ts: jest and vitest on the installed package). Two
 * tests: a plain message, and one over STARTTLS verified against the
 * returned CA with AUTH (the certificate is made with WebCrypto inside the
 * runner).
 */

/** What the runner needs before the tests: imports giving `test`, `nodemailer`, `startTestServer` and `equal(a, b)`. */
export interface MailTestSource {
  head: string;
  /**
   * `await using` (closes the server at the end of the scope), or try/finally
   * for runners that load the file as it is on a Node without it (jest).
   */
  cleanup: "await using" | "finally";
}

/** The test file's text. */
export function mailTestSource({ head, cleanup }: MailTestSource): string {
  const withServer = (options: string, body: string) =>
    cleanup === "await using"
      ? `  await using server = await startTestServer(${options});\n${body}`
      : `  const server = await startTestServer(${options});\n  try {\n${
        body.replace(/^/gm, "  ")
      }\n  } finally {\n    await server.close();\n  }`;
  return `${head}

test("a confirmation mail arrives", async () => {
${
    withServer(
      "",
      `  const mailer = nodemailer.createTransport({ host: server.host, port: server.port });
  await mailer.sendMail({ from: "app@example.com", to: "ann@example.com", subject: "Welcome", text: "Hi" });
  mailer.close();
  const message = await server.waitForMessage((m) => m.rcptTo.includes("ann@example.com"), { timeout: 5000 });
  equal(message.headers.get("subject"), "Welcome");
  equal(message.envelope.from, "<app@example.com>");`,
    )
  }
});

test("STARTTLS against the returned CA, with AUTH", async () => {
${
    withServer(
      `{ tls: true, users: { app: "secret" } }`,
      `  const mailer = nodemailer.createTransport({
    host: server.host, port: server.port, requireTLS: true,
    tls: { ca: server.ca, rejectUnauthorized: true }, auth: { user: "app", pass: "secret" },
  });
  await mailer.sendMail({ from: "app@example.com", to: "bob@example.com", subject: "Secure", text: "Hi" });
  mailer.close();
  const message = await server.waitForMessage(undefined, { timeout: 5000 });
  equal(message.client.authenticationId, "app");
  equal(message.client.tls !== null, true);`,
    )
  }
});
`;
}
