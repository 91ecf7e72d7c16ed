/**
 * Tests of the dev server's Maildir writer (src/dev_server/maildir.ts), run under all three runtimes:
 *
 *   deno test -A tests/maildir.test.ts
 *   bun test ./tests/maildir.test.ts
 *   node --import tsx --test tests/maildir.test.ts
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  existsSync,
  lstatSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { open } from "node:fs/promises";
import process from "node:process";
import { Maildir, syncDirectory } from "../src/dev_server/maildir.ts";

const enc = new TextEncoder();
const TEST_OPTIONS = { timeout: 10_000 };

/** Runs `body` with a fresh temporary directory and always removes it. */
async function withTempDir(body: (dir: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "midi-maildir-"));
  try {
    await body(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

/** Every byte value, lone dots, bare CR/LF, NULs: what a byte-exact store must keep. */
function awkwardMessage(): Uint8Array {
  const all = new Uint8Array(256).map((_, i) => i);
  return concat(
    enc.encode("Subject: =?utf-8?q?gr=C3=BC=C3=9Fe?=\r\nX-8bit: gr\u00fc\u00dfe \u00e9\r\n\r\n"),
    enc.encode(".\r\n..\r\n.leading dot\r\n\r\n.\r\nbare\nlf\rcr\r\n"),
    all,
    enc.encode("\r\n\x00\x00\xff\r\nlast line\r\n"),
  );
}

describe("Maildir", () => {
  it("init() creates tmp/, new/ and cur/ (and the root), and can run twice", TEST_OPTIONS, async () => {
    await withTempDir(async (dir) => {
      const root = join(dir, "a", "b", "mail");
      const maildir = new Maildir(root);
      await maildir.init();
      await maildir.init();
      assert.deepEqual(readdirSync(root).sort(), ["cur", "new", "tmp"]);
      for (const sub of ["cur", "new", "tmp"]) assert.ok(statSync(join(root, sub)).isDirectory());
    });
  });

  it("deliver() puts the file in new/ only, tmp/ and cur/ stay empty, and returns its path", TEST_OPTIONS, async () => {
    await withTempDir(async (dir) => {
      const maildir = new Maildir(dir + "/");
      await maildir.init();
      const path = await maildir.deliver(enc.encode("Subject: x\r\n\r\nbody\r\n"), "X-Trace: 1\r\n");
      const [name] = readdirSync(join(dir, "new"));
      assert.equal(path, `${dir}/new/${name}`);
      assert.deepEqual(readdirSync(join(dir, "tmp")), []);
      assert.deepEqual(readdirSync(join(dir, "cur")), []);
      assert.equal(readFileSync(path, "latin1"), "X-Trace: 1\r\nSubject: x\r\n\r\nbody\r\n");
    });
  });

  it("keeps every byte exactly: 8-bit, NUL, lone dots, bare CR/LF, all 256 byte values", TEST_OPTIONS, async () => {
    await withTempDir(async (dir) => {
      const maildir = new Maildir(dir);
      await maildir.init();
      const data = awkwardMessage();
      const headers = "Return-Path: <a@b.example>\r\n";
      const path = await maildir.deliver(data, headers);
      const stored = new Uint8Array(readFileSync(path));
      assert.deepEqual(stored, concat(enc.encode(headers), data));
      // And without headers, a large message, byte for byte.
      const big = new Uint8Array(3 * 1024 * 1024).map((_, i) => (i * 2654435761) >>> 24);
      const bigPath = await maildir.deliver(big);
      assert.deepEqual(new Uint8Array(readFileSync(bigPath)), big);
    });
  });

  it("names are unique and follow time.pid_random.host, with no '/' or ':' in them", TEST_OPTIONS, async () => {
    await withTempDir(async (dir) => {
      const maildir = new Maildir(dir);
      await maildir.init();
      const paths = await Promise.all(Array.from({ length: 50 }, (_, i) => maildir.deliver(enc.encode(`n: ${i}\r\n`))));
      assert.equal(new Set(paths).size, 50);
      const names = readdirSync(join(dir, "new"));
      assert.equal(names.length, 50);
      for (const name of names) {
        assert.match(name, /^\d{10,}\.\d+_[0-9a-f]{16}\.[^/:]+$/);
      }
      const contents = names.map((n) => readFileSync(join(dir, "new", n), "latin1")).sort();
      assert.deepEqual(contents, Array.from({ length: 50 }, (_, i) => `n: ${i}\r\n`).sort());
      assert.deepEqual(readdirSync(join(dir, "tmp")), []);
    });
  });

  it("a failed rename (new/ is a file) rejects and leaves nothing in tmp/", TEST_OPTIONS, async () => {
    await withTempDir(async (dir) => {
      const maildir = new Maildir(dir);
      await maildir.init();
      rmSync(join(dir, "new"), { recursive: true });
      writeFileSync(join(dir, "new"), "not a directory");
      await assert.rejects(maildir.deliver(enc.encode("x\r\n"), "H: 1\r\n"), (err: NodeJS.ErrnoException) => {
        assert.ok(["ENOTDIR", "EEXIST", "ENOENT"].includes(err.code ?? ""), `unexpected error ${err.code}`);
        return true;
      });
      assert.deepEqual(readdirSync(join(dir, "tmp")), []);
      assert.equal(readFileSync(join(dir, "new"), "latin1"), "not a directory");
    });
  });

  it(
    "init() leaves tmp/ empty: its check that files can be created there removes its probe",
    TEST_OPTIONS,
    async () => {
      await withTempDir(async (dir) => {
        await new Maildir(dir).init();
        assert.deepEqual(readdirSync(join(dir, "tmp")), []);
      });
    },
  );

  it(
    "init() under /proc (ENOENT below an existing directory) rejects at once, naming the Maildir",
    { ...TEST_OPTIONS, skip: !existsSync("/proc/self") },
    async () => {
      // Node's mkdir(..., { recursive: true }) spins forever on this.
      await assert.rejects(new Maildir("/proc/midi-mail").init(), (err: NodeJS.ErrnoException) => {
        assert.match(
          err.message,
          /^Maildir \/proc\/midi-mail cannot be created or written: .*mkdir '\/proc\/midi-mail'/,
        );
        assert.equal(err.code, "ENOENT");
        return true;
      });
    },
  );

  it("init() rejects a tmp/ that is a file, and a path through a file, naming the Maildir", TEST_OPTIONS, async () => {
    await withTempDir(async (dir) => {
      writeFileSync(join(dir, "tmp"), "");
      await assert.rejects(new Maildir(dir).init(), (err: NodeJS.ErrnoException) => {
        assert.match(err.message, /cannot be created or written: .*tmp exists and is not a directory$/);
        assert.equal(err.code, "ENOTDIR");
        return true;
      });
      await assert.rejects(new Maildir(join(dir, "tmp", "mail")).init(), /cannot be created or written: /);
    });
  });

  const renameFailures: Array<[string, (dir: string) => void]> = [
    ["new/ is missing", () => {}],
    ["new/ is a dangling symbolic link", (dir) => symlinkSync(join(dir, "nowhere"), join(dir, "new"))],
  ];
  // A rename cannot cross file systems (EXDEV): new/ as a link to a directory on another one.
  const otherFs = existsSync("/dev/shm") && statSync("/dev/shm").dev !== statSync(tmpdir()).dev;
  if (otherFs) {
    renameFailures.push(["new/ is on another file system", (dir) => {
      const elsewhere = mkdtempSync("/dev/shm/midi-maildir-");
      symlinkSync(elsewhere, join(dir, "new"));
    }]);
  }
  for (const [what, breakNew] of renameFailures) {
    it(`a failed rename (${what}) rejects and leaves tmp/ empty`, TEST_OPTIONS, async () => {
      await withTempDir(async (dir) => {
        const maildir = new Maildir(dir);
        await maildir.init();
        rmSync(join(dir, "new"), { recursive: true });
        breakNew(dir);
        try {
          await assert.rejects(maildir.deliver(enc.encode("x\r\n"), "H: 1\r\n"), (err: NodeJS.ErrnoException) => {
            assert.ok(["ENOTDIR", "ENOENT", "EXDEV"].includes(err.code ?? ""), `unexpected error ${err.code}`);
            return true;
          });
          assert.deepEqual(readdirSync(join(dir, "tmp")), []);
        } finally {
          const target = join(dir, "new");
          if (lstatSync(target, { throwIfNoEntry: false })?.isSymbolicLink()) {
            const linked = readlinkSync(target);
            if (linked.startsWith("/dev/shm/")) rmSync(linked, { recursive: true, force: true });
          }
        }
      });
    });
  }

  it(
    "a signal aborted before the rename: the written file is removed from tmp/, nothing is in new/",
    TEST_OPTIONS,
    async () => {
      await withTempDir(async (dir) => {
        const maildir = new Maildir(dir);
        await maildir.init();
        // Not aborted when the delivery starts, aborted by the time the file is written and synced:
        // as when the client leaves, or the hook times out, while the file is written.
        let checks = 0;
        const reason = new Error("the client left");
        const signal = {
          get aborted() {
            return ++checks > 1;
          },
          reason,
        } as AbortSignal;
        await assert.rejects(maildir.deliver(enc.encode("x\r\n".repeat(10_000)), "H: 1\r\n", { signal }), reason);
        assert.ok(checks >= 2, "checked again before the rename");
        assert.deepEqual(readdirSync(join(dir, "tmp")), []);
        assert.deepEqual(readdirSync(join(dir, "new")), []);
      });
    },
  );

  it("an already aborted signal rejects with its reason and touches nothing", TEST_OPTIONS, async () => {
    await withTempDir(async (dir) => {
      const maildir = new Maildir(dir);
      await maildir.init();
      const controller = new AbortController();
      controller.abort(new Error("too late"));
      await assert.rejects(maildir.deliver(enc.encode("x\r\n"), "", { signal: controller.signal }), /too late/);
      assert.deepEqual(readdirSync(join(dir, "tmp")), []);
      assert.deepEqual(readdirSync(join(dir, "new")), []);
    });
  });

  it("a missing tmp/ rejects without creating anything", TEST_OPTIONS, async () => {
    await withTempDir(async (dir) => {
      const maildir = new Maildir(dir);
      await maildir.init();
      rmSync(join(dir, "tmp"), { recursive: true });
      writeFileSync(join(dir, "tmp"), "");
      await assert.rejects(maildir.deliver(enc.encode("x\r\n")));
      assert.deepEqual(readdirSync(join(dir, "new")), []);
    });
  });

  it("directory fsync really works on this runtime, and real errors are not swallowed", TEST_OPTIONS, async () => {
    await withTempDir(async (dir) => {
      if (process.platform !== "win32") {
        // The raw call, so a silently ignored failure in syncDirectory() cannot hide a runtime gap.
        const handle = await open(dir, "r");
        try {
          await handle.sync();
        } finally {
          await handle.close();
        }
      }
      await syncDirectory(dir);
      await assert.rejects(syncDirectory(join(dir, "missing")), { code: "ENOENT" });
    });
  });

  it("rejects an empty directory name", () => {
    assert.throws(() => new Maildir(""), TypeError);
  });
});
