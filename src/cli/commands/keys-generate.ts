import { RlsKitError } from '../../errors.js';
import {
  createKeyring,
  generateKey,
  SIGNING_ALGS,
  type SigningAlg,
  serializeKeyring,
} from '../../keys/index.js';
import { parseFlags } from '../args.js';
import type { Command } from '../command.js';

/**
 * `rls-kit keys generate [--alg ES256|RS256|EdDSA|HS256] [--kid ID]` — a new
 * keyring holding one active key, as a private JWK Set on stdout. The
 * command writes no file: redirect stdout into one only you can read.
 *
 * @example
 * ```sh
 * (umask 077; rls-kit keys generate > keys.json)
 * ```
 */
export const keysGenerateCommand: Command = {
  path: ['keys', 'generate'],
  summary: 'new keyring with one active signing key (private JWK Set on stdout)',
  usage:
    'rls-kit keys generate [--alg ES256|RS256|EdDSA|HS256] [--kid ID]\n\n' +
    '  --alg ALG  signature algorithm (default ES256: small tokens, what Supabase Auth uses)\n' +
    '  --kid ID   key id instead of the RFC 7638 thumbprint prefix\n\n' +
    'stdout is a PRIVATE key: (umask 077; rls-kit keys generate > keys.json)',
  async run(args, io) {
    const { values } = parseFlags(
      args,
      { alg: { type: 'string' }, kid: { type: 'string' } },
      'keys generate',
    );
    const alg = values.alg ?? 'ES256';
    if (!SIGNING_ALGS.includes(alg as SigningAlg)) {
      throw new RlsKitError(
        'ERR_USAGE',
        `--alg must be one of ${SIGNING_ALGS.join(', ')} (see: rls-kit keys generate --help)`,
      );
    }
    if (values.kid !== undefined && !/^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$/.test(values.kid)) {
      throw new RlsKitError(
        'ERR_USAGE',
        '--kid must be 1-64 characters of A-Z a-z 0-9 . _ - (not starting with .)',
      );
    }
    const key = await generateKey({ alg: alg as SigningAlg, kid: values.kid });
    io.stdout.write(serializeKeyring(createKeyring([key])));
    io.stderr.write(
      `rls-kit: generated an active ${key.alg} key (kid ${key.kid}); stdout holds its private key: keep that file mode 0600\n`,
    );
    return 0;
  },
};
