import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import autocannon from 'autocannon';
import pg from 'pg';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKeyring, generateKey, rotate, writeKeyringFile } from '../src/keys/index.js';
import { startTokenService } from '../src/server/start-token-service.js';
import { createMinter, exampleClaimSchema } from '../src/tokens/index.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';

/**
 * Issue 7 item 5: a load run of `GET /api/documents` with bearer tokens for
 * ≥ 30 s against a real token service on a real database, good tokens of
 * several users mixed with revoked, expired, foreign, tampered and
 * malformed ones (and one token revoked in the middle of the run, refused from 1 s later): no bad
 * token is ever accepted, every good one sees exactly its organization's
 * rows, no 5xx; p50/p99 and requests/s are printed.
 *
 * `SERVICE_LOAD_SECONDS` shortens the run for local iteration (default 30).
 */
const SECONDS = Number(process.env.SERVICE_LOAD_SECONDS ?? 30);
const ISS = 'https://load.rls-kit.test';
const AUD = 'authenticated';
const MIN = 60_000;

type Kind =
  | 'good'
  | 'revoked'
  | 'expired'
  | 'foreign-key'
  | 'foreign-issuer'
  | 'audience'
  | 'tampered'
  | 'malformed'
  | 'none'
  | 'victim';

interface Case {
  readonly kind: Kind;
  /** The Authorization header, or undefined for none. */
  readonly authorization: string | undefined;
  /** For good tokens: the organization whose rows must come back, and how many. */
  readonly org?: string;
  readonly rows?: number;
}

/** What autocannon keeps per connection between a request and its response. */
interface RequestContext {
  c: Case;
  sentAt: number;
}

let db: TestDatabase;
let dir: string;
let service: Awaited<ReturnType<typeof startTokenService>>;
const logLines: string[] = [];
const cases: Case[] = [];
const tokens: string[] = [];
let victim: { token: string; jti: string; exp: number; org: string; rows: number };

beforeAll(async () => {
  db = await createTestDatabase({ template: 'example' });
  dir = await mkdtemp(join(tmpdir(), 'rls-kit-load-'));
  const keysFile = join(dir, 'keys.json');
  const keyring = (await rotate(createKeyring([await generateKey()]))).keyring;
  await writeKeyringFile(keysFile, keyring);
  service = await startTokenService({
    databaseUrl: db.url,
    keysFile,
    host: '127.0.0.1',
    port: 0,
    issuer: ISS,
    audience: AUD,
    rateLimit: false,
    poolSize: 10,
    logger: pino(
      { level: 'info' },
      new Writable({
        write(chunk, _e, done) {
          logLines.push(String(chunk));
          done();
        },
      }),
    ),
  });

  const admin = new pg.Client({ connectionString: db.url });
  await admin.connect();
  try {
    const { rows: members } = await admin.query<{ sub: string; org: string; role: string }>(
      `select user_id::text as sub, org_id::text as org, role from public.memberships order by user_id, org_id`,
    );
    const { rows: counts } = await admin.query<{ org: string; n: number }>(
      `select org_id::text as org, least(count(*), 50)::int as n from public.documents group by org_id`,
    );
    const rowsOf = new Map(counts.map((c) => [c.org, c.n]));
    const minter = await createMinter({
      keyring,
      issuer: ISS,
      audience: AUD,
      claimSchema: exampleClaimSchema,
      ttl: '1h',
    });
    const mint = (m: { sub: string; org: string; role: string }) =>
      minter.issue({ sub: m.sub, claims: { org_id: m.org, user_role: m.role as 'member' } });
    const bearer = (t: string) => `Bearer ${t}`;

    // Good: every membership (alice and heidi have two organizations: one token each), 3 tokens each.
    const revokedSubject = members.find((m) => m.role === 'viewer')!;
    for (const m of members) {
      if (m.sub === revokedSubject.sub) continue;
      for (let i = 0; i < 3; i++) {
        const t = await mint(m);
        tokens.push(t.token);
        cases.push({
          kind: 'good',
          authorization: bearer(t.token),
          org: m.org,
          rows: rowsOf.get(m.org)!,
        });
      }
    }
    // Revoked: by jti, and every token of one subject.
    for (const m of members.slice(0, 3)) {
      const t = await mint(m);
      await admin.query('select rls_kit.revoke_token($1, to_timestamp($2), $3, $4::uuid)', [
        t.jti,
        t.exp,
        'load test',
        m.sub,
      ]);
      tokens.push(t.token);
      cases.push({ kind: 'revoked', authorization: bearer(t.token) });
    }
    const subjectTokens = await Promise.all([1, 2].map(() => mint(revokedSubject)));
    await new Promise((r) => setTimeout(r, 1100)); // the cut-off is whole seconds: iat must be ≤ it
    await admin.query('select rls_kit.revoke_subject($1::uuid, $2)', [
      revokedSubject.sub,
      'load test',
    ]);
    for (const t of subjectTokens) {
      tokens.push(t.token);
      cases.push({ kind: 'revoked', authorization: bearer(t.token) });
    }
    // Expired an hour ago (minted on a clock two hours back, valid 10 minutes).
    const past = await createMinter({
      keyring,
      issuer: ISS,
      audience: AUD,
      claimSchema: exampleClaimSchema,
      ttl: '10m',
      clock: () => Date.now() - 120 * MIN,
    });
    for (const m of members.slice(0, 2)) {
      const t = await past.mint({
        sub: m.sub,
        claims: { org_id: m.org, user_role: m.role as 'member' },
      });
      tokens.push(t);
      cases.push({ kind: 'expired', authorization: bearer(t) });
    }
    // Foreign: a key the service never published; the right key but another issuer or audience.
    const foreignRing = createKeyring([await generateKey()]);
    const foreign = await createMinter({
      keyring: foreignRing,
      issuer: ISS,
      audience: AUD,
      claimSchema: exampleClaimSchema,
    });
    const otherIss = await createMinter({
      keyring,
      issuer: 'https://evil.example',
      audience: AUD,
      claimSchema: exampleClaimSchema,
    });
    const otherAud = await createMinter({
      keyring,
      issuer: ISS,
      audience: 'service_role',
      claimSchema: exampleClaimSchema,
    });
    const m0 = members[0]!;
    const claims = { org_id: m0.org, user_role: 'owner' as const };
    for (const [kind, mm] of [
      ['foreign-key', foreign],
      ['foreign-issuer', otherIss],
      ['audience', otherAud],
    ] as const) {
      const t = await mm.mint({ sub: m0.sub, claims });
      tokens.push(t);
      cases.push({ kind, authorization: bearer(t) });
    }
    // Tampered: a good token with its payload swapped for another org's (signature no longer matches).
    const good = cases.find((c) => c.kind === 'good')!.authorization!.slice(7);
    const [h, p, s] = good.split('.') as [string, string, string];
    const payload = JSON.parse(Buffer.from(p, 'base64url').toString('utf8'));
    payload.org_id = members.find((m) => m.org !== payload.org_id)!.org;
    cases.push({
      kind: 'tampered',
      authorization: bearer(
        `${h}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}.${s}`,
      ),
    });
    const unsigned = `${Buffer.from('{"alg":"none","typ":"JWT"}').toString('base64url')}.${p}.`;
    cases.push({ kind: 'tampered', authorization: bearer(unsigned) });
    cases.push({ kind: 'malformed', authorization: 'Bearer not-a-token' });
    cases.push({
      kind: 'malformed',
      authorization: `Basic ${Buffer.from('a:b').toString('base64')}`,
    });
    cases.push({ kind: 'none', authorization: undefined });

    // The victim: good until it is revoked in the middle of the run.
    const vm = members.find((m) => m.role === 'member')!;
    const vt = await mint(vm);
    victim = { token: vt.token, jti: vt.jti, exp: vt.exp, org: vm.org, rows: rowsOf.get(vm.org)! };
    tokens.push(vt.token);
    cases.push({ kind: 'victim', authorization: bearer(vt.token), org: vm.org, rows: victim.rows });
  } finally {
    await admin.end();
  }
}, 120_000);

afterAll(async () => {
  await service?.close();
  await db?.drop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** What one response must be: `pass` (200 with exactly its org's rows), `refuse` (401) or either. */
function check(
  c: Case,
  status: number,
  body: string,
  expect: 'pass' | 'refuse' | 'either',
): string | undefined {
  if (status >= 500) return `${c.kind}: ${status}`;
  if (status === 200) {
    if (expect === 'refuse') return `${c.kind} token accepted`;
    let rows: { org_id: string }[];
    try {
      rows = JSON.parse(body);
    } catch {
      return `${c.kind}: 200 with a body that is not JSON`;
    }
    if (!Array.isArray(rows)) return `${c.kind}: 200 without an array`;
    // In flight while the revocation commits: the database's guard can see it
    // before this node's list hears of it, and then shows nothing (no leak).
    if (expect === 'either' && rows.length === 0) return undefined;
    if (rows.length !== c.rows) return `${c.kind}: ${rows.length} rows, expected ${c.rows}`;
    if (rows.some((r) => r.org_id !== c.org)) return `${c.kind}: a row of another organization`;
    return undefined;
  }
  if (status === 401) return expect === 'pass' ? `${c.kind} token refused (401)` : undefined;
  return `${c.kind}: unexpected status ${status}`;
}

const expected = (c: Case): 'pass' | 'refuse' =>
  c.kind === 'good' || c.kind === 'victim' ? 'pass' : 'refuse';

describe('token service under load', () => {
  it('answers every case correctly once before the run', async () => {
    for (const c of cases) {
      const res = await fetch(`${service.url}/api/documents`, {
        headers: c.authorization === undefined ? {} : { authorization: c.authorization },
      });
      const body = await res.text();
      expect(check(c, res.status, body, expected(c)), `${c.kind}: ${res.status}`).toBeUndefined();
      if (res.status === 401) expect(res.headers.get('www-authenticate')).toMatch(/^Bearer/);
    }
  });

  it(
    `serves ${SECONDS} s of mixed good and bad bearer tokens: no wrong acceptance, only the user's org, no 5xx`,
    async () => {
      const problems = new Map<string, number>();
      const tally = new Map<Kind, { n: number; ok: number; unauthorized: number }>();
      // 2 of 3 requests good, the rest cycling through the bad cases (victim included).
      const good = cases.filter((c) => c.kind === 'good');
      const bad = cases.filter((c) => c.kind !== 'good');
      let i = 0;
      // Answered before revokeStart the victim must pass; sent after revokedAt (+ NOTIFY propagation) be refused.
      let revokeStart = Number.POSITIVE_INFINITY;
      let revokedAt = Number.POSITIVE_INFINITY;
      const GRACE_MS = 1000; // NOTIFY to this node's list: ms normally, generous for a loaded CI machine

      const revokeLater = setTimeout(
        async () => {
          const c = new pg.Client({ connectionString: db.url });
          await c.connect();
          revokeStart = Date.now();
          try {
            await c.query('select rls_kit.revoke_token($1, to_timestamp($2), $3)', [
              victim.jti,
              victim.exp,
              'stolen',
            ]);
            revokedAt = Date.now();
          } finally {
            await c.end();
          }
        },
        Math.round((SECONDS * 1000) / 3),
      );

      const result = await autocannon({
        url: service.url,
        connections: 10,
        duration: SECONDS,
        requests: [
          {
            method: 'GET',
            path: '/api/documents',
            setupRequest: (req, ctx) => {
              const context = ctx as RequestContext;
              const n = i++;
              const c = n % 3 === 2 ? bad[Math.floor(n / 3) % bad.length]! : good[n % good.length]!;
              context.c = c;
              context.sentAt = Date.now();
              return {
                ...req,
                headers: c.authorization === undefined ? {} : { authorization: c.authorization },
              };
            },
            onResponse: (status, body, ctx) => {
              const context = ctx as RequestContext;
              const c = context.c;
              const t = tally.get(c.kind) ?? { n: 0, ok: 0, unauthorized: 0 };
              t.n++;
              if (status === 200) t.ok++;
              if (status === 401) t.unauthorized++;
              tally.set(c.kind, t);
              const sentAt = context.sentAt;
              // 'pass' only for a request answered before the revocation began.
              const answeredAt = Date.now();
              const want =
                c.kind !== 'victim'
                  ? expected(c)
                  : answeredAt < revokeStart
                    ? 'pass'
                    : sentAt > revokedAt + GRACE_MS
                      ? 'refuse'
                      : 'either';
              const problem = check(c, status, body, want);
              if (problem) problems.set(problem, (problems.get(problem) ?? 0) + 1);
            },
          },
        ],
      });
      clearTimeout(revokeLater);

      const seconds = result.duration || SECONDS;
      const rps = Math.round(result.requests.total / seconds);
      const summary = {
        seconds,
        requests: result.requests.total,
        'req/s': rps,
        'p50 ms': result.latency.p50,
        'p99 ms': result.latency.p99,
        'max ms': result.latency.max,
        errors: result.errors,
        timeouts: result.timeouts,
        byKind: Object.fromEntries(tally),
      };
      // The numbers the issue asks for, in the test output.
      console.log(`service load: ${JSON.stringify(summary, null, 2)}`);

      expect(Object.fromEntries(problems)).toEqual({});
      expect(result.errors).toBe(0);
      expect(result.timeouts).toBe(0);
      expect(result['5xx']).toBe(0);
      expect(revokedAt).toBeLessThan(Number.POSITIVE_INFINITY);
      // Every kind was exercised, and both sides of the victim's revocation were seen.
      const refusedKinds = [
        'revoked',
        'expired',
        'foreign-key',
        'foreign-issuer',
        'audience',
        'tampered',
        'malformed',
        'none',
      ] as const;
      for (const kind of ['good', ...refusedKinds] as const) {
        expect(tally.get(kind)?.n ?? 0, kind).toBeGreaterThan(10);
      }
      expect(tally.get('victim')!.ok).toBeGreaterThan(0);
      expect(tally.get('victim')!.unauthorized).toBeGreaterThan(0);
      for (const kind of refusedKinds) {
        expect(tally.get(kind)!.ok, kind).toBe(0);
      }

      // The service counted what it refused, by code.
      const metrics = await (await fetch(`${service.url}/metrics`)).text();
      const count = (outcome: string) =>
        Number(
          metrics.match(
            new RegExp(`^rls_kit_token_verifications_total\\{outcome="${outcome}"\\} (\\S+)$`, 'm'),
          )?.[1] ?? 0,
        );
      expect(count('ok')).toBeGreaterThanOrEqual(tally.get('good')!.ok);
      expect(count('ERR_TOKEN_REVOKED')).toBeGreaterThanOrEqual(tally.get('revoked')!.n);
      expect(count('ERR_TOKEN_EXPIRED')).toBeGreaterThanOrEqual(tally.get('expired')!.n);
      expect(count('ERR_KEY_UNKNOWN')).toBeGreaterThanOrEqual(tally.get('foreign-key')!.n);

      // No token (or any recognisable part of one) in any log line.
      const logs = logLines.join('');
      for (const t of tokens) {
        for (const part of t.split('.'))
          if (part.length > 16) expect(logs.includes(part)).toBe(false);
      }
    },
    SECONDS * 1000 + 60_000,
  );
});
