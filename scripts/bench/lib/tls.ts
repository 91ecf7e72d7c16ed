/**
 * TLS for the benchmarks: a throw-away self-signed certificate (made with the
 * openssl CLI), and the two ways a client reaches TLS on SMTP as
 * {@link Connector}s for the load generator's engine (client.ts): implicit
 * TLS (RFC 8314: TLS from the first byte) and STARTTLS (RFC 3207: greeting,
 * EHLO, STARTTLS, 220, handshake, then the session starts over with EHLO).
 * The server certificate is verified, with the given certificate as the only CA.
 *
 * @module
 */
import type { Buffer } from "node:buffer";
import { execFileSync } from "node:child_process";
import * as net from "node:net";
import { join } from "node:path";
import * as tls from "node:tls";
import type { Connector } from "./client.ts";
import { type ReplyHandler, ReplyParser } from "./replies.ts";

/** How a client reaches TLS. */
export type TlsMode = "starttls" | "implicit";

/** The key of a {@link makeCertificate} certificate: EC P-256 or RSA 2048. */
export type KeyType = "ec" | "rsa";

/** PEM files of a certificate and its key. */
export interface CertificateFiles {
  /** The certificate (self-signed: also the CA a client trusts). */
  readonly certPath: string;
  /** Its private key, unencrypted. */
  readonly keyPath: string;
}

/**
 * Makes a self-signed certificate valid for 2 days in `dir` (`cert.pem`,
 * `key.pem`), for the address `ip` and `localhost` (subjectAltName).
 */
export function makeCertificate(dir: string, keyType: KeyType, ip = "127.0.0.1"): CertificateFiles {
  const certPath = join(dir, "cert.pem");
  const keyPath = join(dir, "key.pem");
  const newkey = keyType === "ec" ? ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"] : ["-newkey", "rsa:2048"];
  execFileSync(
    "openssl",
    [
      "req",
      "-x509",
      ...newkey,
      "-nodes",
      "-keyout",
      keyPath,
      "-out",
      certPath,
      "-days",
      "2",
      "-subj",
      "/CN=localhost",
      "-addext",
      `subjectAltName=IP:${ip},DNS:localhost`,
    ],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  return { certPath, keyPath };
}

/**
 * Writes `command` (if any), reads one reply, which must have code `code`,
 * and resolves with the text of its lines; `what` names it in errors. The
 * reply must be all the server sent: after the STARTTLS 220 anything more
 * would be read as if it came through TLS (the STARTTLS injection flaw).
 */
function exchange(socket: net.Socket, command: string | undefined, code: number, what: string): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const parser = new ReplyParser();
    parser.wantLines = true;
    const lines: string[] = [];
    const codes: number[] = [];
    const handler: ReplyHandler = {
      replyLine: (buf, start, end) => void lines.push(String.fromCharCode(...buf.subarray(start, end))),
      reply: (got) => void codes.push(got),
    };
    const done = (err?: Error) => {
      socket.off("data", onData).off("error", done).off("close", onClose);
      if (err) reject(err);
      else resolve(lines);
    };
    const onData = (chunk: Buffer) => {
      parser.feed(chunk, handler);
      if (codes.length === 0) return;
      if (codes.length > 1 || parser.pending) done(new Error(`${what}: the server sent more than one reply`));
      else if (codes[0] !== code) done(new Error(`${what}: expected ${code}, got ${codes[0]} ${lines.join(" | ")}`));
      else done();
    };
    const onClose = () => done(new Error(`${what}: connection closed by the server`));
    socket.on("data", onData).on("error", done).on("close", onClose);
    if (command !== undefined) socket.write(command);
  });
}

/** Connects with `options` and resolves once the handshake is done (and the certificate verified). */
function handshake(options: tls.ConnectionOptions): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect(options);
    socket.setNoDelay(true);
    const fail = (err: Error) => {
      socket.destroy();
      reject(err);
    };
    socket.once("error", fail).once("secureConnect", () => {
      socket.off("error", fail);
      resolve(socket);
    });
  });
}

/**
 * Opens connections over TLS the `mode` way, trusting only `ca` (PEM).
 * `secured` gets the negotiated protocol and cipher of every connection
 * (e.g. `TLSv1.3 TLS_AES_256_GCM_SHA384`); `helo` is the name the STARTTLS
 * EHLO gives, before the handshake.
 */
export function tlsConnector(
  mode: TlsMode,
  ca: string,
  secured?: (negotiated: string) => void,
  helo = "loadgen.bench.test",
): Connector {
  return async (host, port) => {
    // The certificate is checked against `host`; an IP address there also means no SNI is sent.
    const options: tls.ConnectionOptions = { host, ca, rejectUnauthorized: true };
    let socket: tls.TLSSocket;
    if (mode === "implicit") {
      socket = await handshake({ ...options, port });
    } else {
      const plain = net.connect({ host, port, noDelay: true });
      try {
        await exchange(plain, undefined, 220, "greeting");
        const keywords = await exchange(plain, `EHLO ${helo}\r\n`, 250, "EHLO");
        if (!keywords.some((k) => k.trim().toUpperCase() === "STARTTLS")) throw new Error("STARTTLS is not advertised");
        await exchange(plain, "STARTTLS\r\n", 220, "STARTTLS");
      } catch (err) {
        plain.destroy();
        throw err;
      }
      socket = await handshake({ ...options, socket: plain });
    }
    secured?.(`${socket.getProtocol()} ${socket.getCipher().standardName}`);
    // After STARTTLS the session starts over (RFC 3207): the client's EHLO comes first, no new greeting.
    return { socket, greeted: mode === "starttls" };
  };
}
