/**
 * The CRAM-MD5 mechanism (RFC 2195): the server sends a unique challenge and
 * the client answers with its user name and HMAC-MD5(secret, challenge), so
 * the password never crosses the wire, but the server must know it in clear.
 *
 * @module
 */
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import type { SaslExchange, SaslMechanism } from "./types.ts";
import { decodeUtf8, finished, malformed } from "./common.ts";
import { SmtpdException } from "../exceptions.ts";

const NAME = "CRAM-MD5";
const encoder = new TextEncoder();
const HEX_DIGEST = /^[0-9a-fA-F]{32}$/;

/** Options of {@link createCramMd5Mechanism}. */
export interface CramMd5Options {
  /**
   * Makes the challenge for one exchange (default:
   * `<random digits.milliseconds@serverName>`). It must never repeat, or a
   * recorded response could be replayed; override it only in tests or to
   * match a legacy format.
   */
  readonly challengeFactory?: (serverName: string) => string;
}

/** RFC 2195 2: "a presumptively arbitrary string of random digits, a timestamp, and the fully-qualified primary host name". */
function defaultChallenge(serverName: string): string {
  // 64 random bits make a repeat practically impossible even across servers
  // that share a host name and a clock.
  return `<${randomBytes(8).readBigUInt64BE(0)}.${Date.now()}@${serverName}>`;
}

/**
 * Creates a CRAM-MD5 mechanism. The finished exchange's credentials carry the
 * client's digest (lower-cased) as `authentication` and a `verify(secret)`
 * that recomputes HMAC-MD5 over this exchange's challenge and compares in
 * constant time.
 *
 * @example
 * ```ts
 * // RFC 2195's own example, with its fixed challenge:
 * const challenge = "<1896.697170952@postoffice.reston.mci.net>";
 * const mechanism = createCramMd5Mechanism({ challengeFactory: () => challenge });
 * const exchange = mechanism.start("postoffice.reston.mci.net");
 * exchange.next(undefined); // => { kind: "challenge", challenge: new TextEncoder().encode(challenge) }
 * const step = exchange.next(new TextEncoder().encode("tim b913a602c7eda7a495b4e6e7334d3890"));
 * step.kind === "done" && step.credentials.authenticationId; // => "tim"
 * step.kind === "done" && step.credentials.verify?.("tanstaaftanstaaf"); // => true
 * ```
 */
export function createCramMd5Mechanism(options: CramMd5Options = {}): SaslMechanism {
  const challengeFactory = options.challengeFactory ?? defaultChallenge;
  return {
    name: NAME,
    start(serverName: string): SaslExchange {
      let challenge: string | undefined;
      let done = false;
      return {
        next(response) {
          if (done) throw finished(NAME);
          if (challenge === undefined) {
            if (response !== undefined) {
              done = true;
              // RFC 4954 4: "If the client uses an initial-response argument to
              // the AUTH command with a SASL mechanism in which the client does
              // not begin the authentication exchange, the server MUST reject
              // the AUTH command with a 501 reply." CRAM-MD5 is server-first
              // (RFC 2195 2). 5.7.0 is the code RFC 4954 6 registers for it
              // ("Client initiated Authentication Exchange"). This holds for
              // the empty initial response "=" as well.
              throw new SmtpdException(501, "5.7.0", "CRAM-MD5 does not allow an initial response");
            }
            challenge = challengeFactory(serverName);
            return { kind: "challenge", challenge: encoder.encode(challenge) };
          }
          done = true;
          if (response === undefined) throw malformed(NAME);
          // RFC 2195 2: "the user name, a space, and the digest". Split at the
          // last space: the digest has none, a user name might.
          const text = decodeUtf8(response, NAME);
          const space = text.lastIndexOf(" ");
          const authenticationId = text.slice(0, space);
          const digest = text.slice(space + 1);
          if (space <= 0 || !HEX_DIGEST.test(digest)) throw malformed(NAME);
          const sent = digest.toLowerCase();
          const signed = challenge;
          return {
            kind: "done",
            credentials: {
              mechanism: NAME,
              authorizationId: "",
              authenticationId,
              authentication: sent,
              verify(secret: string): boolean {
                const expected = createHmac("md5", encoder.encode(secret)).update(encoder.encode(signed)).digest("hex");
                // Both are 32 ASCII hex digits, so the lengths always match,
                // as timingSafeEqual requires.
                return timingSafeEqual(encoder.encode(expected), encoder.encode(sent));
              },
            },
          };
        },
      };
    },
  };
}

/** CRAM-MD5 (RFC 2195) with random challenges; see {@link createCramMd5Mechanism}. */
export const CRAM_MD5_MECHANISM: SaslMechanism = createCramMd5Mechanism();
