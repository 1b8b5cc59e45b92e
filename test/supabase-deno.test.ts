/**
 * The Edge-Function wrapper under Deno, the runtime of Supabase Edge
 * Functions: a real `deno` (the npm package's binary) serves
 * createEdgeHandler from the kit's own sources with `Deno.serve`, verifies
 * kit tokens and runs the query as the token's user on the example database.
 * Skipped with a message when no deno binary is installed; fails under CI=true.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { publicJwks } from '../src/keys/index.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';
import {
  ACME,
  ALICE,
  GLOBEX,
  type KitIssuer,
  kitIssuer,
  SEEDED_DOCS,
} from './helpers/supabase-fixture.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const deno = path.join(root, 'node_modules', '.bin', 'deno');
const haveDeno = existsSync(deno);
if (!haveDeno && process.env.CI === 'true') {
  throw new Error(
    'deno is missing (node_modules/.bin/deno): run npm ci — CI must run the Deno test',
  );
}
if (!haveDeno)
  console.warn('skipping the Deno edge test: node_modules/.bin/deno is missing (npm ci)');

let database: TestDatabase;
let kit: KitIssuer;
let child: ChildProcess | undefined;
let url = '';

beforeAll(async () => {
  if (!haveDeno) return;
  database = await createTestDatabase({ template: 'example' });
  kit = await kitIssuer();
  child = spawn(
    deno,
    [
      'run',
      '--quiet',
      '--no-prompt',
      '--no-config',
      '--node-modules-dir=manual',
      '--unstable-sloppy-imports',
      '--allow-net=127.0.0.1',
      '--allow-env',
      '--allow-read',
      '--allow-sys',
      'test/fixtures/deno/edge-server.ts',
    ],
    {
      cwd: root,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        PATH: process.env.PATH ?? '',
        HOME: process.env.HOME ?? '/tmp',
        DENO_NO_UPDATE_CHECK: '1',
        RLS_KIT_DB_URL: database.url,
        RLS_KIT_ISSUER: kit.issuer,
        RLS_KIT_JWKS: JSON.stringify(publicJwks(kit.ring)),
      },
    },
  );
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    child?.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /listening (\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    child?.once('exit', (code) => reject(new Error(`deno exited ${code}: ${stderr.trim()}`)));
  });
  url = `http://127.0.0.1:${port}/`;
}, 120_000);

afterAll(async () => {
  if (child && child.exitCode === null) {
    const exited = new Promise((r) => child?.once('exit', r));
    child.kill('SIGTERM');
    await exited;
  }
  await database?.drop();
});

const get = (authorization?: string) =>
  fetch(url, { headers: authorization === undefined ? {} : { authorization } });

describe.skipIf(!haveDeno)('createEdgeHandler under Deno', () => {
  it("serves a member exactly their organization's documents, as that user under RLS", async () => {
    for (const org of [ACME, GLOBEX] as const) {
      const token = await kit.minter.mint({
        sub: ALICE,
        claims: { org_id: org, user_role: org === ACME ? 'owner' : 'member' },
      });
      const res = await get(`Bearer ${token}`);
      expect(res.status).toBe(200);
      const body = (await res.json()) as { runtime: string; rows: { org_id: string }[] };
      expect(body.runtime).toBe('deno');
      expect(body.rows.length).toBe(SEEDED_DOCS[org]);
      expect(new Set(body.rows.map((r) => r.org_id))).toEqual(new Set([org]));
    }
  });

  it('answers 401 without a token, for a forged one, and for one from another issuer', async () => {
    const none = await get();
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toBe('Bearer');
    const good = await kit.minter.mint({
      sub: ALICE,
      claims: { org_id: ACME, user_role: 'owner' },
    });
    const [h, p] = good.split('.');
    const forged = await get(`Bearer ${h}.${p}.${'A'.repeat(86)}`);
    expect(forged.status).toBe(401);
    expect(forged.headers.get('www-authenticate')).toMatch(/error="invalid_token"/);
    const other = await kitIssuer('https://other.example.test');
    const foreign = await get(
      `Bearer ${await other.minter.mint({ sub: ALICE, claims: { org_id: ACME } })}`,
    );
    expect(foreign.status).toBe(401);
  });

  it('lets the database guard refuse a revoked token: no rows, even without an in-process list', async () => {
    const minted = await kit.minter.issue({
      sub: ALICE,
      claims: { org_id: ACME, user_role: 'owner' },
    });
    const admin = new pg.Client({ connectionString: database.url });
    await admin.connect();
    try {
      await admin.query('select rls_kit.revoke_token($1, to_timestamp($2))', [
        minted.jti,
        minted.exp,
      ]);
    } finally {
      await admin.end();
    }
    const res = await get(`Bearer ${minted.token}`);
    expect(res.status).toBe(200);
    expect(((await res.json()) as { rows: unknown[] }).rows).toEqual([]);
  });
});
