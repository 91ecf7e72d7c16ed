/**
 * midi-smtp-server: an embeddable SMTP server for Deno, Node and Bun. It
 * speaks SMTP (RFC 5321 with PIPELINING, SIZE, 8BITMIME, SMTPUTF8,
 * ENHANCEDSTATUSCODES, CHUNKING/BINARYMIME, DSN and REQUIRETLS) or LMTP, and
 * hands every step to your hooks; commands, EHLO keywords and MAIL/RCPT
 * parameters can be added. For running it on the Internet it has the PROXY
 * protocol, XCLIENT/XFORWARD, per-client limits, hook deadlines and an
 * overload mode.
 *
 * @example
 * ```ts
 * import { MidiSmtpServer, Smtpd550Exception } from "@midi/smtp-server";
 *
 * const server = new MidiSmtpServer({
 *   ports: 2525,
 *   onRcptToEvent(_ctx, rcpt) {
 *     if (!rcpt.endsWith("@example.com>")) throw new Smtpd550Exception();
 *   },
 *   onMessageDataEvent(ctx) {
 *     console.log(ctx.envelope.from, "->", ctx.envelope.to, ctx.message.bytesize, "bytes");
 *   },
 * });
 * await server.start();
 * ```
 *
 * @module
 */
export { MidiSmtpServer, type MidiSmtpServerOptions, type StopOptions } from "./src/server.ts";
export type {
  AuthMode,
  CrlfMode,
  LogSeverity,
  PemCertificate,
  ResolvedOptions,
  ServerOptions,
  TlsMode,
} from "./src/options.ts";
export type { SaslCredentials, SaslExchange, SaslMechanism, SaslStep } from "./src/auth/types.ts";
export {
  CRAM_MD5_MECHANISM,
  type CramMd5Options,
  createCramMd5Mechanism,
  DEFAULT_MECHANISMS,
  LOGIN_MECHANISM,
  PLAIN_MECHANISM,
  XOAUTH2_MECHANISM,
} from "./src/auth/mod.ts";
export {
  certificateFingerprint,
  type CertificateKeyPair,
  generateSelfSignedCertificate,
  loadCertificateFiles,
  type SelfSignedCertificate,
  type SelfSignedCertificateOptions,
} from "./src/tls/certificates.ts";
export type { Awaitable, RecipientResults, SmtpdHooks } from "./src/hooks.ts";
export type {
  DsnNotify,
  EnvelopeContext,
  EsmtpParamValue,
  MessageContext,
  ProxyInfo,
  RecipientContext,
  ServerContext,
  SmtpdContext,
  XclientInfo,
  XforwardInfo,
} from "./src/context.ts";
export type {
  CommandDefinition,
  EsmtpParameter,
  ParameterTarget,
  RestartFacts,
  SessionControl,
  SessionState,
} from "./src/session/registry.ts";
export { decodeXtext, encodeXtext } from "./src/session/xtext.ts";
export {
  SMTP_CHANNELS,
  type SmtpAuthEvent,
  type SmtpChannelNames,
  type SmtpCommandEvent,
  type SmtpConnectionEvent,
  type SmtpMessageEvent,
  type SmtpRefusalEvent,
  type SmtpReplyEvent,
  type SmtpSessionEventBase,
  type SmtpTlsEvent,
} from "./src/events.ts";
export {
  buildProxyHeaderV1,
  buildProxyHeaderV2,
  parseProxyHeader,
  type ProxyHeader,
  type ProxyHeaderInit,
  type ProxyParseResult,
  ProxyProtocolError,
  type ProxySslInfo,
  type ProxyTlvs,
  type ProxyTlvsInit,
} from "./src/proxy_protocol.ts";
export { CidrList, clientKey, normalizeIp } from "./src/cidr.ts";
export * from "./src/exceptions.ts";
export type {
  Connection,
  Listener,
  ListenOptions,
  SocketAddress,
  TlsInfo,
  TlsServerOptions,
  Transport,
} from "./src/transport/types.ts";
export { detectRuntime, loadTransport, type RuntimeName } from "./src/transport/detect.ts";
export {
  runWorkers,
  type RunWorkersOptions,
  type WorkerEvent,
  type WorkerExit,
  type WorkerInfo,
  type WorkerMechanism,
  type WorkerProcess,
  type WorkerState,
  type WorkerStatus,
  type WorkerSupervisor,
} from "./src/workers.ts";
