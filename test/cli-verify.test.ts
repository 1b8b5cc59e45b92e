/**
 * `rls-kit verify`: one token (exit 0/1), stdin streaming in order (exit 0),
 * bad input of every kind without a crash. In-memory streams, real key files,
 * a real local JWKS server.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CliIO } from '../src/cli/command.js';
import { runCli } from '../src/cli/main.js';
import {
  AUD,
  ISS,
  json,
  kitToken,
  makeKey,
  SUB,
  startServer,
  type TestServer,
} from './helpers/tokens.js';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function io(stdin: Readable, env: NodeJS.ProcessEnv = {}) {
  const out = new PassThrough();
  const err = new PassThrough();
  const chunks = { out: [] as Buffer[], err: [] as Buffer[] };
  out.on('data', (c: Buffer) => chunks.out.push(c));
  err.on('data', (c: Buffer) => chunks.err.push(c));
  const cliIo: CliIO = { stdout: out, stderr: err, stdin, env, isTTY: false };
  return {
    cliIo,
    out,
    result: (code: number): Run => ({
      code,
      stdout: Buffer.concat(chunks.out).toString('utf8'),
      stderr: Buffer.concat(chunks.err).toString('utf8'),
    }),
  };
}

async function cli(
  argv: string[],
  stdin: string | Buffer = '',
  env: NodeJS.ProcessEnv = {},
): Promise<Run> {
  const { cliIo, result } = io(Readable.from([stdin]), env);
  return result(await runCli(['verify', ...argv], cliIo));
}

const es = makeKey('ES256');
const hs = makeKey('HS256');
let dir: string;
let jwksFile: string;
let base: string[];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'rls-kit-verify-'));
  jwksFile = join(dir, 'jwks.json');
  await writeFile(jwksFile, JSON.stringify({ keys: [es.jwk] }));
  base = ['--iss', ISS, '--aud', AUD, '--jwks', jwksFile];
});

describe('rls-kit verify TOKEN', () => {
  it('prints {"ok":true,"claims":...} and exits 0 for a valid token', async () => {
    const run = await cli([...base, kitToken(es)]);
    expect(run.code).toBe(0);
    expect(run.stderr).toBe('');
    const out = JSON.parse(run.stdout) as { ok: boolean; claims: Record<string, unknown> };
    expect(out.ok).toBe(true);
    expect(out.claims.sub).toBe(SUB);
    expect(run.stdout.endsWith('\n')).toBe(true);
  });

  it('prints {"ok":false,"code":...}, one line on stderr, and exits 1 for a rejected token', async () => {
    const token = kitToken(es, {}, Date.now() - 3_600_000);
    const run = await cli([...base, token]);
    expect(run.code).toBe(1);
    expect(JSON.parse(run.stdout)).toEqual({ ok: false, code: 'ERR_TOKEN_EXPIRED' });
    expect(run.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(run.stderr).toMatch(/\[ERR_TOKEN_EXPIRED\]/);
    expect(run.stderr).not.toContain(token.split('.')[1]!);
  });

  it('rejects garbage, JWE-shaped and binary tokens with their codes', async () => {
    for (const [token, code] of [
      ['garbage', 'ERR_TOKEN_MALFORMED'],
      ['a.b.c.d.e', 'ERR_TOKEN_MALFORMED'],
      [randomBytes(64).toString('latin1').replace(/\0/g, ''), 'ERR_TOKEN_MALFORMED'],
      ['x'.repeat(10_000), 'ERR_TOKEN_TOO_LARGE'],
    ] as const) {
      const run = await cli([...base, token]);
      expect(run.code).toBe(1);
      expect(JSON.parse(run.stdout)).toEqual({ ok: false, code });
    }
  });

  it('verifies with an HS256 secret from --secret-env (the variable holds text, used as UTF-8 bytes)', async () => {
    const secret = randomBytes(32).toString('base64url');
    const key = { ...hs, secret: Buffer.from(secret) };
    const run = await cli(
      ['--iss', ISS, '--aud', AUD, '--secret-env', 'JWT_SECRET', kitToken(key)],
      '',
      {
        JWT_SECRET: secret,
      },
    );
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout).ok).toBe(true);
    const other = await cli(
      ['--iss', ISS, '--aud', AUD, '--secret-env', 'JWT_SECRET', kitToken(hs)],
      '',
      {
        JWT_SECRET: secret,
      },
    );
    expect(JSON.parse(other.stdout)).toEqual({ ok: false, code: 'ERR_TOKEN_SIGNATURE' });
  });

  it('accepts several --iss and --aud', async () => {
    const run = await cli([
      '--iss',
      'https://a',
      '--iss',
      ISS,
      '--aud',
      'x',
      '--aud',
      AUD,
      '--jwks',
      jwksFile,
      kitToken(es),
    ]);
    expect(run.code).toBe(0);
  });
});

describe('rls-kit verify with --jwks-url', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startServer(json({ keys: [es.jwk] }));
  });
  afterAll(() => server.close());

  it('fetches the JWKS and verifies', async () => {
    const run = await cli([
      '--iss',
      ISS,
      '--aud',
      AUD,
      '--jwks-url',
      `${server.url}/jwks.json`,
      kitToken(es),
    ]);
    expect(run.code).toBe(0);
    expect(server.requests).toContain('/jwks.json');
  });

  it('reports an unusable endpoint per token as ERR_JWKS_UNAVAILABLE', async () => {
    const html = await startServer((_q, r) =>
      r.writeHead(200, { 'content-type': 'text/html' }).end('<html></html>'),
    );
    try {
      const run = await cli([
        '--iss',
        ISS,
        '--aud',
        AUD,
        '--jwks-url',
        `${html.url}/jwks.json`,
        kitToken(es),
      ]);
      expect(run.code).toBe(1);
      expect(JSON.parse(run.stdout)).toEqual({ ok: false, code: 'ERR_JWKS_UNAVAILABLE' });
      expect(run.stderr).toMatch(/HTML/);
    } finally {
      await html.close();
    }
  });
});

describe('rls-kit verify < stdin', () => {
  it('answers one JSON line per input line, in order, and exits 0', async () => {
    const good = kitToken(es);
    const input = [
      good,
      'garbage',
      kitToken(es, { iss: 'https://evil' }),
      '',
      `  ${good}  \r`,
      kitToken(es),
    ].join('\n');
    const run = await cli(base, `${input}\n`);
    expect(run.code).toBe(0);
    const lines = run.stdout
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as { ok: boolean; code?: string });
    expect(lines.map((l) => (l.ok ? 'ok' : l.code))).toEqual([
      'ok',
      'ERR_TOKEN_MALFORMED',
      'ERR_TOKEN_ISSUER',
      'ERR_TOKEN_MALFORMED',
      'ok',
      'ok',
    ]);
    expect(run.stderr).toMatch(/verified 6 tokens: 3 ok, 3 rejected/);
  });

  it('streams: each answer is written before the next line arrives', async () => {
    const stdin = new PassThrough();
    const { cliIo, out, result } = io(stdin);
    const received: string[] = [];
    out.on('data', (c: Buffer) => received.push(...c.toString('utf8').trimEnd().split('\n')));
    const nextLine = () =>
      new Promise<string>((resolve) => {
        const check = () => {
          if (received.length > seen) {
            out.off('data', check);
            resolve(received[seen++]!);
          }
        };
        out.on('data', check);
        check();
      });
    let seen = 0;
    const running = runCli(['verify', ...base], cliIo);
    stdin.write(`${kitToken(es)}\n`);
    expect(JSON.parse(await nextLine()).ok).toBe(true);
    stdin.write('nope\n');
    expect(JSON.parse(await nextLine()).code).toBe('ERR_TOKEN_MALFORMED');
    stdin.write(kitToken(es)); // last line without a newline
    stdin.end();
    expect(JSON.parse(await nextLine()).ok).toBe(true);
    expect(result(await running).code).toBe(0);
  });

  it('survives binary input, huge lines and lines split across chunks', async () => {
    const token = kitToken(es);
    const chunks: Buffer[] = [
      Buffer.from(`${token.slice(0, 50)}`),
      Buffer.from(`${token.slice(50)}\n`),
      randomBytes(4096),
      Buffer.from('\n'),
      Buffer.from('y'.repeat(3 * 1024 * 1024)),
      Buffer.from('\n€\n'),
      Buffer.from(token),
    ];
    const { cliIo, result } = io(Readable.from(chunks));
    const run = result(await runCli(['verify', ...base], cliIo));
    expect(run.code).toBe(0);
    const codes = run.stdout
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as { ok: boolean; code?: string })
      .map((l) => (l.ok ? 'ok' : l.code));
    expect(codes[0]).toBe('ok');
    expect(codes.at(-1)).toBe('ok');
    expect(codes).toContain('ERR_TOKEN_TOO_LARGE');
    expect(
      codes.filter((c) => c !== 'ok').every((c) => /^ERR_TOKEN_(MALFORMED|TOO_LARGE)$/.test(c!)),
    ).toBe(true);
  });

  it('empty stdin is zero tokens, exit 0', async () => {
    const run = await cli(base, '');
    expect(run.code).toBe(0);
    expect(run.stdout).toBe('');
  });
});

describe('rls-kit verify: bad usage and bad key files', () => {
  const expectOneLine = (run: Run, code: number, pattern: RegExp) => {
    expect(run.code).toBe(code);
    expect(run.stdout).toBe('');
    expect(run.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(run.stderr).toMatch(pattern);
    expect(run.stderr).not.toMatch(/\n\s+at /);
  };

  it('needs --iss, --aud and exactly one key source (exit 2)', async () => {
    expectOneLine(await cli(['--aud', AUD, '--jwks', jwksFile, 'x']), 2, /--iss is required/);
    expectOneLine(await cli(['--iss', ISS, '--jwks', jwksFile, 'x']), 2, /--aud is required/);
    expectOneLine(await cli(['--iss', ISS, '--aud', AUD, 'x']), 2, /exactly one of/);
    expectOneLine(await cli([...base, '--secret-env', 'S', 'x']), 2, /exactly one of/);
    expectOneLine(await cli([...base, 'a', 'b']), 2, /at most one TOKEN/);
    expectOneLine(await cli([...base, '--nope']), 2, /nope/);
  });

  it('an unset --secret-env variable is a usage error', async () => {
    expectOneLine(await cli(['--iss', ISS, '--aud', AUD, '--secret-env', 'NOPE', 'x']), 2, /NOPE/);
  });

  it('a weak secret is ERR_KEY_WEAK, never echoed', async () => {
    const run = await cli(['--iss', ISS, '--aud', AUD, '--secret-env', 'S', 'x'], '', {
      S: 'hunter2hunter2',
    });
    expectOneLine(run, 1, /ERR_KEY_WEAK/);
    expect(run.stderr).not.toContain('hunter2');
  });

  it('a missing, non-JSON, PEM or non-JWKS key file is ERR_KEY_INVALID with one line', async () => {
    const pem = join(dir, 'key.pem');
    await writeFile(pem, '-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----\n');
    const text = join(dir, 'text.json');
    await writeFile(text, 'hello');
    const notSet = join(dir, 'notset.json');
    await writeFile(notSet, '{"hello":1}');
    for (const [file, pattern] of [
      [join(dir, 'missing.json'), /cannot read/],
      [pem, /PEM/],
      [text, /not JSON/],
      [notSet, /not a JWK Set/],
    ] as const) {
      expectOneLine(await cli(['--iss', ISS, '--aud', AUD, '--jwks', file, 'x']), 1, pattern);
    }
  });

  it('accepts a single JWK file and the keyring file of `rls-kit keys generate`', async () => {
    const one = join(dir, 'one.json');
    await writeFile(one, JSON.stringify(es.jwk));
    expect((await cli(['--iss', ISS, '--aud', AUD, '--jwks', one, kitToken(es)])).code).toBe(0);

    const gen = io(Readable.from(['']));
    expect(await runCli(['keys', 'generate'], gen.cliIo)).toBe(0);
    const ring = join(dir, 'ring.json');
    await writeFile(ring, gen.result(0).stdout, { mode: 0o600 });
    const mint = io(Readable.from(['']));
    const sub = '3f0b6a4e-2c1d-4e8f-9a7b-6c5d4e3f2a1b';
    expect(
      await runCli(
        [
          'mint',
          '--keys',
          ring,
          '--iss',
          ISS,
          '--aud',
          AUD,
          '--sub',
          sub,
          '--claim',
          'org_id=0b8f1c2d-4e5f-4a6b-8c7d-9e0f1a2b3c4d',
          '--claim',
          'user_role=admin',
        ],
        mint.cliIo,
      ),
    ).toBe(0);
    const token = mint.result(0).stdout.trim();
    const run = await cli(['--iss', ISS, '--aud', AUD, '--jwks', ring, token]);
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout).claims.user_role).toBe('admin');
  });

  it('an unreachable --db-url fails with one line before reading any token', async () => {
    const run = await cli([
      ...base,
      '--db-url',
      'postgresql://postgres@127.0.0.1:1/postgres',
      kitToken(es),
    ]);
    expectOneLine(run, 1, /ERR_DB_UNREACHABLE/);
  });
});
