/**
 * Mint half of `npm run bench -- tokens`: ops/s of the kit's minter against
 * jose's `SignJWT` used directly with the same pre-imported key and an
 * equivalent claim set (iss, sub, aud, exp, iat, jti, role, org_id,
 * user_role; header alg, kid, typ), for ES256, RS256, EdDSA and HS256.
 * Goal (issue 3): kit ≥ 0.9× jose direct.
 *
 * Both sides run in alternating rounds on one caller (await per token), and
 * each side's median round is reported, so drift in CPU frequency or GC hits
 * both alike.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { SignJWT } from 'jose';
import {
  createKeyring,
  generateKey,
  SIGNING_ALGS,
  type SigningAlg,
  signingKey,
} from '../src/keys/index.js';
import { exampleClaimSchema } from '../src/tokens/example-claims.js';
import { createMinter } from '../src/tokens/mint.js';

/** One result line of the tokens benchmark. */
export interface Row {
  /** `mint` for every row of this file (the verifier rows say `verify`). */
  readonly op: 'mint';
  readonly alg: SigningAlg;
  /** `jose SignJWT (direct)` or `kit createMinter().mint`. */
  readonly impl: string;
  /** Median over rounds of tokens per second, one caller. */
  readonly opsPerSec: number;
  /** Mean microseconds per token in the median round. */
  readonly meanUs: number;
  /** opsPerSec ÷ jose direct's for the same alg (1 for jose itself). */
  readonly vsJose: number;
  /** Bytes of one token from this implementation. */
  readonly tokenBytes: number;
}

/** Options of {@link benchMint}. */
export interface BenchMintOptions {
  /** Milliseconds per round per implementation; default 300. */
  roundMs?: number;
  /** Rounds per implementation (alternating); default 5. */
  rounds?: number;
  /** Algorithms to run; default all four. */
  algs?: readonly SigningAlg[];
}

const ISS = 'https://api.example.com';
const AUD = 'authenticated';

async function round(fn: () => Promise<string>, ms: number): Promise<number> {
  const start = process.hrtime.bigint();
  const limit = BigInt(ms) * 1_000_000n;
  let n = 0;
  let elapsed = 0n;
  do {
    // batches of 16 keep the clock reads out of the measurement
    for (let i = 0; i < 16; i++) await fn();
    n += 16;
    elapsed = process.hrtime.bigint() - start;
  } while (elapsed < limit);
  return n / (Number(elapsed) / 1e9);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? 0;
}

/**
 * Runs the mint benchmark and returns one row per (alg, implementation).
 *
 * @example
 * ```ts
 * const rows = await benchMint({ roundMs: 200 });
 * console.table(rows);
 * ```
 */
export async function benchMint(options: BenchMintOptions = {}): Promise<Row[]> {
  const roundMs = options.roundMs ?? 300;
  const rounds = options.rounds ?? 5;
  const rows: Row[] = [];
  for (const alg of options.algs ?? SIGNING_ALGS) {
    const keyring = createKeyring([await generateKey({ alg })]);
    const key = await signingKey(keyring);
    const minter = await createMinter({
      signingKey: key,
      issuer: ISS,
      audience: AUD,
      claimSchema: exampleClaimSchema,
    });
    const sub = randomUUID();
    const claims = { org_id: randomUUID(), user_role: 'member' as const };

    const kit = () => minter.mint({ sub, claims });
    const jose = () =>
      new SignJWT({ role: 'authenticated', ...claims })
        .setProtectedHeader({ alg, kid: key.kid, typ: 'JWT' })
        .setIssuer(ISS)
        .setSubject(sub)
        .setAudience(AUD)
        .setIssuedAt()
        .setExpirationTime('10m')
        .setJti(randomBytes(16).toString('base64url'))
        .sign(key.key);

    // warm-up (JIT, key caches)
    await round(kit, 50);
    await round(jose, 50);
    const results = { jose: [] as number[], kit: [] as number[] };
    for (let r = 0; r < rounds; r++) {
      results.jose.push(await round(jose, roundMs));
      results.kit.push(await round(kit, roundMs));
    }
    const joseOps = median(results.jose);
    const kitOps = median(results.kit);
    rows.push({
      op: 'mint',
      alg,
      impl: 'jose SignJWT (direct)',
      opsPerSec: Math.round(joseOps),
      meanUs: Math.round((1e6 / joseOps) * 10) / 10,
      vsJose: 1,
      tokenBytes: (await jose()).length,
    });
    rows.push({
      op: 'mint',
      alg,
      impl: 'kit createMinter().mint',
      opsPerSec: Math.round(kitOps),
      meanUs: Math.round((1e6 / kitOps) * 10) / 10,
      vsJose: Math.round((kitOps / joseOps) * 100) / 100,
      tokenBytes: (await kit()).length,
    });
  }
  return rows;
}

function isMain(): boolean {
  const entry = process.argv[1];
  if (!entry) return false;
  try {
    return realpathSync(entry) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isMain()) {
  const rows = await benchMint();
  process.stdout.write('| alg | implementation | ops/s | µs/token | × jose | bytes |\n');
  process.stdout.write('|---|---|---:|---:|---:|---:|\n');
  for (const r of rows) {
    process.stdout.write(
      `| ${r.alg} | ${r.impl} | ${r.opsPerSec} | ${r.meanUs} | ${r.vsJose} | ${r.tokenBytes} |\n`,
    );
  }
}
