/**
 * The npm package end to end, run under all three runtimes:
 *
 *   deno test -A tests/npm_package.test.ts
 *   bun test ./tests/npm_package.test.ts
 *   node --import tsx --test tests/npm_package.test.ts
 *
 * Builds the package with scripts/build_npm.ts into a temporary directory
 * (never ./npm, so parallel runs do not collide), packs it with `npm pack`,
 * checks the tarball with @arethetypeswrong/cli (profile node16) and
 * `publint --strict`, installs it offline into a scratch project and there,
 * always with Node whatever runtime runs this file:
 *
 * - imports "midi-smtp-server" and receives a message over a real SMTP
 *   session, byte-exact;
 * - uses the main and the testing entry from CommonJS (`require`) and from
 *   ESM (`import`);
 * - type-checks and runs TypeScript consumers of both entries: one with
 *   `module: node16` (an `.mts` and a `.cts` file) and one with
 *   `moduleResolution: bundler`;
 * - runs an application's mail test through the testing entry under jest
 *   (CommonJS) and vitest (ESM).
 *
 * The steps run inside the tests (not in `before`), because Bun gives hooks a
 * fixed 5 s limit; each step runs once and a failure is reported by every test
 * that needs it.
 */
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { spawnSync } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { mailTestSource } from "./mail_test_source.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const PACKAGE = "midi-smtp-server";
/** The placeholder home of the project until a public repository exists (scripts/build_npm.ts PROJECT_URL). */
const PROJECT_URL = "https://github.com/midi-smtp-server/midi-smtp-server-ts";
/** Compiling, packing and installing take a few seconds; leave room for slow machines. */
const SLOW = { timeout: 120_000 };
const windows = process.platform === "win32";

const work = mkdtempSync(join(tmpdir(), "midi-smtp-npm-"));
const outDir = join(work, "npm");
const scratch = join(work, "scratch");
/** Decided before building: the CLI is someone else's file and may appear later. */
const cliSourceExists = existsSync(join(ROOT, "src", "cli.ts"));
/** Likewise the testing entry (src/testing.ts): its tests are skipped, saying so, until it exists. */
const testingSourceExists = existsSync(join(ROOT, "src", "testing.ts"));
const NO_TESTING = testingSourceExists ? false : "src/testing.ts does not exist yet";
const bin = (name: string) => join(ROOT, "node_modules", ".bin", windows ? `${name}.cmd` : name);

// ---------------------------------------------------------------------------
// helpers

interface Ran {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Environment for child processes: npm settings of a surrounding `npm test` left out, a private npm cache. */
function childEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (value !== undefined && !/^npm_/i.test(key)) env[key] = value;
  }
  // The package has no dependencies today; should it get some, they come from npm's own
  // cache, which the project's `npm ci` has filled (--prefer-offline reaches the registry only if it must).
  env.npm_config_update_notifier = "false";
  env.npm_config_fund = "false";
  env.npm_config_audit = "false";
  env.npm_config_loglevel = "error";
  env.NO_COLOR = "1";
  return env;
}

/** Runs a command to its end and returns what it printed, whatever its exit status. */
function runAnyway(command: string, args: string[], cwd: string, timeoutMs = 90_000): Ran & { error?: Error } {
  const result = spawnSync(command, args, {
    cwd,
    env: childEnv(),
    encoding: "utf8",
    timeout: timeoutMs,
    shell: windows && !command.endsWith(".exe"),
  });
  return { status: result.status, stdout: result.stdout ?? "", stderr: result.stderr ?? "", error: result.error };
}

/** Runs a command to its end; fails the test with its output unless it exits 0. */
function run(command: string, args: string[], cwd: string, timeoutMs = 90_000): Ran {
  const result = runAnyway(command, args, cwd, timeoutMs);
  const ran = { status: result.status, stdout: result.stdout, stderr: result.stderr };
  if (result.error || result.status !== 0) {
    assert.fail(
      `${command} ${args.join(" ")} (in ${cwd}) failed: ${result.error?.message ?? `exit ${result.status}`}\n` +
        `--- stdout\n${ran.stdout}\n--- stderr\n${ran.stderr}`,
    );
  }
  return ran;
}

/** Runs `fn` the first time only; later calls get its result or its error again. */
function once<T>(fn: () => T): () => T {
  let outcome: { ok: true; value: T } | { ok: false; error: unknown } | undefined;
  return () => {
    if (!outcome) {
      try {
        outcome = { ok: true, value: fn() };
      } catch (error) {
        outcome = { ok: false, error };
      }
    }
    if (!outcome.ok) throw outcome.error;
    return outcome.value;
  };
}

function walk(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...walk(path));
    else out.push(path);
  }
  return out;
}

// deno-lint-ignore no-explicit-any
type Json = any;

// ---------------------------------------------------------------------------
// the steps

const build = once((): { packageJson: Json; log: string } => {
  const ran = run("node", ["--import", "tsx", join(ROOT, "scripts", "build_npm.ts"), "--out", outDir], ROOT);
  return { packageJson: JSON.parse(readFileSync(join(outDir, "package.json"), "utf8")), log: ran.stdout };
});

const pack = once((): { tarball: string; files: string[] } => {
  build();
  const ran = run("npm", ["pack", "--json", "--ignore-scripts", "--pack-destination", work], outDir);
  const info = JSON.parse(ran.stdout.slice(ran.stdout.indexOf("["))) as Array<
    { filename: string; files: Array<{ path: string }> }
  >;
  assert.equal(info.length, 1, ran.stdout);
  return { tarball: join(work, info[0].filename), files: info[0].files.map((f) => f.path).sort() };
});

const install = once((): string => {
  const { tarball } = pack();
  mkdirSync(scratch, { recursive: true });
  writeFileSync(
    join(scratch, "package.json"),
    JSON.stringify({ name: "scratch", version: "0.0.0", private: true, type: "module" }, null, 2),
  );
  run("npm", ["install", "--prefer-offline", "--no-audit", "--no-fund", "--ignore-scripts", tarball], scratch);
  return join(scratch, "node_modules", PACKAGE);
});

/**
 * A project folder in the scratch project holding one test file for a third-party runner; the packages
 * it needs beside the installed tarball (nodemailer, the runner) are this repository's, linked into the
 * scratch project's node_modules as a user's own install would hold them.
 */
function runnerProject(name: string, file: string, text: string): string {
  install();
  for (const dep of ["nodemailer", "vitest"]) {
    const link = join(scratch, "node_modules", dep);
    if (!existsSync(link)) symlinkSync(join(ROOT, "node_modules", dep), link, "dir");
  }
  const app = join(scratch, name);
  mkdirSync(app, { recursive: true });
  writeFileSync(join(app, file), text);
  return app;
}

/** jest (30) runs CommonJS as it is, on a Node that may lack `await using`; `test` and `expect` are its globals. */
const JEST_TEST = mailTestSource({
  head: `const nodemailer = require("nodemailer");
const { startTestServer } = require("${PACKAGE}/testing");
const equal = (a, b) => expect(a).toBe(b);`,
  cleanup: "finally",
});

const VITEST_TEST = mailTestSource({
  head: `import { expect, test } from "vitest";
import nodemailer from "nodemailer";
import { startTestServer } from "${PACKAGE}/testing";
const equal = (a, b) => expect(a).toBe(b);`,
  cleanup: "await using",
});

/** vitest 4 runs on what its vite allows (Node ^20.19 or >= 22.12); the `node` these tests start may be older. */
const VITEST_UNSUPPORTED = (() => {
  const probe = runAnyway("node", ["-p", "process.versions.node"], ROOT);
  // A failed probe runs the test (and fails it) rather than skipping it.
  if (probe.status !== 0) return false;
  const version = probe.stdout.trim();
  const [major, minor] = version.split(".").map(Number);
  const ok = (major === 20 && minor >= 19) || (major === 22 && minor >= 12) || major > 22;
  return ok ? false : `vitest 4 needs Node ^20.19 or >= 22.12 (its vite's engines); this node is ${version}`;
})();

/** The wire form of the test message (dot-stuffed) and what the server must hand to the hook. */
const WIRE_MESSAGE = Buffer.concat([
  Buffer.from(
    "From: <alice@example.com>\r\n" +
      "To: <bob@example.com>\r\n" +
      "Subject: from the packed tarball\r\n" +
      "\r\n" +
      "Hello from npm.\r\n" +
      "..a line that starts with a dot\r\n" +
      "...two dots\r\n" +
      "\r\n" +
      "8-bit: ",
  ),
  Buffer.from([0xc3, 0xa9, 0xe2, 0x82, 0xac, 0x09, 0x20]),
  Buffer.from("\r\nlast line\r\n"),
]);
const EXPECTED_DATA = Buffer.from(
  WIRE_MESSAGE.toString("latin1").replace("\r\n..a line", "\r\n.a line").replace("\r\n...two", "\r\n..two"),
  "latin1",
);

/** Runs with Node in the scratch project: the package as a user gets it. */
const SMOKE_SCRIPT = `
import { Buffer } from "node:buffer";
import * as net from "node:net";
import { MidiSmtpServer, detectRuntime } from "${PACKAGE}";

const wire = Buffer.from(process.argv[2], "base64");
const messages = [];
const replies = [];
let stage = "start";
const guard = setTimeout(() => {
  console.error("smoke test timed out at " + stage + "; replies: " + JSON.stringify(replies) + "; messages: " + messages.length);
  process.exit(2);
}, 20000);
const server = new MidiSmtpServer({
  hosts: "127.0.0.1",
  ports: 0,
  internationalizationExtensions: true,
  loggerSeverity: "fatal",
  onLoggingEvent() {},
  onMessageDataEvent(ctx) {
    messages.push({
      from: ctx.envelope.from,
      to: [...ctx.envelope.to],
      bytesize: ctx.message.bytesize,
      data: Buffer.from(ctx.message.data).toString("base64"),
    });
  },
});
stage = "server start";
await server.start();
stage = "connect";
const address = server.addresses[0];
const port = Number(address.slice(address.lastIndexOf(":") + 1));

const socket = net.connect({ host: "127.0.0.1", port });
await new Promise((resolve, reject) => { socket.once("connect", resolve); socket.once("error", reject); });
let buffer = "";
let wake;
let closed = false;
socket.on("data", (chunk) => { buffer += chunk.toString("latin1"); wake?.(); });
socket.on("close", () => { closed = true; wake?.(); });
async function reply() {
  for (;;) {
    const m = /^(?:\\d{3}-[^\\n]*\\n)*(\\d{3}) [^\\n]*\\n/.exec(buffer);
    if (m) { buffer = buffer.slice(m[0].length); return { code: Number(m[1]), text: m[0] }; }
    if (closed) throw new Error("connection closed while waiting for a reply; got " + JSON.stringify(buffer));
    await new Promise((resolve) => { wake = resolve; });
  }
}
async function send(data, label) {
  stage = label;
  if (data !== null) socket.write(data);
  const r = await reply();
  replies.push({ step: label, code: r.code, text: r.text });
  return r;
}
await send(null, "greeting");
await send("EHLO client.example\\r\\n", "EHLO");
await send("MAIL FROM:<alice@example.com> BODY=8BITMIME\\r\\n", "MAIL");
await send("RCPT TO:<bob@example.com>\\r\\n", "RCPT");
await send("DATA\\r\\n", "DATA");
await send(Buffer.concat([wire, Buffer.from(".\\r\\n")]), "message");
await send("QUIT\\r\\n", "QUIT");
stage = "waiting for close";
while (!closed) await new Promise((resolve) => { wake = resolve; });
stage = "stop";
await server.stop({ gracefully: false, waitSecondsBeforeClose: 0 });
clearTimeout(guard);
console.log(JSON.stringify({
  runtime: detectRuntime(),
  node: process.version,
  resolved: import.meta.resolve("${PACKAGE}"),
  replies,
  messages,
}));
`;

const smoke = once((): Json => {
  const dir = install();
  assert.ok(existsSync(dir), `${dir} is missing after npm install`);
  writeFileSync(join(scratch, "smoke.mjs"), SMOKE_SCRIPT);
  const ran = run("node", ["smoke.mjs", WIRE_MESSAGE.toString("base64")], scratch, 60_000);
  const lines = ran.stdout.trim().split("\n");
  return JSON.parse(lines[lines.length - 1]);
});

/** A TypeScript user of the package: must compile against the shipped declarations alone. */
const CONSUMER_TS = `
import { MidiSmtpServer, Smtpd550Exception, type SmtpdContext, type MidiSmtpServerOptions } from "${PACKAGE}";

const options: MidiSmtpServerOptions = {
  ports: 0,
  onRcptToEvent(_ctx: SmtpdContext, rcpt: string): void {
    if (!rcpt.endsWith("@example.com>")) throw new Smtpd550Exception();
  },
  onMessageDataEvent(ctx: SmtpdContext): void {
    const size: number = ctx.message.bytesize;
    const data: Uint8Array = ctx.message.data;
    const to: string[] = ctx.envelope.to;
    console.log(size, data.length, to);
  },
};
const server: MidiSmtpServer = new MidiSmtpServer(options);
const started: Promise<void> = server.start();
const addresses: string[] = server.addresses;
export { addresses, started };
`;

/**
 * A program using the main entry and the testing entry the way an application's test suite would: starts a test
 * server (with a hook that refuses one recipient), sends it a message over a raw socket, waits for it, then prints
 * what it saw as one JSON line. The same code for every project: ESM or CommonJS, JavaScript or TypeScript.
 */
function consumerSource(format: "esm" | "cjs", typescript: boolean): string {
  const t = (annotation: string) => (typescript ? annotation : "");
  const useImport = format === "esm" || typescript;
  const imports = useImport
    ? `import { once } from "node:events";
import { connect } from "node:net";
${
      format === "esm"
        ? 'import { fileURLToPath } from "node:url";\n'
        : ""
    }import { MidiSmtpServer, Smtpd550Exception, detectRuntime${t(", type MidiSmtpServerOptions")} } from "${PACKAGE}";
import { parseHeaders, startTestServer${t(", type TestMessage, type TestServer")} } from "${PACKAGE}/testing";
import { parseCliArgs } from "${PACKAGE}/cli";`
    : `const { once } = require("node:events");
const { connect } = require("node:net");
const { MidiSmtpServer, Smtpd550Exception, detectRuntime } = require("${PACKAGE}");
const { parseHeaders, startTestServer } = require("${PACKAGE}/testing");
const { parseCliArgs } = require("${PACKAGE}/cli");`;
  const resolve = format === "esm"
    ? `(name${t(": string")}) => fileURLToPath(import.meta.resolve(name))`
    : `(name${t(": string")}) => require.resolve(name)`;
  const typeChecks = typescript
    ? `
  // The declarations are real types, not any: these lines must be type errors.
  // @ts-expect-error port is a number
  const wrongPort: string = server.port;
  // @ts-expect-error no such option
  const wrongOption: MidiSmtpServerOptions = { portz: 1 };
  void wrongPort;
  void wrongOption;`
    : "";
  return `${imports}

const resolvePackage = ${resolve};

async function main()${t(": Promise<void>")} {
  const refused${t(": string[]")} = [];
  const server${t(": TestServer")} = await startTestServer({
    onRcptToEvent(_ctx, rcptTo) {
      if (rcptTo.includes("nobody@")) {
        refused.push(rcptTo);
        throw new Smtpd550Exception();
      }
    },
  });${typeChecks}
  const client = connect(server.port, server.host);
  client.setEncoding("latin1");
  let transcript = "";
  client.on("data", (chunk${t(": string")}) => {
    transcript += chunk;
  });
  await once(client, "data");
  client.write(
    "EHLO app.example\\r\\nMAIL FROM:<app@example.com>\\r\\nRCPT TO:<nobody@example.com>\\r\\n" +
      "RCPT TO:<ann@example.com>\\r\\nDATA\\r\\nSubject: Welcome\\r\\n\\r\\nHello Ann\\r\\n.\\r\\nQUIT\\r\\n",
  );
  const isForAnn = (m${t(": TestMessage")}) => m.rcptTo.includes("ann@example.com");
  const message = await server.waitForMessage(isForAnn, { timeout: 10000 });
  await once(client, "close");
  const result = {
    runtime: detectRuntime(),
    main: resolvePackage("${PACKAGE}"),
    testing: resolvePackage("${PACKAGE}/testing"),
    cli: typeof parseCliArgs,
    sameServerClass: server.server instanceof MidiSmtpServer,
    mailFrom: message.mailFrom,
    rcptTo: [...message.rcptTo],
    subject: message.headers.get("subject"),
    parsed: parseHeaders("Subject: x\\r\\n\\r\\n").get("SUBJECT"),
    text: message.text,
    refused,
    replies: transcript.split("\\r\\n").filter((line) => /^\\d{3} /.test(line)).map((line) => line.slice(0, 3)),
    messages: server.messages.length,
  };
  server.clear();
  const cleared = server.messages.length;
  await server.close();
  console.log(JSON.stringify({ ...result, cleared }));
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
`;
}

/** Compiler options of the TypeScript consumers; the package's declarations are checked too (skipLibCheck off). */
const TS_COMMON = {
  target: "ES2022",
  lib: ["ES2022"],
  strict: true,
  skipLibCheck: false,
  types: ["node"],
  typeRoots: [join(ROOT, "node_modules", "@types")],
};

/** The consumer projects, written next to the installed package; returns the files to run with Node. */
const consumers = once((): Record<string, string> => {
  install();
  const files: Record<string, string> = {
    "ESM (import)": join(scratch, "consumer-esm.mjs"),
    "CommonJS (require)": join(scratch, "consumer-cjs.cjs"),
  };
  writeFileSync(files["ESM (import)"], consumerSource("esm", false));
  writeFileSync(files["CommonJS (require)"], consumerSource("cjs", false));
  // TypeScript, module node16: an .mts (ESM) and a .cts (CommonJS) file, compiled to .mjs and .cjs.
  const node16 = join(scratch, "ts-node16");
  mkdirSync(node16, { recursive: true });
  writeFileSync(join(node16, "consumer.mts"), consumerSource("esm", true));
  writeFileSync(join(node16, "consumer.cts"), consumerSource("cjs", true));
  writeFileSync(
    join(node16, "tsconfig.json"),
    JSON.stringify({
      compilerOptions: { ...TS_COMMON, module: "node16", moduleResolution: "node16", outDir: "out" },
      files: ["consumer.mts", "consumer.cts"],
    }),
  );
  files["TypeScript node16 (.mts)"] = join(node16, "out", "consumer.mjs");
  files["TypeScript node16 (.cts)"] = join(node16, "out", "consumer.cjs");
  // TypeScript, moduleResolution bundler (vite, esbuild, webpack users): ESM output run by Node as is.
  const bundler = join(scratch, "ts-bundler");
  mkdirSync(bundler, { recursive: true });
  writeFileSync(join(bundler, "package.json"), JSON.stringify({ private: true, type: "module" }));
  writeFileSync(join(bundler, "consumer.ts"), consumerSource("esm", true));
  writeFileSync(
    join(bundler, "tsconfig.json"),
    JSON.stringify({
      compilerOptions: { ...TS_COMMON, module: "esnext", moduleResolution: "bundler", outDir: "out" },
      files: ["consumer.ts"],
    }),
  );
  files["TypeScript bundler"] = join(bundler, "out", "consumer.js");
  return files;
});

/** Type-checks and compiles the TypeScript project in `dir` with the project's tsc. */
function compileTypeScript(dir: string): void {
  run(bin("tsc"), ["-p", join(dir, "tsconfig.json"), "--pretty", "false"], dir);
}

/** Runs one consumer with Node and checks what it printed; `format` is the build it must have loaded. */
function runConsumer(file: string, format: "esm" | "cjs"): void {
  const ran = run("node", [file], dirname(file), 60_000);
  const lines = ran.stdout.trim().split("\n");
  const result = JSON.parse(lines[lines.length - 1]);
  const installed = join(scratch, "node_modules", PACKAGE);
  assert.equal(result.main, join(installed, format, "mod.js"), "the main entry resolved to the wrong build");
  assert.equal(result.testing, join(installed, format, "src", "testing.js"), "the testing entry: wrong build");
  assert.equal(result.runtime, "node");
  assert.equal(result.cli, "function");
  assert.equal(result.sameServerClass, true, "the testing entry must use the main entry's MidiSmtpServer");
  assert.equal(result.mailFrom, "app@example.com");
  assert.deepEqual(result.rcptTo, ["ann@example.com"]);
  assert.deepEqual(result.refused, ["<nobody@example.com>"]);
  assert.equal(result.subject, "Welcome");
  assert.equal(result.parsed, "x");
  assert.equal(result.text, "Subject: Welcome\r\n\r\nHello Ann\r\n");
  // The refusal is the hook's 550, not a 451: the exception class is the one the server checks for.
  assert.deepEqual(result.replies, ["220", "250", "250", "550", "250", "354", "250", "221"]);
  assert.equal(result.messages, 1);
  assert.equal(result.cleared, 0);
}

// ---------------------------------------------------------------------------
// the tests

describe("npm package", () => {
  after(() => {
    rmSync(work, { recursive: true, force: true });
  });

  it("builds with tsc: package.json has the npm fields", SLOW, () => {
    const { packageJson: pkg } = build();
    const deno = JSON.parse(readFileSync(join(ROOT, "deno.json"), "utf8"));
    assert.equal(pkg.name, PACKAGE);
    assert.equal(pkg.version, deno.version);
    assert.equal(pkg.type, "module");
    assert.equal(pkg.license, "MIT");
    assert.equal(typeof pkg.description, "string");
    assert.deepEqual(pkg.repository, { type: "git", url: `git+${PROJECT_URL}.git` });
    assert.equal(pkg.homepage, `${PROJECT_URL}#readme`);
    assert.deepEqual(pkg.bugs, { url: `${PROJECT_URL}/issues` });
    const both = (stem: string) => ({
      import: { types: `./esm/${stem}.d.ts`, default: `./esm/${stem}.js` },
      require: { types: `./cjs/${stem}.d.ts`, default: `./cjs/${stem}.js` },
    });
    assert.deepEqual(pkg.exports["."], both("mod"));
    // Types first in every branch: TypeScript takes the first condition that matches.
    for (const [subpath, target] of Object.entries(pkg.exports)) {
      if (typeof target === "string") continue;
      for (const branch of Object.values(target as Record<string, Record<string, string>>)) {
        assert.equal(Object.keys(branch)[0], "types", `exports["${subpath}"]: types must come first`);
      }
    }
    // The npm entry points are deno.json's, so JSR and npm offer the same ones.
    const expected = Object.keys(deno.exports).filter((subpath) =>
      existsSync(join(ROOT, (deno.exports[subpath] as string).slice(2)))
    );
    assert.deepEqual(Object.keys(pkg.exports).sort(), [...expected, "./package.json"].sort());
    if (cliSourceExists) assert.deepEqual(pkg.exports["./cli"], both("src/cli"));
    if (testingSourceExists) assert.deepEqual(pkg.exports["./testing"], both("src/testing"));
    assert.equal(pkg.main, "./cjs/mod.js");
    assert.equal(pkg.types, "./cjs/mod.d.ts");
    assert.deepEqual(pkg.bin, { [PACKAGE]: "./esm/src/cli.js" });
    assert.deepEqual(pkg.engines, { node: ">=20.10" });
    // Only the CLI does something when loaded (and only as the program).
    assert.deepEqual(pkg.sideEffects, ["./esm/src/cli.js", "./cjs/src/cli.js"]);
    assert.deepEqual(pkg.dependencies ?? {}, deno.npmDependencies ?? {});
    assert.deepEqual(pkg.files, ["esm/", "cjs/", "README.md", "LICENSE"]);
    assert.ok(Array.isArray(pkg.keywords) && pkg.keywords.includes("smtp"));
    assert.ok(!existsSync(join(outDir, "tsconfig.build.json")), "the generated tsconfig must not be left behind");
    assert.ok(!existsSync(join(outDir, "cjs-src")), "the CommonJS staging copy must not be left behind");
  });

  it("emits a .d.ts for every .js, importing .js paths only, in both formats", SLOW, () => {
    build();
    for (const format of ["esm", "cjs"]) {
      const files = walk(join(outDir, format));
      const js = files.filter((f) => f.endsWith(".js"));
      assert.ok(js.length >= 10, `only ${js.length} .js files in ${format}/`);
      for (
        const f of ["mod.js", "src/server.js", "src/transport/node.js", "src/transport/deno.js", "src/transport/bun.js"]
      ) {
        assert.ok(existsSync(join(outDir, format, f)), `${format}/${f} missing`);
      }
      for (const file of js) {
        const dts = file.slice(0, -3) + ".d.ts";
        assert.ok(existsSync(dts), `${dts} missing`);
        const code = readFileSync(file, "utf8");
        assert.doesNotMatch(
          code,
          /(?:from\s*|import\s*\(\s*|require\(\s*)["']\.{1,2}\/[^"']*\.ts["']/,
          `${file} imports a .ts path`,
        );
        assert.doesNotMatch(readFileSync(dts, "utf8"), /\.ts"/, `${dts} still has a .ts" path`);
        if (format === "cjs") {
          // CommonJS cannot have them; import() would need the ESM loader (missing in jest's CommonJS mode).
          const withoutComments = code.replace(/\/\*[\s\S]*?\*\//g, "").replace(/^\s*\/\/.*$/gm, "");
          assert.doesNotMatch(withoutComments, /\bimport\.meta\b/, `${file} uses import.meta`);
          assert.doesNotMatch(withoutComments, /\bimport\s*\(\s*["'`]/, `${file} uses import()`);
        }
      }
    }
    // ES2022 ESM: no CommonJS leftovers.
    const mod = readFileSync(join(outDir, "esm", "mod.js"), "utf8");
    assert.match(mod, /^export \{ MidiSmtpServer \} from "\.\/src\/server\.js";$/m);
    assert.doesNotMatch(mod, /require\(|exports\./);
    // Every CommonJS file loads with require() (no ESM syntax, no top-level await), in a Node of its own.
    const loader = "const failed = [];" +
      "for (const file of JSON.parse(process.argv[1])) { try { require(file); } catch (error) {" +
      " failed.push(file + ': ' + error.message); } }" +
      "console.log(JSON.stringify(failed));";
    const cjsFiles = walk(join(outDir, "cjs")).filter((f) => f.endsWith(".js")).sort();
    const loaded = run("node", ["-e", loader, JSON.stringify(cjsFiles)], outDir, 60_000);
    assert.deepEqual(JSON.parse(loaded.stdout.trim().split("\n").pop()!), [], "CommonJS files that require() refuses");
    // CommonJS, declared as such for Node and TypeScript.
    assert.deepEqual(JSON.parse(readFileSync(join(outDir, "cjs", "package.json"), "utf8")), { type: "commonjs" });
    assert.match(readFileSync(join(outDir, "cjs", "mod.js"), "utf8"), /^"use strict";/);
    if (cliSourceExists) {
      // The program check, rewritten for CommonJS.
      assert.match(readFileSync(join(outDir, "cjs", "src", "cli.js"), "utf8"), /^if \(require\.main === module\)$/m);
    }
  });

  it("packs a tarball holding only the package files", SLOW, () => {
    const { files } = pack();
    for (
      const f of [
        "package.json",
        "LICENSE",
        "esm/mod.js",
        "esm/mod.d.ts",
        "cjs/mod.js",
        "cjs/mod.d.ts",
        "cjs/package.json",
      ]
    ) {
      assert.ok(files.includes(f), `${f} not in the tarball: ${files.join(", ")}`);
    }
    if (existsSync(join(ROOT, "README.md"))) assert.ok(files.includes("README.md"), "README.md not in the tarball");
    for (const f of files) {
      assert.ok(
        /^((esm|cjs)\/.+\.(js|d\.ts)|cjs\/package\.json|package\.json|README\.md|LICENSE)$/.test(f),
        `unexpected file in the tarball: ${f}`,
      );
    }
  });

  it("has no problems for @arethetypeswrong/cli (profile node16)", SLOW, () => {
    const { tarball } = pack();
    const ran = runAnyway(bin("attw"), [tarball, "--profile", "node16", "--format", "json"], work);
    const report = JSON.parse(ran.stdout || "{}");
    // With --profile node16 only node10 resolutions are ignored (subpaths cannot work there): list everything else.
    const problems = Object.values((report.problems ?? {}) as Record<string, Array<{ resolutionKind?: string }>>)
      .flat()
      .filter((problem) => problem.resolutionKind !== "node10");
    assert.deepEqual(problems, [], "attw problems");
    assert.equal(ran.status, 0, `attw exit status ${ran.status}: ${ran.stderr}${ran.stdout.slice(0, 2000)}`);
    assert.deepEqual(
      Object.keys(report.analysis?.entrypoints ?? {}).sort(),
      Object.keys(build().packageJson.exports).sort(),
      "attw checked every entry point",
    );
  });

  it("has no problems for publint --strict", SLOW, () => {
    const { tarball } = pack();
    const ran = runAnyway(bin("publint"), ["run", "--strict", tarball], work);
    const output = `${ran.stdout}${ran.stderr}`;
    assert.equal(ran.status, 0, output);
    assert.doesNotMatch(output, /^(Errors|Warnings):/m, output);
  });

  it("installs offline from the tarball", SLOW, () => {
    const dir = install();
    const pkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8"));
    assert.equal(pkg.name, PACKAGE);
    assert.ok(existsSync(join(dir, "esm", "mod.js")));
  });

  it("receives a whole SMTP session on Node from the installed package, byte-exact", SLOW, () => {
    const result = smoke();
    assert.equal(result.runtime, "node");
    assert.ok(
      result.resolved.endsWith(`/node_modules/${PACKAGE}/esm/mod.js`),
      `resolved to ${result.resolved}, not the installed package`,
    );
    assert.deepEqual(
      result.replies.map((r: { step: string; code: number }) => `${r.step} ${r.code}`),
      ["greeting 220", "EHLO 250", "MAIL 250", "RCPT 250", "DATA 354", "message 250", "QUIT 221"],
      JSON.stringify(result.replies),
    );
    assert.match(result.replies[1].text, /^250[- ]8BITMIME\r$/m);
    assert.equal(result.messages.length, 1);
    const [message] = result.messages;
    assert.equal(message.from, "<alice@example.com>");
    assert.deepEqual(message.to, ["<bob@example.com>"]);
    const data = Buffer.from(message.data, "base64");
    assert.equal(data.toString("hex"), EXPECTED_DATA.toString("hex"));
    assert.equal(message.bytesize, EXPECTED_DATA.length);
  });

  it("type-checks a TypeScript consumer against the installed .d.ts files", SLOW, () => {
    install();
    writeFileSync(join(scratch, "consumer.ts"), CONSUMER_TS);
    writeFileSync(
      join(scratch, "tsconfig.consumer.json"),
      JSON.stringify({
        compilerOptions: { ...TS_COMMON, module: "nodenext", moduleResolution: "nodenext", noEmit: true },
        files: [join(scratch, "consumer.ts")],
      }),
    );
    run(bin("tsc"), ["-p", join(scratch, "tsconfig.consumer.json"), "--pretty", "false"], scratch);
  });

  it("loads with import: the main and the testing entry from ESM", { ...SLOW, skip: NO_TESTING }, () => {
    runConsumer(consumers()["ESM (import)"], "esm");
  });

  it("loads with require(): the main and the testing entry from CommonJS", { ...SLOW, skip: NO_TESTING }, () => {
    runConsumer(consumers()["CommonJS (require)"], "cjs");
  });

  it("type-checks and runs TypeScript with module node16 (.mts and .cts)", { ...SLOW, skip: NO_TESTING }, () => {
    const files = consumers();
    compileTypeScript(join(scratch, "ts-node16"));
    runConsumer(files["TypeScript node16 (.mts)"], "esm");
    runConsumer(files["TypeScript node16 (.cts)"], "cjs");
  });

  it("type-checks and runs TypeScript with moduleResolution bundler", { ...SLOW, skip: NO_TESTING }, () => {
    const files = consumers();
    compileTypeScript(join(scratch, "ts-bundler"));
    runConsumer(files["TypeScript bundler"], "esm");
  });

  it("runs an application's test under jest (CommonJS), the testing entry from the installed package", {
    ...SLOW,
    skip: NO_TESTING,
  }, () => {
    const app = runnerProject("jest-app", "mail.test.cjs", JEST_TEST);
    const ran = run("node", [
      join(ROOT, "node_modules", "jest", "bin", "jest.js"),
      "--ci",
      "--rootDir",
      app,
      "--cacheDirectory",
      join(work, "jest-cache"),
    ], app);
    assert.match(ran.stderr, /^Tests:\s+2 passed, 2 total$/m, ran.stdout + ran.stderr);
  });

  it(
    "runs an application's test under vitest (TypeScript with await using), the testing entry from the installed package",
    {
      ...SLOW,
      skip: NO_TESTING || VITEST_UNSUPPORTED,
    },
    () => {
      const app = runnerProject("vitest-app", "mail.test.ts", VITEST_TEST);
      const ran = run("node", [join(ROOT, "node_modules", "vitest", "vitest.mjs"), "run", "--root", app], app);
      assert.match(ran.stdout, /^\s*Tests\s+2 passed \(2\)$/m, ran.stdout + ran.stderr);
    },
  );

  it("installs the midi-smtp-server command", SLOW, () => {
    const dir = install();
    const pkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8"));
    assert.deepEqual(pkg.bin, { [PACKAGE]: "./esm/src/cli.js" });
    if (!cliSourceExists) return; // src/cli.ts is not written yet: the bin entry is all there is to check.
    const cli = join(dir, "esm", "src", "cli.js");
    const code = readFileSync(cli, "utf8");
    assert.ok(code.startsWith("#!/usr/bin/env node\n"), "cli.js must start with a node shebang");
    if (!windows) assert.ok((statSync(cli).mode & 0o111) !== 0, "cli.js must be executable");
    const command = join(scratch, "node_modules", ".bin", windows ? `${PACKAGE}.cmd` : PACKAGE);
    assert.ok(existsSync(command), `${command} missing`);
    run(command, ["--help"], scratch, 30_000);
  });
});
