/**
 * The session driver: one per connection. It reads from the connection,
 * feeds the line or DATA reader for the current state, applies the state
 * rules, awaits the hooks, and writes the replies (batched per read, so a
 * pipelined group costs one write). It is the only place that knows the
 * order of things.
 *
 * @module
 */
import type { Connection, TlsServerOptions } from "../transport/types.ts";
import type { SaslMechanism } from "../auth/types.ts";
import { type Awaitable, isPromiseLike, type RecipientResults, type SmtpdHooks } from "../hooks.ts";
import type { LogSeverity, ResolvedOptions } from "../options.ts";
import {
  endContext,
  type EnvelopeContext,
  newContext,
  newEnvelope,
  newMessage,
  type ProxyInfo,
  type RecipientContext,
  setMessageData,
  type SmtpdContext,
} from "../context.ts";
import {
  Smtpd421Exception,
  Smtpd451Exception,
  Smtpd500CrLfSequenceException,
  Smtpd500Exception,
  Smtpd500PipeliningException,
  Smtpd502Exception,
  Smtpd503Exception,
  Smtpd530Exception,
  Smtpd552Exception,
  Smtpd554Exception,
  SmtpdException,
  Tls530Exception,
} from "../exceptions.ts";
import { type LineItem, LineReader } from "./line_reader.ts";
import { DataPhase } from "./data_phase.ts";
import { concatBytes } from "../bytes.ts";
import { MessageStream } from "./message_stream.ts";
import type { Deadlines } from "./deadlines.ts";
import { forbiddenCommand, hasControl, nonAsciiRefused, parsePathArgument, splitCommand } from "./arguments.ts";
import { formatHookReply, formatMultiline, formatReply, oneLine } from "./replies.ts";
import type { ClientLimits, Refusal } from "../client_limits.ts";
import { errorText, HookTimeoutException, SessionEndedException, syntaxError as syntax } from "./errors.ts";
import type { CommandDefinition, RestartFacts, SessionControl, SessionState } from "./registry.ts";
import { ParameterTable } from "./parameters.ts";
import { XCLIENT_COMMAND, XFORWARD_COMMAND } from "./xclient.ts";
import { builtinKeywords, offeredKeywords } from "./ehlo_keywords.ts";
import { AuthCommand, authOffered } from "./auth_command.ts";
import { SessionEvents } from "./session_events.ts";

/** What a session needs from its server. */
export interface SessionHost {
  /** The server's resolved options. */
  readonly options: ResolvedOptions;
  /** The hooks to call. */
  readonly hooks: SmtpdHooks;
  /** Whether `onMessageDataReceivingEvent` is overridden (otherwise it is never called). */
  readonly receivingHookActive: boolean;
  /** Whether `onMessageDataStreamEvent` is overridden: then messages are streamed to it. */
  readonly streamingHookActive: boolean;
  /** Whether a log line of `severity` would reach anyone (so we skip formatting it otherwise). */
  logs(severity: LogSeverity): boolean;
  /** Sends a log line to `onLoggingEvent` if its severity passes. */
  log(ctx: SmtpdContext | null, severity: LogSeverity, msg: string, err?: unknown): void;
  /** Resolves `ip` to a host name when reverse DNS is on, else returns `ip`. */
  hostName(ip: string): Promise<string>;
  /** Key material for STARTTLS, or `undefined` when STARTTLS is off. */
  readonly startTls: TlsServerOptions | undefined;
  /** The AUTH mechanisms offered, by upper-case name, in the order they are advertised. */
  readonly authMechanisms: ReadonlyMap<string, SaslMechanism>;
  /** The clock for idle deadlines (shared by the server's sessions). */
  readonly deadlines: Deadlines;
  /** The clock for hook deadlines (`hookTimeout`). */
  readonly hookDeadlines: Deadlines;
  /** Per-client limits: MAIL rate and AUTH failures, counted across connections. */
  readonly limits: ClientLimits;
  /** Logs a per-client refusal, once per client and window. */
  logRefusal(ctx: SmtpdContext | null, ip: string, refusal: Refusal): void;
  /** The greeting and command timeout (seconds) while the server is overloaded, else `null`. */
  overloadTimeout(): number | null;
}

type State = SessionState;

const encoder = new TextEncoder();
const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

/** One SMTP session over one connection; also the {@link SessionControl} its commands are given. */
export class Session implements SessionControl {
  /** The context handed to every hook. */
  readonly ctx: SmtpdContext;
  #host: SessionHost;
  #opts: ResolvedOptions;
  #conn: Connection;
  #state: State = "HELO";
  #lines: LineReader;
  /** The message being received: in state DATA, or in a BDAT transaction. */
  #data: DataPhase | undefined;
  /** Message bytes flow to #data now: after DATA's 354, or inside a BDAT chunk. */
  #receiving = false;
  /** Bytes of a refused BDAT chunk still to be read and dropped (never parsed as commands). */
  #discarding = 0;
  /** What answers the refused chunk once its bytes are dropped, and whether it was the LAST one. */
  #discardReply: { error: unknown; last: boolean } | undefined;
  /** Messages accepted in this session, and when and how the current one began (for events). */
  #messagesAccepted = 0;
  #messageStarted = 0;
  #messageVia: "DATA" | "BDAT" = "DATA";
  /** The size of the BDAT chunk being read, for its 250. */
  #chunkSize = 0;
  /** A chunk of this BDAT transaction failed: further BDATs are refused until RSET or BDAT LAST (RFC 3030 2). */
  #chunkFailed = false;
  /** The EHLO keywords offered now (upper-case keyword -> line); computed at EHLO, or when first asked. */
  #offered: Map<string, string> | undefined;
  readonly #tables: SessionTables;
  readonly #events: SessionEvents;
  /** Whether `verb` is a command of this session (the command event names only those). */
  readonly #isCommand = (verb: string): boolean => this.#tables.commands.has(verb);
  #out = "";
  #badCommands = 0;
  #closing = false;
  #shuttingDown = false;
  #waitingForInput = false;
  #timerArmed = false;
  /** AUTH's state (an exchange waiting for a response, failures), made on the first AUTH command. */
  #authCommand: AuthCommand | undefined;
  /** An AUTH was refused: lines that are not commands may be its credentials, and are not logged. */
  #hideNonCommands = false;
  /** A read started ahead of the loop (before the greeting, or while a hook runs); the loop takes it next. */
  #readingAhead: Promise<Uint8Array | null> | undefined;
  /** In DATA: whether client bytes after the message's end wait unprocessed (see #readAhead). */
  #inputBuffered = false;
  /** Rejects the hook being awaited (timeout, client gone, abort); set while one is awaited. */
  #interruptHook: ((err: SmtpdException) => void) | undefined;
  /** Wakes a pause (greeting delay, tarpit) early. */
  #wake: (() => void) | undefined;
  /** The client left, or the session was aborted: nothing more is awaited. */
  #ended = false;
  /** Errors since the last accepted message: past `softErrorLimit` replies are delayed (tarpit). */
  #errorCount = 0;
  #tarpitMs = 0;
  /** Since when the session waits for a command outside a transaction (0: not idle); the server sheds the oldest. */
  #idleSince = 0;

  /**
   * @param host the server side
   * @param conn the accepted connection (after any PROXY header and implicit TLS handshake)
   * @param proxy what a PROXY header said, if one was read
   */
  constructor(host: SessionHost, conn: Connection, proxy: ProxyInfo | null = null) {
    this.#host = host;
    this.#opts = host.options;
    this.#conn = conn;
    this.#lines = new LineReader(this.#opts.maxCommandLineLength, this.#opts.ioBufferMaxSize);
    this.#tables = tablesFor(this.#opts);
    const local = conn.localAddress;
    // Behind a proxy the client is the one its header names (LOCAL and UNKNOWN keep the socket's).
    const remote = proxy?.command === "PROXY" && proxy.sourceIp !== undefined
      ? { hostname: proxy.sourceIp, port: proxy.sourcePort ?? 0 }
      : conn.remoteAddress;
    // A Unix-socket peer has no address: it is this host (RFC 2033's usual LMTP path).
    const localName = local.hostname === "" ? "localhost" : local.hostname;
    this.ctx = newContext({
      localHost: localName,
      localIp: local.hostname,
      localPort: local.port,
      remoteHost: remote.hostname === "" ? "localhost" : remote.hostname,
      remoteIp: remote.hostname,
      remotePort: remote.port,
      localResponse: `${localName} says welcome!`,
      heloResponse: `${localName} at your service!`,
      helo: "",
      heloMode: "",
      connected: new Date(),
      authenticated: null,
      encrypted: conn.tls ? new Date() : null,
      tlsProtocol: conn.tls?.protocol ?? "",
      tlsCipher: conn.tls?.cipher ?? "",
      authorizationId: "",
      authenticationId: "",
      exceptions: 0,
      errors: [],
      proxy,
      xclient: null,
      protocol: this.#opts.lmtp ? "LMTP" : "SMTP",
    });
    this.#events = new SessionEvents(this.ctx);
  }

  /** Since when the session has waited for a command outside a transaction, or 0 when it is busy. */
  get idleSince(): number {
    return this.#idleSince;
  }

  /** Runs the session to its end; never rejects. */
  async run(): Promise<void> {
    this.#events.opened();
    if (this.#conn.tls) this.#events.tls("implicit", this.#conn.tls);
    try {
      if (await this.#greet()) {
        while (!this.#closing) {
          if (this.#shuttingDown && !this.#receiving) {
            this.#reply(421, "4.3.2", "Service shutting down, closing transmission channel");
            this.#closing = true;
            break;
          }
          this.#armTimer();
          if (this.#out !== "" && !(this.#state === "BDAT" && (await this.#moreChunkBytesAtHand()))) {
            await this.#flush();
          }
          if (this.#closing) break;
          if (this.#shuttingDown && !this.#receiving) continue; // asked to shut down during the flush
          this.#waitingForInput = true;
          if (this.#state === "HELO" || this.#state === "RSET") this.#idleSince = Date.now();
          const chunk = await this.#read();
          this.#waitingForInput = false;
          this.#idleSince = 0;
          if (chunk === null) break;
          await this.#consume(chunk);
        }
        await this.#flush();
      }
    } catch (err) {
      this.#host.log(this.ctx, "error", `session error: ${errorText(err)}`, err);
    } finally {
      this.#ended = true;
      this.#disarmTimer();
      this.#host.deadlines.remove(this);
      this.#host.hookDeadlines.remove(this);
      if (this.#receiving) this.#host.log(this.ctx, "info", `client vanished during ${this.#state}: message dropped`);
      this.#data?.stream?.error(new Error("the client disconnected before the end of the message"));
      await this.#closeConnection();
      endContext(this.ctx);
      await this.#disconnected();
      this.#events.closed(this.#messagesAccepted);
    }
  }

  /** Runs onDisconnectEvent, bounded like every hook (after an abort: 1 s at most). */
  async #disconnected(): Promise<void> {
    try {
      const done = this.#host.hooks.onDisconnectEvent(this.ctx);
      if (!isPromiseLike(done)) return;
      const seconds = this.#aborted ? ABORTED_HOOK_SECONDS : this.#opts.hookTimeout;
      if (await this.#settlesWithin(done, seconds)) return;
      this.#host.log(this.ctx, "warn", "onDisconnectEvent did not finish in time: no longer waited for");
    } catch (err) {
      this.#host.log(this.ctx, "error", `onDisconnectEvent failed: ${errorText(err)}`, err);
    }
  }

  /** Called by abort() while onDisconnectEvent is awaited: the wait shrinks to ABORTED_HOOK_SECONDS. */
  #onAbort: (() => void) | undefined;

  /** Whether `pending` settles within `seconds` (`null`: no limit), or within 1 s once the session is aborted. */
  #settlesWithin(pending: PromiseLike<unknown>, seconds: number | null): Promise<boolean> {
    return new Promise<boolean>((resolve) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const finish = (settled: boolean) => {
        clearTimeout(timer);
        this.#onAbort = undefined;
        resolve(settled);
      };
      const limit = (s: number) => {
        clearTimeout(timer);
        timer = setTimeout(() => finish(false), s * 1000);
      };
      if (seconds !== null) limit(seconds);
      this.#onAbort = () => limit(ABORTED_HOOK_SECONDS);
      Promise.resolve(pending).then(() => finish(true), () => finish(true));
    });
  }

  /**
   * Inside a BDAT transaction: whether the client's next bytes are already
   * here (a read started now settles within one turn of the event loop). Then
   * the chunk replies wait for the next flush: a client pipelining 16 chunks
   * of a message gets their 250s in a few writes instead of 16 (RFC 2920 lets
   * a server hold replies while input keeps coming), which made 64 KiB chunks
   * cost 10-30% more server CPU than one DATA. A client that waits for each
   * reply sends nothing more, so its reply goes out one turn later.
   */
  async #moreChunkBytesAtHand(): Promise<boolean> {
    if (this.#closing || this.#ended) return false;
    let read = this.#readingAhead;
    if (!read) {
      read = this.#conn.read();
      this.#readingAhead = read;
      read.then((chunk) => {
        if (chunk === null && this.#readingAhead === read) this.#clientLeft();
      }, () => {});
    }
    let arrived = false;
    read.then(() => arrived = true, () => arrived = true);
    await new Promise((resolve) => setImmediate(resolve));
    return arrived;
  }

  /** The next bytes from the client: a read started ahead, if any, else a new one. */
  #read(): Promise<Uint8Array | null> {
    const ahead = this.#readingAhead;
    if (ahead) {
      this.#readingAhead = undefined;
      return ahead;
    }
    return this.#conn.read();
  }

  /**
   * Starts a read while a hook runs, so that a client that leaves is noticed
   * at once (ctx.signal aborts, the hook is no longer awaited); bytes it
   * brings are processed after the hook, in order. Only when no unprocessed
   * bytes are buffered: then no command can run (STARTTLS above all, which
   * needs no read pending) until this read has delivered its bytes.
   */
  #readAhead(): void {
    // Asked only when a hook goes async, so the command path pays no scan per line for it.
    if (this.#readingAhead || this.#closing || this.#inputBuffered || this.#lines.hasCompleteLine()) return;
    const read = this.#conn.read();
    this.#readingAhead = read;
    read.then((chunk) => {
      if (chunk === null && this.#readingAhead === read) this.#clientLeft();
    }, () => {});
  }

  /** The client closed its side while we were busy: end the session now. */
  #clientLeft(): void {
    if (this.#ended) return;
    // The client sent FIN (or reset): it can send nothing more. ctx.signal aborts now, so a hook can cancel
    // work nobody may see confirmed; the hook is still awaited (bounded by hookTimeout) and its reply still
    // sent, because a client that only half-closed is still reading. The session ends after that reply.
    this.#host.log(this.ctx, "info", "client closed its side while the session was busy");
    endContext(this.ctx);
  }

  #aborted = false;

  /** Ends the session from outside its loop: aborts ctx.signal and stops every wait. */
  #end(reason: SessionEndedException): void {
    this.#ended = true;
    this.#closing = true;
    endContext(this.ctx);
    this.#data?.stream?.interrupt();
    this.#interruptHook?.(reason);
    this.#wake?.();
  }

  /**
   * Awaits a hook's promise, bounded by `hookTimeout`, and gives it up at
   * once if the client leaves or the session is aborted. A result that comes
   * later is ignored (and logged). Only promises come here: a hook that
   * returns a plain value costs nothing of this.
   */
  #awaitHook<T>(name: string, pending: PromiseLike<T>): Promise<T> {
    if (this.#ended) return Promise.reject(new SessionEndedException("session ended"));
    this.#readAhead();
    return new Promise<T>((resolve, reject) => {
      let settled = false;
      const finish = () => {
        settled = true;
        this.#interruptHook = undefined;
        this.#host.hookDeadlines.clear(this);
      };
      this.#interruptHook = (err) => {
        if (settled) return;
        finish();
        if (err instanceof HookTimeoutException) {
          this.#host.log(this.ctx, "warn", `${name} did not finish within ${this.#opts.hookTimeout} s: session ended`);
          endContext(this.ctx);
        }
        reject(err);
      };
      const seconds = this.#opts.hookTimeout;
      if (seconds !== null) {
        this.#host.hookDeadlines.set(this, seconds * 1000, () => this.#interruptHook?.(new HookTimeoutException(name)));
      }
      pending.then(
        (value) => settled ? this.#lateResult(name) : (finish(), resolve(value)),
        (err) => settled ? this.#lateResult(name, err) : (finish(), reject(err)),
      );
    });
  }

  #lateResult(name: string, err?: unknown): void {
    const outcome = err === undefined ? "returned" : `threw (${errorText(err)})`;
    this.#host.log(this.ctx, "info", `${name} ${outcome} after the session stopped waiting for it: ignored`);
  }

  /** Waits `ms`, or less if the session ends or the client talks (`wakeOn` settles). */
  #pause(ms: number, wakeOn?: Promise<unknown>): Promise<void> {
    if (this.#ended || ms <= 0) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        if (this.#wake === done) this.#wake = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.#wake = done;
      wakeOn?.then(done, done);
    });
  }

  /**
   * Asks the session to end: at once when it waits for a command, else after
   * the command or message in progress. The client gets `421`.
   */
  shutdown(): void {
    this.#shuttingDown = true;
    if (this.#waitingForInput && !this.#receiving && !this.#closing) {
      this.#closing = true;
      this.#reply(421, "4.3.2", "Service shutting down, closing transmission channel");
      this.#flush().finally(() => this.#conn.close());
    }
  }

  /** Ends the session now with a 421 (a non-graceful stop): hooks still running are no longer awaited. */
  abort(): void {
    if (this.#aborted) return;
    this.#aborted = true;
    this.#onAbort?.();
    const ended = this.#ended;
    this.#end(new SessionEndedException("server stopped"));
    if (ended) return;
    // Replies not yet sent go out first, then the 421, straight to the connection (#flush stops once ended).
    this.#reply(421, "4.3.2", "Service shutting down, closing transmission channel");
    this.#lastWords();
  }

  /** Writes what is in #out and closes; a client that does not read is cut off after 1 s. */
  #lastWords(): void {
    const text = this.#out;
    this.#out = "";
    const hardClose = setTimeout(() => this.#conn.close(), 1000);
    this.#conn.write(encoder.encode(text)).catch(() => {}).finally(() => {
      clearTimeout(hardClose);
      this.#conn.close();
    });
  }

  /** Closes an idle session to free its slot for a waiting client (the server is overloaded). */
  shed(): void {
    if (!this.#waitingForInput || this.#closing) return;
    this.#host.log(this.ctx, "info", "idle session closed: the server is overloaded and clients are waiting");
    this.#closing = true;
    this.#idleSince = 0; // not a candidate any more
    this.#reply(421, "4.7.0", "Server busy, closing idle connection, try again later");
    this.#flush().finally(() => this.#conn.close());
  }

  /** Shortens a running command or greeting deadline to `seconds` from now (overload). */
  tightenDeadline(seconds: number): void {
    if (this.#timerArmed && !this.#receiving) this.#host.deadlines.shorten(this, seconds * 1000);
  }

  // ---- greeting ----------------------------------------------------------------------------

  async #greet(): Promise<boolean> {
    const server = this.ctx.server;
    // Read from the start: bytes before our 220 mean a client that does not
    // wait its turn (a spam engine, or another protocol), and an EOF a client
    // or health check that left (then nothing more is done for it).
    const early = this.#conn.read();
    this.#readingAhead = early;
    let talkedFirst = false;
    early.then((chunk) => {
      if (chunk === null) {
        if (this.#readingAhead === early) this.#clientLeft();
      } else if (this.#readingAhead === early) talkedFirst = true;
    }, () => {});
    if (this.#opts.doDnsReverseLookup) {
      [server.localHost, server.remoteHost] = await Promise.all([
        this.#host.hostName(server.localIp),
        this.#host.hostName(server.remoteIp),
      ]);
      server.localResponse = `${server.localHost} says welcome!`;
      server.heloResponse = `${server.localHost} at your service!`;
    }
    try {
      const proxy = server.proxy;
      if (proxy) {
        const accepted = this.#host.hooks.onProxyEvent(this.ctx, proxy);
        if (isPromiseLike(accepted)) await this.#awaitHook("onProxyEvent", accepted);
      }
      const connected = this.#host.hooks.onConnectEvent(this.ctx);
      if (isPromiseLike(connected)) await this.#awaitHook("onConnectEvent", connected);
    } catch (err) {
      return this.#refuseClient(err);
    }
    if (this.#conn.tls && !(await this.#tlsStarted())) {
      await this.#flush();
      return false;
    }
    const delay = this.#opts.greetingDelay;
    if (delay > 0 && !this.#ended) await this.#pause(delay * 1000, early);
    // Bytes already in the transport (sent while the client waited for a slot, or right behind a PROXY
    // header) are seen only once the early read has had a turn of the event loop.
    else await new Promise((resolve) => setImmediate(resolve));
    if (this.#ended) return false;
    if (talkedFirst) {
      this.#host.log(this.ctx, "info", "client sent data before the greeting: refused");
      return this.#refuseClient(
        new Smtpd554Exception(undefined, "Protocol error: data sent before the greeting, closing connection", "5.5.0"),
      );
    }
    this.#out += `220 ${oneLine(server.localResponse)}\r\n`;
    return true;
  }

  /** Refuses the client before or instead of the 220, then closes. */
  async #refuseClient(err: unknown): Promise<false> {
    const refusal = err instanceof SmtpdException ? err : this.#localError(err, true);
    this.#noteError(refusal);
    this.#replyError(refusal);
    this.#closing = true;
    await this.#flush();
    return false;
  }

  /** Runs the TLS hook after a handshake; `false` (and closing) if it refused the connection. */
  async #tlsStarted(): Promise<boolean> {
    try {
      const accepted = this.#host.hooks.onTlsEvent(this.ctx);
      if (isPromiseLike(accepted)) await this.#awaitHook("onTlsEvent", accepted);
      return true;
    } catch (err) {
      const refusal = err instanceof SmtpdException ? err : this.#localError(err, true);
      this.#noteError(refusal);
      this.#replyError(refusal);
      this.#closing = true;
      return false;
    }
  }

  // ---- input -------------------------------------------------------------------------------

  /** Processes one chunk from the client: message bytes in DATA or a BDAT chunk, command lines otherwise. */
  async #consume(chunk: Uint8Array): Promise<void> {
    let pending = chunk;
    while (pending.length > 0 && !this.#closing) {
      if (this.#discarding > 0) {
        const dropped = Math.min(this.#discarding, pending.length);
        this.#discarding -= dropped;
        pending = pending.subarray(dropped);
        if (this.#discarding === 0) this.#chunkDiscarded();
        continue;
      }
      if (this.#receiving) {
        const phase = this.#data!;
        const { consumed, done } = phase.push(pending);
        pending = pending.subarray(consumed);
        this.#inputBuffered = pending.length > 0;
        // The one place the size reaches the context; a refused message keeps the size it was refused at.
        if (!phase.refusal) this.ctx.message.bytesize = phase.size;
        if (phase.headersPending || (this.#host.receivingHookActive && !phase.refusal)) {
          await this.#afterDataBytes(phase);
          if (this.#closing) break; // a hook timed out, or the client left meanwhile
        }
        if (phase.stream) await phase.pump(() => this.#closing);
        if (done) {
          const finishing = phase.chunked ? this.#chunkEnded(phase) : this.#finishMessage(phase);
          if (finishing) await finishing;
        }
        continue;
      }
      this.#inputBuffered = false;
      this.#lines.push(pending);
      pending = EMPTY;
      for (let item = this.#lines.next(); item && !this.#closing; item = this.#lines.next()) {
        this.#disarmTimer();
        const handling = this.#handleItem(item);
        if (handling) await handling;
        if (this.#receiving || this.#discarding > 0) {
          // Bytes right behind DATA or BDAT belong to the message (or to the chunk being dropped).
          pending = this.#lines.takeRest();
          break;
        }
      }
    }
    this.#inputBuffered = false;
  }

  /**
   * Runs one command line. This and the command handlers below run
   * synchronously and return a promise only when a hook (or the command)
   * really is asynchronous. An async function per step of every message cost
   * an allocated frame and a microtask turn each: without them a w3 message
   * allocates 28% fewer bytes and takes about 6% less CPU (Node).
   */
  #handleItem(item: LineItem): void | Promise<void> {
    if (item.kind === "overflow") {
      this.#host.log(this.ctx, "warn", "command line buffer overrun: closing");
      this.#closing = true;
      this.#replyError(new Smtpd421Exception("buffer overrun", "Line too long, closing transmission channel", "4.7.0"));
      return;
    }
    if (item.kind === "too-long") {
      return this.#fail(new Smtpd500Exception("command line too long", "Line too long", "5.5.2"));
    }
    if (!item.crlf && this.#opts.crlfMode === "CRLF_STRICT") {
      return this.#fail(new Smtpd500CrLfSequenceException());
    }
    let line: string;
    try {
      line = strictUtf8.decode(item.bytes);
    } catch {
      return this.#fail(new Smtpd500Exception("invalid UTF-8", "Syntax error, invalid UTF-8 in command", "5.5.2"));
    }
    if (this.#authCommand?.awaitingResponse) {
      if (this.#host.logs("debug")) this.#host.log(this.ctx, "debug", "<<< [AUTH response hidden]");
      return this.#authCommand.respond(line);
    }
    this.#events.command(line, this.#isCommand);
    if (this.#hideNonCommands) this.#hideNonCommands = !this.#tables.commands.has(splitCommand(line).verb);
    if (this.#host.logs("debug")) {
      // After a refused AUTH the client may still send its responses (the password): never log them.
      const shown = this.#hideNonCommands ? "[line hidden: it may be an AUTH response]" : redactAuth(line);
      this.#host.log(this.ctx, "debug", `<<< ${shown}`);
    }
    if (forbiddenCommand(line)) {
      // HTTP (or a header line) on the SMTP port: a browser, a proxy probe or a cross-protocol attack.
      this.#host.log(this.ctx, "info", `non-SMTP command ${JSON.stringify(line.slice(0, 40))}: closing`);
      this.#reply(221, "2.7.0", "This is an SMTP server, not an HTTP one: closing connection");
      this.#closing = true;
      return;
    }
    // An AUTH line may arrive together with its SASL response, and a BDAT line with its chunk: that is not
    // pipelining, and refusing it would turn the credentials or the message into "unknown commands".
    if (!this.#tables.pipelining && this.#lines.hasCompleteLine() && !this.#readsInput(line)) {
      return this.#fail(new Smtpd500PipeliningException());
    }
    let dispatched: void | Promise<void>;
    try {
      dispatched = this.#dispatch(line);
    } catch (err) {
      return this.#fail(err);
    }
    if (dispatched) return dispatched.then(undefined, (err) => this.#fail(err));
  }

  /** Whether `line`'s command reads the input right behind it (AUTH's response, BDAT's chunk): not pipelining. */
  #readsInput(line: string): boolean {
    return this.#tables.commands.get(splitCommand(line).verb)?.readsInput === true;
  }

  /** Runs a command; throws (or rejects with) the error that answers it. */
  #dispatch(line: string): void | Promise<void> {
    const { verb, args } = splitCommand(line);
    const command = this.#tables.commands.get(verb);
    if (this.#opts.tlsMode === "TLS_REQUIRED" && !this.ctx.server.encrypted && !command?.allowedBeforeTls) {
      if (verb === "AUTH") this.#hideNonCommands = true; // its responses (a password) may follow: never log them
      throw new Tls530Exception();
    }
    if (command) return command.handler(this, args, line);
    // Probably the responses of a refused AUTH: neither the unknown-command hook nor the log sees them.
    if (this.#hideNonCommands) throw new Smtpd500Exception("unknown command: [hidden: it may be an AUTH response]");
    return this.#unknown(line);
  }

  /**
   * The built-in commands, registered like an application's (a static
   * initializer, so that they may reach the session's private state).
   */
  static readonly builtins: readonly CommandDefinition[] = [
    { name: "HELO", handler: (s, args) => (s as Session).#helo("HELO", args) },
    { name: "EHLO", allowedBeforeTls: true, handler: (s, args) => (s as Session).#helo("EHLO", args) },
    { name: "LHLO", allowedBeforeTls: true, handler: (s, args) => (s as Session).#helo("LHLO", args) },
    { name: "MAIL", handler: (s, args) => (s as Session).#mail(args) },
    { name: "RCPT", handler: (s, args) => (s as Session).#rcpt(args) },
    { name: "DATA", handler: (s, args) => (s as Session).#dataCommand(args) },
    { name: "BDAT", readsInput: true, handler: (s, args) => (s as Session).#bdat(args) },
    {
      name: "RSET",
      handler(s, args) {
        if (args) throw syntax("RSET");
        s.reset();
        s.reply(250, "2.0.0", "OK");
      },
    },
    { name: "NOOP", allowedBeforeTls: true, handler: (s) => s.reply(250, "2.0.0", "OK") },
    {
      name: "QUIT",
      allowedBeforeTls: true,
      handler(s) {
        s.reply(221, "2.0.0", "Service closing transmission channel");
        (s as Session).#state = "QUIT";
        s.close();
      },
    },
    {
      name: "HELP",
      handler: (s) => s.reply(214, "2.0.0", `Commands: ${(s as Session).#tables.help}`),
    },
    {
      name: "VRFY",
      handler(s, args) {
        if (!args) throw syntax("VRFY <address>");
        s.reply(252, "2.5.0", "Cannot VRFY user, but will accept message and attempt delivery");
      },
    },
    {
      name: "EXPN",
      handler() {
        throw new Smtpd502Exception();
      },
    },
    { name: "STARTTLS", allowedBeforeTls: true, handler: (s, args) => (s as Session).#startTlsCommand(args) },
    {
      name: "AUTH",
      readsInput: true,
      handler: (s, args) =>
        // Refused before its exchange, AUTH may still be followed by its responses (a password): hide them.
        (s as Session).#auth().start(args).catch((err) => {
          (s as Session).#hideNonCommands = true;
          throw err;
        }),
    },
    XCLIENT_COMMAND,
    XFORWARD_COMMAND,
  ];

  // ---- SessionControl: what a command handler may do -------------------------------------------

  /** Where the session is. */
  get state(): SessionState {
    return this.#state;
  }

  /** Whether the EHLO keyword `keyword` is offered to this client now. */
  offers(keyword: string): boolean {
    return this.#offeredKeywords().has(keyword.toUpperCase());
  }

  /** Adds a one-line reply. */
  reply(code: number, enhancedCode: string, text: string): void {
    this.#reply(code, enhancedCode, text);
  }

  /** Adds a multi-line reply, the same code on every line. */
  replyLines(code: number, lines: readonly string[]): void {
    if (!Number.isInteger(code) || code < 200 || code > 599) throw new TypeError(`Invalid reply code ${code}`);
    if (lines.length === 0) throw new TypeError("A reply needs at least one line");
    this.#out += formatMultiline(code, lines);
  }

  /** Ends the mail transaction, as RSET does. */
  reset(): void {
    this.#resetTransaction();
  }

  /** Starts over as if the client had just connected (XCLIENT): HELO, AUTH and the transaction are forgotten. */
  async restart(keep: RestartFacts = {}): Promise<void> {
    const server = this.ctx.server;
    server.helo = keep.helo ?? "";
    server.heloMode = keep.helo === undefined ? "" : keep.heloMode ?? "EHLO";
    server.authenticated = keep.login === undefined ? null : new Date();
    server.authorizationId = keep.login ?? "";
    server.authenticationId = keep.login ?? "";
    // A greeting handed over counts as sent: the client may go on with MAIL (as Postfix lets it).
    this.#state = keep.helo === undefined ? "HELO" : "RSET";
    this.#offered = undefined;
    this.#resetTransaction();
    try {
      const connected = this.#host.hooks.onConnectEvent(this.ctx);
      if (isPromiseLike(connected)) await this.#awaitHook("onConnectEvent", connected);
    } catch (err) {
      const refusal = err instanceof SmtpdException ? err : this.#localError(err, true);
      this.#noteError(refusal);
      this.#replyError(refusal);
      this.#state = "QUIT";
      this.#closing = true;
      return;
    }
    this.#out += `220 ${oneLine(server.localResponse)}\r\n`;
  }

  /** Reads the client's next line for a command handler (its line break removed). */
  async readLine(): Promise<string> {
    for (;;) {
      const item = this.#lines.next();
      if (item?.kind === "line") {
        try {
          return strictUtf8.decode(item.bytes);
        } catch {
          throw new Smtpd500Exception("invalid UTF-8", "Syntax error, invalid UTF-8", "5.5.2");
        }
      }
      if (item?.kind === "overflow") {
        this.#closing = true;
        throw new Smtpd421Exception("buffer overrun", "Line too long, closing transmission channel", "4.7.0");
      }
      if (item) throw new Smtpd500Exception("line too long", "Line too long", "5.5.2");
      await this.#readMore();
    }
  }

  /** Reads exactly `count` bytes for a command handler. */
  async readBytes(count: number): Promise<Uint8Array> {
    if (!Number.isInteger(count) || count < 0) throw new TypeError(`Invalid byte count ${count}`);
    const parts: Uint8Array[] = [];
    let missing = count;
    for (;;) {
      const buffered = this.#lines.takeRest();
      const used = Math.min(missing, buffered.length);
      parts.push(buffered.subarray(0, used));
      missing -= used;
      if (used < buffered.length) this.#lines.push(buffered.subarray(used));
      if (missing === 0) return parts.length === 1 ? parts[0] : concatBytes(parts);
      await this.#readMore();
    }
  }

  /** Waits for more client input into the line buffer (replies so far are sent first); rejects if the client left. */
  async #readMore(): Promise<void> {
    if (this.#out !== "") await this.#flush();
    if (this.#closing) throw new SessionEndedException("session ending");
    this.#armTimer();
    const chunk = await this.#read();
    this.#disarmTimer();
    if (chunk === null || this.#closing) {
      this.#closing = true;
      throw new SessionEndedException("the client left");
    }
    this.#lines.push(chunk);
  }

  /** Counts a failed command towards `maxBadCommands`. */
  countFailure(): void {
    this.#badCommands++;
    if (this.#badCommands >= this.#opts.maxBadCommands && !this.#closing) {
      this.#reply(421, "4.7.0", "Too many errors, closing transmission channel");
      this.#closing = true;
    }
  }

  /** Closes the connection once the replies so far are sent. */
  close(): void {
    this.#closing = true;
  }

  // ---- commands ----------------------------------------------------------------------------

  #helo(verb: "HELO" | "EHLO" | "LHLO", args: string): void | Promise<void> {
    // RFC 2033 4.1: an LMTP server takes LHLO only, an SMTP server never takes it.
    if (this.#opts.lmtp !== (verb === "LHLO")) {
      throw new Smtpd500Exception(
        undefined,
        this.#opts.lmtp ? "This is an LMTP server: use LHLO" : "Command unrecognized",
      );
    }
    if (!args || args.includes(" ") || hasControl(args)) throw syntax(`${verb} hostname`);
    const accepted = this.#host.hooks.onHeloEvent(this.ctx, args);
    if (isPromiseLike(accepted)) {
      return this.#awaitHook("onHeloEvent", accepted).then(() => this.#heloAccepted(verb, args));
    }
    this.#heloAccepted(verb, args);
  }

  #heloAccepted(verb: "HELO" | "EHLO" | "LHLO", args: string): void {
    // RFC 5321 4.1.4: a later EHLO/HELO resets the session like RSET.
    this.#resetTransaction();
    const server = this.ctx.server;
    server.helo = args;
    server.heloMode = verb;
    this.#state = "RSET";
    if (verb === "HELO") {
      this.#out += `250 ${oneLine(server.heloResponse)}\r\n`;
      return;
    }
    this.#offered = undefined; // asked again: TLS, AUTH or the client may have changed since
    this.#out += formatMultiline(250, [server.heloResponse, ...this.#offeredKeywords().values()]);
  }

  /** The EHLO keywords offered now, by upper-case keyword, in the order they are advertised. */
  #offeredKeywords(): Map<string, string> {
    if (this.#offered) return this.#offered;
    const server = this.ctx.server;
    const builtin = builtinKeywords(this.#opts, {
      pipelining: this.#tables.pipelining,
      startTls: this.#host.startTls !== undefined && !server.encrypted,
      encrypted: server.encrypted !== null,
      authMechanisms: authOffered(this.#opts, this.ctx.server.encrypted !== null)
        ? [...this.#host.authMechanisms.keys()]
        : [],
      xclient: this.#xclientTrusted(),
    });
    this.#offered = offeredKeywords(this.ctx, builtin, this.#opts.ehloKeywords, (msg, err) => {
      this.#host.log(this.ctx, "error", msg, err);
    });
    return this.#offered;
  }

  /** Whether the client as the session sees it now may use XCLIENT and XFORWARD. */
  #xclientTrusted(): boolean {
    const o = this.#opts;
    if (this.#conn.remoteAddress.hostname === "") return o.xclientTrustsUnix; // a Unix-socket client
    return o.xclientTrustedSources.entries.length > 0 && o.xclientTrustedSources.contains(this.ctx.server.remoteIp);
  }

  #mail(args: string): void | Promise<void> {
    if (this.#state === "HELO") throw new Smtpd503Exception(undefined, "Send HELO/EHLO first");
    this.#checkTlsAndAuth();
    if (this.#state !== "RSET") {
      throw new Smtpd503Exception(
        undefined,
        this.#state === "BDAT" ? "MAIL after BDAT: send RSET first" : "Sender already specified",
      );
    }
    // Counted per client address whether accepted or not, as Postfix does.
    const refusal = this.#host.limits.admitMessage(this.ctx.server.remoteIp);
    if (refusal) {
      this.#host.logRefusal(this.ctx, this.ctx.server.remoteIp, refusal);
      throw new SmtpdException(refusal.code, refusal.enhancedCode, refusal.text, refusal.reason);
    }
    const i18n = this.#opts.internationalizationExtensions;
    const parsed = parsePathArgument(args, "FROM", true, i18n);
    const envelope = newEnvelope();
    // XFORWARD attributes sent before MAIL belong to this transaction.
    envelope.xforward = this.ctx.envelope.xforward;
    this.#tables.parameters.apply("MAIL", parsed.params, { ctx: this.ctx, envelope, offers: this.#offersFn });
    if (parsed.utf8 && envelope.encodingUtf8 !== "utf8") throw nonAsciiRefused();
    envelope.mailParams = parsed.params;
    envelope.from = parsed.path;
    // The hook sees this command's envelope (parameters, encodings); a refusal leaves none.
    this.ctx.envelope = envelope;
    const refused = (err: unknown): never => {
      // No transaction began, so none ended: XFORWARD attributes still wait for the next MAIL.
      const empty = newEnvelope();
      empty.xforward = envelope.xforward;
      this.ctx.envelope = empty;
      throw err;
    };
    let result: Awaitable<string | void>;
    try {
      result = this.#host.hooks.onMailFromEvent(this.ctx, parsed.path);
    } catch (err) {
      return refused(err);
    }
    if (isPromiseLike(result)) {
      return this.#awaitHook("onMailFromEvent", result).then(
        (replaced) => this.#mailAccepted(envelope, replaced),
        refused,
      );
    }
    this.#mailAccepted(envelope, result);
  }

  #mailAccepted(envelope: EnvelopeContext, replaced: string | void): void {
    if (typeof replaced === "string") envelope.from = replaced;
    this.#state = "MAIL";
    this.#reply(250, "2.1.0", "OK");
  }

  #rcpt(args: string): void | Promise<void> {
    if (this.#state === "HELO") throw new Smtpd503Exception(undefined, "Send HELO/EHLO first");
    // RFC 3207 4 / RFC 4954 6: before STARTTLS or AUTH the answer is 530, whatever the sequence.
    this.#checkTlsAndAuth();
    if (this.#state === "BDAT") throw new Smtpd503Exception(undefined, "RCPT after BDAT: send RSET first");
    if (this.#state !== "MAIL" && this.#state !== "RCPT") {
      throw new Smtpd503Exception(undefined, "Need MAIL command first");
    }
    const envelope = this.ctx.envelope;
    const utf8 = envelope.encodingUtf8 === "utf8";
    const parsed = parsePathArgument(args, "TO", false, utf8);
    const recipient: RecipientContext = {
      address: parsed.path,
      params: parsed.params,
      notify: null,
      orcpt: null,
      values: {},
    };
    this.#tables.parameters.apply("RCPT", parsed.params, {
      ctx: this.ctx,
      envelope,
      recipient,
      offers: this.#offersFn,
    });
    if (parsed.utf8 && !utf8) throw nonAsciiRefused();
    if (envelope.to.length >= this.#opts.maxRecipients) throw new TooManyRecipientsException();
    const result = this.#host.hooks.onRcptToEvent(this.ctx, parsed.path);
    if (isPromiseLike(result)) {
      return this.#awaitHook("onRcptToEvent", result).then((replaced) =>
        this.#rcptAccepted(envelope, recipient, replaced)
      );
    }
    this.#rcptAccepted(envelope, recipient, result);
  }

  #rcptAccepted(envelope: EnvelopeContext, recipient: RecipientContext, replaced: string | void): void {
    if (typeof replaced === "string") recipient.address = replaced;
    envelope.to.push(recipient.address);
    envelope.rcptParams.push(recipient.params);
    envelope.recipients.push(recipient);
    this.#state = "RCPT";
    this.#reply(250, "2.1.5", "OK");
  }

  /** {@link offers} as a function, made once: parameters are given it with every MAIL and RCPT. */
  readonly #offersFn = (keyword: string) => this.offers(keyword);

  #dataCommand(args: string): void | Promise<void> {
    if (args) throw syntax("DATA");
    if (this.#state === "HELO") throw new Smtpd503Exception(undefined, "Send HELO/EHLO first");
    this.#checkTlsAndAuth();
    if (this.#state === "RSET") throw new Smtpd503Exception(undefined, "Need MAIL command first");
    if (this.#state === "BDAT") throw new Smtpd503Exception(undefined, "DATA after BDAT: send RSET first");
    if (this.#state !== "RCPT") throw new Smtpd503Exception(undefined, "Need RCPT command first");
    // RFC 3030 3: a BINARYMIME body cannot be sent with DATA (its dots and line breaks are not text).
    if (this.ctx.envelope.encodingBody === "binarymime") {
      throw new Smtpd503Exception(undefined, "DATA cannot be used with BODY=BINARYMIME: use BDAT");
    }
    const started = this.#host.hooks.onMessageDataStartEvent(this.ctx);
    if (isPromiseLike(started)) {
      return this.#awaitHook("onMessageDataStartEvent", started).then(() => this.#dataStarted());
    }
    this.#dataStarted();
  }

  /** DATA was accepted: a fresh message, a DATA reader, and the 354. */
  #dataStarted(): void {
    this.#messageStarted = Date.now();
    this.#messageVia = "DATA";
    const message = newMessage();
    message.received = new Date();
    message.bytesize = 0;
    this.ctx.message = message;
    const stream = this.#host.streamingHookActive
      ? new MessageStream((stream) => this.#host.hooks.onMessageDataStreamEvent(this.ctx, stream))
      : undefined;
    this.#data = new DataPhase({
      crlfMode: this.#opts.crlfMode,
      maxSize: this.#opts.maxMessageSize,
      maxLineLength: this.#opts.maxDataLineLength,
    }, stream);
    this.#state = "DATA";
    this.#receiving = true;
    this.#reply(354, "", 'Enter message, ending with "." on a line by itself');
  }

  #unknown(line: string): void | Promise<void> {
    const answer = this.#host.hooks.onProcessLineUnknownEvent(this.ctx, line);
    if (isPromiseLike(answer)) {
      return this.#awaitHook("onProcessLineUnknownEvent", answer).then((a) => this.#unknownAnswered(line, a));
    }
    this.#unknownAnswered(line, answer);
  }

  /** The unknown-command hook's string is the reply: one line, or several with the same code on each. */
  #unknownAnswered(line: string, answer: string | void): void {
    if (typeof answer !== "string") throw new Smtpd500Exception(`unknown command: ${line}`);
    if (answer === "") return;
    const reply = formatHookReply(answer);
    if (reply === undefined) {
      throw this.#localError(
        new Error(`onProcessLineUnknownEvent returned an invalid reply: ${JSON.stringify(answer.slice(0, 80))}`),
      );
    }
    this.#out += reply;
  }

  /** TLS_REQUIRED and AUTH_REQUIRED: no mail before STARTTLS / AUTH. */
  #checkTlsAndAuth(): void {
    if (this.#opts.tlsMode === "TLS_REQUIRED" && !this.ctx.server.encrypted) throw new Tls530Exception();
    if (this.#opts.authMode === "AUTH_REQUIRED" && !this.ctx.server.authenticated) throw new Smtpd530Exception();
  }

  // ---- STARTTLS (RFC 3207) -----------------------------------------------------------------

  async #startTlsCommand(args: string): Promise<void> {
    const tls = this.#host.startTls;
    if (!tls) throw new Smtpd502Exception();
    if (args) throw syntax("STARTTLS");
    if (this.ctx.server.encrypted) throw new Smtpd503Exception(undefined, "TLS already active");
    if (this.#state === "HELO") throw new Smtpd503Exception(undefined, "Send EHLO first");
    if (!this.offers("STARTTLS")) throw new Smtpd502Exception(); // hidden from this client by ehloKeywords
    // Whatever the client sent behind STARTTLS arrived in plaintext: drop it
    // unread (CVE-2011-0411, CVE-2024-34083). The transport drops what is
    // still queued in the socket.
    this.#lines.clear();
    await this.#flush();
    const reply = formatReply(220, "2.0.0", "Ready to start TLS", this.#opts.enhancedStatusCodesExtension);
    // Written by the transport as the last plaintext, not by #flush: published here.
    this.#events.replies(reply);
    try {
      this.#conn = await this.#conn.startTls(tls, encoder.encode(reply));
    } catch (err) {
      this.#host.log(this.ctx, "info", `TLS handshake failed: ${errorText(err)}`);
      this.#events.tls("STARTTLS", undefined, errorText(err));
      this.#closing = true;
      return;
    }
    this.#events.tls("STARTTLS", this.#conn.tls);
    // RFC 3207 4.2: forget everything learned before TLS; the client must EHLO again.
    const server = this.ctx.server;
    server.encrypted = new Date();
    server.tlsProtocol = this.#conn.tls?.protocol ?? "";
    server.tlsCipher = this.#conn.tls?.cipher ?? "";
    server.helo = "";
    server.heloMode = "";
    server.authenticated = null;
    server.authorizationId = "";
    server.authenticationId = "";
    this.#state = "HELO";
    this.#offered = undefined;
    this.#resetTransaction();
    await this.#tlsStarted();
  }

  // ---- AUTH (RFC 4954): src/session/auth_command.ts ------------------------------------------

  /** This session's AUTH state, made on first use with what it may do here. */
  #auth(): AuthCommand {
    // deno-lint-ignore no-this-alias
    const session = this;
    this.#authCommand ??= new AuthCommand({
      ctx: this.ctx,
      host: this.#host,
      get state() {
        return session.#state;
      },
      get closing() {
        return session.#closing;
      },
      offers: (keyword) => this.offers(keyword),
      reply: (code, enhancedCode, text) => this.#reply(code, enhancedCode, text),
      write: (line) => {
        this.#out += line;
      },
      fail: (err, countsAsBad) => this.#fail(err, countsAsBad),
      awaitHook: (name, pending) => this.#awaitHook(name, pending),
      close: () => this.close(),
    });
    return this.#authCommand;
  }

  // ---- DATA --------------------------------------------------------------------------------

  /** Runs the headers hook once the header section is complete, and the receiving hook (only if overridden). */
  async #afterDataBytes(phase: DataPhase): Promise<void> {
    try {
      if (phase.headersPending) {
        const headers = phase.takeHeaders();
        if (headers !== "") this.ctx.message.headers = headers;
        const handled = this.#host.hooks.onMessageDataHeadersEvent(this.ctx);
        if (isPromiseLike(handled)) await this.#awaitHook("onMessageDataHeadersEvent", handled);
      }
      if (this.#host.receivingHookActive) {
        const received = this.#host.hooks.onMessageDataReceivingEvent(this.ctx);
        if (isPromiseLike(received)) await this.#awaitHook("onMessageDataReceivingEvent", received);
      }
    } catch (err) {
      if (err instanceof SessionEndedException || err instanceof HookTimeoutException) {
        // Not a refusal of this message: the session ends now, not at the final dot.
        this.#replyError(err);
        return;
      }
      phase.refuse(err instanceof SmtpdException ? err : this.#localError(err));
    }
  }

  /**
   * The message is complete (the final dot, or the end of BDAT LAST): the
   * refusal or the hook's outcome is the reply; the transaction ends either way.
   */
  #finishMessage(phase: DataPhase): void | Promise<void> {
    this.#data = undefined;
    this.#receiving = false;
    this.#state = "RSET";
    this.#disarmTimer();
    const stream = phase.stream;
    const refusal = phase.refusalAtEnd();
    if (refusal) {
      stream?.error(refusal);
      this.#noteError(refusal);
      this.#messageRefused(refusal);
      return this.#resetTransaction();
    }
    const message = this.ctx.message;
    message.delivered = new Date();
    if (stream) return this.#finishStream(stream).finally(() => this.#resetTransaction());
    setMessageData(message, phase.takeSegments());
    if (this.#opts.crlfMode === "CRLF_LEAVE") message.crlf = phase.lastLineBreak;
    let accepted: Awaitable<void | RecipientResults>;
    try {
      accepted = this.#host.hooks.onMessageDataEvent(this.ctx);
    } catch (err) {
      this.#messageFailed(err);
      return this.#resetTransaction();
    }
    if (isPromiseLike(accepted)) {
      return this.#awaitHook("onMessageDataEvent", accepted)
        .then((results) => this.#messageAccepted(results), (err) => this.#messageFailed(err))
        .finally(() => this.#resetTransaction());
    }
    this.#messageAccepted(accepted);
    this.#resetTransaction();
  }

  /** The data hook accepted the message: 250 (LMTP: one reply per recipient, from `results` where given). */
  #messageAccepted(results?: void | RecipientResults): void {
    this.#errorCount = 0; // as Postfix: a delivered message forgives earlier errors
    if (!this.#opts.lmtp) {
      this.#reply(250, "2.0.0", "Requested mail action okay, completed");
      this.#publishMessage(true, 250);
      return;
    }
    // RFC 2033 4.2: one reply per accepted recipient, in RCPT order.
    const recipients = this.ctx.envelope.recipients;
    for (let i = 0; i < recipients.length; i++) {
      const result = Array.isArray(results) ? results[i] : undefined;
      if (result instanceof SmtpdException) {
        this.#noteError(result);
        this.#reply(result.code, result.enhancedCode, `${recipients[i].address} ${result.text}`);
      } else if (result instanceof Error) {
        const local = this.#localError(result);
        this.#reply(local.code, local.enhancedCode, `${recipients[i].address} ${local.text}`);
      } else {
        this.#reply(250, "2.0.0", `${recipients[i].address} OK, delivered`);
      }
    }
    const codes = recipients.map((_, i) => {
      const result = Array.isArray(results) ? results[i] : undefined;
      return result instanceof SmtpdException ? result.code : result instanceof Error ? 451 : 250;
    });
    this.#publishMessage(codes.some((code) => code < 300), codes[0] ?? 250);
  }

  /** The data hook threw: its reply (LMTP: repeated for every recipient); a 421 ends the session. */
  #messageFailed(err: unknown): void {
    if (!this.#opts.lmtp || err instanceof SessionEndedException || err instanceof HookTimeoutException) {
      const code = err instanceof SessionEndedException ? 0 : err instanceof SmtpdException ? err.code : 451;
      this.#publishMessage(false, code);
      this.#fail(err, false);
      return;
    }
    const refusal = err instanceof SmtpdException ? err : this.#localError(err);
    this.#noteError(refusal);
    this.#messageRefused(refusal);
  }

  /** A refusal of the whole message: once, or in LMTP once per recipient (RFC 2033 4.2). */
  #messageRefused(refusal: SmtpdException): void {
    this.#publishMessage(false, refusal instanceof SessionEndedException ? 0 : refusal.code);
    if (!this.#opts.lmtp || refusal instanceof SessionEndedException) {
      this.#replyError(refusal);
      return;
    }
    for (const recipient of this.ctx.envelope.recipients) {
      this.#reply(refusal.code, refusal.enhancedCode, `${recipient.address} ${refusal.text}`);
    }
    if (refusal.code === 421) this.#closing = true;
  }

  /** Streaming mode: the message is complete; the hook's outcome is the reply. */
  async #finishStream(stream: MessageStream): Promise<void> {
    stream.close();
    let result: Awaited<typeof stream.hookResult>;
    try {
      result = await this.#awaitHook("onMessageDataStreamEvent", stream.hookResult);
    } catch (err) {
      return this.#messageFailed(err);
    }
    if (result.ok) this.#messageAccepted();
    else this.#messageFailed(result.error);
  }

  // ---- BDAT (RFC 3030) ---------------------------------------------------------------------

  /**
   * `BDAT size [LAST]`. Whatever the answer, exactly `size` bytes follow and
   * are read (kept, or dropped for a refusal), so they can never be taken for
   * commands; only a size that does not parse ends the connection, since then
   * nobody knows where the chunk ends.
   */
  #bdat(args: string): void | Promise<void> {
    const parsed = /^(\d{1,15})(?: +(LAST))? *$/i.exec(args);
    if (!parsed) {
      this.#closing = true;
      throw new SmtpdException(521, "5.5.4", "Syntax: BDAT size [LAST], closing connection");
    }
    const size = Number(parsed[1]);
    const last = parsed[2] !== undefined;
    if (!this.offers("CHUNKING")) {
      this.#closing = true;
      throw new SmtpdException(521, "5.5.1", "BDAT is not offered, closing connection");
    }
    let phase = this.#data;
    try {
      this.#checkChunk(size);
    } catch (err) {
      return this.#discardChunk(size, last, err);
    }
    if (phase) return this.#beginChunk(phase, size, last);
    // The first chunk starts the message, as DATA does.
    let started: Awaitable<void>;
    try {
      started = this.#host.hooks.onMessageDataStartEvent(this.ctx);
    } catch (err) {
      return this.#discardChunk(size, last, err);
    }
    const begin = () => {
      phase = this.#startChunkedMessage();
      return this.#beginChunk(phase, size, last);
    };
    if (isPromiseLike(started)) {
      return this.#awaitHook("onMessageDataStartEvent", started).then(begin, (err) => {
        if (err instanceof SessionEndedException || err instanceof HookTimeoutException) throw err;
        return this.#discardChunk(size, last, err);
      });
    }
    return begin();
  }

  /** Throws the refusal of a chunk of `size` bytes, if it is to be refused. */
  #checkChunk(size: number): void {
    if (this.#state === "HELO") throw new Smtpd503Exception(undefined, "Send HELO/EHLO first");
    this.#checkTlsAndAuth();
    if (this.#state === "RSET") throw new Smtpd503Exception(undefined, "Need MAIL command first");
    if (this.#state === "MAIL") throw new Smtpd554Exception(undefined, "No valid recipients", "5.5.1");
    if (this.#chunkFailed) throw new Smtpd503Exception(undefined, "An earlier chunk failed: send RSET", "5.5.0");
    const max = this.#opts.maxMessageSize;
    if (max > 0 && (this.#data ? this.#data.wouldExceed(size) : size > max)) {
      throw new Smtpd552Exception(undefined, "Message size exceeds fixed maximum message size", "5.3.4");
    }
  }

  /** A BDAT transaction's message and its chunk framer. */
  #startChunkedMessage(): DataPhase {
    this.#messageStarted = Date.now();
    this.#messageVia = "BDAT";
    const message = newMessage();
    message.received = new Date();
    message.bytesize = 0;
    this.ctx.message = message;
    const stream = this.#host.streamingHookActive
      ? new MessageStream((stream) => this.#host.hooks.onMessageDataStreamEvent(this.ctx, stream))
      : undefined;
    const phase = DataPhase.chunked({
      crlfMode: this.#opts.crlfMode,
      maxSize: this.#opts.maxMessageSize,
      maxLineLength: this.#opts.maxDataLineLength,
      binary: this.ctx.envelope.encodingBody === "binarymime",
    }, stream);
    this.#data = phase;
    return phase;
  }

  #beginChunk(phase: DataPhase, size: number, last: boolean): void | Promise<void> {
    this.#state = "BDAT";
    this.#chunkSize = size;
    phase.beginChunk(size, last);
    if (size > 0) {
      this.#receiving = true;
      return;
    }
    // An empty LAST chunk may still add a byte: the LF of a bare CR that ended the previous chunk.
    if (!phase.refusal) this.ctx.message.bytesize = phase.size;
    if (phase.headersPending || phase.stream) return this.#emptyChunkOutput(phase);
    return this.#chunkEnded(phase);
  }

  /** `BDAT 0 LAST` produced output (a repaired line break): it goes through the hooks like any chunk's bytes. */
  async #emptyChunkOutput(phase: DataPhase): Promise<void> {
    if (phase.headersPending) await this.#afterDataBytes(phase);
    if (this.#closing) return;
    if (phase.stream) await phase.pump(() => this.#closing);
    const finishing = this.#chunkEnded(phase);
    if (finishing) await finishing;
  }

  /** A chunk's last byte is in: 250 for it, or the whole message's reply after LAST. */
  #chunkEnded(phase: DataPhase): void | Promise<void> {
    this.#receiving = false;
    if (phase.complete) return this.#finishMessage(phase);
    const refusal = phase.refusal;
    if (refusal) {
      // A hook refused the message during this chunk: the transaction is dead until RSET or LAST.
      this.#data = undefined;
      phase.stream?.error(refusal);
      this.#chunkFailed = true;
      this.#noteError(refusal);
      this.#replyError(refusal);
      return;
    }
    this.#reply(250, "2.0.0", `${this.#chunkSize} octets received`);
  }

  /**
   * Refuses a chunk: its bytes are read and dropped, then `error` answers.
   * A chunk too large to be worth reading (past 1.5 times the size limit, as
   * Postfix) ends the connection instead.
   */
  #discardChunk(size: number, last: boolean, error: unknown): void {
    const max = this.#opts.maxMessageSize;
    if (max > 0 && size > max * 1.5 + 65536) {
      this.#closing = true;
      throw new Smtpd421Exception("chunk too large", "Chunk far too large, closing transmission channel", "4.3.4");
    }
    this.#discarding = size;
    this.#discardReply = { error, last };
    if (size === 0) this.#chunkDiscarded();
  }

  /** The refused chunk's bytes are dropped: now its refusal is answered. */
  #chunkDiscarded(): void {
    const { error, last } = this.#discardReply!;
    this.#discardReply = undefined;
    const inTransaction = this.#state === "RCPT" || this.#state === "BDAT";
    if (this.#opts.lmtp && last && inTransaction) {
      // RFC 2033 4.3: after BDAT LAST an LMTP client counts one reply per accepted recipient.
      this.#messageFailed(error);
    } else {
      this.#fail(error);
    }
    // With recipients accepted, a refused chunk kills the transaction (later chunks must not make a message
    // without this one's bytes): further BDATs are refused until RSET, and a LAST chunk ends it (Postfix).
    if (!inTransaction) return;
    if (last) return this.#resetTransaction();
    this.#state = "BDAT";
    this.#chunkFailed = true;
    const phase = this.#data;
    this.#data = undefined;
    phase?.stream?.error(error instanceof Error ? error : new Error(String(error)));
  }

  // ---- replies and errors ------------------------------------------------------------------

  #reply(code: number, enhanced: string, text: string): void {
    this.#out += formatReply(code, enhanced, text, this.#opts.enhancedStatusCodesExtension);
  }

  #replyError(err: SmtpdException): void {
    if (err instanceof SessionEndedException) {
      this.#closing = true; // nobody to answer (or the 421 went out already)
      return;
    }
    this.#reply(err.code, err.enhancedCode, err.text);
    if (err.code === 421) this.#closing = true;
  }

  /**
   * Answers an error from a command or hook; counts syntax and sequence
   * errors (and recipients past the limit) towards `maxBadCommands`.
   */
  #fail(err: unknown, countsAsBad = true): void {
    const smtpErr = err instanceof SmtpdException ? err : this.#localError(err);
    this.#noteError(smtpErr);
    this.#replyError(smtpErr);
    const bad = (smtpErr.code >= 500 && smtpErr.code <= 504) || smtpErr instanceof TooManyRecipientsException;
    if (countsAsBad && bad) {
      this.#badCommands++;
      if (this.#badCommands >= this.#opts.maxBadCommands && !this.#closing) {
        this.#reply(421, "4.7.0", "Too many errors, closing transmission channel");
        this.#closing = true;
      }
    }
  }

  /** Turns an application error into a 451 (before the greeting: a 421 that closes) and logs it. */
  #localError(err: unknown, beforeGreeting = false): SmtpdException {
    this.#host.log(this.ctx, "error", `hook failed: ${errorText(err)}`, err);
    return beforeGreeting
      ? new Smtpd421Exception(errorText(err), "Local error in processing, closing transmission channel", "4.3.0")
      : new Smtpd451Exception(errorText(err));
  }

  #noteError(err: SmtpdException | Error): void {
    this.ctx.server.exceptions++;
    this.ctx.server.errors.push(err);
    if (this.#host.logs("debug")) this.#host.log(this.ctx, "debug", `error reply: ${err.message}`);
    if (err instanceof SmtpdException && err.code === 421) return;
    // The tarpit (Postfix's smtpd_soft_error_limit): past the limit each error delays its reply a little more.
    const soft = this.#opts.softErrorLimit;
    if (soft !== null && ++this.#errorCount > soft) {
      const steps = Math.min(this.#errorCount - soft, MAX_TARPIT_STEPS);
      this.#tarpitMs = steps * this.#opts.errorSleepTime * 1000;
    }
  }

  async #flush(): Promise<void> {
    if (this.#out === "") return;
    if (this.#tarpitMs > 0) {
      const ms = this.#tarpitMs;
      this.#tarpitMs = 0;
      if (!this.#closing) {
        // Our own delay must not use up the client's time: its deadline starts again after the pause.
        const armed = this.#timerArmed;
        this.#disarmTimer();
        await this.#pause(ms);
        if (armed && !this.#closing) this.#armTimer();
      }
    }
    if (this.#ended) {
      this.#out = ""; // a timeout or an abort already said the last word
      return;
    }
    const text = this.#out;
    this.#out = "";
    if (this.#host.logs("debug")) this.#host.log(this.ctx, "debug", `>>> ${text.trimEnd()}`);
    this.#events.replies(text);
    try {
      await this.#conn.write(encoder.encode(text));
    } catch {
      this.#closing = true; // the client is gone
    }
  }

  /** Publishes how a message ended (see `SmtpMessageEvent`) and counts an accepted one. */
  #publishMessage(accepted: boolean, code: number): void {
    if (accepted) this.#messagesAccepted++;
    this.#events.message(accepted, code, this.#messageStarted, this.#messageVia);
  }

  #resetTransaction(): void {
    const phase = this.#data;
    if (phase && !this.#receiving) {
      // A BDAT transaction ended between chunks (RSET, EHLO, STARTTLS): its message is dropped.
      this.#data = undefined;
      phase.stream?.error(new Error("the transaction was reset before the last chunk"));
    }
    this.#chunkFailed = false;
    this.ctx.envelope = newEnvelope();
    this.ctx.message = newMessage();
    if (this.#state !== "HELO") this.#state = "RSET";
  }

  /** Sends FIN after the last reply (so it is not lost to a reset), then closes; waits 1 s at most. */
  async #closeConnection(): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      await Promise.race([
        this.#conn.closeWrite(),
        new Promise((resolve) => timer = setTimeout(resolve, 1000)),
      ]);
    } catch {
      // already gone
    } finally {
      clearTimeout(timer);
      this.#conn.close();
    }
  }

  // ---- timeouts ----------------------------------------------------------------------------

  /** Starts the deadline for the phase we are in, unless one runs already. */
  #armTimer(): void {
    if (this.#timerArmed) return;
    const o = this.#opts;
    let seconds = this.#receiving
      ? o.ioDataTimeout
      : this.ctx.server.heloMode === "" && this.#state === "HELO"
      ? o.ioGreetingTimeout
      : o.ioCmdTimeout;
    if (!this.#receiving) {
      // Overloaded (Postfix's stress mode): a client gets seconds, not minutes, per command.
      const overload = this.#host.overloadTimeout();
      if (overload !== null && (seconds === null || overload < seconds)) seconds = overload;
    }
    if (seconds === null) return;
    this.#timerArmed = true;
    this.#host.deadlines.set(this, seconds * 1000, this.#timeoutHandler);
  }

  #disarmTimer(): void {
    if (!this.#timerArmed) return;
    this.#timerArmed = false;
    this.#host.deadlines.clear(this);
  }

  /** Made once: the deadline is armed for every command. */
  readonly #timeoutHandler = () => this.#onTimeout();

  #onTimeout(): void {
    this.#timerArmed = false;
    this.#host.log(this.ctx, "info", `timeout in state ${this.#state}: closing`);
    // Nothing more is awaited for this client: a hook or a pause running now is given up, ctx.signal aborts.
    this.#end(new SessionEndedException("timeout"));
    // Only the 421: replies still waiting (a tarpit's) would come after it.
    this.#out = "";
    this.#reply(421, "4.4.2", "Timeout, closing transmission channel");
    this.#lastWords();
  }
}

/** What a session looks up per command, made once per server (per resolved options). */
interface SessionTables {
  /** Commands by upper-case verb: the built-ins, an application's, disabled ones answering 502. */
  readonly commands: ReadonlyMap<string, CommandDefinition>;
  /** MAIL and RCPT parameters. */
  readonly parameters: ParameterTable;
  /** PIPELINING is offered and pipelined input accepted (always in LMTP: RFC 2033 4.1). */
  readonly pipelining: boolean;
  /** The commands HELP names: neither disabled ones nor the greetings of the other protocol. */
  readonly help: string;
}

const tablesByOptions = new WeakMap<ResolvedOptions, SessionTables>();

/** The command and parameter tables for `options`, made on first use and shared by its sessions. */
function tablesFor(options: ResolvedOptions): SessionTables {
  let tables = tablesByOptions.get(options);
  if (tables) return tables;
  const commands = new Map<string, CommandDefinition>();
  for (const command of [...Session.builtins, ...options.commands]) commands.set(command.name.toUpperCase(), command);
  for (const name of options.disabledCommands) {
    commands.set(name, {
      name,
      handler() {
        throw new Smtpd502Exception();
      },
    });
  }
  const disabled = new Set(options.disabledCommands);
  // Not named: the other protocol's greetings, and XCLIENT/XFORWARD where nobody is trusted to use them.
  const unlisted = new Set(options.lmtp ? ["HELO", "EHLO"] : ["LHLO"]);
  if (options.xclientTrustedSources.entries.length === 0 && !options.xclientTrustsUnix) {
    unlisted.add("XCLIENT").add("XFORWARD");
  }
  if (!options.chunkingExtension) unlisted.add("BDAT");
  if (options.tlsMode === "TLS_FORBIDDEN") unlisted.add("STARTTLS");
  if (options.authMode === "AUTH_FORBIDDEN") unlisted.add("AUTH");
  const helped = [...commands.keys()].filter((verb) => !disabled.has(verb) && !unlisted.has(verb));
  tables = {
    help: helped.join(" "),
    commands,
    parameters: new ParameterTable(options),
    pipelining: options.pipeliningExtension || options.lmtp,
  };
  tablesByOptions.set(options, tables);
  return tables;
}

const EMPTY = new Uint8Array(0);
/** After abort() (a non-graceful stop), how long onDisconnectEvent is still awaited. */
const ABORTED_HOOK_SECONDS = 1;
/** The tarpit's delay grows by `errorSleepTime` per error past the soft limit, up to this many times it. */
const MAX_TARPIT_STEPS = 10;

/** RCPT past `maxRecipients`: a 452 that also counts towards `maxBadCommands`. */
class TooManyRecipientsException extends SmtpdException {
  constructor() {
    super(452, "4.5.3", "Too many recipients");
  }
}

/** Hides the initial response of an AUTH line (it holds credentials). */
function redactAuth(line: string): string {
  return /^AUTH\s+\S+\s+\S/i.test(line) ? line.replace(/^(AUTH\s+\S+\s+).*/i, "$1[hidden]") : line;
}
