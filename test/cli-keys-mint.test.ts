import { randomUUID } from 'node:crypto';
import { chmod, mkdtemp, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLocalJWKSet, decodeJwt, jwtVerify } from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import { runCliCaptured } from './helpers/cli.js';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

const cli = (argv: string[], stdin = ''): Promise<Run> => runCliCaptured(argv, { stdin });

/** A failed run: one line on stderr, no stack trace, nothing on stdout. */
function expectOneLineError(run: Run, code: number, pattern: RegExp): void {
  expect(run.code).toBe(code);
  expect(run.stdout).toBe('');
  expect(run.stderr.trimEnd().split('\n')).toHaveLength(1);
  expect(run.stderr).toMatch(pattern);
  expect(run.stderr).not.toMatch(/\n\s+at /);
}

const ISS = 'https://api.example.com';
const AUD = 'authenticated';
let dir: string;
let keys: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'rls-kit-cli-'));
  keys = join(dir, 'keys.json');
  const run = await cli(['keys', 'generate']);
  expect(run.code).toBe(0);
  await writeFile(keys, run.stdout, { mode: 0o600 });
});

describe('rls-kit keys generate', () => {
  it.each(['ES256', 'RS256', 'EdDSA', 'HS256'])(
    '--alg %s prints a private JWK Set with one active key',
    async (alg) => {
      const run = await cli(['keys', 'generate', '--alg', alg]);
      expect(run.code).toBe(0);
      const set = JSON.parse(run.stdout) as { keys: Record<string, unknown>[] };
      expect(set.keys).toHaveLength(1);
      expect(set.keys[0]).toMatchObject({ alg, use: 'sig', rls_kit_state: 'active' });
      expect(set.keys[0]?.[alg === 'HS256' ? 'k' : 'd']).toEqual(expect.any(String));
      expect(run.stderr).toContain(`kid ${set.keys[0]?.kid}`);
      // stderr talks, but never prints key material
      expect(run.stderr).not.toContain(set.keys[0]?.[alg === 'HS256' ? 'k' : 'd']);
    },
  );

  it('takes --kid, and refuses a bad --alg or --kid as usage errors', async () => {
    const run = await cli(['keys', 'generate', '--kid', 'prod-2025']);
    expect(JSON.parse(run.stdout).keys[0].kid).toBe('prod-2025');
    expectOneLineError(await cli(['keys', 'generate', '--alg', 'none']), 2, /--alg must be one of/);
    expectOneLineError(await cli(['keys', 'generate', '--kid', '../../x']), 2, /--kid/);
    expectOneLineError(await cli(['keys', 'generate', '--bogus']), 2, /ERR_USAGE/);
  });
});

describe('rls-kit keys public', () => {
  it('prints the public JWKS without private members', async () => {
    const run = await cli(['keys', 'public', '--keys', keys]);
    expect(run.code).toBe(0);
    const jwks = JSON.parse(run.stdout) as { keys: Record<string, unknown>[] };
    expect(jwks.keys).toHaveLength(1);
    expect(Object.keys(jwks.keys[0] ?? {}).sort()).toEqual([
      'alg',
      'crv',
      'kid',
      'kty',
      'use',
      'x',
      'y',
    ]);
    const ring = JSON.parse(await readFile(keys, 'utf8'));
    expect(run.stdout).not.toContain(ring.keys[0].d);
  });

  it('warns when the keyring file is readable by others', async () => {
    const open = join(dir, 'open.json');
    await writeFile(open, await readFile(keys));
    await chmod(open, 0o644);
    const run = await cli(['keys', 'public', '--keys', open]);
    expect(run.code).toBe(0);
    expect(run.stderr).toMatch(/chmod 600/);
  });

  it('one-line errors for a missing flag, a missing file, a wrong format', async () => {
    expectOneLineError(await cli(['keys', 'public']), 2, /--keys is required/);
    expectOneLineError(
      await cli(['keys', 'public', '--keys', join(dir, 'nope.json')]),
      1,
      /does not exist.*\[ERR_KEY_INVALID\]/,
    );
    const pem = join(dir, 'key.pem');
    await writeFile(
      pem,
      '-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgSECRETSECRET\n-----END PRIVATE KEY-----\n',
    );
    const run = await cli(['keys', 'public', '--keys', pem]);
    expectOneLineError(run, 1, /PEM key, not a keyring/);
    expect(run.stderr).not.toContain('SECRETSECRET');
    const garbage = join(dir, 'garbage.json');
    await writeFile(
      garbage,
      '{"keys":[{"kty":"EC","crv":"P-256","x":"AAAA","y":"BBBB","d":"TOPSECRETVALUE"}]}',
    );
    const bad = await cli(['keys', 'public', '--keys', garbage]);
    expectOneLineError(bad, 1, /\[ERR_KEY_INVALID\]/);
    expect(bad.stderr).not.toContain('TOPSECRETVALUE');
  });
});

describe('rls-kit keys rotate', () => {
  it('adds a standby key, rewrites the file atomically with mode 0600, prints the JWKS', async () => {
    const file = join(dir, 'rotate.json');
    await writeFile(file, (await cli(['keys', 'generate'])).stdout, { mode: 0o644 });
    const before = JSON.parse(await readFile(file, 'utf8'));
    const run = await cli(['keys', 'rotate', '--keys', file]);
    expect(run.code).toBe(0);
    expect(run.stderr).toMatch(/added ES256 key [A-Za-z0-9_-]{11}/);
    const after = JSON.parse(await readFile(file, 'utf8'));
    expect(after.keys.map((k: { rls_kit_state: string }) => k.rls_kit_state)).toEqual([
      'active',
      'standby',
    ]);
    expect(after.keys[0].kid).toBe(before.keys[0].kid);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect((await readdir(dir)).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    const jwks = JSON.parse(run.stdout);
    expect(jwks.keys.map((k: { kid: string }) => k.kid)).toEqual(
      after.keys.map((k: { kid: string }) => k.kid),
    );
    expect(run.stdout).not.toMatch(/"d"/);

    // straight away again: the standby key is not published long enough yet
    const again = await cli(['keys', 'rotate', '--keys', file]);
    expect(again.code).toBe(0);
    expect(again.stderr).toMatch(/nothing to do/);
    // with a zero cache window it is promoted and the old key retired
    const now = await cli([
      'keys',
      'rotate',
      '--keys',
      file,
      '--jwks-cache-ttl',
      '0s',
      '--token-ttl',
      '10m',
    ]);
    expect(now.stderr).toMatch(/retired ES256 key .* \(verifies until .*\)\nrls-kit: promoted/);
    const states = JSON.parse(await readFile(file, 'utf8')).keys.map(
      (k: { rls_kit_state: string }) => k.rls_kit_state,
    );
    expect(states).toEqual(['retired', 'active', 'standby']);
    expectOneLineError(
      await cli(['keys', 'rotate', '--keys', file, '--token-ttl', 'ages']),
      2,
      /--token-ttl/,
    );
  });
});

describe('rls-kit mint and inspect', () => {
  it('generate → public → mint → inspect: the token verifies against the public JWKS', async () => {
    const sub = randomUUID();
    const org = randomUUID();
    const run = await cli([
      'mint',
      '--keys',
      keys,
      '--iss',
      ISS,
      '--aud',
      AUD,
      '--sub',
      sub,
      '--claim',
      `org_id=${org}`,
      '--claim',
      'user_role=admin',
    ]);
    expect(run.code).toBe(0);
    expect(run.stderr).toBe('');
    const token = run.stdout.trim();
    expect(run.stdout).toBe(`${token}\n`);
    expect(token.length).toBeLessThanOrEqual(500);

    const jwks = JSON.parse((await cli(['keys', 'public', '--keys', keys])).stdout);
    const { payload, protectedHeader } = await jwtVerify(token, createLocalJWKSet(jwks), {
      issuer: ISS,
      audience: AUD,
      algorithms: ['ES256'],
    });
    expect(payload).toMatchObject({ sub, org_id: org, user_role: 'admin', role: 'authenticated' });
    expect((payload.exp ?? 0) - (payload.iat ?? 0)).toBe(600);
    expect(protectedHeader.kid).toBe(jwks.keys[0].kid);

    const inspected = await cli(['inspect', token]);
    expect(inspected.code).toBe(0);
    expect(inspected.stderr).toMatch(/^UNVERIFIED/);
    const result = JSON.parse(inspected.stdout);
    expect(result.unverified).toBe(true);
    expect(result.claims.sub).toBe(sub);
    expect(result.header.kid).toBe(jwks.keys[0].kid);
    expect(result.size.total).toBe(token.length);
    expect(result.size.claims.find((c: { name: string }) => c.name === 'user_role')).toEqual({
      name: 'user_role',
      bytes: 19,
    });

    const fromStdin = await cli(['inspect', '-'], `${token}\n`);
    expect(JSON.parse(fromStdin.stdout).claims.jti).toBe(result.claims.jti);
  });

  it('--ttl and --claim-schema (YAML and JSON)', async () => {
    const sub = randomUUID();
    const yaml = join(dir, 'claims.yaml');
    await writeFile(yaml, 'tenant:\n  type: string\n  required: true\nlevel:\n  type: integer\n');
    const run = await cli([
      'mint',
      '--keys',
      keys,
      '--iss',
      ISS,
      '--aud',
      AUD,
      '--sub',
      sub,
      '--ttl',
      '5m',
      '--claim-schema',
      yaml,
      '--claim',
      'tenant=acme',
      '--claim',
      'level=3',
    ]);
    expect(run.code).toBe(0);
    const claims = decodeJwt(run.stdout.trim());
    expect(claims).toMatchObject({ tenant: 'acme', level: 3 });
    expect((claims.exp ?? 0) - (claims.iat ?? 0)).toBe(300);

    const json = join(dir, 'claims.json');
    await writeFile(json, JSON.stringify({ email: { type: 'string' } }));
    expectOneLineError(
      await cli([
        'mint',
        '--keys',
        keys,
        '--iss',
        ISS,
        '--aud',
        AUD,
        '--sub',
        sub,
        '--claim-schema',
        json,
      ]),
      1,
      /personal data.*\[ERR_CONFIG\]/,
    );
    expectOneLineError(
      await cli([
        'mint',
        '--keys',
        keys,
        '--iss',
        ISS,
        '--aud',
        AUD,
        '--sub',
        sub,
        '--claim-schema',
        join(dir, 'no.yaml'),
      ]),
      1,
      /does not exist/,
    );
  });

  it('rejected input exits 1 with one line; bad usage exits 2', async () => {
    const sub = randomUUID();
    const mint = (...extra: string[]) =>
      cli(['mint', '--keys', keys, '--iss', ISS, '--aud', AUD, '--sub', sub, ...extra]);
    expectOneLineError(
      await mint('--claim', 'plan=pro'),
      1,
      /"plan" is not in the claim schema.*\[ERR_TOKEN_CLAIMS\]/,
    );
    expectOneLineError(await mint('--claim', 'email=a@b.c'), 1, /personal data/);
    expectOneLineError(await mint('--claim', 'org_id=acme'), 1, /must be a uuid/);
    expectOneLineError(
      await mint('--claim', 'user_role=root'),
      1,
      /one of: owner, admin, member, viewer/,
    );
    expectOneLineError(await mint('--ttl', '2h'), 1, /\[ERR_TOKEN_TTL\]/);
    expectOneLineError(await mint('--ttl', 'forever'), 1, /\[ERR_TOKEN_TTL\]/);
    expectOneLineError(await mint('--claim', 'novalue'), 2, /name=value/);
    expectOneLineError(
      await mint('--claim', 'user_role=admin', '--claim', 'user_role=owner'),
      2,
      /twice/,
    );
    expectOneLineError(
      await cli(['mint', '--keys', keys, '--iss', ISS, '--aud', AUD]),
      2,
      /--sub is required/,
    );
    expectOneLineError(
      await cli(['mint', '--keys', keys, '--iss', ISS, '--aud', AUD, '--sub', 'alice']),
      1,
      /uuid/,
    );
    const hs = join(dir, 'hs.json');
    await writeFile(hs, (await cli(['keys', 'generate', '--alg', 'HS256'])).stdout, {
      mode: 0o600,
    });
    const weak = JSON.parse(await readFile(hs, 'utf8'));
    weak.keys[0].k = Buffer.from('0123456789abcdef').toString('base64url');
    await writeFile(hs, JSON.stringify(weak), { mode: 0o600 });
    expectOneLineError(
      await cli(['mint', '--keys', hs, '--iss', ISS, '--aud', AUD, '--sub', sub]),
      1,
      /\[ERR_KEY_WEAK\]/,
    );
  });

  it('inspect: garbage, truncated or binary tokens exit 1 with one line that never echoes the token', async () => {
    const token = (
      await cli(['mint', '--keys', keys, '--iss', ISS, '--aud', AUD, '--sub', randomUUID()])
    ).stdout.trim();
    for (const bad of [
      'garbage',
      token.slice(0, token.indexOf('.') + 5),
      '\u0001\u0002\u0003',
      `${token}.x.y`,
    ]) {
      const run = await cli(['inspect', bad]);
      expectOneLineError(run, 1, /\[ERR_TOKEN_MALFORMED\]/);
      if (bad.length > 8) expect(run.stderr).not.toContain(bad.slice(0, 20));
    }
    expectOneLineError(await cli(['inspect']), 2, /exactly one TOKEN/);
    expectOneLineError(await cli(['inspect', 'a', 'b']), 2, /exactly one TOKEN/);
  });
});

describe('rls-kit command groups', () => {
  it('a group without its subcommand names the subcommands (one line, exit 2); --help lists them', async () => {
    for (const [argv, message] of [
      [
        ['keys'],
        /^rls-kit: "keys" needs a subcommand: use generate, public or rotate .*\[ERR_USAGE\]$/,
      ],
      [['keys', '--keys', 'k.json'], /"keys" needs a subcommand/],
      [['keys', 'bogus'], /unknown subcommand "keys bogus": use generate, public or rotate/],
      [['revocations'], /"revocations" needs a subcommand: use list or purge/],
      [['frobnicate'], /unknown command "frobnicate": run rls-kit --help .*\[ERR_USAGE\]$/],
    ] as const) {
      const run = await runCliCaptured([...argv]);
      expect(run.code, argv.join(' ')).toBe(2);
      expect(run.stderr.trim().split('\n'), argv.join(' ')).toHaveLength(1);
      expect(run.stderr.trim(), argv.join(' ')).toMatch(message);
    }
    const help = await runCliCaptured(['keys', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^usage: rls-kit keys <generate\|public\|rotate>/);
    expect(help.stdout).toMatch(/^ {2}rotate {4}/m);
  });
});
