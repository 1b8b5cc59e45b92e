import { publicJwks } from '../../keys/index.js';
import { parseFlags, requireFlag } from '../args.js';
import type { Command } from '../command.js';
import { loadKeyringForCli } from './keys-file.js';

/**
 * `rls-kit keys public --keys FILE` — the keyring's public JWK Set on stdout
 * (standby, active and still-valid retired keys; no private or symmetric
 * material), ready to serve as `/.well-known/jwks.json`.
 *
 * @example
 * ```sh
 * rls-kit keys public --keys keys.json > public/.well-known/jwks.json
 * ```
 */
export const keysPublicCommand: Command = {
  path: ['keys', 'public'],
  summary: 'public JWKS of a keyring (no private or symmetric material)',
  usage:
    'rls-kit keys public --keys FILE\n\n  --keys FILE  keyring file from rls-kit keys generate',
  async run(args, io) {
    const { values } = parseFlags(args, { keys: { type: 'string' } }, 'keys public');
    const file = requireFlag(values.keys, 'keys', 'keys public');
    const keyring = await loadKeyringForCli(file, io);
    const jwks = publicJwks(keyring);
    io.stdout.write(`${JSON.stringify(jwks, null, 2)}\n`);
    const symmetric = keyring.keys.filter((k) => k.alg === 'HS256').length;
    if (symmetric > 0) {
      io.stderr.write(
        `rls-kit: ${symmetric} HS256 key${symmetric === 1 ? ' is' : 's are'} symmetric and never published; verifiers need the keyring itself\n`,
      );
    }
    return 0;
  },
};
