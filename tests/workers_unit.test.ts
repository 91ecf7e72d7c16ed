/**
 * The parts of the worker processes that run in one process (the processes
 * themselves are tests/workers.test.ts): the restart backoff, the mechanism
 * and command line per runtime, the options, the IPC message, `reusePort`
 * in every transport, and the dev server's `--workers` checks. Run under all
 * three runtimes:
 *
 *   deno test -A tests/workers_unit.test.ts
 *   bun test ./tests/workers_unit.test.ts
 *   node --import tsx --test tests/workers_unit.test.ts
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import process from "node:process";
import * as mod from "../mod.ts";
import { MidiSmtpServer } from "../src/server.ts";
import { runWorkers } from "../src/workers.ts";
import { RestartBackoff } from "../src/workers/backoff.ts";
import {
  type DenoProgram,
  denoRuntimeFlags,
  denoWorkerCommand,
  workerCommand,
  workerMechanism,
} from "../src/workers/mechanism.ts";
import { DEFAULT_STOP_TIMEOUT, resolveWorkersOptions } from "../src/workers/options.ts";
import { isListeningMessage, listeningMessage, WORKER_ENV, workerIdFromEnvironment } from "../src/workers/protocol.ts";
import { signalProcess, spawnWorker } from "../src/workers/spawn.ts";
import { Supervisor } from "../src/workers/supervisor.ts";
import type { WorkerEvent, WorkerStatus } from "../src/workers/types.ts";
import { startError } from "../src/workers/worker.ts";
import { nodeNetHasReusePort } from "../src/transport/reuse_port.ts";
import { CliError, DEFAULT_CONFIG, parseCliArgs } from "../src/dev_server/args.ts";
import { checkConfig, serverOptions } from "../src/dev_server/config.ts";
import { describeWorkers } from "../src/dev_server/startup_report.ts";
import { CERTIFICATE_ENV, selfSignedIfNeeded, takeCertificate } from "../src/dev_server/workers.ts";
import { certificateFingerprint } from "../src/tls/certificates.ts";
import { freePort } from "./ports.ts";
import { RawClient, runtime, startServer, TRANSPORTS } from "./helpers.ts";

const start = () => new MidiSmtpServer({ reusePort: true });

describe("the public API", () => {
  it("mod.ts exports runWorkers", () => {
    assert.equal(mod.runWorkers, runWorkers);
  });
});

describe("RestartBackoff", () => {
  it("doubles while a worker keeps dying soon after its start, up to the maximum", () => {
    const backoff = new RestartBackoff(0.5, 4);
    assert.deepEqual([0.1, 0.1, 0.1, 0.1, 0.1, 0.1].map((uptime) => backoff.next(uptime)), [0.5, 1, 2, 4, 4, 4]);
  });

  it("starts over after a worker that stayed up as long as the maximum", () => {
    const backoff = new RestartBackoff(0.5, 4);
    backoff.next(0);
    backoff.next(0);
    assert.equal(backoff.next(4), 0.5);
    assert.equal(backoff.next(1), 1);
  });

  it("refuses a delay of 0 (it would never grow: a spinning restart loop) and a maximum below the first", () => {
    assert.throws(() => new RestartBackoff(0, 30), RangeError);
    assert.throws(() => new RestartBackoff(2, 1), RangeError);
    assert.throws(() => new RestartBackoff(1, Infinity), RangeError);
  });
});

describe("workerMechanism and nodeNetHasReusePort", () => {
  it("SO_REUSEPORT on Deno, Bun and Node >= 22.12 / 23.1 on Linux; node:cluster on older Node and elsewhere", () => {
    const cases: Array<[Parameters<typeof workerMechanism>, string]> = [
      [["deno", "2.9.6", "linux"], "reuseport"],
      [["bun", "1.4.5", "linux"], "reuseport"],
      [["node", "20.20.2", "linux"], "cluster"],
      [["node", "22.11.0", "linux"], "cluster"],
      [["node", "22.12.0", "linux"], "reuseport"],
      [["node", "23.0.0", "linux"], "cluster"],
      [["node", "23.1.0", "linux"], "reuseport"],
      [["node", "24.4.1", "linux"], "reuseport"],
      [["node", "24.4.1", "darwin"], "cluster"],
    ];
    for (const [args, expected] of cases) assert.equal(workerMechanism(...args), expected, args.join(" "));
  });

  it("node:net honours reusePort from Node 22.12 in the 22 line and from 23.1, and always under Deno and Bun", () => {
    assert.equal(nodeNetHasReusePort("node", "20.20.2"), false);
    assert.equal(nodeNetHasReusePort("node", "22.12.0"), true);
    assert.equal(nodeNetHasReusePort("node", "23.0.5"), false);
    assert.equal(nodeNetHasReusePort("node", "23.1.0"), true);
    assert.equal(nodeNetHasReusePort("deno", "2.9.6"), true);
    assert.equal(nodeNetHasReusePort("bun", "1.4.5"), true);
  });
});

describe("the worker's command line", () => {
  it("Bun and Node: this runtime, its execArgv, the script and its arguments (or the execArgv given)", () => {
    if (runtime === "deno") return;
    const line = workerCommand(undefined, runtime);
    assert.equal(line.command, process.execPath);
    assert.deepEqual(line.args, [...process.execArgv, process.argv[1], ...process.argv.slice(2)]);
    const given = workerCommand(["--smol"], runtime);
    assert.deepEqual(given.args, ["--smol", process.argv[1], ...process.argv.slice(2)]);
  });

  /** A Deno program with `granted` permissions, started as `cmdline`. */
  function deno(granted: string[], args: string[] = ["--workers", "2"]): DenoProgram {
    return {
      execPath: () => "/usr/bin/deno",
      mainModule: "file:///srv/app/main.ts",
      args,
      permissions: { querySync: ({ name }) => ({ state: granted.includes(name) ? "granted" : "prompt" }) },
    };
  }
  const ALL = ["read", "write", "net", "env", "run", "sys", "ffi", "import"];

  it("Deno with --allow-all: its own command line, with --unstable-net added", () => {
    const cmdline = () => ["deno", "run", "-A", "--v8-flags=--max-old-space-size=512", "main.ts", "--workers", "2"];
    assert.deepEqual(denoWorkerCommand(undefined, deno(ALL), cmdline), {
      command: "/usr/bin/deno",
      args: [
        "run",
        "--unstable-net",
        "-A",
        "--v8-flags=--max-old-space-size=512",
        "/srv/app/main.ts",
        "--workers",
        "2",
      ],
    });
    // `deno main.ts` (no `run`), and a flag already there.
    const short = () => ["deno", "--unstable-net", "-A", "main.ts", "--workers", "2"];
    assert.deepEqual(denoWorkerCommand(undefined, deno(ALL), short).args, [
      "--unstable-net",
      "-A",
      "/srv/app/main.ts",
      "--workers",
      "2",
    ]);
  });

  it("Deno without --allow-all: the permissions granted in full (/proc/self/cmdline is not read)", () => {
    let read = false;
    const cmdline = () => {
      read = true;
      return undefined;
    };
    assert.deepEqual(denoWorkerCommand(undefined, deno(["net", "env"]), cmdline).args, [
      "run",
      "--unstable-net",
      "--allow-net",
      "--allow-env",
      "/srv/app/main.ts",
      "--workers",
      "2",
    ]);
    assert.equal(read, false);
    // Where /proc cannot be read, all of them granted is -A.
    assert.deepEqual(denoWorkerCommand(undefined, deno(ALL), () => undefined).args.slice(0, 3), [
      "run",
      "--unstable-net",
      "-A",
    ]);
  });

  it("Deno: execArgv given replaces the flags; a compiled binary gets its arguments only", () => {
    assert.deepEqual(denoWorkerCommand(["run", "--allow-net=:25"], deno([])).args, [
      "run",
      "--unstable-net",
      "--allow-net=:25",
      "/srv/app/main.ts",
      "--workers",
      "2",
    ]);
    assert.deepEqual(denoWorkerCommand(undefined, deno(ALL), () => ["/opt/app", "--workers", "2"]), {
      command: "/usr/bin/deno",
      args: ["--workers", "2"],
    });
  });

  it("denoRuntimeFlags: what stands between the executable and the script", () => {
    assert.deepEqual(denoRuntimeFlags(["deno", "run", "-A", "x.ts", "a", ""], ["a", ""]), ["run", "-A"]);
    assert.equal(denoRuntimeFlags(["/opt/app", "a"], ["a"]), "compiled");
    assert.equal(denoRuntimeFlags(["deno", "run", "x.ts", "b"], ["a"]), undefined, "the arguments differ");
    assert.equal(denoRuntimeFlags(["deno"], ["a", "b"]), undefined);
    assert.equal(denoRuntimeFlags(undefined, []), undefined);
  });
});

describe("resolveWorkersOptions", () => {
  it("applies the defaults", () => {
    const options = resolveWorkersOptions({ workers: 3, start });
    assert.equal(options.workers, 3);
    assert.equal(options.stopTimeout, DEFAULT_STOP_TIMEOUT);
    assert.equal(options.killTimeout, DEFAULT_STOP_TIMEOUT + 10);
    assert.equal(options.startTimeout, 60);
    assert.equal(options.restartDelay, 0.5);
    assert.equal(options.maxRestartDelay, 30);
    assert.equal(options.handleSignals, true);
    assert.deepEqual(options.env, {});
    assert.equal(options.execArgv, undefined);
    assert.equal(typeof options.stop, "function");
    assert.equal(typeof options.log, "function");
  });

  it("keeps every value given; killTimeout follows stopTimeout", () => {
    const log = () => {};
    const onEvent = (_event: WorkerEvent) => {};
    const stop = () => true;
    const options = resolveWorkersOptions({
      workers: 1,
      start,
      stop,
      stopTimeout: 5,
      startTimeout: 9,
      restartDelay: 0.1,
      maxRestartDelay: 2,
      handleSignals: false,
      env: { A: "1" },
      execArgv: ["--smol"],
      log,
      onEvent,
    });
    assert.deepEqual(
      { ...options, start: undefined },
      {
        workers: 1,
        start: undefined,
        stop,
        stopTimeout: 5,
        killTimeout: 15,
        startTimeout: 9,
        restartDelay: 0.1,
        maxRestartDelay: 2,
        handleSignals: false,
        env: { A: "1" },
        execArgv: ["--smol"],
        log,
        onEvent,
      },
    );
  });

  it("refuses bad values, naming the option, before anything starts", async () => {
    const bad: Array<[Record<string, unknown>, RegExp]> = [
      [{ workers: 0, start }, /workers/],
      [{ workers: 1.5, start }, /workers/],
      [{ workers: 2 }, /start/],
      [{ workers: 2, start, stopTimeout: -1 }, /stopTimeout/],
      [{ workers: 2, start, killTimeout: 0 }, /killTimeout/],
      [{ workers: 2, start, restartDelay: 0 }, /restartDelay/],
      [{ workers: 2, start, restartDelay: 5, maxRestartDelay: 1 }, /maxRestartDelay/],
      [{ workers: 2, start, env: { A: 1 } }, /env/],
      [{ workers: 2, start, execArgv: "-A" }, /execArgv/],
      [{ workers: 2, start, handleSignals: "yes" }, /handleSignals/],
      [{ workers: 2, start, onEvent: "log" }, /onEvent/],
    ];
    for (const [options, name] of bad) {
      assert.throws(
        () => resolveWorkersOptions(options as never),
        (err: Error) => err instanceof TypeError && name.test(err.message),
      );
      await assert.rejects(runWorkers(options as never), TypeError, "runWorkers checks them first");
    }
  });
});

describe("the supervisor's IPC message and environment", () => {
  it("listeningMessage carries the server's addresses, and only such a message passes isListeningMessage", () => {
    const message = listeningMessage({ addresses: ["127.0.0.1:2525"], tlsAddresses: [], tlsFingerprint: "AB" });
    assert.ok(isListeningMessage(JSON.parse(JSON.stringify(message))));
    for (const other of [null, "ready", { type: "other" }, { type: "midi-smtp-server:listening" }]) {
      assert.equal(isListeningMessage(other), false, JSON.stringify(other));
    }
  });

  it("a process is a worker only with the variable and an IPC channel; the variable is then removed", () => {
    assert.equal(workerIdFromEnvironment(), undefined);
    process.env[WORKER_ENV] = "3";
    const id = workerIdFromEnvironment();
    assert.equal(id, typeof process.send === "function" ? 3 : undefined);
    assert.equal(process.env[WORKER_ENV], undefined, "programs the worker starts do not inherit it");
  });
});

describe("spawnWorker, signalProcess, startError", () => {
  it("reports how a worker process exited, and one that could not be started", async () => {
    const exited = await new Promise<[number | null, string | null]>((resolve) =>
      spawnWorker({ command: "/bin/sh", args: ["-c", "exit 3"] }, { PATH: "/usr/bin:/bin" })
        .onExit((code, signal) => resolve([code, signal]))
    );
    assert.deepEqual(exited, [3, null]);
    const failed = await new Promise<Error | undefined>((resolve) =>
      spawnWorker({ command: "/nonexistent/runtime", args: [] }, {}).onExit((_code, _signal, error) => resolve(error))
    );
    assert.ok(failed instanceof Error);
  });

  it("signalProcess on a process that is gone does not throw", () => {
    signalProcess(2 ** 22 + 12345, "SIGTERM");
  });

  it("startError hints at reusePort for EADDRINUSE", () => {
    assert.equal(startError(new Error("boom")), "boom");
    const inUse = Object.assign(new Error("listen EADDRINUSE 127.0.0.1:2525"), { code: "EADDRINUSE" });
    assert.match(startError(inUse), /reusePort: true/);
  });
});

describe("Supervisor before it runs", () => {
  it("reports every worker as starting, without a process; stop() resolves at once", async () => {
    const supervisor = new Supervisor(resolveWorkersOptions({ workers: 2, start, log: () => {} }), "reuseport");
    const status: WorkerStatus[] = supervisor.status();
    assert.deepEqual(status.map((w) => [w.id, w.pid, w.state, w.restarts, w.exits.length]), [
      [1, undefined, "starting", 0, 0],
      [2, undefined, "starting", 0, 0],
    ]);
    assert.equal(supervisor.role, "supervisor");
    assert.equal(supervisor.mechanism, "reuseport");
    assert.equal(await supervisor.stop(), true);
    assert.deepEqual(supervisor.status().map((w) => w.state), ["exited", "exited"]);
  });
});

describe("reusePort in the transports", () => {
  for (const transport of TRANSPORTS) {
    const native = transport.name === runtime;
    it(`${transport.name} transport: two servers on one port, or an error saying what is missing`, async () => {
      const port = await freePort();
      const denoWithoutFlag = native && runtime === "deno" &&
        typeof (globalThis as { Deno?: { listenDatagram?: unknown } }).Deno?.listenDatagram !== "function";
      const nodeWithout = transport.name === "node" && !nodeNetHasReusePort();
      if (denoWithoutFlag || nodeWithout) {
        // Deno would end the process, Node 20 would bind anyway and the second server fail: both say why instead.
        await assert.rejects(
          startServer(transport, { ports: port, reusePort: true }),
          denoWithoutFlag ? /--unstable-net/ : /Node 22\.12/,
        );
        return;
      }
      const connected: number[] = [];
      const servers = await Promise.all(
        [1, 2].map((n) =>
          startServer(transport, { ports: port, reusePort: true, onConnectEvent: () => void connected.push(n) })
        ),
      );
      try {
        for (let i = 0; i < 16; i++) {
          const client = await RawClient.connect(port);
          await client.expect(220);
          client.close();
        }
        // The kernel spreads connections over both (all 16 on one: 1 in 32768).
        assert.deepEqual(new Set(connected), new Set([1, 2]));
      } finally {
        await Promise.all(servers.map((s) => s.close()));
      }
    });
  }

  it("without reusePort a second server on the port fails (EADDRINUSE)", async () => {
    const port = await freePort();
    const first = await startServer(TRANSPORTS[0], { ports: port });
    try {
      await assert.rejects(startServer(TRANSPORTS[0], { ports: port }));
    } finally {
      await first.close();
    }
  });
});

describe("the dev server's --workers", () => {
  it("--workers N is parsed, and makes the server bind with reusePort", () => {
    const command = parseCliArgs(["--workers", "3", "--ports", "2525"]);
    assert.equal(command.action === "run" && command.config.workers, 3);
    assert.equal(serverOptions({ ...DEFAULT_CONFIG, workers: 3 }).reusePort, true);
    assert.equal(serverOptions(DEFAULT_CONFIG).reusePort, false);
    assert.equal(DEFAULT_CONFIG.workers, 0);
  });

  it("refuses 0 workers, free ports (0) and Unix sockets with workers, naming the flag", () => {
    const bad: Array<[string[], RegExp]> = [
      [["--workers", "0"], /--workers must be at least 1/],
      [["--workers", "two"], /--workers needs a whole number/],
      [["--workers", "2", "--ports", "0"], /--workers needs fixed ports/],
      [["--workers", "2", "--tls-port", "0", "--tls-mode", "TLS_OPTIONAL"], /--workers needs fixed ports/],
      [["--workers", "2", "--socket", "/tmp/x.sock"], /Unix socket/],
    ];
    for (const [argv, message] of bad) {
      assert.throws(() => parseCliArgs(argv), (err: Error) => err instanceof CliError && message.test(err.message));
    }
    assert.throws(() => checkConfig({ ...DEFAULT_CONFIG, workers: -1 }), CliError);
  });

  it("the report line names the processes and how they share the ports", () => {
    assert.equal(
      describeWorkers("reuseport", [11, 12], 10),
      "Workers: 2 processes (pids 11, 12) sharing the ports with SO_REUSEPORT; supervisor pid 10",
    );
  });

  it("the supervisor makes the self-signed certificate once; a worker takes it from its environment", async () => {
    assert.equal(await selfSignedIfNeeded(DEFAULT_CONFIG), undefined, "TLS off: none");
    assert.equal(await selfSignedIfNeeded({ ...DEFAULT_CONFIG, tlsMode: "TLS_OPTIONAL", tlsCert: "c.pem" }), undefined);
    const made = await selfSignedIfNeeded({ ...DEFAULT_CONFIG, tlsMode: "TLS_OPTIONAL" });
    assert.ok(made && certificateFingerprint(made.cert).length > 0);
    assert.equal(takeCertificate(), undefined);
    process.env[CERTIFICATE_ENV] = JSON.stringify(made);
    assert.deepEqual(takeCertificate(), made);
    assert.equal(process.env[CERTIFICATE_ENV], undefined, "the key is not passed on");
    process.env[CERTIFICATE_ENV] = "not json";
    assert.equal(takeCertificate(), undefined);
  });
});
