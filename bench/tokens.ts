/**
 * `npm run bench -- tokens`: ops/s of token verification for HS256, ES256,
 * RS256 and EdDSA, side by side in one run:
 *   - raw `node:crypto` signature verification (the floor: no parsing, no claims);
 *   - jose `jwtVerify` used directly with a pre-imported key;
 *   - fast-jwt `createVerifier`, without and with its cache;
 *   - jsonwebtoken `verify` with a KeyObject (no EdDSA support: n/a);
 *   - the kit uncached (`verify`, cache off) and cached (`verifyCached`, the
 *     sync fast path, and `verify` on a hit), both with a revocation check
 *     (a trivial in-memory `RevocationCheck`);
 * plus the mint rows of `bench/tokens-mint.ts` (`benchMint()`) when present.
 *
 * Method: every implementation verifies the same pool of 256 distinct
 * kit-shaped tokens (distinct `jti`), one caller, back to back (`await` per
 * token for async APIs). Within a round the implementations of one group
 * (jose and the kit uncached; the sync uncached libraries; the cached rows)
 * take turns in 10 ms slices, so drift and load from elsewhere hit them
 * alike; the median round is reported, and each ratio is the median of
 * per-round ratios.
 * Cached rows get a fresh string for every call (as a request parser would
 * hand over), so neither library profits from V8 caching a string's hash
 * across calls.
 *
 * Goals (issue 3): kit uncached ≥ 0.9× jose direct; kit cached ≥ 3× fast-jwt
 * cached; mint ≥ 0.9× jose direct.
 *
 * Knobs (environment): `BENCH_TOKENS_ROUND_MS` (default 400),
 * `BENCH_TOKENS_ROUNDS` (default 5), `BENCH_TOKENS_ALGS` (comma-separated).
 */
import {
  createHmac,
  createPublicKey,
  createSecretKey,
  verify as cryptoVerify,
  generateKeyPairSync,
  type KeyObject,
  randomBytes,
  randomUUID,
  timingSafeEqual,
} from 'node:crypto';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { createVerifier as createFastVerifier } from 'fast-jwt';
import { type CryptoKey, importJWK, type JWK, jwtVerify, SignJWT } from 'jose';
import jsonwebtoken from 'jsonwebtoken';
import type { SigningAlg } from '../src/keys/types.js';
import type { RevocationCheck } from '../src/tokens/revocation-check.js';
import { createVerifier } from '../src/tokens/verify.js';
import type { BenchReport, Cell } from './run.js';

const ISS = 'https://api.example.com';
const AUD = 'authenticated';
const POOL = 256;
const ALL_ALGS: SigningAlg[] = ['HS256', 'ES256', 'RS256', 'EdDSA'];

type Impl = {
  readonly id: ImplId;
  readonly label: string;
  readonly kind: 'sync' | 'async';
  /** Fresh string per call (cached rows): see the file comment. */
  readonly fresh: boolean;
  readonly fn: ((token: string) => unknown) | undefined;
};

type ImplId =
  | 'floor'
  | 'jose'
  | 'fastNoCache'
  | 'fastCache'
  | 'jsonwebtoken'
  | 'kitUncached'
  | 'kitCachedSync'
  | 'kitCachedAsync';

/** Which implementations take turns with which (see the measurement loop). */
const GROUPS: readonly ImplId[][] = [
  ['jose', 'kitUncached'],
  ['floor', 'fastNoCache', 'jsonwebtoken'],
  ['fastCache', 'kitCachedSync', 'kitCachedAsync'],
];

const LABELS: Record<ImplId, string> = {
  floor: 'node:crypto verify (floor)',
  jose: 'jose jwtVerify (pre-imported key)',
  fastNoCache: 'fast-jwt (no cache)',
  fastCache: 'fast-jwt (cache)',
  jsonwebtoken: 'jsonwebtoken (KeyObject)',
  kitUncached: 'kit verify (uncached, revocation)',
  kitCachedSync: 'kit verifyCached (cached, revocation)',
  kitCachedAsync: 'kit verify (cached, revocation)',
};

interface Keys {
  /** What the tokens are signed with (jose input). */
  signKey: CryptoKey | Uint8Array;
  /** jose's pre-imported verification key. */
  joseKey: CryptoKey;
  /** node KeyObject for jsonwebtoken and the floor. */
  keyObject: KeyObject;
  /** fast-jwt input: PEM or the secret bytes. */
  fastKey: string | Buffer;
  /** The JWK the kit verifies with. */
  jwk: JWK;
  secret?: Buffer;
}

async function makeKeys(alg: SigningAlg, kid: string): Promise<Keys> {
  if (alg === 'HS256') {
    const secret = randomBytes(32);
    const joseKey = (await crypto.subtle.importKey(
      'raw',
      secret,
      { name: 'HMAC', hash: 'SHA-256' },
      false,
      ['sign', 'verify'],
    )) as CryptoKey;
    return {
      signKey: joseKey,
      joseKey,
      keyObject: createSecretKey(secret),
      fastKey: secret,
      jwk: { kty: 'oct', k: secret.toString('base64url'), kid, alg },
      secret,
    };
  }
  const pair =
    alg === 'ES256'
      ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
      : alg === 'RS256'
        ? generateKeyPairSync('rsa', { modulusLength: 2048 })
        : generateKeyPairSync('ed25519');
  const jwk = { ...(pair.publicKey.export({ format: 'jwk' }) as JWK), kid, alg };
  return {
    signKey: (await importJWK(
      { ...(pair.privateKey.export({ format: 'jwk' }) as JWK), alg },
      alg,
    )) as CryptoKey,
    joseKey: (await importJWK(jwk, alg)) as CryptoKey,
    keyObject: createPublicKey(pair.publicKey.export({ type: 'spki', format: 'pem' })),
    fastKey: pair.publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    jwk,
  };
}

/** The floor: the signature check alone, on pre-split input (no base64 of header/payload, no JSON, no claims). */
function floor(alg: SigningAlg, keys: Keys, tokens: string[]): (token: string) => unknown {
  const parts = new Map(
    tokens.map((t) => {
      const dot = t.lastIndexOf('.');
      return [
        t,
        { input: Buffer.from(t.slice(0, dot)), sig: Buffer.from(t.slice(dot + 1), 'base64url') },
      ];
    }),
  );
  return (token) => {
    const { input, sig } = parts.get(token)!;
    switch (alg) {
      case 'HS256':
        return timingSafeEqual(createHmac('sha256', keys.secret!).update(input).digest(), sig);
      case 'ES256':
        return cryptoVerify(
          'sha256',
          input,
          { key: keys.keyObject, dsaEncoding: 'ieee-p1363' },
          sig,
        );
      case 'RS256':
        return cryptoVerify('sha256', input, keys.keyObject, sig);
      case 'EdDSA':
        return cryptoVerify(null, input, keys.keyObject, sig);
    }
  };
}

async function implementations(alg: SigningAlg, tokens: string[]): Promise<Impl[]> {
  const kid = randomBytes(8).toString('base64url').slice(0, 11);
  const keys = await makeKeys(alg, kid);
  const now = Math.floor(Date.now() / 1000);
  for (let i = 0; i < POOL; i++) {
    tokens.push(
      await new SignJWT({ role: 'authenticated', org_id: randomUUID(), user_role: 'member' })
        .setProtectedHeader({ alg, kid, typ: 'JWT' })
        .setIssuer(ISS)
        .setSubject(randomUUID())
        .setAudience(AUD)
        .setIssuedAt(now)
        .setExpirationTime(now + 3600)
        .setJti(randomBytes(16).toString('base64url'))
        .sign(keys.signKey),
    );
  }
  const revoked = new Set<string>();
  const revocation: RevocationCheck = { isRevoked: (claims) => revoked.has(claims.jti as string) };
  const kitOptions = {
    issuer: ISS,
    audience: AUD,
    keys: { jwks: { keys: [keys.jwk] } },
    revocation,
    metricsParent: null,
  };
  const kitUncached = createVerifier({ ...kitOptions, cache: false });
  const kitCached = createVerifier({ ...kitOptions, cache: { max: 10_000 } });
  for (const t of tokens) await kitCached.verify(t); // fill the cache
  const joseOptions = { algorithms: [alg], issuer: ISS, audience: AUD };
  const fastOptions = { key: keys.fastKey, algorithms: [alg], allowedIss: ISS, allowedAud: AUD };
  const fastNoCache = createFastVerifier({ ...fastOptions, cache: false });
  const fastCache = createFastVerifier({ ...fastOptions, cache: 10_000 });
  const jwtOptions = { algorithms: [alg as jsonwebtoken.Algorithm], issuer: ISS, audience: AUD };

  type Spec = Omit<Impl, 'label'>;
  const specs: Spec[] = [
    { id: 'floor', kind: 'sync', fresh: false, fn: floor(alg, keys, tokens) },
    { id: 'jose', kind: 'async', fresh: false, fn: (t) => jwtVerify(t, keys.joseKey, joseOptions) },
    { id: 'fastNoCache', kind: 'sync', fresh: false, fn: (t) => fastNoCache(t) },
    { id: 'fastCache', kind: 'sync', fresh: true, fn: (t) => fastCache(t) },
    {
      id: 'jsonwebtoken',
      kind: 'sync',
      fresh: false,
      // jsonwebtoken 9 does not implement EdDSA.
      fn: alg === 'EdDSA' ? undefined : (t) => jsonwebtoken.verify(t, keys.keyObject, jwtOptions),
    },
    { id: 'kitUncached', kind: 'async', fresh: false, fn: (t) => kitUncached.verify(t) },
    {
      id: 'kitCachedSync',
      kind: 'sync',
      fresh: true,
      fn: (t) => {
        const claims = kitCached.verifyCached(t);
        if (claims === undefined) throw new Error('kit cache miss in the cached benchmark');
        return claims;
      },
    },
    { id: 'kitCachedAsync', kind: 'async', fresh: true, fn: (t) => kitCached.verify(t) },
  ];
  const impls: Impl[] = specs.map((i) => ({ ...i, label: LABELS[i.id] }));

  // Every implementation must accept every token, or the timings compare different work.
  for (const impl of impls) {
    if (!impl.fn) continue;
    for (const t of tokens.slice(0, 8)) {
      const ok = await impl.fn(t);
      if (ok === false) throw new Error(`${impl.label} rejected a valid ${alg} token`);
    }
  }
  return impls;
}

/** A copy of `s` that is a different string object (so its hash is not cached). */
function freshCopy(s: string): string {
  return ` ${s}`.slice(1);
}

/**
 * Runs `impl` for about `ms` milliseconds, cycling through `tokens` from
 * `offset`; returns the operations done and the nanoseconds they took.
 */
async function slice(
  impl: Impl,
  tokens: string[],
  ms: number,
  offset: number,
): Promise<{ n: number; ns: number }> {
  const fn = impl.fn!;
  const mask = POOL - 1;
  const limit = BigInt(Math.round(ms * 1e6));
  const start = process.hrtime.bigint();
  let n = 0;
  let elapsed = 0n;
  do {
    // Batches of 16 keep clock reads out of the measurement.
    const base = offset + n;
    if (impl.kind === 'async') {
      if (impl.fresh) for (let i = 0; i < 16; i++) await fn(freshCopy(tokens[(base + i) & mask]!));
      else for (let i = 0; i < 16; i++) await fn(tokens[(base + i) & mask]!);
    } else if (impl.fresh) {
      for (let i = 0; i < 16; i++) fn(freshCopy(tokens[(base + i) & mask]!));
    } else {
      for (let i = 0; i < 16; i++) fn(tokens[(base + i) & mask]!);
    }
    n += 16;
    elapsed = process.hrtime.bigint() - start;
  } while (elapsed < limit);
  return { n, ns: Number(elapsed) };
}

/**
 * One round: every implementation gets `roundMs` in total, in 10 ms slices
 * interleaved with the others (rotating order), so load from elsewhere on
 * the machine lands on all of them alike. Returns ops/s per implementation.
 */
async function round(
  impls: Impl[],
  tokens: string[],
  roundMs: number,
  r: number,
): Promise<Map<ImplId, { opsPerSec: number; cpuUsPerOp: number }>> {
  const SLICE_MS = 10;
  const totals = new Map<ImplId, { n: number; ns: number; cpuUs: number }>(
    impls.map((i) => [i.id, { n: 0, ns: 0, cpuUs: 0 }]),
  );
  const slices = Math.max(1, Math.round(roundMs / SLICE_MS));
  for (let k = 0; k < slices; k++) {
    const rot = (k + r) % impls.length;
    const order = [...impls.slice(rot), ...impls.slice(0, rot)];
    if ((k + r) % 2 === 1) order.reverse();
    for (const impl of order) {
      const t = totals.get(impl.id)!;
      // Process CPU time (main thread and the crypto thread pool): a second view that other
      // load on the machine disturbs much less than wall-clock ops/s.
      const cpu0 = process.cpuUsage();
      const { n, ns } = await slice(impl, tokens, SLICE_MS, t.n);
      const cpu = process.cpuUsage(cpu0);
      t.n += n;
      t.ns += ns;
      t.cpuUs += cpu.user + cpu.system;
    }
  }
  return new Map(
    [...totals].map(([id, t]) => [
      id,
      { opsPerSec: t.n / (t.ns / 1e9), cpuUsPerOp: t.cpuUs / t.n },
    ]),
  );
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? 0;
}

function envInt(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`${name} must be a positive integer`);
  return n;
}

const round2 = (x: number) => Math.round(x * 100) / 100;

interface MintRow {
  op: 'mint';
  alg: SigningAlg;
  impl: string;
  opsPerSec: number;
  meanUs: number;
  vsJose: number;
  tokenBytes: number;
}

/** The mint half, from the minting engineer's bench/tokens-mint.ts when it exists. */
async function mintRows(
  roundMs: number,
  rounds: number,
  algs: SigningAlg[],
): Promise<MintRow[] | string> {
  const file = path.join(path.dirname(fileURLToPath(import.meta.url)), 'tokens-mint.ts');
  if (!existsSync(file)) return 'bench/tokens-mint.ts is missing: mint rows skipped';
  const mod = (await import(pathToFileURL(file).href)) as {
    benchMint?: (o: {
      roundMs?: number;
      rounds?: number;
      algs?: SigningAlg[];
    }) => Promise<MintRow[]>;
  };
  if (typeof mod.benchMint !== 'function')
    return 'bench/tokens-mint.ts exports no benchMint(): mint rows skipped';
  return mod.benchMint({ roundMs, rounds, algs });
}

/**
 * Runs the benchmark and returns the report (bench/run.ts writes the JSON
 * and prints the Markdown).
 *
 * @example
 * ```ts
 * const report = await run(); // npm run bench -- tokens
 * ```
 */
export async function run(): Promise<BenchReport> {
  const roundMs = envInt('BENCH_TOKENS_ROUND_MS', 400);
  const rounds = envInt('BENCH_TOKENS_ROUNDS', 5);
  const algs = (process.env.BENCH_TOKENS_ALGS?.split(',') ?? ALL_ALGS).filter(
    (a): a is SigningAlg => ALL_ALGS.includes(a as SigningAlg),
  );
  const log = (line: string) => process.stderr.write(`[bench tokens] ${line}\n`);

  const ops: Record<string, Partial<Record<ImplId, number>>> = {};
  const rawRounds: Record<string, Partial<Record<ImplId, number[]>>> = {};
  const cpuRounds: Record<string, Partial<Record<ImplId, number[]>>> = {};
  for (const alg of algs) {
    const tokens: string[] = [];
    const impls = (await implementations(alg, tokens)).filter((i) => i.fn);
    log(`${alg}: ${impls.length} implementations, token ${tokens[0]!.length} bytes; warming up`);
    const samples: Partial<Record<ImplId, number[]>> = {};
    const cpuSamples: Partial<Record<ImplId, number[]>> = {};
    // Implementations are interleaved within their group only: the cached rows make garbage at
    // millions of calls per second, and collecting it must not land in the slices of the
    // uncached pair (jose vs the kit) that the goal compares.
    for (const group of GROUPS) {
      const members = impls.filter((i) => group.includes(i.id));
      await round(members, tokens, Math.min(100, roundMs), 0);
      for (let r = 0; r < rounds; r++) {
        for (const [id, m] of await round(members, tokens, roundMs, r)) {
          samples[id] = [...(samples[id] ?? []), m.opsPerSec];
          cpuSamples[id] = [...(cpuSamples[id] ?? []), m.cpuUsPerOp];
        }
      }
    }
    ops[alg] = Object.fromEntries(
      Object.entries(samples).map(([id, xs]) => [id, Math.round(median(xs!))]),
    );
    cpuRounds[alg] = cpuSamples;
    rawRounds[alg] = samples;
    log(`${alg}: done`);
  }

  log('mint (bench/tokens-mint.ts)');
  const mint = await mintRows(roundMs, rounds, algs);

  // Table: implementations down, algorithms across (side by side).
  const rows: Record<string, Cell>[] = [];
  for (const id of Object.keys(LABELS) as ImplId[]) {
    const row: Record<string, Cell> = { op: 'verify', implementation: LABELS[id] };
    for (const alg of algs) row[alg] = ops[alg]?.[id] ?? null;
    rows.push(row);
  }
  if (Array.isArray(mint)) {
    for (const impl of [...new Set(mint.map((m) => m.impl))]) {
      const row: Record<string, Cell> = { op: 'mint', implementation: impl };
      for (const alg of algs)
        row[alg] = mint.find((m) => m.alg === alg && m.impl === impl)?.opsPerSec ?? null;
      rows.push(row);
    }
  }

  // Median of per-round ratios: both sides of a ratio ran interleaved in the same round.
  const ratio = (alg: SigningAlg, a: ImplId, b: ImplId) => {
    const xs = rawRounds[alg]?.[a];
    const ys = rawRounds[alg]?.[b];
    if (!xs || !ys || xs.length !== ys.length) return null;
    return round2(median(xs.map((x, i) => x / ys[i]!)));
  };
  const ratioRows: Record<string, Cell>[] = [
    {
      ratio: 'kit uncached / jose direct',
      goal: '≥ 0.9',
      ...perAlg(algs, (a) => ratio(a, 'kitUncached', 'jose')),
    },
    {
      ratio: 'kit cached (verifyCached) / fast-jwt cached',
      goal: '≥ 3',
      ...perAlg(algs, (a) => ratio(a, 'kitCachedSync', 'fastCache')),
    },
    {
      ratio: 'kit cached (async verify) / fast-jwt cached',
      goal: 'info',
      ...perAlg(algs, (a) => ratio(a, 'kitCachedAsync', 'fastCache')),
    },
    {
      ratio: 'kit uncached / jose direct, by CPU time per op',
      goal: 'info',
      ...perAlg(algs, (a) => {
        const kit = cpuRounds[a]?.kitUncached;
        const jose = cpuRounds[a]?.jose;
        return kit && jose ? round2(median(jose.map((j, i) => j / kit[i]!))) : null;
      }),
    },
    {
      ratio: 'kit uncached / node:crypto floor',
      goal: 'info',
      ...perAlg(algs, (a) => ratio(a, 'kitUncached', 'floor')),
    },
  ];
  if (Array.isArray(mint)) {
    ratioRows.push({
      ratio: 'mint: kit / jose direct',
      goal: '≥ 0.9',
      ...perAlg(
        algs,
        (a) => mint.find((m) => m.alg === a && m.impl.startsWith('kit'))?.vsJose ?? null,
      ),
    });
  }
  const met = (row: Record<string, Cell>, min: number) =>
    algs.every((a) => typeof row[a] === 'number' && (row[a] as number) >= min);
  const summary: Record<string, Cell> = {
    'kit uncached ≥ 0.9× jose direct': met(ratioRows[0]!, 0.9) ? 'met' : 'NOT met',
    'kit cached ≥ 3× fast-jwt cached': met(ratioRows[1]!, 3) ? 'met' : 'NOT met',
    'mint ≥ 0.9× jose direct': Array.isArray(mint)
      ? met(ratioRows.find((r) => String(r.ratio).startsWith('mint'))!, 0.9)
        ? 'met'
        : 'NOT met'
      : 'not measured',
  };

  const table = (rs: Record<string, Cell>[], first: string[]) => {
    const cols = [...first, ...algs];
    const fmt = (v: Cell | undefined) =>
      v === null || v === undefined
        ? 'n/a'
        : typeof v === 'number' && Number.isInteger(v)
          ? v.toLocaleString('en-US')
          : String(v);
    return [
      `| ${cols.join(' | ')} |`,
      `|${cols.map((c) => (first.includes(c) ? '---' : '---:')).join('|')}|`,
      ...rs.map((r) => `| ${cols.map((c) => fmt(r[c])).join(' | ')} |`),
    ].join('\n');
  };
  const notes = [
    `Median of ${rounds} rounds; in a round every implementation runs ${roundMs} ms in 10 ms slices interleaved with the others of its group (jose + kit uncached; sync uncached libraries; cached rows); one caller; ${POOL} distinct tokens per algorithm. Ratios are medians of per-round ratios.`,
    'Cached rows hand each call a fresh string copy (as a request parser would), for fast-jwt and the kit alike.',
    'The floor is the signature check alone on pre-split bytes: no base64url, no JSON, no claims.',
    ...(typeof mint === 'string' ? [mint] : []),
  ];
  const markdown = [
    '### ops/s (higher is better)',
    '',
    table(rows, ['op', 'implementation']),
    '',
    '### ratios',
    '',
    table(ratioRows, ['ratio', 'goal']),
  ].join('\n');
  return {
    title: 'tokens: verify and mint, side by side',
    rows,
    markdown,
    summary,
    notes,
    details: {
      config: { roundMs, rounds, pool: POOL, algs },
      ratios: ratioRows,
      rounds: rawRounds,
      cpuUsPerOpRounds: cpuRounds,
      mint,
    },
  };
}

function perAlg(algs: SigningAlg[], f: (alg: SigningAlg) => Cell): Record<string, Cell> {
  return Object.fromEntries(algs.map((a) => [a, f(a)]));
}

if (
  process.argv[1] !== undefined &&
  import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href
) {
  const { renderMarkdown } = await import('./run.js');
  process.stdout.write(renderMarkdown(await run()));
}
