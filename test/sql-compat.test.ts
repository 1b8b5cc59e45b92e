import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, serverUrl, type TestDatabase } from './helpers/db.js';

/*
 * The Supabase compatibility migration and the kit's core schema, on a real
 * Postgres: claim functions with Supabase's exact semantics, roles with
 * Supabase's attributes, auth tables with Supabase's columns, idempotency
 * (a second application under other version numbers changes nothing), and
 * "on a Supabase database it changes nothing of Supabase's" — emulated with an
 * auth schema owned by a superuser and the migration run by a non-superuser,
 * as Supabase's `postgres` role is.
 */

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const kitDir = path.join(root, 'migrations');
const kitFiles = readdirSync(kitDir)
  .filter((f) => /^\d{14}_.+\.sql$/.test(f))
  .sort()
  .map((f) => path.join(kitDir, f));
const compatFile = path.join(kitDir, '20250101000000_rls_kit_supabase_compat.sql');
const coreFile = path.join(kitDir, '20250101000001_rls_kit_core.sql');

/** Applies one migration file as one transaction, like the Supabase CLI and `rls-kit migrate`. */
async function applyFile(client: pg.Client, file: string): Promise<void> {
  const sql = readFileSync(file, 'utf8');
  await client.query('begin');
  try {
    await client.query(sql);
    await client.query('commit');
  } catch (err) {
    await client.query('rollback');
    throw new Error(`${path.basename(file)}: ${(err as Error).message}`, { cause: err });
  }
}

async function connect(url: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  return client;
}

const API_ROLES = ['anon', 'authenticated', 'service_role', 'authenticator', 'supabase_auth_admin'];

/**
 * Everything a migration could change in the given schemas (and the API roles),
 * one line per object, sorted: owners, ACLs, comments, columns with types and
 * defaults, constraints, indexes, function definitions, policies, types.
 */
async function catalogSnapshot(client: pg.Client, schemas: string[]): Promise<string[]> {
  const { rows } = await client.query<{ line: string }>(
    `
    with s as (select oid, nspname from pg_namespace where nspname = any($1::text[]))
    select concat_ws(' | ', kind, name, detail, acl, description) as line from (
      select 'schema' as kind, n.nspname as name, n.nspowner::regrole::text as detail,
             n.nspacl::text as acl, obj_description(n.oid, 'pg_namespace') as description
      from pg_namespace n where n.nspname = any($1::text[])
      union all
      select 'relation', c.oid::regclass::text,
             concat_ws(',', c.relkind, c.relowner::regrole::text, c.relrowsecurity, c.relforcerowsecurity,
                       pg_get_indexdef(c.oid)),
             c.relacl::text, obj_description(c.oid, 'pg_class')
      from pg_class c join s on s.oid = c.relnamespace
      union all
      select 'column', a.attrelid::regclass::text || '.' || a.attname,
             concat_ws(',', a.attnum, format_type(a.atttypid, a.atttypmod), a.attnotnull,
                       pg_get_expr(d.adbin, d.adrelid), a.attgenerated::text),
             a.attacl::text, col_description(a.attrelid, a.attnum)
      from pg_attribute a
      join pg_class c on c.oid = a.attrelid join s on s.oid = c.relnamespace
      left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
      where a.attnum > 0 and not a.attisdropped
      union all
      select 'function', p.oid::regprocedure::text,
             p.proowner::regrole::text || ',' || pg_get_functiondef(p.oid),
             p.proacl::text, obj_description(p.oid, 'pg_proc')
      from pg_proc p join s on s.oid = p.pronamespace
      union all
      select 'constraint', co.conrelid::regclass::text || '.' || co.conname, pg_get_constraintdef(co.oid),
             null, obj_description(co.oid, 'pg_constraint')
      from pg_constraint co join s on s.oid = co.connamespace
      union all
      select 'policy', po.polrelid::regclass::text || '.' || po.polname,
             concat_ws(',', po.polcmd, po.polpermissive, pg_get_expr(po.polqual, po.polrelid),
                       pg_get_expr(po.polwithcheck, po.polrelid)),
             po.polroles::regrole[]::text, obj_description(po.oid, 'pg_policy')
      from pg_policy po join pg_class c on c.oid = po.polrelid join s on s.oid = c.relnamespace
      union all
      select 'type', t.oid::regtype::text,
             concat_ws(',', t.typtype, t.typowner::regrole::text,
                       (select string_agg(e.enumlabel, ',' order by e.enumsortorder)
                        from pg_enum e where e.enumtypid = t.oid)),
             t.typacl::text, obj_description(t.oid, 'pg_type')
      from pg_type t join s on s.oid = t.typnamespace
      where t.typtype <> 'c' and t.typelem = 0
      union all
      select 'role', r.rolname,
             concat_ws(',', r.rolsuper, r.rolinherit, r.rolcreaterole, r.rolcreatedb, r.rolcanlogin,
                       r.rolreplication, r.rolbypassrls),
             (select string_agg(g.rolname, ',' order by g.rolname)
              from pg_auth_members m join pg_roles g on g.oid = m.roleid
              where m.member = r.oid and g.rolname = any($2::text[])),
             shobj_description(r.oid, 'pg_authid')
      from pg_roles r where r.rolname = any($2::text[])
    ) o
    order by 1
    `,
    [schemas, API_ROLES],
  );
  return rows.map((r) => r.line);
}

describe('kit migrations on plain Postgres', () => {
  let db: TestDatabase;
  let client: pg.Client;

  beforeAll(async () => {
    db = await createTestDatabase({ template: 'blank' });
    client = await connect(db.url);
    for (const file of kitFiles) await applyFile(client, file);
  });

  afterAll(async () => {
    await client?.end();
    await db?.drop();
  });

  /** Runs `sql` in a transaction with the given settings set locally, then rolls back. */
  async function withSettings<T extends pg.QueryResultRow>(
    settings: Record<string, string>,
    sql: string,
  ): Promise<T> {
    await client.query('begin');
    try {
      for (const [name, value] of Object.entries(settings)) {
        await client.query('select set_config($1, $2, true)', [name, value]);
      }
      const { rows } = await client.query<T>(sql);
      return rows[0] as T;
    } finally {
      await client.query('rollback');
    }
  }

  const claimsSql =
    'select auth.jwt() as jwt, auth.uid()::text as uid, auth.role() as role, auth.email() as email';
  type Claims = { jwt: unknown; uid: string | null; role: string | null; email: string | null };
  const alice = '7d9a3c1e-2b4f-4a6d-9e8f-0a1b2c3d4e5f';
  const bob = '0f1e2d3c-4b5a-4697-8877-665544332211';

  describe('auth.jwt(), auth.uid(), auth.role(), auth.email()', () => {
    it('return NULL on a connection where no claim setting was ever made', async () => {
      const fresh = await connect(db.url);
      try {
        const { rows } = await fresh.query<Claims>(claimsSql);
        expect(rows[0]).toEqual({ jwt: null, uid: null, role: null, email: null });
      } finally {
        await fresh.end();
      }
    });

    it('read request.jwt.claims', async () => {
      const claims = { sub: alice, role: 'authenticated', email: 'alice@acme.test', org_id: 'x' };
      const r = await withSettings<Claims>(
        { 'request.jwt.claims': JSON.stringify(claims) },
        claimsSql,
      );
      expect(r).toEqual({
        jwt: claims,
        uid: alice,
        role: 'authenticated',
        email: 'alice@acme.test',
      });
    });

    it('treat empty settings as absent (NULL, not an error)', async () => {
      const r = await withSettings<Claims>(
        {
          'request.jwt.claims': '',
          'request.jwt.claim': '',
          'request.jwt.claim.sub': '',
          'request.jwt.claim.role': '',
          'request.jwt.claim.email': '',
        },
        claimsSql,
      );
      expect(r).toEqual({ jwt: null, uid: null, role: null, email: null });
    });

    it('return NULL for claims the token lacks', async () => {
      const r = await withSettings<Claims>({ 'request.jwt.claims': '{"role":"anon"}' }, claimsSql);
      expect(r).toEqual({ jwt: { role: 'anon' }, uid: null, role: 'anon', email: null });
    });

    it('let the legacy request.jwt.claim (whole object) win over request.jwt.claims in jwt() only', async () => {
      const r = await withSettings<Claims>(
        {
          'request.jwt.claims': JSON.stringify({
            sub: alice,
            role: 'authenticated',
            email: 'a@x.test',
          }),
          'request.jwt.claim': JSON.stringify({ sub: bob, role: 'legacy', email: 'b@x.test' }),
        },
        claimsSql,
      );
      // Supabase's uid()/role()/email() read request.jwt.claim.<name>, never request.jwt.claim.
      expect(r).toEqual({
        jwt: { sub: bob, role: 'legacy', email: 'b@x.test' },
        uid: alice,
        role: 'authenticated',
        email: 'a@x.test',
      });
    });

    it('let non-empty legacy request.jwt.claim.<name> settings win over request.jwt.claims', async () => {
      const r = await withSettings<Claims>(
        {
          'request.jwt.claims': JSON.stringify({
            sub: alice,
            role: 'authenticated',
            email: 'a@x.test',
          }),
          'request.jwt.claim.sub': bob,
          'request.jwt.claim.role': 'service_role',
          'request.jwt.claim.email': 'b@x.test',
        },
        claimsSql,
      );
      expect(r).toEqual({
        jwt: { sub: alice, role: 'authenticated', email: 'a@x.test' },
        uid: bob,
        role: 'service_role',
        email: 'b@x.test',
      });
    });

    it('fall back to request.jwt.claims when the legacy settings are empty', async () => {
      const claims = { sub: alice, role: 'authenticated', email: 'a@x.test' };
      const r = await withSettings<Claims>(
        {
          'request.jwt.claims': JSON.stringify(claims),
          'request.jwt.claim': '',
          'request.jwt.claim.sub': '',
          'request.jwt.claim.role': '',
          'request.jwt.claim.email': '',
        },
        claimsSql,
      );
      expect(r).toEqual({ jwt: claims, uid: alice, role: 'authenticated', email: 'a@x.test' });
    });

    it('read a legacy request.jwt.claim.sub even without request.jwt.claims', async () => {
      const r = await withSettings<Claims>({ 'request.jwt.claim.sub': bob }, claimsSql);
      expect(r).toEqual({ jwt: null, uid: bob, role: null, email: null });
    });

    it('raise invalid_text_representation for a sub that is not a uuid, as Supabase does', async () => {
      await expect(
        withSettings({ 'request.jwt.claims': '{"sub":"not-a-uuid"}' }, 'select auth.uid()'),
      ).rejects.toMatchObject({ code: '22P02' });
    });

    it('are plain STABLE SQL functions with a pinned search_path, callable by the API roles', async () => {
      const { rows } = await client.query<{
        fn: string;
        result: string;
        volatile: string;
        secdef: boolean;
        config: string[] | null;
        anon: boolean;
        authenticated: boolean;
        service_role: boolean;
      }>(`
        select p.oid::regprocedure::text as fn, format_type(p.prorettype, null) as result,
               p.provolatile as volatile, p.prosecdef as secdef, p.proconfig as config,
               has_function_privilege('anon', p.oid, 'execute') as anon,
               has_function_privilege('authenticated', p.oid, 'execute') as authenticated,
               has_function_privilege('service_role', p.oid, 'execute') as service_role
        from pg_proc p where p.pronamespace = 'auth'::regnamespace order by 1`);
      expect(rows).toEqual(
        [
          ['auth.email()', 'text'],
          ['auth.jwt()', 'jsonb'],
          ['auth.role()', 'text'],
          ['auth.uid()', 'uuid'],
        ].map(([fn, result]) => ({
          fn,
          result,
          volatile: 's',
          secdef: false,
          config: ['search_path=""'],
          anon: true,
          authenticated: true,
          service_role: true,
        })),
      );
    });

    it('work for the authenticated role inside a request', async () => {
      await client.query('begin');
      try {
        await client.query('set local role authenticated');
        await client.query("select set_config('request.jwt.claims', $1, true)", [
          JSON.stringify({ sub: alice, role: 'authenticated' }),
        ]);
        const { rows } = await client.query<{ uid: string }>('select auth.uid()::text as uid');
        expect(rows[0]?.uid).toBe(alice);
      } finally {
        await client.query('rollback');
      }
    });
  });

  describe('auth.users and auth.sessions', () => {
    async function columns(table: string) {
      const { rows } = await client.query<{ name: string; type: string; required: boolean }>(
        `select a.attname as name, format_type(a.atttypid, a.atttypmod) as type,
                (a.attnotnull and a.atthasdef = false and a.attgenerated = '') as required
         from pg_attribute a
         where a.attrelid = $1::regclass and a.attnum > 0 and not a.attisdropped`,
        [table],
      );
      return new Map(rows.map((r) => [r.name, r]));
    }

    it('have the columns the kit uses, with Supabase Auth types', async () => {
      const users = await columns('auth.users');
      const expected: Record<string, string> = {
        id: 'uuid',
        email: 'character varying(255)',
        phone: 'text',
        encrypted_password: 'character varying(255)',
        banned_until: 'timestamp with time zone',
        deleted_at: 'timestamp with time zone',
        created_at: 'timestamp with time zone',
        updated_at: 'timestamp with time zone',
        raw_app_meta_data: 'jsonb',
        raw_user_meta_data: 'jsonb',
        is_anonymous: 'boolean',
        email_confirmed_at: 'timestamp with time zone',
        last_sign_in_at: 'timestamp with time zone',
      };
      for (const [name, type] of Object.entries(expected)) {
        expect(users.get(name)?.type, `auth.users.${name}`).toBe(type);
      }
      const sessions = await columns('auth.sessions');
      const expectedSessions: Record<string, string> = {
        id: 'uuid',
        user_id: 'uuid',
        created_at: 'timestamp with time zone',
        updated_at: 'timestamp with time zone',
        not_after: 'timestamp with time zone',
        aal: 'auth.aal_level',
        refreshed_at: 'timestamp without time zone',
        user_agent: 'text',
        ip: 'inet',
      };
      for (const [name, type] of Object.entries(expectedSessions)) {
        expect(sessions.get(name)?.type, `auth.sessions.${name}`).toBe(type);
      }
    });

    it('require only id (and a session its user_id, as on Supabase)', async () => {
      const required = async (t: string) =>
        [...(await columns(t)).values()]
          .filter((c) => c.required)
          .map((c) => c.name)
          .sort();
      expect(await required('auth.users')).toEqual(['id']);
      expect(await required('auth.sessions')).toEqual(['id', 'user_id']);

      await client.query('begin');
      try {
        await client.query("insert into auth.users (id, email) values ($1, 'alice@acme.test')", [
          alice,
        ]);
        await client.query('insert into auth.sessions (id, user_id) values ($1, $2)', [bob, alice]);
        const { rows } = await client.query<{ is_anonymous: boolean; is_sso_user: boolean }>(
          'select is_anonymous, is_sso_user from auth.users where id = $1',
          [alice],
        );
        expect(rows[0]).toEqual({ is_anonymous: false, is_sso_user: false });
        // Deleting the user ends their sessions, as on Supabase.
        await client.query('delete from auth.users where id = $1', [alice]);
        const left = await client.query('select 1 from auth.sessions where id = $1', [bob]);
        expect(left.rowCount).toBe(0);
      } finally {
        await client.query('rollback');
      }
    });

    it('are closed to the API roles', async () => {
      for (const role of ['anon', 'authenticated']) {
        for (const table of ['auth.users', 'auth.sessions']) {
          const { rows } = await client.query<{ ok: boolean }>(
            `select has_table_privilege($1, $2, 'select,insert,update,delete') as ok`,
            [role, table],
          );
          expect(rows[0]?.ok, `${role} on ${table}`).toBe(false);
        }
      }
    });
  });

  describe('roles', () => {
    type Role = {
      rolname: string;
      rolsuper: boolean;
      rolinherit: boolean;
      rolcreaterole: boolean;
      rolcanlogin: boolean;
      rolbypassrls: boolean;
      by_kit: boolean;
      member_of: string[];
    };
    let roles: Map<string, Role>;

    beforeAll(async () => {
      const { rows } = await client.query<Role>(
        `select r.rolname, r.rolsuper, r.rolinherit, r.rolcreaterole, r.rolcanlogin, r.rolbypassrls,
                coalesce(shobj_description(r.oid, 'pg_authid') like '%supabase-rls-kit%', false) as by_kit,
                array(select g.rolname::text from pg_auth_members m join pg_roles g on g.oid = m.roleid
                      where m.member = r.oid order by 1) as member_of
         from pg_roles r where r.rolname = any($1::text[])`,
        [API_ROLES],
      );
      roles = new Map(rows.map((r) => [r.rolname, r]));
    });

    it('all exist, none superuser', () => {
      expect([...roles.keys()].sort()).toEqual([...API_ROLES].sort());
      for (const r of roles.values()) expect(r.rolsuper, r.rolname).toBe(false);
    });

    it('service_role bypasses RLS; anon and authenticated do not and cannot log in', () => {
      expect(roles.get('service_role')).toMatchObject({ rolbypassrls: true, rolcanlogin: false });
      for (const name of ['anon', 'authenticated']) {
        expect(roles.get(name), name).toMatchObject({
          rolbypassrls: false,
          rolcanlogin: false,
          rolcreaterole: false,
        });
      }
    });

    it('authenticator logs in without inheriting, and may switch to the three API roles', () => {
      const a = roles.get('authenticator');
      expect(a).toMatchObject({ rolcanlogin: true, rolinherit: false, rolbypassrls: false });
      expect(a?.member_of).toEqual(
        expect.arrayContaining(['anon', 'authenticated', 'service_role']),
      );
    });

    it('supabase_auth_admin logs in, creates roles, does not inherit', () => {
      expect(roles.get('supabase_auth_admin')).toMatchObject({
        rolcanlogin: true,
        rolcreaterole: true,
        rolinherit: false,
        rolbypassrls: false,
      });
    });

    it('roles the kit created are NOINHERIT like all of Supabase API roles', () => {
      // Roles that existed before the kit ran are left exactly as they were.
      for (const r of roles.values()) if (r.by_kit) expect(r.rolinherit, r.rolname).toBe(false);
    });
  });

  describe('schema rls_kit', () => {
    it('is private: PUBLIC has no privilege on it, the API roles cannot create in it or read its tables', async () => {
      const pub = await client.query<{ privileges: string[] }>(
        `select array(select a.privilege_type from pg_namespace n, aclexplode(n.nspacl) a
                      where n.nspname = 'rls_kit' and a.grantee = 0) as privileges`,
      );
      expect(pub.rows[0]?.privileges).toEqual([]);
      for (const role of ['anon', 'authenticated']) {
        const { rows } = await client.query<{ ok: boolean }>(
          "select has_schema_privilege($1, 'rls_kit', 'create') as ok",
          [role],
        );
        expect(rows[0]?.ok, role).toBe(false);
      }

      const tables = await client.query<{ tbl: string; role: string }>(
        `select c.oid::regclass::text as tbl, r as role
         from pg_class c cross join unnest(array['anon', 'authenticated']) r
         where c.relnamespace = 'rls_kit'::regnamespace and c.relkind in ('r', 'v', 'm', 'p', 'S')
           and (has_table_privilege(r, c.oid, 'select') or has_table_privilege(r, c.oid, 'insert')
             or has_table_privilege(r, c.oid, 'update') or has_table_privilege(r, c.oid, 'delete'))`,
      );
      expect(tables.rows).toEqual([]);
    });

    it('lets API roles execute no kit function but the ones meant for policies', async () => {
      // Later kit migrations add functions that policies call (for example
      // rls_kit.is_token_active()); each one must be listed here on purpose.
      // is_token_active(): the revocation guard policies call;
      // pre_request(): PostgREST's db_pre_request, run as the request's role.
      const meantForApiRoles = new Set<string>([
        'rls_kit.is_token_active()',
        'rls_kit.pre_request()',
        // authorize(): the RBAC check policies call as the request's role.
        'rls_kit.authorize(text)',
      ]);
      const { rows } = await client.query<{ fn: string; role: string }>(
        `select p.oid::regprocedure::text as fn, r as role
         from pg_proc p cross join unnest(array['anon', 'authenticated']) r
         where p.pronamespace = 'rls_kit'::regnamespace
           and has_function_privilege(r, p.oid, 'execute')
           and has_schema_privilege(r, 'rls_kit', 'usage')`,
      );
      expect(rows.filter((r) => !meantForApiRoles.has(r.fn))).toEqual([]);
    });

    it('refuses a table the owner adds without grants to authenticated', async () => {
      await client.query('begin');
      try {
        await client.query('create table rls_kit.probe (secret text)');
        await client.query("insert into rls_kit.probe values ('x')");
        await client.query('set local role authenticated');
        await expect(client.query('select * from rls_kit.probe')).rejects.toMatchObject({
          code: '42501',
        });
      } finally {
        await client.query('rollback');
      }
    });

    it('is documented', async () => {
      const { rows } = await client.query<{ d: string | null }>(
        "select obj_description('rls_kit'::regnamespace, 'pg_namespace') as d",
      );
      expect(rows[0]?.d).toMatch(/private/i);
    });
  });
});

describe('kit migrations applied twice, the second time under other version numbers', () => {
  let db: TestDatabase;
  let client: pg.Client;

  beforeAll(async () => {
    db = await createTestDatabase({ template: 'blank' });
    client = await connect(db.url);
  });

  afterAll(async () => {
    await client?.end();
    await db?.drop();
  });

  it('change nothing the second time', async () => {
    await client.query('create schema supabase_migrations');
    await client.query(
      'create table supabase_migrations.schema_migrations (version text primary key, name text)',
    );
    const record = async (version: string, file: string) => {
      await client.query('insert into supabase_migrations.schema_migrations values ($1, $2)', [
        version,
        path.basename(file, '.sql').replace(/^\d{14}_/, ''),
      ]);
    };
    for (const file of kitFiles) {
      await applyFile(client, file);
      await record(path.basename(file).slice(0, 14), file);
    }
    const schemas = ['auth', 'rls_kit', 'public'];
    const first = await catalogSnapshot(client, schemas);
    // The snapshot really covers the kit's objects (so a difference would show).
    expect(first).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^function \| auth\.jwt\(\) \| /),
        expect.stringMatching(/^relation \| auth\.users \| /),
        expect.stringMatching(/^column \| auth\.sessions\.user_id \| /),
        expect.stringMatching(/^schema \| rls_kit \| /),
        expect.stringMatching(/^role \| service_role \| /),
      ]),
    );

    // Same files, as `rls-kit init` would copy them into a project: new timestamps.
    let n = 0;
    for (const file of kitFiles) {
      await applyFile(client, file);
      await record(`2099010100${String(n++).padStart(4, '0')}`, file);
    }
    const second = await catalogSnapshot(client, schemas);
    expect(second).toEqual(first);
  });
});

describe('compat migration on a database that already has Supabase Auth', () => {
  // Emulates a Supabase project on plain Postgres: the auth schema and its
  // objects belong to a superuser (Supabase's supabase_admin), and the
  // migrations run as a non-superuser with CREATEROLE, CREATEDB and BYPASSRLS
  // (Supabase's `postgres`). The pre-existing functions are written
  // differently from the kit's (no pinned search_path, other comments) so any
  // replacement would show in their definitions.
  const suffix = randomBytes(4).toString('hex');
  const supaAdmin = `rls_kit_t_supa_admin_${suffix}`;
  const appOwner = `rls_kit_t_app_owner_${suffix}`;
  let db: TestDatabase;
  let client: pg.Client;
  let admin: pg.Client;

  beforeAll(async () => {
    db = await createTestDatabase({ template: 'blank' });
    client = await connect(db.url);
    const q = (sql: string) => client.query(sql);
    // Supabase's API roles, as a Supabase project has them (cluster-wide: keep existing ones).
    await q(`
      do $$
      declare r record;
      begin
        for r in select * from (values
          ('anon', 'nologin noinherit'), ('authenticated', 'nologin noinherit'),
          ('service_role', 'nologin noinherit bypassrls'), ('authenticator', 'login noinherit'),
          ('supabase_auth_admin', 'login noinherit createrole noreplication')) v(name, attrs)
        loop
          if not exists (select from pg_roles where rolname = r.name) then
            begin
              execute format('create role %I %s', r.name, r.attrs);
            exception when duplicate_object or unique_violation then null;
            end;
          end if;
        end loop;
        for r in select unnest(array['anon', 'authenticated', 'service_role']) as name loop
          if not pg_has_role('authenticator', r.name, 'member') then
            begin
              execute format('grant %I to authenticator', r.name);
            exception when duplicate_object or unique_violation then null;
            end;
          end if;
        end loop;
      end $$`);
    await q(`create role ${supaAdmin} superuser nologin`);
    await q(`create role ${appOwner} nosuperuser nologin createrole createdb bypassrls`);
    await q(`grant create on database ${pg.escapeIdentifier(db.name)} to ${appOwner}`);
    await q(`grant create on schema public to ${appOwner}`);

    await q(`set role ${supaAdmin}`);
    await q(`
      create schema auth;
      comment on schema auth is 'Supabase Auth (fixture)';
      create type auth.aal_level as enum ('aal1', 'aal2', 'aal3');
      create table auth.users (
        instance_id uuid, id uuid not null primary key, aud varchar(255), role varchar(255),
        email varchar(255), encrypted_password varchar(255), email_confirmed_at timestamptz,
        last_sign_in_at timestamptz, raw_app_meta_data jsonb, raw_user_meta_data jsonb,
        created_at timestamptz, updated_at timestamptz, phone text default null,
        banned_until timestamptz, is_sso_user boolean not null default false,
        deleted_at timestamptz, is_anonymous boolean not null default false,
        supabase_only_column text
      );
      comment on table auth.users is 'Auth: users (fixture)';
      alter table auth.users enable row level security;
      create table auth.sessions (
        id uuid not null primary key,
        user_id uuid not null references auth.users (id) on delete cascade,
        created_at timestamptz, updated_at timestamptz, factor_id uuid, aal auth.aal_level,
        not_after timestamptz, refreshed_at timestamp, user_agent text, ip inet, tag text
      );
      create index sessions_user_id_idx on auth.sessions (user_id);
      create function auth.jwt() returns jsonb language sql stable as $f$
        select coalesce(nullif(current_setting('request.jwt.claim', true), ''),
                        nullif(current_setting('request.jwt.claims', true), ''))::jsonb $f$;
      create function auth.uid() returns uuid language sql stable as $f$
        select coalesce(nullif(current_setting('request.jwt.claim.sub', true), ''),
                        (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub'))::uuid $f$;
      create function auth.role() returns text language sql stable as $f$
        select coalesce(nullif(current_setting('request.jwt.claim.role', true), ''),
                        (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role'))::text $f$;
      create function auth.email() returns text language sql stable as $f$
        select coalesce(nullif(current_setting('request.jwt.claim.email', true), ''),
                        (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'email'))::text $f$;
      comment on function auth.uid() is 'Deprecated (fixture)';
      grant usage on schema auth to anon, authenticated, service_role, ${appOwner};
      grant select on auth.users, auth.sessions to ${appOwner} with grant option;
    `);
    await q('reset role');
    admin = await connect(db.url);
  });

  afterAll(async () => {
    await client?.end();
    await admin?.end();
    await db?.drop();
    const c = await connect(serverUrl());
    try {
      await c.query(`drop role if exists ${appOwner}`);
      await c.query(`drop role if exists ${supaAdmin}`);
    } finally {
      await c.end();
    }
  });

  it('succeeds as a non-superuser and leaves every auth object and API role as it was', async () => {
    const before = await catalogSnapshot(admin, ['auth']);
    expect(before).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^function \| auth\.uid\(\) \| rls_kit_t_supa_admin_/),
        expect.stringMatching(/^column \| auth\.users\.supabase_only_column \| /),
      ]),
    );
    // The fixture's functions differ from the kit's, so a replacement would show.
    expect(before.find((l) => l.startsWith('function | auth.jwt()'))).not.toMatch(/search_path/);

    await client.query(`set role ${appOwner}`);
    const { rows } = await client.query<{ su: boolean }>(
      'select rolsuper as su from pg_roles where rolname = current_user',
    );
    expect(rows[0]?.su).toBe(false);
    await applyFile(client, compatFile);
    await applyFile(client, coreFile);
    await applyFile(client, compatFile);
    await client.query('reset role');

    expect(await catalogSnapshot(admin, ['auth'])).toEqual(before);
    const owner = await admin.query<{ owner: string }>(
      "select nspowner::regrole::text as owner from pg_namespace where nspname = 'rls_kit'",
    );
    expect(owner.rows[0]?.owner).toBe(appOwner);
  });
});
