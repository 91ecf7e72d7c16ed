/**
 * examples/rabbitmq/server.ts and consumer.ts, run as their own processes on
 * this runtime, against a real RabbitMQ (Debian's `rabbitmq-server`, a private
 * node started once for this file by tests/rabbitmq.ts):
 *
 *   deno test -A --no-check tests/rabbitmq.test.ts
 *   bun test --timeout 60000 ./tests/rabbitmq.test.ts
 *   node --import tsx --test tests/rabbitmq.test.ts
 *
 * What is proved, each on its own queue:
 * - N messages from nodemailer -> N `250`s and exactly N messages in the
 *   durable queue, persistent, each the exact bytes sent, with the envelope
 *   (and DSN) as AMQP headers;
 * - the broker refusing (basic.nack from a full `reject-publish` queue) -> `451 4.3.0`;
 * - the broker stopped (`rabbitmqctl stop_app`, also in the middle of a burst)
 *   -> `451 4.3.0` and no `250` without its message in the queue; started
 *   again -> mail flows without restarting the example;
 * - no confirm in time (a memory alarm blocks publishing) -> `451 4.3.0`;
 *   SIGTERM while a publish waits -> the example waits, the publish
 *   completes once the broker confirms, and the example exits;
 * - the consumer parses and prints what is in the queue and acks it.
 *
 * A missing `rabbitmq-server` makes the file skip outside CI and fail under
 * CI (which installs it).
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { spawn } from "node:child_process";
import process from "node:process";
import { type Channel, type ChannelModel, connect, type GetMessage } from "amqplib";
import { createMailer, delay, runtime } from "./helpers.ts";
import { rabbitmqMissing, type RunningRabbitmq, startRabbitmq } from "./rabbitmq.ts";

const root = new URL("..", import.meta.url).pathname;

/** Per-test limit for the runner; every wait inside a test has its own, shorter limit. */
const TEST = { timeout: 60_000 };

/** How to run a TypeScript file on the runtime running this test. */
function command(file: string): [string, string[]] {
  if (runtime === "deno") return [process.execPath, ["run", "-A", file]];
  if (runtime === "bun") return [process.execPath, [file]];
  return [process.execPath, ["--import", "tsx", file]];
}

/** An example process. */
interface Example {
  readonly pid: number;
  /** The SMTP port (server.ts only). */
  port: number;
  stdout(): string;
  /** Resolves once stdout matches `text` `count` times (fails after `ms`). */
  waitFor(text: RegExp, ms?: number, count?: number): Promise<void>;
  /** Resolves with how it exited. */
  readonly exited: Promise<{ code: number | null; signal: string | null }>;
  hasExited(): boolean;
  signal(sig: NodeJS.Signals): void;
}

const children = new Set<Example>();

/** Starts `file` with `env` on top of this process's environment. */
function startExample(file: string, env: Record<string, string>): Example {
  const [cmd, args] = command(file);
  const child = spawn(cmd, args, { cwd: root, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let done = false;
  child.stdout.setEncoding("utf8").on("data", (d: string) => stdout += d);
  child.stderr.setEncoding("utf8").on("data", (d: string) => stdout += d);
  const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) =>
    child.on("exit", (code, signal) => {
      done = true;
      resolve({ code, signal });
    })
  );
  const example: Example = {
    pid: child.pid!,
    port: 0,
    stdout: () => stdout,
    async waitFor(text, ms = 20_000, count = 1) {
      const deadline = Date.now() + ms;
      const global = new RegExp(text.source, text.flags.includes("g") ? text.flags : text.flags + "g");
      while ((stdout.match(global)?.length ?? 0) < count) {
        assert.ok(Date.now() < deadline, `${file}: ${text} (x${count}) not printed within ${ms} ms:\n${stdout}`);
        assert.ok(!done, `${file} exited before printing ${text}:\n${stdout}`);
        await delay(50);
      }
    },
    exited,
    hasExited: () => done,
    signal: (sig) => void child.kill(sig),
  };
  children.add(example);
  return example;
}

/** Starts server.ts on `queue` and waits until it listens and is connected to the broker. */
async function startServerExample(url: string, queue: string, env: Record<string, string> = {}): Promise<Example> {
  const example = startExample("examples/rabbitmq/server.ts", {
    SMTP_PORT: "0",
    AMQP_URL: url,
    AMQP_QUEUE: queue,
    ...env,
  });
  await example.waitFor(/Ready for connections on 127\.0\.0\.1:\d+/, 30_000);
  example.port = Number(/Ready for connections on 127\.0\.0\.1:(\d+)/.exec(example.stdout())![1]);
  await example.waitFor(/AMQP connected to amqp:\/\/guest:\*\*\*@127\.0\.0\.1:\d+, queue /);
  return example;
}

/** Sends SIGTERM and checks that the example says goodbye and exits 0. */
async function stopExample(example: Example, downLine: RegExp): Promise<void> {
  example.signal("SIGTERM");
  const { code, signal } = await example.exited;
  // Deno's node:child_process reports a child that handled SIGTERM and exited 0 as
  // (null, "SIGTERM"); the goodbye line proves the handler ran either way.
  assert.ok(code === 0 || (runtime === "deno" && signal === "SIGTERM"), `exit ${code} ${signal}:\n${example.stdout()}`);
  assert.match(example.stdout(), downLine);
}

/** What one SMTP transaction ended with: the final reply's code and text. */
interface Outcome {
  code: number;
  response: string;
}

/** Sends `raw` from nodemailer (as it is: nodemailer only dot-stuffs it) and returns the final reply. */
async function send(
  port: number,
  raw: string | Buffer,
  to: string[] = ["rcpt@example.com"],
  extra: Record<string, unknown> = {},
): Promise<Outcome> {
  const mailer = createMailer(port, { name: "rabbit.test", socketTimeout: 30_000 });
  try {
    // use8BitMime: nodemailer cannot tell from a raw message that it has 8-bit bytes.
    const envelope = { from: "sender@example.com", to, use8BitMime: true };
    const info = await mailer.sendMail({ envelope, raw, ...extra });
    return { code: Number(info.response.slice(0, 3)), response: info.response };
  } catch (err) {
    const e = err as { responseCode?: number; response?: string; message: string };
    if (!e.responseCode) throw err;
    return { code: e.responseCode, response: e.response ?? e.message };
  } finally {
    mailer.close();
  }
}

/** A message whose Message-ID and subject carry `tag`; CRLF throughout, a line that needs dot-stuffing, UTF-8. */
function rawMessage(
  tag: string,
  body = "Hello through RabbitMQ.\r\n.A line that starts with a dot.\r\nGrüße\r\n",
): string {
  return [
    "From: Sender <sender@example.com>",
    "To: rcpt@example.com",
    `Subject: rabbit ${tag}`,
    `Message-ID: <${tag}@rabbit.test>`,
    "MIME-Version: 1.0",
    "Content-Type: text/plain; charset=utf-8",
    "Content-Transfer-Encoding: 8bit",
    "",
    body,
  ].join("\r\n");
}

let broker: RunningRabbitmq;

/**
 * Runs `body` on a channel of a connection of its own: the broker is stopped
 * and started within this file, which would break a connection kept open.
 */
async function withChannel<T>(body: (channel: Channel) => Promise<T>): Promise<T> {
  const connection: ChannelModel = await connect(broker.url);
  try {
    return await body(await connection.createChannel());
  } finally {
    await connection.close();
  }
}

/** Every message in `queue`, taken off it (the queue is left empty). */
function takeAll(queue: string): Promise<GetMessage[]> {
  return withChannel(async (channel) => {
    const messages: GetMessage[] = [];
    for (;;) {
      const msg = await channel.get(queue, { noAck: true });
      if (msg === false) return messages;
      messages.push(msg);
    }
  });
}

/** Messages ready in `queue` (`checkQueue` fails if it does not exist). */
function messageCount(queue: string): Promise<number> {
  return withChannel(async (channel) => (await channel.checkQueue(queue)).messageCount);
}

/** The Message-ID tags of `messages`, from the `x-smtp-message-id` header. */
function tags(messages: GetMessage[]): string[] {
  return messages.map((m) =>
    String(m.properties.headers?.["x-smtp-message-id"]).replace(/^<(.*)@rabbit\.test>$/, "$1")
  );
}

// A missing broker fails under CI (which installs it) and is reported as skipped elsewhere, never a silent pass.
const NO_RABBITMQ = rabbitmqMissing();
if (NO_RABBITMQ) it(`RabbitMQ tests: ${NO_RABBITMQ}`, { skip: NO_RABBITMQ }, () => {});
else {
  describe(`examples/rabbitmq on ${runtime}, against RabbitMQ`, () => {
    before(async () => {
      broker = await startRabbitmq();
      console.log(`RabbitMQ node ${broker.node} on port ${broker.port} ready after ${broker.startupMs} ms`);
    });
    after(async () => {
      for (const child of children) if (!child.hasExited()) child.signal("SIGKILL");
      await broker?.stop();
    });

    it(
      "N messages -> N 250s and exactly N in the queue: exact bytes, persistent, envelope as headers",
      TEST,
      async () => {
        const queue = "rabbit-exact";
        const example = await startServerExample(broker.url, queue);
        const N = 20;
        const raws = Array.from({ length: N }, (_, i) => rawMessage(`exact-${i}`));
        // 5 clients at a time, 4 messages each: the confirms of concurrent sessions interleave.
        const outcomes: Outcome[] = [];
        await Promise.all(Array.from({ length: 5 }, async (_, c) => {
          for (let i = c; i < N; i += 5) {
            outcomes[i] = await send(
              example.port,
              raws[i],
              ["rcpt@example.com", "second@example.org"],
              // One message carries DSN parameters: they travel as headers too.
              i === 0 ? { dsn: { id: "QQ314159+1", return: "headers", notify: ["success", "delay"] } } : {},
            );
          }
        }));
        assert.deepEqual(outcomes.map((o) => o.code), Array(N).fill(250), JSON.stringify(outcomes));

        // The queue is durable (asserting it as such succeeds) and holds exactly N.
        await withChannel((channel) => channel.assertQueue(queue, { durable: true }));
        assert.equal(await messageCount(queue), N);
        const messages = await takeAll(queue);
        assert.equal(messages.length, N);
        assert.deepEqual(tags(messages).sort(), raws.map((_, i) => `exact-${i}`).sort());
        const uuids = new Set<string>();
        for (const m of messages) {
          const tag = tags([m])[0];
          const raw = Buffer.from(raws[Number(tag.split("-")[1])], "utf8");
          assert.ok(m.content.equals(raw), `${tag}: the bytes differ:\n${m.content.toString("utf8")}`);
          const p = m.properties;
          assert.equal(p.deliveryMode, 2, "persistent");
          assert.equal(p.contentType, "message/rfc822");
          assert.equal(p.appId, "midi-smtp-server");
          assert.match(String(p.messageId), /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
          uuids.add(String(p.messageId));
          assert.ok(Math.abs(Number(p.timestamp) - Date.now() / 1000) < 120, "timestamp in seconds");
          const h = p.headers!;
          assert.equal(h["x-smtp-from"], "<sender@example.com>");
          assert.deepEqual(h["x-smtp-to"], ["<rcpt@example.com>", "<second@example.org>"]);
          assert.equal(h["x-smtp-client-ip"], "127.0.0.1");
          assert.equal(typeof h["x-smtp-client-port"], "number");
          assert.equal(h["x-smtp-helo"], "rabbit.test");
          assert.equal(h["x-smtp-message-id"], `<${tag}@rabbit.test>`);
          assert.equal(h["x-smtp-size"], raw.length);
          assert.ok(!Number.isNaN(Date.parse(String(h["x-smtp-received"]))));
          // nodemailer says BODY=8BITMIME for a message with 8-bit bytes.
          assert.equal(h["x-smtp-body"], "8bitmime");
          if (tag === "exact-0") {
            assert.equal(h["x-smtp-dsn-ret"], "HDRS");
            assert.equal(h["x-smtp-dsn-envid"], "QQ314159+1");
            assert.deepEqual(h["x-smtp-dsn-notify"], ["SUCCESS,DELAY", "SUCCESS,DELAY"]);
          } else {
            assert.equal(h["x-smtp-dsn-ret"], undefined);
            assert.equal(h["x-smtp-dsn-notify"], undefined);
          }
        }
        assert.equal(uuids.size, N, "a fresh messageId per message");
        assert.equal((example.stdout().match(/queued [0-9a-f-]{36}: /g) ?? []).length, N);
        await stopExample(example, /RabbitMQ hand-off down!/);
      },
    );

    it("a broker that refuses the message (nack: full reject-publish queue) -> 451 4.3.0", TEST, async () => {
      const queue = "rabbit-nack";
      // A policy, not queue arguments: the example declares the queue with its own arguments.
      await broker.ctl(
        "set_policy",
        "--apply-to",
        "queues",
        "rabbit-nack-max1",
        "^rabbit-nack$",
        '{"max-length":1,"overflow":"reject-publish"}',
      );
      const example = await startServerExample(broker.url, queue);
      const first = await send(example.port, rawMessage("nack-0"));
      assert.equal(first.code, 250, first.response);
      for (const i of [1, 2]) {
        const refused = await send(example.port, rawMessage(`nack-${i}`));
        assert.equal(refused.code, 451, refused.response);
        assert.match(refused.response, /^451 4\.3\.0 Message queue refused the message/);
      }
      assert.deepEqual(tags(await takeAll(queue)), ["nack-0"]);
      assert.match(example.stdout(), /broker refused/);
      await stopExample(example, /RabbitMQ hand-off down!/);
    });

    it("broker stopped -> 451 and no 250 without its message; started again -> mail flows, same process", {
      timeout: 90_000,
    }, async () => {
      const queue = "rabbit-outage";
      // Hundreds of connections a minute from one address: past the default per-address rate limit.
      const example = await startServerExample(broker.url, queue, { SMTP_PER_IP_LIMITS: "off" });
      const accepted = new Set<string>();
      const refused = new Set<string>();
      const sendTagged = async (tag: string) => {
        const o = await send(example.port, rawMessage(tag));
        if (o.code === 250) accepted.add(tag);
        else {
          assert.equal(o.code, 451, `${tag}: ${o.response}`);
          assert.match(o.response, /^451 4\.3\.0 /);
          refused.add(tag);
        }
        return o;
      };

      for (let i = 0; i < 5; i++) assert.equal((await sendTagged(`before-${i}`)).code, 250);

      // Three clients send one message after the other while the broker goes down: each
      // message gets 250 or 451, and the ones in flight at that moment are the test.
      let sending = true;
      let n = 0;
      const burst = Array.from({ length: 3 }, async () => {
        while (sending) {
          await sendTagged(`burst-${n++}`);
          await delay(10);
        }
      });
      await delay(200);
      await broker.ctl("stop_app");
      await example.waitFor(/AMQP connection closed|AMQP channel closed/);
      await delay(300);
      sending = false;
      await Promise.all(burst);
      const burstAccepted = [...accepted].filter((t) => t.startsWith("burst-")).length;
      const burstRefused = [...refused].filter((t) => t.startsWith("burst-")).length;
      console.log(`burst: ${burstAccepted} x 250 before the broker went down, ${burstRefused} x 451 after`);
      assert.ok(burstAccepted > 0 && burstRefused > 0, `the burst spans the outage: ${burstAccepted}/${burstRefused}`);

      // Down: every message is refused for later.
      for (let i = 0; i < 3; i++) {
        const o = await sendTagged(`down-${i}`);
        assert.equal(o.code, 451, o.response);
        assert.match(o.response, /^451 4\.3\.0 Message queue unavailable/);
      }

      await broker.ctl("start_app");
      // The example reconnects by itself (backoff at most 5 s): its second "connected" line.
      await example.waitFor(/AMQP connected to /, 30_000, 2);
      for (let i = 0; i < 5; i++) assert.equal((await sendTagged(`after-${i}`)).code, 250);
      assert.ok(!example.hasExited(), "the same example process throughout");

      const inQueue = tags(await takeAll(queue));
      // Nothing accepted is lost (the queue is durable, the messages persistent: stop_app keeps them).
      for (const tag of accepted) assert.ok(inQueue.includes(tag), `250 for ${tag}, but it is not in the queue`);
      // A message refused while the broker was down was never handed over; one refused in the
      // burst may have been stored just before the connection broke (its client retries: a
      // duplicate, never a loss). Nothing is in the queue twice, nothing that was not sent.
      for (const tag of inQueue) {
        assert.ok(
          accepted.has(tag) || (refused.has(tag) && tag.startsWith("burst-")),
          `unexpected ${tag} in the queue`,
        );
      }
      assert.equal(new Set(inQueue).size, inQueue.length, "no message twice");
      const storedAnyway = inQueue.filter((tag) => refused.has(tag)).length;
      console.log(
        `${inQueue.length} in the queue: every 250, and ${storedAnyway} of the 451s (stored just before the break)`,
      );
      assert.equal(accepted.size + refused.size, 13 + n);
      assert.ok([...refused].filter((t) => t.startsWith("down-")).length === 3);
      await stopExample(example, /RabbitMQ hand-off down!/);
    });

    it(
      "no confirm in time -> 451; SIGTERM while a publish waits -> it completes, then the example exits",
      TEST,
      async () => {
        const queue = "rabbit-drain";
        const example = await startServerExample(broker.url, queue, { AMQP_CONFIRM_TIMEOUT_MS: "7000" });
        assert.equal((await send(example.port, rawMessage("drain-0"))).code, 250);
        // A memory alarm: the broker stops reading from publishing connections, so no confirms come.
        await broker.ctl("set_vm_memory_high_watermark", "0");
        let waiting: Promise<Outcome> | undefined;
        try {
          const t0 = Date.now();
          const late = await send(example.port, rawMessage("drain-late"));
          assert.equal(late.code, 451, late.response);
          assert.match(late.response, /^451 4\.3\.0 Message queue did not confirm in time/);
          assert.ok(Date.now() - t0 >= 6_500, `answered after ${Date.now() - t0} ms`);

          // This one waits for its confirm when SIGTERM comes; the example must wait with it.
          waiting = send(example.port, rawMessage("drain-1"));
          await delay(500);
          example.signal("SIGTERM");
          await example.waitFor(/Shutdown: no new sessions/);
          await delay(300);
          assert.ok(!example.hasExited(), "the example waits for the publish in flight");
        } finally {
          await broker.ctl("set_vm_memory_high_watermark", "0.4");
        }
        // The broker takes the held publishes: the waiting client gets its 250 (the alarm is
        // cleared within about a second, well inside the 7 s confirm timeout), and the example exits.
        const outcome = await waiting;
        assert.equal(outcome.code, 250, outcome.response);
        await stopExample(example, /RabbitMQ hand-off down!/);
        const inQueue = tags(await takeAll(queue)).sort();
        // drain-late got 451 but was held by the broker, not dropped: stored once the alarm cleared.
        // Its client retries and the queue then holds it twice: the at-least-once case of the README.
        assert.deepEqual(inQueue, ["drain-0", "drain-1", "drain-late"]);
      },
    );

    it("the consumer parses each message, prints subject, from, to and attachments, and acks it", TEST, async () => {
      const queue = "rabbit-consume";
      const example = await startServerExample(broker.url, queue);
      const mailer = createMailer(example.port, { name: "rabbit.test" });
      try {
        await mailer.sendMail({
          from: '"Jörg Müller" <joerg@example.com>',
          to: ["Ann <ann@example.com>", "bob@example.org"],
          subject: "Grüße aus Köln ✓",
          text: "Mit Anhang.",
          attachments: [{ filename: "report.csv", content: "a,b\n1,2\n", contentType: "text/csv" }],
        });
        await mailer.sendMail({ from: "plain@example.com", to: "ann@example.com", subject: "plain", text: "hi" });
      } finally {
        mailer.close();
      }
      await stopExample(example, /RabbitMQ hand-off down!/);
      assert.equal(await messageCount(queue), 2);

      const consumer = startExample("examples/rabbitmq/consumer.ts", { AMQP_URL: broker.url, AMQP_QUEUE: queue });
      await consumer.waitFor(/^message /m, 30_000, 2);
      await consumer.waitFor(/subject: "plain"/);
      const out = consumer.stdout();
      assert.match(
        out,
        /message [0-9a-f-]{36}: <joerg@example\.com> -> <ann@example\.com>, <bob@example\.org> from 127\.0\.0\.1 \(helo rabbit\.test\), \d+ bytes\n {2}subject: "Grüße aus Köln ✓"\n {2}from: "Jörg Müller" <joerg@example\.com>\n {2}to: "Ann" <ann@example\.com>, <bob@example\.org>\n {2}attachment: "report\.csv" text\/csv, 8 bytes\n/,
      );
      assert.match(out, /message [0-9a-f-]{36}: <plain@example\.com> -> <ann@example\.com>/);
      await stopExample(consumer, /Consumer down!/);
      // Acked: nothing is ready or comes back after the consumer's channel closed.
      assert.equal(await messageCount(queue), 0);
    });
  });
}
