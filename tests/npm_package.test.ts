/**
 * The npm package end to end, run under all three runtimes:
 *
 *   deno test -A tests/npm_package.test.ts
 *   bun test ./tests/npm_package.test.ts
 *   node --import tsx --test tests/npm_package.test.ts
 *
 * Builds the package with scripts/build_npm.ts into a temporary directory
 * (never ./npm, so parallel runs do not collide), packs it with `npm pack`,
 * installs the tarball offline into a scratch project and there, always with
 * Node whatever runtime runs this file, imports "midi-smtp-server", receives a
 * message over a real SMTP session and type-checks a consumer against the
 * installed `.d.ts` files.
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
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const PACKAGE = "midi-smtp-server";
/** Compiling, packing and installing take a few seconds; leave room for slow machines. */
const SLOW = { timeout: 120_000 };
const windows = process.platform === "win32";

const work = mkdtempSync(join(tmpdir(), "midi-smtp-npm-"));
const outDir = join(work, "npm");
const scratch = join(work, "scratch");
/** Decided before building: the CLI is someone else's file and may appear later. */
const cliSourceExists = existsSync(join(ROOT, "src", "cli.ts"));

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
  // The package's dependencies (selfsigned) come from npm's own cache, which
  // the project's `npm ci` has filled; --prefer-offline reaches the registry only if it must.
  env.npm_config_update_notifier = "false";
  env.npm_config_fund = "false";
  env.npm_config_audit = "false";
  env.npm_config_loglevel = "error";
  env.NO_COLOR = "1";
  return env;
}

/** Runs a command to its end; fails the test with its output unless it exits 0. */
function run(command: string, args: string[], cwd: string, timeoutMs = 90_000): Ran {
  const result = spawnSync(command, args, {
    cwd,
    env: childEnv(),
    encoding: "utf8",
    timeout: timeoutMs,
    shell: windows && !command.endsWith(".exe"),
  });
  const ran = { status: result.status, stdout: result.stdout ?? "", stderr: result.stderr ?? "" };
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
    assert.deepEqual(pkg.exports["."], { types: "./esm/mod.d.ts", import: "./esm/mod.js" });
    assert.equal(pkg.exports["./cli"].import, "./esm/src/cli.js");
    assert.deepEqual(pkg.bin, { [PACKAGE]: "./esm/src/cli.js" });
    assert.deepEqual(pkg.engines, { node: ">=20" });
    assert.deepEqual(pkg.dependencies, deno.npmDependencies ?? {});
    assert.ok(Array.isArray(pkg.files) && pkg.files.includes("esm/"));
    assert.ok(Array.isArray(pkg.keywords) && pkg.keywords.includes("smtp"));
    assert.ok(!existsSync(join(outDir, "tsconfig.build.json")), "the generated tsconfig must not be left behind");
  });

  it("emits a .d.ts for every .js, importing .js paths only", SLOW, () => {
    build();
    const files = walk(join(outDir, "esm"));
    const js = files.filter((f) => f.endsWith(".js"));
    assert.ok(js.length >= 10, `only ${js.length} .js files`);
    for (
      const f of ["mod.js", "src/server.js", "src/transport/node.js", "src/transport/deno.js", "src/transport/bun.js"]
    ) {
      assert.ok(existsSync(join(outDir, "esm", f)), `esm/${f} missing`);
    }
    for (const file of js) {
      const dts = file.slice(0, -3) + ".d.ts";
      assert.ok(existsSync(dts), `${dts} missing`);
      const code = readFileSync(file, "utf8");
      assert.doesNotMatch(code, /(?:from\s*|import\s*\(\s*)["']\.{1,2}\/[^"']*\.ts["']/, `${file} imports a .ts path`);
      assert.doesNotMatch(readFileSync(dts, "utf8"), /\.ts"/, `${dts} still has a .ts" path`);
    }
    // ES2022 ESM: no CommonJS leftovers.
    const mod = readFileSync(join(outDir, "esm", "mod.js"), "utf8");
    assert.match(mod, /^export \{ MidiSmtpServer \} from "\.\/src\/server\.js";$/m);
    assert.doesNotMatch(mod, /require\(|exports\./);
  });

  it("packs a tarball holding only the package files", SLOW, () => {
    const { files } = pack();
    for (const f of ["package.json", "LICENSE", "esm/mod.js", "esm/mod.d.ts", "esm/src/server.js"]) {
      assert.ok(files.includes(f), `${f} not in the tarball: ${files.join(", ")}`);
    }
    if (existsSync(join(ROOT, "README.md"))) assert.ok(files.includes("README.md"), "README.md not in the tarball");
    for (const f of files) {
      assert.ok(
        /^(esm\/.+\.(js|d\.ts)|package\.json|README\.md|LICENSE)$/.test(f),
        `unexpected file in the tarball: ${f}`,
      );
    }
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
        compilerOptions: {
          target: "ES2022",
          lib: ["ES2022"],
          module: "nodenext",
          moduleResolution: "nodenext",
          strict: true,
          noEmit: true,
          // Check the package's declarations too; @types/node is not ours to check.
          skipLibCheck: false,
          types: ["node"],
          typeRoots: [join(ROOT, "node_modules", "@types")],
        },
        files: [join(scratch, "consumer.ts")],
      }),
    );
    const tsc = join(ROOT, "node_modules", ".bin", windows ? "tsc.cmd" : "tsc");
    run(tsc, ["-p", join(scratch, "tsconfig.consumer.json"), "--pretty", "false"], scratch);
  });

  it("installs the midi-smtp-server command", SLOW, () => {
    const dir = install();
    const pkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8"));
    assert.deepEqual(pkg.bin, { [PACKAGE]: "./esm/src/cli.js" });
    if (!cliSourceExists) return; // src/cli.ts is not written yet: the bin entry is all there is to check.
    const cli = join(dir, "esm", "src", "cli.js");
    const code = readFileSync(cli, "utf8");
    assert.ok(code.startsWith("#!/usr/bin/env node\n"), "cli.js must start with a node shebang");
    if (!windows) assert.ok((statSync(cli).mode & 0o111) !== 0, "cli.js must be executable");
    const bin = join(scratch, "node_modules", ".bin", windows ? `${PACKAGE}.cmd` : PACKAGE);
    assert.ok(existsSync(bin), `${bin} missing`);
    run(bin, ["--help"], scratch, 30_000);
  });
});
