/**
 * The envelope files of `--envelope-dir`: one JSON file per stored message
 * with what the Maildir file cannot show, since a message keeps only its
 * headers and body: every recipient (BCC ones too) with its DSN parameters,
 * the sender with `RET`/`ENVID`, the client as the session saw it (after
 * PROXY or XCLIENT), HELO, TLS and AUTH. {@link envelopeRecord} builds the
 * record, {@link EnvelopeDir} writes it atomically next to nothing a mail
 * reader would take for a message.
 *
 * The file of the Maildir message `NAME` is `NAME.json`, so the two can be
 * matched (a reader that moves the message to `cur/` adds `:2,FLAGS`, which
 * is not part of `NAME`).
 *
 * @module
 */
import { open, rename, unlink } from "node:fs/promises";
import type { FileHandle } from "node:fs/promises";
import { randomBytes } from "node:crypto";
import type {
  DsnNotify,
  EnvelopeContext,
  EsmtpParamValue,
  MessageContext,
  ServerContext,
  XclientInfo,
  XforwardInfo,
} from "../context.ts";
import { makeDirectories, syncDirectory, writeAll } from "./maildir.ts";
import { receivedProtocol } from "./trace_headers.ts";

const encoder = new TextEncoder();

/** What one envelope file holds (format version 1); documented with an example in the README. */
export interface EnvelopeRecord {
  /** The format version, raised on any incompatible change. */
  version: 1;
  /** The message's id, as in its `Received` header and the error lines. */
  id: string;
  /** The name of the message's Maildir file (in `new/`); this file is named after it plus `.json`. */
  messageFile: string;
  /** When the message's last byte arrived, ISO 8601 in UTC. */
  receivedAt: string;
  /** The `Received` header's `with` protocol (RFC 3848): `SMTP`, `ESMTP`, `ESMTPSA`, `LMTP`, `LMTPS`... */
  protocol: string;
  /** The client, as the session saw it at the end of the message. */
  client: EnvelopeClient;
  /** Where the client connected to. */
  server: { host: string; ip: string | null; port: number | null };
  /** The reverse-path without angle brackets; `""` for the null path `<>`. */
  from: string;
  /** Every MAIL parameter as sent (keyword upper-cased; `true` for one without a value). */
  mailParams: Record<string, EsmtpParamValue>;
  /** `BODY=`: `"7BIT"`, `"8BITMIME"`, `"BINARYMIME"`, or `null` when not sent. */
  bodyType: "7BIT" | "8BITMIME" | "BINARYMIME" | null;
  /** MAIL carried `SMTPUTF8` (RFC 6531). */
  smtputf8: boolean;
  /** DSN on MAIL (RFC 3461): `RET` and `ENVID` (xtext-decoded), each `null` when not sent. */
  dsn: { ret: "FULL" | "HDRS" | null; envid: string | null };
  /** MAIL carried `REQUIRETLS` (RFC 8689). */
  requireTls: boolean;
  /** Every accepted recipient, in RCPT order: BCC ones too, which the message itself does not name. */
  recipients: EnvelopeRecipient[];
  /** What XFORWARD said for this message (a trusted content filter), else `null`. */
  xforward: XforwardInfo | null;
  /** Size of the message in bytes, as received (without the trace headers the Maildir file starts with). */
  size: number;
}

/** The client part of an {@link EnvelopeRecord}. */
export interface EnvelopeClient {
  /** Its IP address (after PROXY or XCLIENT: the one they named); `null` without one (a Unix-socket client). */
  ip: string | null;
  /** Its host name (the IP unless reverse DNS or XCLIENT gave a name; `"localhost"` on a Unix socket). */
  host: string;
  /** Its port; `null` without one. */
  port: number | null;
  /** The HELO/EHLO/LHLO argument (after XCLIENT HELO=: that one). */
  helo: string;
  /** Which greeting it used: `"HELO"`, `"EHLO"` or `"LHLO"`. */
  heloMode: string;
  /** What XCLIENT said (its attributes replaced the fields above), else `null`. */
  xclient: XclientInfo | null;
  /** What a PROXY header said, with the proxy's own address, else `null`. */
  proxy: EnvelopeProxy | null;
  /** The TLS the message came over, else `null`. */
  tls: { protocol: string; cipher: string } | null;
  /** Who authenticated (AUTH, or XCLIENT LOGIN=), else `null`. */
  auth: { authenticationId: string; authorizationId: string } | null;
}

/** The PROXY part of an {@link EnvelopeClient}: the header's addresses and the proxy itself. */
export interface EnvelopeProxy {
  /** PROXY protocol version, 1 or 2. */
  version: 1 | 2;
  /** `"PROXY"`, or `"LOCAL"`/`"UNKNOWN"` (then the addresses are the socket's own). */
  command: string;
  /** The client address the header named. */
  sourceIp: string | null;
  /** The client port the header named. */
  sourcePort: number | null;
  /** The address the client connected to, as the header named it. */
  destIp: string | null;
  /** The port the client connected to, as the header named it. */
  destPort: number | null;
  /** The proxy's own address (the socket peer). */
  proxyIp: string;
  /** The proxy's own port. */
  proxyPort: number;
}

/** One recipient of an {@link EnvelopeRecord}. */
export interface EnvelopeRecipient {
  /** The forward-path without angle brackets. */
  address: string;
  /** DSN `NOTIFY` (RFC 3461), `null` when not sent. */
  notify: DsnNotify[] | null;
  /** DSN `ORCPT`: its address type and the xtext-decoded address, `null` when not sent. */
  orcpt: { type: string; address: string } | null;
  /** Every RCPT parameter as sent (keyword upper-cased; `true` for one without a value). */
  params: Record<string, EsmtpParamValue>;
}

/** What {@link envelopeRecord} reads of a session: an `SmtpdContext` has all of it. */
export interface EnvelopeSource {
  /** `ctx.server`. */
  readonly server: ServerContext;
  /** `ctx.envelope`. */
  readonly envelope: EnvelopeContext;
  /** `ctx.message`. */
  readonly message: MessageContext;
}

/** `"<a@example.com>"` → `"a@example.com"`; `"<>"` → `""`. */
function bare(path: string): string {
  return path.replace(/^<(.*)>$/s, "$1");
}

const BODY_TYPES = { "7bit": "7BIT", "8bitmime": "8BITMIME", "binarymime": "BINARYMIME" } as const;

/**
 * The envelope record of the message in `source` (`ctx`, or its parts taken
 * when the hook began), stored as `stored.messageFile`.
 *
 * @example
 * ```ts
 * import type { SmtpdContext } from "@midi/smtp-server";
 *
 * // In onMessageDataEvent, once the message is stored as `messageFile`:
 * function recipientsOf(ctx: SmtpdContext, messageFile: string): string[] {
 *   const record = envelopeRecord(ctx, { id: "4F2A9C0B1D2E", messageFile, receivedAt: new Date() });
 *   return record.recipients.map((recipient) => recipient.address); // BCC ones too, without <>
 * }
 * ```
 */
export function envelopeRecord(
  source: EnvelopeSource,
  stored: { id: string; messageFile: string; receivedAt: Date },
): EnvelopeRecord {
  const { server, envelope, message } = source;
  return {
    version: 1,
    id: stored.id,
    messageFile: stored.messageFile,
    receivedAt: stored.receivedAt.toISOString(),
    protocol: receivedProtocol(server.heloMode, {
      encrypted: server.encrypted !== null,
      authenticated: server.authenticated !== null,
    }),
    client: {
      ip: server.remoteIp || null,
      host: server.remoteHost,
      port: server.remotePort || null,
      helo: server.helo,
      heloMode: server.heloMode,
      xclient: server.xclient ? { ...server.xclient } : null,
      proxy: proxyOf(server),
      tls: server.encrypted ? { protocol: server.tlsProtocol, cipher: server.tlsCipher } : null,
      auth: server.authenticated
        ? { authenticationId: server.authenticationId, authorizationId: server.authorizationId }
        : null,
    },
    server: { host: server.localHost, ip: server.localIp || null, port: server.localPort || null },
    from: bare(envelope.from),
    mailParams: { ...envelope.mailParams },
    bodyType: envelope.encodingBody === "" ? null : BODY_TYPES[envelope.encodingBody],
    smtputf8: envelope.encodingUtf8 === "utf8",
    dsn: { ret: envelope.dsn.ret, envid: envelope.dsn.envid },
    requireTls: envelope.requireTls,
    recipients: envelope.recipients.map((recipient) => ({
      address: bare(recipient.address),
      notify: recipient.notify ? [...recipient.notify] : null,
      orcpt: recipient.orcpt ? { ...recipient.orcpt } : null,
      params: { ...recipient.params },
    })),
    xforward: envelope.xforward ? { ...envelope.xforward } : null,
    size: message.bytesize,
  };
}

/** The PROXY header's facts without its TLVs (binary, and of no use in a sink's record). */
function proxyOf(server: ServerContext): EnvelopeProxy | null {
  const proxy = server.proxy;
  if (!proxy) return null;
  return {
    version: proxy.version,
    command: proxy.command,
    sourceIp: proxy.sourceIp ?? null,
    sourcePort: proxy.sourcePort ?? null,
    destIp: proxy.destIp ?? null,
    destPort: proxy.destPort ?? null,
    proxyIp: proxy.proxyIp,
    proxyPort: proxy.proxyPort,
  };
}

/**
 * The folder of `--envelope-dir`. Each file is written under a hidden
 * temporary name, flushed, then renamed to `NAME.json` (atomic: a reader
 * never sees a partial file) and the folder flushed, as the Maildir does.
 *
 * @example
 * ```ts
 * import type { SmtpdContext } from "@midi/smtp-server";
 *
 * const envelopes = new EnvelopeDir("./envelopes");
 * await envelopes.init();
 * // Once the message is stored as e.g. new/1764324000.4242_9f86d081884c7d65.myhost:
 * async function recordEnvelope(ctx: SmtpdContext, messageFile: string): Promise<string> {
 *   const record = envelopeRecord(ctx, { id: "4F2A9C0B1D2E", messageFile, receivedAt: new Date() });
 *   return await envelopes.write(messageFile, record); // ./envelopes/1764324000.4242_9f86d081884c7d65.myhost.json
 * }
 * ```
 */
export class EnvelopeDir {
  /** The folder, as given (trailing slashes dropped). */
  readonly dir: string;

  /** Names the folder at `dir`; nothing is touched until {@link init} or {@link write}. */
  constructor(dir: string) {
    if (dir === "") throw new TypeError("envelope directory must not be empty");
    this.dir = dir.length > 1 ? dir.replace(/\/+$/, "") || "/" : dir;
  }

  /**
   * Creates the folder if missing and checks that a file can be created in
   * it, so a folder that cannot take envelopes fails the start rather than
   * every message. Rejects with an error naming the folder and the cause.
   */
  async init(): Promise<void> {
    try {
      await makeDirectories(this.dir);
      const probe = this.#path(`.probe.${randomBytes(8).toString("hex")}`);
      const file = await open(probe, "wx", 0o600);
      await file.close().finally(() => unlink(probe));
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      throw new Error(`envelope directory ${this.dir} cannot be created or written: ${reason}`, { cause: err });
    }
  }

  /**
   * Writes `record` as `messageFile.json`; resolves with its path once it is
   * durably there. On an error nothing is left behind and the error is
   * rethrown.
   */
  async write(messageFile: string, record: EnvelopeRecord): Promise<string> {
    const path = this.#path(`${messageFile}.json`);
    // Hidden, so that a `*.json` glob never picks up a file still being written.
    const tmpPath = this.#path(`.${messageFile}.${randomBytes(4).toString("hex")}.tmp`);
    let file: FileHandle | undefined;
    let created: string | undefined;
    try {
      file = await open(tmpPath, "wx", 0o600);
      created = tmpPath;
      await writeAll(file, encoder.encode(`${JSON.stringify(record, null, 2)}\n`));
      await file.sync();
      await file.close();
      file = undefined;
      await rename(tmpPath, path);
      created = path;
      await syncDirectory(this.dir);
      return path;
    } catch (err) {
      await file?.close().catch(() => {});
      // The caller takes the message back on an error: its envelope must not outlive it.
      if (created !== undefined) await unlink(created).catch(() => {});
      throw err;
    }
  }

  #path(name: string): string {
    return `${this.dir === "/" ? "" : this.dir}/${name}`;
  }
}
