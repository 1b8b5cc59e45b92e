import { RlsKitError } from '../../errors.js';
import type { ClaimSchema, ClaimValue } from '../../tokens/claim-schema.js';
import { exampleClaimSchema } from '../../tokens/example-claims.js';
import { loadClaimSchemaFile } from '../../tokens/load-claim-schema.js';
import { createMinter } from '../../tokens/mint.js';
import { parseFlags, requireFlag } from '../args.js';
import type { Command } from '../command.js';
import { loadKeyringForCli } from './keys-file.js';

/**
 * `rls-kit mint --keys FILE --iss ISS --aud AUD --sub SUB [--claim k=v]...
 * [--claim-schema FILE] [--ttl 10m]` — one token on stdout, signed with the
 * keyring's active key. `--claim` values are checked against the example's
 * claim schema (`org_id` uuid, `user_role` owner/admin/member/viewer) unless
 * `--claim-schema` names a JSON or YAML file with another.
 *
 * @example
 * ```sh
 * rls-kit mint --keys keys.json --iss https://api.example.com --aud authenticated \
 *   --sub "$USER_ID" --claim org_id="$ORG_ID" --claim user_role=member
 * ```
 */
export const mintCommand: Command = {
  path: ['mint'],
  summary: 'mint a token with the keyring’s active key (token on stdout)',
  usage:
    'rls-kit mint --keys FILE --iss ISS --aud AUD --sub SUB [--claim k=v]... [--claim-schema FILE] [--ttl 10m]\n\n' +
    '  --keys FILE           keyring file from rls-kit keys generate\n' +
    '  --iss ISS, --aud AUD  issuer and audience\n' +
    '  --sub SUB             the user id (a uuid)\n' +
    '  --claim k=v           a custom claim (repeatable), checked against the claim schema\n' +
    '  --claim-schema FILE   JSON or YAML claim schema (default: the example: org_id, user_role)\n' +
    '  --ttl D               lifetime, at most 1h (default 10m)',
  async run(args, io) {
    const { values } = parseFlags(
      args,
      {
        keys: { type: 'string' },
        iss: { type: 'string' },
        aud: { type: 'string' },
        sub: { type: 'string' },
        claim: { type: 'string', multiple: true },
        'claim-schema': { type: 'string' },
        ttl: { type: 'string' },
      },
      'mint',
    );
    const file = requireFlag(values.keys, 'keys', 'mint');
    const issuer = requireFlag(values.iss, 'iss', 'mint');
    const audience = requireFlag(values.aud, 'aud', 'mint');
    const sub = requireFlag(values.sub, 'sub', 'mint');
    const schema = values['claim-schema']
      ? await loadClaimSchemaFile(values['claim-schema'])
      : exampleClaimSchema;
    const claims: Record<string, ClaimValue> = {};
    for (const pair of values.claim ?? []) {
      const eq = pair.indexOf('=');
      if (eq <= 0) {
        throw new RlsKitError(
          'ERR_USAGE',
          '--claim must look like name=value (see: rls-kit mint --help)',
        );
      }
      const name = pair.slice(0, eq);
      if (Object.hasOwn(claims, name)) {
        throw new RlsKitError(
          'ERR_USAGE',
          `--claim ${JSON.stringify(name.slice(0, 64))} is given twice`,
        );
      }
      claims[name] = schema.parseValue(name, pair.slice(eq + 1));
    }
    const keyring = await loadKeyringForCli(file, io);
    const minter = await createMinter({
      keyring,
      issuer,
      audience,
      claimSchema: schema as ClaimSchema,
      ttl: values.ttl ?? '10m',
    });
    const token = await minter.mint({ sub, claims });
    io.stdout.write(`${token}\n`);
    return 0;
  },
};
