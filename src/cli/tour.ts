import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { asUserPg } from '../db/as-user-pg.js';
import { type Database, describeUrl, openDatabase } from '../db/database.js';
import { migrate, runSqlFile } from '../db/migrate.js';
import type { CliIO } from './command.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
// Not the token service's rls_kit_demo: the tour recreates its database each run.
const DEMO_DB = 'rls_kit_tour';

/** What one persona could do in the example app, found by running as that user. */
export interface PersonaView {
  email: string;
  org: string;
  userRole: string;
  /** Documents visible in total (all of them must be of the persona's org). */
  visible: number;
  /** Documents of other organizations visible (must be 0). */
  otherOrgVisible: number;
  canInsert: boolean;
  canUpdateOthers: boolean;
  canDeleteOthers: boolean;
  /** Rows of another organization an UPDATE could touch (must be 0). */
  otherOrgWritable: number;
}

/**
 * The `rls-kit tour` command: on the embedded database (or
 * `DATABASE_URL`'s server), recreate the `rls_kit_tour`
 * database, apply the kit and the example app with its seed, then run as
 * every seeded persona and show what RLS lets each one see and do.
 * Every write it tries is rolled back.
 *
 * @example
 * ```ts
 * const views = await runTour(io, { url: process.env.DATABASE_URL });
 * ```
 */
export async function runTour(
  io: CliIO,
  options: { url?: string | undefined; database?: string } = {},
): Promise<PersonaView[]> {
  const say = (line = '') => io.stderr.write(`${line}\n`);
  const started = Date.now();
  const db = await openDatabase({ url: options.url });
  try {
    say(
      db.embedded
        ? `Postgres: embedded, in .rls-kit/ (${describeUrl(db.url)})`
        : `Postgres: ${describeUrl(db.url)}`,
    );
    const database = options.database ?? DEMO_DB;
    const url = await recreateDemoDatabase(db, database);
    const { applied } = await migrate({ url, dir: path.join(root, 'supabase', 'migrations') });
    say(`migrations: ${applied.map((m) => `${m.version}_${m.name}`).join(', ')}`);
    await runSqlFile(url, path.join(root, 'supabase', 'seed.sql'));
    say('seed: supabase/seed.sql');
    const views = await personaViews(url);
    say();
    say('What each persona of the example app sees and may do, asked of Postgres as that user');
    say('(role authenticated, claims sub / org_id / user_role; every write rolled back):');
    say();
    io.stdout.write(`${renderTable(views)}\n`);
    const leaks = views.filter((v) => v.otherOrgVisible > 0 || v.otherOrgWritable > 0);
    say();
    say(
      leaks.length === 0
        ? 'No persona sees or can change a row of another organization.'
        : `LEAK: ${leaks.map((v) => v.email).join(', ')} reach another organization's rows`,
    );
    say(
      `done in ${((Date.now() - started) / 1000).toFixed(1)} s — database ${database} is left for you to explore.`,
    );
    return views;
  } finally {
    await db.close();
  }
}

async function recreateDemoDatabase(db: Database, database: string): Promise<string> {
  const admin = new pg.Client({ connectionString: db.url });
  admin.on('error', () => undefined); // a lost server rejects the query instead of crashing
  await admin.connect();
  try {
    await admin.query(`drop database if exists ${pg.escapeIdentifier(database)} with (force)`);
    await admin.query(`create database ${pg.escapeIdentifier(database)}`);
  } finally {
    await admin.end();
  }
  const u = new URL(db.url);
  u.pathname = `/${database}`;
  return u.toString();
}

interface Persona {
  user_id: string;
  email: string;
  org_id: string;
  org: string;
  role: string;
}

async function personaViews(url: string): Promise<PersonaView[]> {
  const pool = new pg.Pool({ connectionString: url, max: 4 });
  pool.on('error', () => undefined); // an idle connection dying must not crash the tour
  try {
    const { rows: personas } = await pool.query<Persona>(
      `select m.user_id, u.email, m.org_id, o.name as org, m.role
         from public.memberships m
         join auth.users u on u.id = m.user_id
         join public.organizations o on o.id = m.org_id
        order by o.name, array_position(array['owner','admin','member','viewer'], m.role), u.email`,
    );
    const views: PersonaView[] = [];
    for (const p of personas) {
      // The registered claims of a live token too: the revocation guard
      // (rls_kit.is_token_active) treats a token without iat as dead.
      const now = Math.floor(Date.now() / 1000);
      const claims = {
        sub: p.user_id,
        role: 'authenticated',
        org_id: p.org_id,
        user_role: p.role,
        iat: now,
        exp: now + 600,
        jti: randomBytes(16).toString('base64url'),
      };
      views.push(await asUserPg(pool, claims, (client) => probe(client, p)));
    }
    return views;
  } finally {
    await pool.end();
  }
}

/** Counts and tries writes inside savepoints, so the probe changes nothing. */
async function probe(client: pg.ClientBase, p: Persona): Promise<PersonaView> {
  const count = async (sql: string, params: unknown[]) =>
    Number((await client.query<{ n: string }>(sql, params)).rows[0]?.n ?? 0);
  const attempt = async (sql: string, params: unknown[]): Promise<number> => {
    await client.query('savepoint probe');
    try {
      const res = await client.query(sql, params);
      return res.rowCount ?? 0;
    } catch (err) {
      if ((err as { code?: string }).code === '42501') return 0; // denied by RLS
      throw err;
    } finally {
      await client.query('rollback to savepoint probe');
    }
  };
  const visible = await count('select count(*) as n from public.documents', []);
  const otherOrgVisible = await count(
    'select count(*) as n from public.documents where org_id <> $1',
    [p.org_id],
  );
  const inserted = await attempt(
    `insert into public.documents (org_id, owner_id, title) values ($1, $2, 'tour probe')`,
    [p.org_id, p.user_id],
  );
  const updatedOthers = await attempt(
    `update public.documents set title = title where owner_id <> $1`,
    [p.user_id],
  );
  const deletedOthers = await attempt(`delete from public.documents where owner_id <> $1`, [
    p.user_id,
  ]);
  // As postgres this would touch every other org's document; as the user, none.
  const otherOrgWritable = await attempt(
    `update public.documents set title = title where org_id <> $1`,
    [p.org_id],
  );
  return {
    email: p.email,
    org: p.org,
    userRole: p.role,
    visible,
    otherOrgVisible,
    canInsert: inserted > 0,
    canUpdateOthers: updatedOthers > 0,
    canDeleteOthers: deletedOthers > 0,
    otherOrgWritable,
  };
}

function renderTable(views: PersonaView[]): string {
  const yes = (b: boolean) => (b ? 'yes' : 'no');
  const header = [
    'persona',
    'org',
    'user_role',
    'sees',
    'insert',
    "update others'",
    "delete others'",
    'other orgs',
  ];
  const rows = views.map((v) => [
    v.email,
    v.org,
    v.userRole,
    `${v.visible} docs`,
    yes(v.canInsert),
    yes(v.canUpdateOthers),
    yes(v.canDeleteOthers),
    v.otherOrgVisible === 0 && v.otherOrgWritable === 0 ? 'nothing' : 'LEAK',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}
