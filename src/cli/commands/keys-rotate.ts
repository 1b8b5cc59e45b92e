import { parseDuration, publicJwks } from '../../keys/index.js';
import { rotateKeyringFile } from '../../server/rotate-keyring-file.js';
import { parseFlags, requireFlag } from '../args.js';
import type { Command } from '../command.js';

/**
 * `rls-kit keys rotate --keys FILE` — one step of the key schedule (see
 * `rotate`): drops expired retired keys, promotes a standby key published
 * longer than the JWKS cache window (retiring the old active key), adds a
 * standby key when none is left. Rewrites FILE atomically with mode 0600
 * under a lock (the token service's rotation schedule runs the same code,
 * `rotateKeyringFile`, so both can share one file), prints the new public
 * JWKS on stdout (publish it) and one line per change on stderr. Run it
 * periodically, e.g. daily from cron; with `--every 30d` each key signs
 * for 30 days.
 *
 * @example
 * ```sh
 * rls-kit keys rotate --keys keys.json > public/.well-known/jwks.json
 * ```
 */
export const keysRotateCommand: Command = {
  path: ['keys', 'rotate'],
  summary: 'add a standby key, promote and retire per schedule (rewrites FILE, JWKS on stdout)',
  usage:
    'rls-kit keys rotate --keys FILE [--token-ttl 1h] [--jwks-cache-ttl 1h] [--every D] [--clock-tolerance 30s]\n\n' +
    '  --keys FILE            keyring file; rewritten atomically, mode 0600\n' +
    '  --token-ttl D          longest token lifetime: a retired key verifies this long (+ tolerance)\n' +
    '  --jwks-cache-ttl D     how long verifiers cache the JWKS: a standby key waits this long\n' +
    '  --every D              how long each key signs (default 0: promote once the cache window allows)\n' +
    "  --clock-tolerance D    verifiers' clock tolerance, added to retirement (default 30s)\n\n" +
    'stdout: the new public JWKS (publish it); stderr: what changed',
  async run(args, io) {
    const { values } = parseFlags(
      args,
      {
        keys: { type: 'string' },
        'token-ttl': { type: 'string' },
        'jwks-cache-ttl': { type: 'string' },
        every: { type: 'string' },
        'clock-tolerance': { type: 'string' },
      },
      'keys rotate',
    );
    const file = requireFlag(values.keys, 'keys', 'keys rotate');
    const tokenTtl = parseDuration(values['token-ttl'] ?? '1h', '--token-ttl');
    const jwksCacheTtl = parseDuration(values['jwks-cache-ttl'] ?? '1h', '--jwks-cache-ttl');
    const rotateEvery = parseDuration(values.every ?? '0', '--every');
    const clockTolerance = parseDuration(values['clock-tolerance'] ?? '30s', '--clock-tolerance');
    const {
      keyring: next,
      changes,
      wasExposed,
    } = await rotateKeyringFile(file, { tokenTtl, jwksCacheTtl, rotateEvery, clockTolerance });
    if (wasExposed) {
      io.stderr.write(`rls-kit: ${file} was readable by others; it is 0600 now\n`);
    }
    for (const change of changes) {
      const until = change.notAfter ? ` (verifies until ${change.notAfter})` : '';
      io.stderr.write(`rls-kit: ${change.action} ${change.alg} key ${change.kid}${until}\n`);
    }
    if (changes.length === 0) {
      io.stderr.write('rls-kit: nothing to do yet (the standby key is not due for promotion)\n');
    }
    io.stdout.write(`${JSON.stringify(publicJwks(next), null, 2)}\n`);
    return 0;
  },
};
