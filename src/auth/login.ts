/**
 * The LOGIN mechanism (draft-murchison-sasl-login): the server asks for the
 * user name and then the password, one line each. Obsolete, but Outlook and
 * many devices still only speak it.
 *
 * @module
 */
import type { SaslExchange, SaslMechanism } from "./types.ts";
import { decodeUtf8, finished, malformed } from "./common.ts";

const NAME = "LOGIN";
const encoder = new TextEncoder();
// The prompts clients expect (base64 "VXNlcm5hbWU6" and "UGFzc3dvcmQ6");
// the draft says clients ignore their content, but some compare it. Encoded
// afresh each time so that no caller can alter a shared array.
const USERNAME_PROMPT = "Username:";
const PASSWORD_PROMPT = "Password:";

/**
 * LOGIN. Challenges `Username:` and then `Password:`; an initial response
 * (`AUTH LOGIN <base64 user>`) is taken as the user name and skips the first
 * challenge. An empty user name or password, or invalid UTF-8, is answered
 * `501 5.5.2 Malformed LOGIN response`.
 *
 * @example
 * ```ts
 * const exchange = LOGIN_MECHANISM.start("mx.example.com");
 * const text = new TextEncoder();
 * exchange.next(undefined); // => { kind: "challenge", challenge: text.encode("Username:") }
 * exchange.next(text.encode("tim")); // => { kind: "challenge", challenge: text.encode("Password:") }
 * const step = exchange.next(text.encode("tanstaaf"));
 * step.kind === "done" && step.credentials.authentication; // => "tanstaaf"
 * ```
 */
export const LOGIN_MECHANISM: SaslMechanism = {
  name: NAME,
  start(): SaslExchange {
    let state: "start" | "username" | "password" | "done" = "start";
    // Held only between the two lines, and dropped once the exchange ends.
    let username = "";
    return {
      next(response) {
        if (state === "done") throw finished(NAME);
        if (response === undefined) {
          if (state !== "start") throw malformed(NAME);
          state = "username";
          return { kind: "challenge", challenge: encoder.encode(USERNAME_PROMPT) };
        }
        if (state === "start" || state === "username") {
          username = decodeUtf8(response, NAME);
          if (username === "") {
            state = "done";
            throw malformed(NAME);
          }
          state = "password";
          return { kind: "challenge", challenge: encoder.encode(PASSWORD_PROMPT) };
        }
        state = "done";
        const authenticationId = username;
        username = "";
        const authentication = decodeUtf8(response, NAME);
        // An empty password can never be right; saying so as a syntax error
        // matches PLAIN (RFC 4616 requires a non-empty passwd).
        if (authentication === "") throw malformed(NAME);
        return {
          kind: "done",
          credentials: { mechanism: NAME, authorizationId: "", authenticationId, authentication },
        };
      },
    };
  },
};
