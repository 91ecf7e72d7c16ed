/**
 * The PLAIN mechanism (RFC 4616): one client message holding the
 * authorization identity, the user name and the password, separated by NUL.
 *
 * @module
 */
import type { SaslExchange, SaslMechanism } from "./types.ts";
import { decodeUtf8, malformed, singleResponseExchange } from "./common.ts";

const NAME = "PLAIN";

/**
 * PLAIN (RFC 4616). Without an initial response it sends an empty challenge
 * (`334 `) and takes the next line. The message must be
 * `authzid NUL authcid NUL passwd` in UTF-8 with a non-empty user name and
 * password; anything else, including the empty initial response `=`, is
 * answered `501 5.5.2 Malformed PLAIN response`.
 *
 * @example
 * ```ts
 * const exchange = PLAIN_MECHANISM.start("mx.example.com");
 * const step = exchange.next(new TextEncoder().encode("\0tim\0tanstaaf"));
 * step.kind; // => "done"
 * step.kind === "done" && step.credentials.authenticationId; // => "tim"
 * ```
 */
export const PLAIN_MECHANISM: SaslMechanism = {
  name: NAME,
  start(): SaslExchange {
    return singleResponseExchange(NAME, (response) => {
      // RFC 4616 2: message = [authzid] UTF8NUL authcid UTF8NUL passwd.
      // NUL cannot occur inside a UTF-8 sequence, so splitting the decoded
      // text is the same as splitting the bytes.
      const parts = decodeUtf8(response, NAME).split("\0");
      if (parts.length !== 3) throw malformed(NAME);
      const [authorizationId, authenticationId, authentication] = parts;
      if (authenticationId === "" || authentication === "") throw malformed(NAME);
      return { mechanism: NAME, authorizationId, authenticationId, authentication };
    });
  },
};
