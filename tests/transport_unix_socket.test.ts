/**
 * The Unix socket file handling all transports share (src/transport/unix_socket.ts):
 * what may be at the path before binding, the temporary name and the link to
 * the real path, and removal only while the file is still ours. Socket files are made with
 * node:net, which works the same in all three runtimes. The transports
 * themselves are tested on Unix sockets in transport.test.ts, the server in
 * unix_socket.test.ts.
 *
 *   node --import tsx --test tests/transport_unix_socket.test.ts
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
import {
  bindUnixSocket,
  checkSocketPath,
  placeSocket,
  socketAnswers,
  temporarySibling,
  unixSocketAddress,
  UnixSocketError,
  UnixSocketFile,
} from "../src/transport/unix_socket.ts";

/** Runs `body` with a fresh temporary directory, removed afterwards. */
async function inTempDir(body: (dir: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "smtp-unix-"));
  try {
    await body(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A node:net server listening on `path`, closed by the caller. */
async function listenAt(path: string): Promise<net.Server> {
  const server = net.createServer((socket) => socket.destroy());
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen({ path }, () => resolve());
  });
  return server;
}

function close(server: net.Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

/** A socket file nobody listens on, as a server that died leaves it: bound, renamed away from libuv's unlink, closed. */
async function staleSocket(path: string): Promise<void> {
  const bound = join(dirname(path), ".binding");
  const server = await listenAt(bound);
  renameSync(bound, path);
  await close(server);
  assert.ok(lstatSync(path).isSocket());
}

const bytes = (text: string) => new TextEncoder().encode(text).length;

describe("unixSocketAddress", () => {
  it("is the same for the listener and both ends: no host, no port, the path", () => {
    assert.deepEqual(unixSocketAddress("/run/smtp.sock"), {
      hostname: "",
      port: 0,
      family: "unix",
      path: "/run/smtp.sock",
    });
  });
});

describe("temporarySibling", () => {
  it("is a hidden random name in the same directory (a hard link cannot cross file systems)", () => {
    const a = temporarySibling("/run/smtpd/smtp.sock");
    const b = temporarySibling("/run/smtpd/smtp.sock");
    assert.equal(dirname(a), "/run/smtpd");
    assert.match(basename(a), /^\.[a-z0-9]{11}$/);
    assert.notEqual(a, b);
    assert.equal(dirname(temporarySibling("smtp.sock")), ".", "a relative path stays relative");
  });

  it("is never longer than the real path when that is near the sun_path limit", () => {
    const dir = "/" + "d".repeat(95);
    for (const name of ["s", "sock", "smtp.sock"]) {
      const path = `${dir}/${name}`;
      const temp = temporarySibling(path);
      assert.equal(dirname(temp), dir);
      // 100 bytes fit every platform's sun_path (104 on macOS, 108 on Linux, NUL included).
      assert.ok(bytes(temp) <= Math.max(bytes(path), 100), `${temp} for ${path}`);
      assert.ok(basename(temp).length >= 2, "a dot and at least one random letter");
    }
  });
});

describe("checkSocketPath", () => {
  it("passes a free path, and a stale socket with its identity (to be removed)", async () => {
    await inTempDir(async (dir) => {
      assert.equal(await checkSocketPath(join(dir, "free.sock")), undefined);
      const stale = join(dir, "stale.sock");
      await staleSocket(stale);
      const stat = lstatSync(stale, { bigint: true });
      assert.deepEqual(await checkSocketPath(stale), { dev: stat.dev, ino: stat.ino });
      assert.ok(lstatSync(stale).isSocket(), "checking removes nothing");
    });
  });

  it("refuses a socket a server answers on (EADDRINUSE)", async () => {
    await inTempDir(async (dir) => {
      const path = join(dir, "live.sock");
      const server = await listenAt(path);
      try {
        const err = await checkSocketPath(path).then(() => undefined, (e) => e);
        assert.ok(err instanceof UnixSocketError);
        assert.equal(err.code, "EADDRINUSE");
        assert.equal(err.path, path);
        assert.match(err.message, /^cannot listen on Unix socket .*live\.sock: a server is listening on it already$/);
      } finally {
        await close(server);
      }
    });
  });

  it("refuses a regular file and a directory, naming what is there, and leaves them alone", async () => {
    await inTempDir(async (dir) => {
      const file = join(dir, "file");
      writeFileSync(file, "data");
      await assert.rejects(checkSocketPath(file), (err: UnixSocketError) => {
        assert.equal(err.code, "EEXIST");
        assert.match(err.message, /a regular file is there, not a socket \(left alone/);
        return true;
      });
      assert.equal(readFileSync(file, "utf8"), "data");
      const sub = join(dir, "sub");
      mkdirSync(sub);
      await assert.rejects(checkSocketPath(sub), /a directory is there, not a socket/);
      assert.ok(lstatSync(sub).isDirectory());
    });
  });
});

describe("socketAnswers", () => {
  it("tells a live socket from a stale one and a missing file", async () => {
    await inTempDir(async (dir) => {
      const live = join(dir, "live.sock");
      const server = await listenAt(live);
      try {
        assert.equal(await socketAnswers(live), true);
      } finally {
        await close(server);
      }
      const stale = join(dir, "stale.sock");
      await staleSocket(stale);
      assert.equal(await socketAnswers(stale), false);
      assert.equal(await socketAnswers(join(dir, "missing.sock")), false);
    });
  });
});

describe("UnixSocketFile", () => {
  it("removes the socket it was made for, once", async () => {
    await inTempDir(async (dir) => {
      const path = join(dir, "s.sock");
      await staleSocket(path);
      const file = new UnixSocketFile(path, lstatSync(path, { bigint: true }));
      assert.equal(file.isOurs(), true);
      file.remove();
      assert.equal(existsSync(path), false);
      file.remove(); // harmless
    });
  });

  it("leaves a file that replaced it alone: another socket, or a regular file", async () => {
    await inTempDir(async (dir) => {
      const path = join(dir, "s.sock");
      // Ours stays bound, as a listener's is until after remove(): its inode cannot be reused meanwhile.
      const ours = await listenAt(join(dir, ".ours"));
      try {
        renameSync(join(dir, ".ours"), path);
        const file = new UnixSocketFile(path, lstatSync(path, { bigint: true }));
        rmSync(path);
        await staleSocket(path);
        const other = lstatSync(path).ino;
        assert.equal(file.isOurs(), false);
        file.remove();
        assert.equal(lstatSync(path).ino, other, "another server's socket stays");
        rmSync(path);
        writeFileSync(path, "x");
        new UnixSocketFile(path, { dev: 0n, ino: 0n }).remove();
        assert.equal(readFileSync(path, "utf8"), "x");
      } finally {
        await close(ours);
      }
    });
  });
});

describe("bindUnixSocket", () => {
  it("binds at a temporary name and links the socket to the path, replacing a stale one", async () => {
    await inTempDir(async (dir) => {
      const path = join(dir, "smtp.sock");
      await staleSocket(path);
      const staleInode = lstatSync(path).ino;
      const tried: string[] = [];
      const { handle, file } = await bindUnixSocket(path, (temp) => {
        tried.push(temp);
        return listenAt(temp);
      }, close);
      try {
        assert.equal(tried.length, 1);
        assert.equal(dirname(tried[0]), dir);
        assert.equal(existsSync(tried[0]), false, "the temporary name is gone");
        assert.notEqual(lstatSync(path).ino, staleInode);
        assert.equal(file.path, path);
        assert.equal(file.isOurs(), true);
        assert.equal(await socketAnswers(path), true, "the renamed socket answers at the path");
      } finally {
        file.remove();
        await close(handle);
      }
      assert.equal(existsSync(path), false);
    });
  });

  it("fails on a file that is no socket before binding anything", async () => {
    await inTempDir(async (dir) => {
      const path = join(dir, "smtp.sock");
      writeFileSync(path, "data");
      let binds = 0;
      await assert.rejects(
        bindUnixSocket(path, (temp) => {
          binds++;
          return listenAt(temp);
        }, close),
        /a regular file is there, not a socket/,
      );
      assert.equal(binds, 0);
      assert.equal(readFileSync(path, "utf8"), "data");
    });
  });

  it("takes another temporary name when one is in use", async () => {
    await inTempDir(async (dir) => {
      let calls = 0;
      const { handle, file } = await bindUnixSocket(join(dir, "smtp.sock"), (temp) => {
        if (++calls === 1) throw Object.assign(new Error("address in use"), { code: "EADDRINUSE" });
        return listenAt(temp);
      }, close);
      assert.equal(calls, 2);
      file.remove();
      await close(handle);
    });
  });

  it("wraps a bind error with the path, its code and the cause", async () => {
    await inTempDir(async (dir) => {
      const path = join(dir, "missing-dir", "smtp.sock");
      const err = await bindUnixSocket(path, listenAt, close).then(() => undefined, (e) => e);
      assert.ok(err instanceof UnixSocketError, String(err));
      // ENOENT on most runtimes; libuv says EACCES for a missing directory.
      assert.ok(err.code === "ENOENT" || err.code === "EACCES", String(err.code));
      assert.ok(err.message.startsWith(`cannot listen on Unix socket ${path}: `), err.message);
      assert.ok(err.cause instanceof Error);
    });
  });

  it("leaves a file alone that appeared during the bind; closes what it bound", async () => {
    await inTempDir(async (dir) => {
      const path = join(dir, "smtp.sock");
      let bound: net.Server | undefined;
      let temp = "";
      await assert.rejects(
        bindUnixSocket(path, async (t) => {
          temp = t;
          bound = await listenAt(t);
          writeFileSync(path, "appeared");
          return bound;
        }, close),
        /a regular file is there, not a socket \(left alone/,
      );
      assert.equal(readFileSync(path, "utf8"), "appeared");
      assert.equal(bound?.listening, false, "the listener was closed");
      assert.equal(existsSync(temp), false, "the temporary socket is gone");
    });
  });

  it("a server that took the path during the bind keeps it: probed after the bind", async () => {
    await inTempDir(async (dir) => {
      const path = join(dir, "smtp.sock");
      await staleSocket(path);
      let other: net.Server | undefined;
      try {
        await assert.rejects(
          bindUnixSocket(path, async (temp) => {
            // The stale socket is replaced by a live one (its inode number may well be reused).
            rmSync(path);
            other = await listenAt(path);
            return listenAt(temp);
          }, close),
          /a server is listening on it already$/,
        );
        assert.equal(await socketAnswers(path), true, "the other server still answers at the path");
      } finally {
        if (other) await close(other);
      }
    });
  });
});

describe("placeSocket", () => {
  it("links the socket to the path and drops the temporary name", async () => {
    await inTempDir(async (dir) => {
      const temp = join(dir, ".t");
      const server = await listenAt(temp);
      try {
        const inode = lstatSync(temp).ino;
        placeSocket(temp, join(dir, "smtp.sock"));
        assert.equal(existsSync(temp), false);
        assert.equal(lstatSync(join(dir, "smtp.sock")).ino, inode);
        assert.equal(await socketAnswers(join(dir, "smtp.sock")), true);
      } finally {
        await close(server);
      }
    });
  });

  it("never replaces a file that is there: a socket (EADDRINUSE) or anything else (EEXIST)", async () => {
    await inTempDir(async (dir) => {
      const temp = join(dir, ".t");
      const path = join(dir, "smtp.sock");
      const server = await listenAt(temp);
      try {
        await staleSocket(path);
        const inode = lstatSync(path).ino;
        assert.throws(() => placeSocket(temp, path), (err: UnixSocketError) => {
          assert.equal(err.code, "EADDRINUSE");
          assert.match(err.message, /another server took the path meanwhile$/);
          return true;
        });
        assert.equal(lstatSync(path).ino, inode);
        rmSync(path);
        writeFileSync(path, "appeared");
        assert.throws(() => placeSocket(temp, path), (err: UnixSocketError) => {
          assert.equal(err.code, "EEXIST");
          assert.match(err.message, /a regular file appeared there meanwhile, not a socket \(left alone\)$/);
          return true;
        });
        assert.equal(readFileSync(path, "utf8"), "appeared");
        assert.ok(lstatSync(temp).isSocket(), "the temporary name stays for the caller to close");
      } finally {
        await close(server);
      }
    });
  });
});
