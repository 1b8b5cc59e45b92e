import { execFile } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli } from '../src/cli/main.js';
import { initProject } from '../src/db/init-project.js';
import {
  KIT_MIGRATIONS_DIR,
  listMigrationFiles,
  type MigrateResult,
  migrate,
  runSqlFile,
} from '../src/db/migrate.js';
import { isRlsKitError, RlsKitError } from '../src/errors.js';
import { memoryIO } from './helpers/cli.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';

/*
 * `migrate` against real Postgres, and against the real Supabase CLI 2.117.0
 * (node_modules/.bin/supabase) on the same databases: what one records, the
 * other must read back as applied.
 */

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const supabaseBin = path.join(root, 'node_modules', '.bin', 'supabase');
const run = promisify(execFile);
const kitFiles = existsSync(KIT_MIGRATIONS_DIR)
  ? readdirSync(KIT_MIGRATIONS_DIR).filter((f) => /^\d{14}_.+\.sql$/.test(f))
  : [];

const dbs: TestDatabase[] = [];
const tmpDirs: string[] = [];

afterAll(async () => {
  await Promise.all(dbs.map((d) => d.drop()));
  await Promise.all(tmpDirs.map((d) => rm(d, { recursive: true, force: true })));
});

/** A fresh empty database (each test gets its own so histories never mix). */
async function freshDb(): Promise<string> {
  const db = await createTestDatabase({ template: 'blank' });
  dbs.push(db);
  return db.url;
}

/** A temporary Supabase-like project: `<tmp>/supabase/migrations/<files>`; returns the migrations dir. */
async function project(files: Record<string, string>): Promise<string> {
  const workdir = await mkdtemp(path.join(tmpdir(), 'rls-kit-migrate-'));
  tmpDirs.push(workdir);
  const dir = path.join(workdir, 'supabase', 'migrations');
  await mkdir(dir, { recursive: true });
  for (const [name, sql] of Object.entries(files)) await writeFile(path.join(dir, name), sql);
  return dir;
}

async function query<T extends pg.QueryResultRow>(
  url: string,
  sql: string,
  values: unknown[] = [],
): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<T>(sql, values)).rows;
  } finally {
    await client.end();
  }
}

interface HistoryRow {
  version: string;
  name: string | null;
  statements: string[] | null;
}

function history(url: string): Promise<HistoryRow[]> {
  return query<HistoryRow>(
    url,
    'select version, name, statements from supabase_migrations.schema_migrations order by version',
  );
}

async function tableExists(url: string, name: string): Promise<boolean> {
  const rows = await query<{ t: string | null }>(url, 'select to_regclass($1)::text as t', [name]);
  return rows[0]?.t != null;
}

/** The error `migrate` rejects with (fails the test if it resolves). */
async function migrateError(options: Parameters<typeof migrate>[0]): Promise<RlsKitError> {
  const err = await migrate(options).then(
    (r: MigrateResult) => new Error(`expected a failure, applied ${r.applied.length}`),
    (e: unknown) => e,
  );
  if (!(err instanceof RlsKitError)) throw err;
  return err;
}

const versions = (files: { version: string }[]) => files.map((f) => f.version);

/** Runs the Supabase CLI with `--workdir` = the project holding `dir`. */
async function supabase(args: string[], dir: string, url: string): Promise<string> {
  const dbUrl = new URL(url);
  dbUrl.searchParams.set('sslmode', 'disable');
  const { stdout } = await run(
    supabaseBin,
    [...args, '--workdir', path.dirname(path.dirname(dir)), '--db-url', dbUrl.toString()],
    { cwd: root, timeout: 90_000, env: { ...process.env, DO_NOT_TRACK: '1' } },
  );
  return stdout;
}

/** `supabase migration list` → [local, remote] per row ('' for a blank cell). */
function parseMigrationList(out: string): [string, string][] {
  const rows: [string, string][] = [];
  for (const line of out.split('\n')) {
    const m = /^\s*`?(\d*)\s*`?\s*\|\s*`?(\d*)\s*`?\s*\|/.exec(line);
    if (m && (m[1] || m[2])) rows.push([m[1]!, m[2]!]);
  }
  return rows;
}

// A file exercising what a naive `;` splitter gets wrong, and what the CLI
// attaches to a statement (the comments before it).
const SPLIT_SQL = `-- header comment
create table s_a (id int primary key);   -- note
insert into s_a values (1);

create function s_f() returns int language plpgsql set search_path = '' as $$
begin
  return 1; -- a ; inside
end $$;
/* block ; comment */
select 'x;y' as q;
create function s_g() returns int language sql set search_path = ''
begin atomic
  select 1;
end;
-- trailing comment
`;
const SPLIT_RECORDED = [
  '-- header comment\ncreate table s_a (id int primary key)',
  '-- note\ninsert into s_a values (1)',
  "create function s_f() returns int language plpgsql set search_path = '' as $$\nbegin\n  return 1; -- a ; inside\nend $$",
  "/* block ; comment */\nselect 'x;y' as q",
  "create function s_g() returns int language sql set search_path = ''\nbegin atomic\n  select 1;\nend",
  '-- trailing comment',
];

describe('migrate', () => {
  it('applies a folder in version order, records each file, and applies nothing on a rerun', async () => {
    const url = await freshDb();
    const dir = await project({
      '20240101000002_second.sql': 'insert into m_t values (2);\n',
      '20240101000001_first.sql': 'create table m_t (id int primary key);\n',
      '20240101000003_split.sql': SPLIT_SQL,
      'README.md': 'not a migration',
    });
    const seen: string[] = [];
    const first = await migrate({ url, dir, onApplied: (m) => seen.push(m.version) });
    expect(versions(first.applied)).toEqual(['20240101000001', '20240101000002', '20240101000003']);
    expect(first.skipped).toEqual([]);
    expect(seen).toEqual(versions(first.applied));
    expect(first.applied[0]).toEqual({
      version: '20240101000001',
      name: 'first',
      path: path.join(dir, '20240101000001_first.sql'),
    });

    expect(await history(url)).toEqual([
      {
        version: '20240101000001',
        name: 'first',
        statements: ['create table m_t (id int primary key)'],
      },
      { version: '20240101000002', name: 'second', statements: ['insert into m_t values (2)'] },
      { version: '20240101000003', name: 'split', statements: SPLIT_RECORDED },
    ]);
    expect(await query(url, 'select s_f() as f, s_g() as g')).toEqual([{ f: 1, g: 1 }]);

    const second = await migrate({ url, dir });
    expect(second.applied).toEqual([]);
    expect(versions(second.skipped)).toEqual(versions(first.applied));
    expect(await query(url, 'select id from m_t')).toEqual([{ id: 2 }]);
  });

  it('creates the history table with the columns the Supabase CLI creates', async () => {
    const url = await freshDb();
    await migrate({ url, dir: await project({}) });
    const columns = await query(
      url,
      `select a.attname as name, format_type(a.atttypid, a.atttypmod) as type, a.attnotnull as not_null
         from pg_attribute a
        where a.attrelid = 'supabase_migrations.schema_migrations'::regclass and a.attnum > 0 and not a.attisdropped
        order by a.attnum`,
    );
    expect(columns).toEqual([
      { name: 'version', type: 'text', not_null: true },
      { name: 'statements', type: 'text[]', not_null: false },
      { name: 'name', type: 'text', not_null: false },
    ]);
    const pk = await query(
      url,
      `select pg_get_constraintdef(oid) as def from pg_constraint
        where conrelid = 'supabase_migrations.schema_migrations'::regclass and contype = 'p'`,
    );
    expect(pk).toEqual([{ def: 'PRIMARY KEY (version)' }]);
  });

  it('upgrades an old history table (version only) the way the CLI does, keeping its rows', async () => {
    const url = await freshDb();
    await query(url, 'create schema supabase_migrations');
    await query(
      url,
      `create table supabase_migrations.schema_migrations (version text not null primary key);
       insert into supabase_migrations.schema_migrations values ('20200101000000')`,
    );
    const dir = await project({ '20240101000001_a.sql': 'select 1;' });
    expect(versions((await migrate({ url, dir })).applied)).toEqual(['20240101000001']);
    expect(await history(url)).toEqual([
      { version: '20200101000000', name: null, statements: null },
      { version: '20240101000001', name: 'a', statements: ['select 1'] },
    ]);
  });

  it('leaves alone versions in the history that the folder lacks', async () => {
    const url = await freshDb();
    const dir = await project({ '20240101000001_a.sql': 'create table gone_a (id int);' });
    await migrate({ url, dir: await project({}) }); // creates the table
    await query(
      url,
      `insert into supabase_migrations.schema_migrations (version, name, statements)
       values ('20240101000005', 'elsewhere', array['select 5'])`,
    );
    const result = await migrate({ url, dir });
    expect(versions(result.applied)).toEqual(['20240101000001']);
    expect(await history(url)).toEqual([
      { version: '20240101000001', name: 'a', statements: ['create table gone_a (id int)'] },
      { version: '20240101000005', name: 'elsewhere', statements: ['select 5'] },
    ]);
  });

  it('rolls a failing file back entirely and names file, line and column', async () => {
    const url = await freshDb();
    const dir = await project({
      '20240101000001_good.sql': 'create table fail_ok (id int);\n',
      '20240101000002_broken.sql': [
        '-- fails half way: everything before the error must vanish too',
        'create table fail_a (id int primary key);',
        'insert into fail_a values (1);',
        '',
        'insert into fail_missing values (1);',
        'create table fail_b (id int);',
      ].join('\n'),
      '20240101000003_after.sql': 'create table fail_after (id int);\n',
    });
    const err = await migrateError({ url, dir });
    expect(err.code).toBe('ERR_MIGRATION');
    expect(err.message).toBe(
      'migration 20240101000002_broken.sql failed at line 5, column 13: relation "fail_missing" does not exist (SQLSTATE 42P01)',
    );
    expect(await tableExists(url, 'fail_ok')).toBe(true); // its own transaction, committed before
    expect(await tableExists(url, 'fail_a')).toBe(false);
    expect(await tableExists(url, 'fail_after')).toBe(false); // nothing after a failure
    expect(versions(await history(url))).toEqual(['20240101000001']);
  });

  it('names the line of errors Postgres gives no position for', async () => {
    const url = await freshDb();
    const unique = await project({
      '20240101000001_dup.sql': [
        'create table dup (id int primary key);',
        'insert into dup values (1);',
        'insert into dup',
        '  values (1);',
      ].join('\n'),
    });
    const dupErr = await migrateError({ url, dir: unique });
    expect(dupErr.message).toMatch(
      /^migration 20240101000001_dup\.sql failed at line 3: duplicate key value violates unique constraint "dup_pkey" — Key \(id\)=\(1\) already exists\. \(SQLSTATE 23505\)$/,
    );

    const raise = await project({
      '20240101000001_do.sql': [
        'create table do_t (id int);',
        'do $$',
        'begin',
        '  perform 1;',
        "  raise exception 'boom %', 42;",
        'end $$;',
      ].join('\n'),
    });
    const doErr = await migrateError({ url, dir: raise });
    expect(doErr.message).toBe(
      'migration 20240101000001_do.sql failed at line 5: boom 42 (SQLSTATE P0001)',
    );
    expect(await tableExists(url, 'do_t')).toBe(false);
  });

  it('names line and column inside a PL/pgSQL body and counts characters, not bytes', async () => {
    const url = await freshDb();
    const body = await project({
      '20240101000001_body.sql': [
        "select 'é😀' as a;",
        'create function bad_body() returns int language plpgsql as $$',
        'begin',
        '  retur 1;',
        'end $$;',
      ].join('\n'),
    });
    expect((await migrateError({ url, dir: body })).message).toBe(
      'migration 20240101000001_body.sql failed at line 4, column 3: syntax error at or near "retur" (SQLSTATE 42601)',
    );
    const wide = await project({
      '20240101000001_wide.sql': "select 1;\nselect 'é😀' as a, nosuchcol;\n",
    });
    expect((await migrateError({ url, dir: wide })).message).toBe(
      'migration 20240101000001_wide.sql failed at line 2, column 19: column "nosuchcol" does not exist (SQLSTATE 42703)',
    );
  });

  it('reports a syntax error with line and column before applying anything', async () => {
    const url = await freshDb();
    const dir = await project({
      '20240101000001_valid.sql': 'create table syn_valid (id int);\n',
      '20240101000002_syntax.sql': 'create table syn_a (id int);\n\ncreate tabel syn_b (id int);\n',
    });
    const err = await migrateError({ url, dir });
    expect(err.message).toBe(
      'migration 20240101000002_syntax.sql failed at line 3, column 8: syntax error at or near "tabel"',
    );
    expect(await tableExists(url, 'syn_valid')).toBe(false);
    expect(await history(url)).toEqual([]);
  });

  it('runs a file wrapped in BEGIN … COMMIT, and refuses a COMMIT in the middle', async () => {
    const url = await freshDb();
    const wrapped = await project({
      '20240101000001_wrapped.sql': 'begin;\ncreate table wrap_a (id int);\ncommit;\n',
    });
    expect(versions((await migrate({ url, dir: wrapped })).applied)).toEqual(['20240101000001']);
    expect((await history(url))[0]?.statements).toEqual([
      'begin',
      'create table wrap_a (id int)',
      'commit',
    ]);

    const middle = await project({
      '20240101000002_middle.sql':
        'create table mid_a (id int);\ncommit;\ncreate table mid_b (id int);\n',
    });
    const err = await migrateError({ url, dir: middle });
    expect(err.message).toMatch(
      /^migration 20240101000002_middle\.sql failed at line 2: COMMIT would end or nest/,
    );
    expect(await tableExists(url, 'mid_a')).toBe(false);
  });

  it('discards session settings a file leaves behind', async () => {
    const url = await freshDb();
    const dir = await project({
      '20240101000001_role.sql':
        "create schema other;\nset search_path = other;\nset role = 'pg_read_all_data';\n",
      '20240101000002_next.sql': 'create table where_am_i (id int);\n',
    });
    await migrate({ url, dir });
    expect(await tableExists(url, 'public.where_am_i')).toBe(true);
    expect(await tableExists(url, 'other.where_am_i')).toBe(false);
  });

  it('applies each file once when runs overlap', async () => {
    const url = await freshDb();
    // Without the lock, two runs both see a file pending and the second
    // `create table` fails with "already exists".
    const dir = await project(
      Object.fromEntries(
        [1, 2, 3].map((i) => [
          `2024010100000${i}_c${i}.sql`,
          `create table conc_${i} (id int);\nselect pg_sleep(0.2);\n`,
        ]),
      ),
    );
    await migrate({ url, dir: await project({}) }); // the history table exists: only the per-file lock is at stake
    const results = await Promise.all([1, 2, 3, 4].map(() => migrate({ url, dir })));
    const applied = results.flatMap((r) => versions(r.applied)).sort();
    expect(applied).toEqual(['20240101000001', '20240101000002', '20240101000003']);
    for (const r of results) expect(r.applied.length + r.skipped.length).toBe(3);
    expect(versions(await history(url))).toEqual(applied);
  });

  it('agrees with `supabase migration list` and `supabase migration up`, in both directions', async () => {
    const files = {
      '20240101000001_first.sql': 'create table cli_t (id int primary key);\n',
      '20240101000002_split.sql': SPLIT_SQL,
      '20240101000003_empty.sql': '',
      '20240101000004_wrapped.sql': 'begin;\ninsert into cli_t values (1);\ncommit;\n-- done\n',
    };
    // rls-kit migrate → the CLI sees every version as applied.
    const ours = await freshDb();
    const oursDir = await project(files);
    await migrate({ url: ours, dir: oursDir });
    const listed = parseMigrationList(await supabase(['migration', 'list'], oursDir, ours));
    expect(listed).toEqual(Object.keys(files).map((f) => [f.slice(0, 14), f.slice(0, 14)]));

    // supabase migration up → rls-kit migrate skips everything, and both
    // tools recorded exactly the same rows.
    const theirs = await freshDb();
    const theirsDir = await project(files);
    await supabase(['migration', 'up'], theirsDir, theirs);
    const result = await migrate({ url: theirs, dir: theirsDir });
    expect(result.applied).toEqual([]);
    expect(result.skipped).toHaveLength(4);
    expect(await history(theirs)).toEqual(await history(ours));
  }, 120_000);

  it('rejects misnamed .sql files and a missing folder, naming them', async () => {
    const url = await freshDb();
    const misnamed = await project({ 'add_users.sql': 'select 1;' });
    const err = await migrateError({ url, dir: misnamed });
    expect(err.code).toBe('ERR_MIGRATION');
    expect(err.message).toContain(path.join(misnamed, 'add_users.sql'));
    expect(err.message).toContain('<14 digits>_<name>.sql');
    const short = await project({ '2024_short.sql': 'select 1;' });
    expect((await migrateError({ url, dir: short })).message).toContain('2024_short.sql');

    const missing = path.join(misnamed, 'nope');
    const gone = await migrateError({ url, dir: missing });
    expect(gone.code).toBe('ERR_MIGRATION');
    expect(gone.message).toContain(`migrations folder ${missing} does not exist`);

    const dup = await project({
      '20240101000001_a.sql': 'select 1;',
      '20240101000001_b.sql': 'select 2;',
    });
    expect((await migrateError({ url, dir: dup })).message).toContain('share version');
    expect(await tableExists(url, 'supabase_migrations.schema_migrations')).toBe(false);
  });

  it('follows symlinks and skips a pre-2021 <timestamp>_init.sql first file like the CLI', async () => {
    const url = await freshDb();
    const target = await project({ 'real.sql.txt': 'create table via_link (id int);\n' });
    const dir = await project({
      '20200101000000_init.sql': 'select this is never applied;',
    });
    await symlink(path.join(target, 'real.sql.txt'), path.join(dir, '20240101000001_link.sql'));
    const files = await listMigrationFiles(dir);
    expect(files.map((f) => path.basename(f.path))).toEqual(['20240101000001_link.sql']);
    await migrate({ url, dir });
    expect(await tableExists(url, 'via_link')).toBe(true);
  });

  it('reports bad URLs and unreachable servers without the password', async () => {
    const dir = await project({});
    const bad = await migrateError({ url: 'postgresql://u:hunter2@host:port/db', dir });
    expect(bad.code).toBe('ERR_DB_URL');
    expect(bad.message).not.toContain('hunter2');
    const down = await migrateError({ url: 'postgresql://u:hunter2@127.0.0.1:1/db', dir });
    expect(down.code).toBe('ERR_DB_UNREACHABLE');
    expect(down.message).not.toContain('hunter2');
    expect(down.message).toContain('127.0.0.1:1/db');
  });

  describe.skipIf(kitFiles.length === 0)("the kit's own migrations", () => {
    it('apply to an empty database, then apply nothing, and apply cleanly again under new versions', async () => {
      const url = await freshDb();
      const first = await migrate({ url });
      expect(first.applied.map((f) => `${f.version}_${f.name}.sql`)).toEqual(kitFiles.sort());
      expect((await migrate({ url })).applied).toEqual([]);
      // Idempotent SQL: the same files under fresh versions (what `init` does to a project).
      const copy = await project({});
      const { copied } = await initProject({ dir: copy, now: new Date('2099-01-01T00:00:00Z') });
      expect(copied).toHaveLength(kitFiles.length);
      expect((await migrate({ url, dir: copy })).applied).toHaveLength(kitFiles.length);
    }, 60_000);
  });
});

describe('runSqlFile', () => {
  it('runs a whole file in one transaction and names file and line on failure', async () => {
    const url = await freshDb();
    const dir = await project({
      'seed.sql': 'create table seed_t (id int);\ninsert into seed_t values (1);\n',
      'bad.sql': 'create table seed_bad (id int);\ninsert into seed_bad values (1);\nselect 1/0;\n',
    });
    await runSqlFile(url, path.join(dir, 'seed.sql'));
    expect(await query(url, 'select id from seed_t')).toEqual([{ id: 1 }]);
    const err = await runSqlFile(url, path.join(dir, 'bad.sql')).then(
      () => new Error('expected a failure'),
      (e: unknown) => e,
    );
    expect(isRlsKitError(err, 'ERR_MIGRATION')).toBe(true);
    expect((err as Error).message).toBe(
      `${path.join(dir, 'bad.sql')} failed at line 3: division by zero (SQLSTATE 22012)`,
    );
    expect(await tableExists(url, 'seed_bad')).toBe(false);
    expect(await tableExists(url, 'supabase_migrations.schema_migrations')).toBe(false);
  });
});

const cliIO = (env: NodeJS.ProcessEnv = {}) => memoryIO({ env });

describe('rls-kit migrate', () => {
  it('prints the summary to stderr and a JSON line to stdout', async () => {
    const url = await freshDb();
    const dir = await project({ '20240101000001_a.sql': 'select 1;', '20240101000002_b.sql': '' });
    const io = cliIO();
    expect(await runCli(['migrate', '--db-url', url, '--dir', dir], io)).toBe(0);
    expect(JSON.parse(io.out())).toEqual({
      applied: ['20240101000001_a.sql', '20240101000002_b.sql'],
      skipped: [],
    });
    expect(io.err()).toContain('2 applied, 0 already applied');
    const again = cliIO({ DATABASE_URL: url }); // DATABASE_URL is the default
    expect(await runCli(['migrate', '--dir', dir], again)).toBe(0);
    expect(JSON.parse(again.out())).toEqual({
      applied: [],
      skipped: ['20240101000001_a.sql', '20240101000002_b.sql'],
    });
  });

  it('exits 1 with one line, without the password, for a bad or unreachable URL', async () => {
    for (const url of [
      'postgresql://u:hunter2@host:port/db',
      'mysql://u:hunter2@127.0.0.1/db',
      'postgresql://u:hunter2@127.0.0.1:1/db',
    ]) {
      const io = cliIO();
      expect(await runCli(['migrate', '--db-url', url], io)).toBe(1);
      expect(io.out()).toBe('');
      expect(io.err().trimEnd().split('\n')).toHaveLength(1);
      expect(io.err()).toMatch(/\[ERR_DB_(URL|UNREACHABLE)\]\n$/);
      expect(io.err()).not.toContain('hunter2');
    }
  });

  it('exits 1 naming file and line for a broken migration', async () => {
    const url = await freshDb();
    const dir = await project({ '20240101000001_x.sql': 'select 1;\nselect * from nope;\n' });
    const io = cliIO();
    expect(await runCli(['migrate', '--db-url', url, '--dir', dir], io)).toBe(1);
    expect(io.err()).toContain(
      'rls-kit: migration 20240101000001_x.sql failed at line 2, column 15: relation "nope" does not exist (SQLSTATE 42P01) [ERR_MIGRATION]\n',
    );
  });

  it('exits 2 for an unknown flag', async () => {
    const io = cliIO();
    expect(await runCli(['migrate', '--nope'], io)).toBe(2);
    expect(io.err()).toContain('--nope');
  });
});
