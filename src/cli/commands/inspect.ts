import { text } from 'node:stream/consumers';
import { RlsKitError } from '../../errors.js';
import { inspectToken } from '../../tokens/inspect.js';
import { parseFlags } from '../args.js';
import type { Command } from '../command.js';

/**
 * `rls-kit inspect TOKEN` — decodes a token WITHOUT verifying it: JSON with
 * `"unverified": true`, the header, the claims and the byte size of each
 * part and claim on stdout; an UNVERIFIED banner on stderr. `-` reads the
 * token from stdin (keeps it out of shell history).
 *
 * @example
 * ```sh
 * rls-kit inspect "$TOKEN" | jq .size
 * ```
 */
export const inspectCommand: Command = {
  path: ['inspect'],
  summary: 'decode a token WITHOUT verifying it, with the size of each claim',
  usage:
    'rls-kit inspect TOKEN\n\n' +
    '  TOKEN  a compact JWT, or - to read it from stdin\n\n' +
    'Nothing is verified: never decide access from this output.',
  async run(args, io) {
    const { positionals } = parseFlags(args, {}, 'inspect', true);
    if (positionals.length !== 1) {
      throw new RlsKitError(
        'ERR_USAGE',
        'give exactly one TOKEN, or - for stdin (see: rls-kit inspect --help)',
      );
    }
    let token = positionals[0] as string;
    if (token === '-') token = (await text(io.stdin)).trim();
    const result = inspectToken(token);
    io.stderr.write(
      'UNVERIFIED: decoded only; the signature, issuer, audience and expiry were NOT checked\n',
    );
    io.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    return 0;
  },
};
