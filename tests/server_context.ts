/**
 * The server part of a session context (`ctx.server`) for unit tests that
 * build a context without a server: a plain TCP client from 127.0.0.1 that
 * has said EHLO and nothing else yet. Each test overrides what it is about.
 */
import type { ServerContext } from "../src/context.ts";

/** A fresh `ServerContext`: 127.0.0.1:40000 to 127.0.0.1:2525, EHLO client.example, no TLS, no AUTH. */
export function serverContext(overrides: Partial<ServerContext> = {}): ServerContext {
  return {
    localHost: "127.0.0.1",
    localIp: "127.0.0.1",
    localPort: 2525,
    remoteHost: "127.0.0.1",
    remoteIp: "127.0.0.1",
    remotePort: 40000,
    localResponse: "",
    heloResponse: "",
    helo: "client.example",
    heloMode: "EHLO",
    connected: new Date(),
    authenticated: null,
    encrypted: null,
    tlsProtocol: "",
    tlsCipher: "",
    authorizationId: "",
    authenticationId: "",
    exceptions: 0,
    errors: [],
    proxy: null,
    xclient: null,
    protocol: "SMTP",
    ...overrides,
  };
}
