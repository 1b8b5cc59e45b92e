import pg from 'pg';
import { resolveExposedSchemas } from './exposed-schemas.js';
import {
  isStatementError,
  type ReviewSession,
  type Row,
  type StatementError,
} from './review-session.js';
import type { ApiRole, CommandGrants, Finding, TableCommand } from './types.js';
import { compare, describe } from './util.js';

/** A column as the probes need it. */
export interface CatalogColumn {
  readonly name: string;
  /** `format_type` text, for reports only (never spliced into SQL). */
  readonly type: string;
  readonly notNull: boolean;
  readonly hasDefault: boolean;
  /** Generated (`GENERATED ALWAYS AS`) or `GENERATED ALWAYS AS IDENTITY`: cannot be written. */
  readonly generated: boolean;
  /** The first key column of some index (policy filters on it can use an index). */
  readonly leadsIndex: boolean;
  /** Part of a unique index or primary key. */
  readonly unique: boolean;
}

/** A policy as read from `pg_policy`. */
export interface CatalogPolicy {
  readonly name: string;
  readonly permissive: boolean;
  readonly command: 'all' | TableCommand;
  /** Role names; `public` for `TO public`. */
  readonly roles: readonly string[];
  readonly using: string | null;
  readonly withCheck: string | null;
  /** Oids of the functions the policy calls (from `pg_depend`). */
  readonly functionOids: readonly number[];
}

/** A table of an exposed schema. */
export interface CatalogTable {
  readonly oid: number;
  readonly schema: string;
  readonly name: string;
  /** `schema.table` quoted like Postgres quotes identifiers (for people). */
  readonly display: string;
  /** `"schema"."table"` via pg.escapeIdentifier (for SQL the review builds). */
  readonly sql: string;
  readonly owner: string;
  readonly rlsEnabled: boolean;
  readonly rlsForced: boolean;
  readonly rowEstimate: number;
  readonly grants: Partial<Record<ApiRole, CommandGrants>>;
  readonly columns: readonly CatalogColumn[];
  /** Undefined when `pg_policy` could not be read for this table. */
  policies: CatalogPolicy[] | undefined;
  /** Another session holds a lock that blocks `writes` or `all` probes. */
  lockedFor?: 'writes' | 'all';
}

/** A function in an exposed schema or called by a policy. */
export interface CatalogFunction {
  readonly oid: number;
  readonly schema: string;
  readonly name: string;
  /** `schema.name(argument types)`. */
  readonly signature: string;
  readonly language: string;
  readonly securityDefiner: boolean;
  /** `search_path` from `proconfig`, or null when not fixed. */
  readonly searchPath: string | null;
  readonly executableBy: readonly string[];
  readonly exposed: boolean;
  /** Belongs to an extension (the extension's author owns its settings). */
  readonly extension: boolean;
  /** `prosrc` of SQL functions. */
  readonly source: string | null;
  /** `pg_get_functiondef` of SQL functions with a SQL-standard body. */
  readonly definition: string | null;
  /** `pg_proc.provolatile`: the planner may fold an `immutable` call into a cached plan. */
  readonly volatility: 'immutable' | 'stable' | 'volatile';
  /**
   * Its body (any language but `internal`/`c`) mentions `current_setting`,
   * `request.jwt` or `auth.jwt/uid/role/email`: its result depends on the
   * request. Computed in the catalog query, so non-SQL bodies stay there.
   */
  readonly readsRequest: boolean;
}

/** Everything the lints and the matrix work from. */
export interface Catalog {
  readonly schemas: readonly string[];
  readonly schemasFrom: 'option' | 'pgrst.db_schemas' | 'default';
  readonly tables: CatalogTable[];
  /** Functions by oid. */
  readonly functions: Map<number, CatalogFunction>;
  /** API roles that exist. */
  readonly roles: readonly ApiRole[];
  /** The kit's revocation functions exist (`rls_kit.revoke_token`, `rls_kit.is_token_active`). */
  readonly revocation: { readonly revokeToken: boolean; readonly isTokenActive: boolean };
  /** False when a catalog could not be read (lints that need it are skipped). */
  readonly complete: { readonly policies: boolean; readonly functions: boolean };
  readonly serverVersion: string;
  readonly database: string;
  readonly reviewer: string;
  /** Problems met while reading, as findings against the catalog or table. */
  readonly problems: Finding[];
}

/** Options of {@link readCatalog}. */
export interface ReadCatalogOptions {
  /** Schemas to review; default: Supabase's `pgrst.db_schemas`, else `public`. */
  readonly schemas?: readonly string[] | undefined;
}

const API_ROLES: readonly ApiRole[] = ['anon', 'authenticated', 'service_role'];

/**
 * Reads what the review needs from the system catalogs in a handful of
 * set-based queries (tables with grants, columns and indexes; policies with
 * their expressions and the functions they call; functions), so a schema of
 * hundreds of tables costs the same few round trips. Works for any login that
 * can read the standard catalogs (no superuser needed). Runs inside the
 * caller's transaction; each part in a savepoint, so a catalog the login may
 * not read (or a table another session has locked) is reported as a finding
 * and the rest is still read.
 *
 * @example
 * ```ts
 * await session.query('begin isolation level repeatable read read only');
 * const catalog = await readCatalog(session, { schemas: ['public'] });
 * await session.query('rollback');
 * ```
 */
export async function readCatalog(
  session: ReviewSession,
  options: ReadCatalogOptions = {},
): Promise<Catalog> {
  const problems: Finding[] = [];
  // Only pg_catalog lookups here (to_regprocedure would need USAGE on rls_kit).
  const meta = (
    await session.query(
      `select current_database() as database, current_user as reviewer,
              current_setting('server_version') as version,
              exists (select from pg_proc p join pg_namespace n on n.oid = p.pronamespace
                       where n.nspname = 'rls_kit' and p.proname = 'revoke_token'
                         and array(select format_type(t, null) from unnest(p.proargtypes::oid[]) as t)
                             = array['text', 'timestamp with time zone', 'text', 'uuid']) as revoke_token,
              exists (select from pg_proc p join pg_namespace n on n.oid = p.pronamespace
                       where n.nspname = 'rls_kit' and p.proname = 'is_token_active'
                         and p.pronargs = 0) as is_token_active,
              array(select rolname::text from pg_roles where rolname = any($1::text[])) as roles`,
      [API_ROLES],
    )
  )[0]!;
  const exposed = await resolveExposedSchemas(session, options.schemas);
  problems.push(...exposed.problems);

  const tableRows = await session.guarded(() =>
    session.query(TABLES_SQL, [exposed.schemas, API_ROLES]),
  );
  const tables: CatalogTable[] = [];
  if (isStatementError(tableRows)) {
    problems.push(catalogProblem('pg_catalog.pg_class', tableRows));
  } else {
    for (const row of tableRows) tables.push(toTable(row));
  }
  tables.sort((a, b) => compare(a.schema, b.schema) || compare(a.name, b.name));

  await markLocks(session, tables);
  const policiesComplete = await readPolicies(session, tables, problems);

  const policyFunctionOids = new Set<number>();
  for (const table of tables) {
    for (const policy of table.policies ?? []) {
      for (const oid of policy.functionOids) policyFunctionOids.add(oid);
    }
  }
  const functions = new Map<number, CatalogFunction>();
  const functionRows = await session.guarded(() =>
    session.query(FUNCTIONS_SQL, [exposed.schemas, [...policyFunctionOids], API_ROLES]),
  );
  if (isStatementError(functionRows)) {
    problems.push(catalogProblem('pg_catalog.pg_proc', functionRows));
  } else {
    for (const row of functionRows) {
      const fn = toFunction(row);
      functions.set(fn.oid, fn);
    }
  }

  return {
    schemas: exposed.schemas,
    schemasFrom: exposed.from,
    tables,
    functions,
    roles: API_ROLES.filter((r) => (meta.roles as string[]).includes(r)),
    revocation: {
      revokeToken: meta.revoke_token === true,
      isTokenActive: meta.is_token_active === true,
    },
    complete: { policies: policiesComplete, functions: !isStatementError(functionRows) },
    serverVersion: String(meta.version),
    database: String(meta.database),
    reviewer: String(meta.reviewer),
    problems,
  };
}

/**
 * Policies in one query; `pg_get_expr` locks each table (ACCESS SHARE), so
 * when another session holds an ACCESS EXCLUSIVE lock the set-based query
 * waits out `lock_timeout`. Tables known to be locked are therefore read one
 * by one after the rest, and a failure of the big query falls back to one
 * query per table, so only the table at fault goes unread.
 */
async function readPolicies(
  session: ReviewSession,
  tables: CatalogTable[],
  problems: Finding[],
): Promise<boolean> {
  const free = tables.filter((t) => t.lockedFor !== 'all');
  const locked = tables.filter((t) => t.lockedFor === 'all');
  let complete = true;
  const assign = (rows: Row[], subset: CatalogTable[]) => {
    const byOid = new Map(subset.map((t) => [t.oid, t] as const));
    for (const t of subset) t.policies = [];
    for (const row of rows) byOid.get(Number(row.table_oid))?.policies?.push(toPolicy(row));
    for (const t of subset) t.policies?.sort((a, b) => compare(a.name, b.name));
  };
  const all = await session.guarded(() => session.query(POLICIES_SQL, [free.map((t) => t.oid)]));
  if (!isStatementError(all)) {
    assign(all, free);
  } else if (all.code === '42501') {
    // No permission on pg_policy: the same for every table, so say it once.
    problems.push(catalogProblem('pg_catalog.pg_policy', all));
    return false;
  } else {
    locked.unshift(...free);
  }
  for (const table of locked) {
    const rows = await session.guarded(() => session.query(POLICIES_SQL, [[table.oid]]));
    if (isStatementError(rows)) {
      complete = false;
      problems.push({
        level: 'warn',
        lint: 'review-table-unreadable',
        objectType: 'table',
        object: table.display,
        why: `the policies of ${table.display} could not be read (${describe(rows)}); the table is reported without them`,
        fix: lockFix(rows),
      });
    } else {
      assign(rows, [table]);
    }
  }
  return complete;
}

/** Flags tables on which another session holds a lock the probes would wait for. */
async function markLocks(session: ReviewSession, tables: CatalogTable[]): Promise<void> {
  if (tables.length === 0) return;
  const rows = await session.guarded(() =>
    session.query(
      `select l.relation::int8 as oid, l.mode
         from pg_locks l
        where l.locktype = 'relation' and l.granted and l.pid <> pg_backend_pid()
          and l.database = (select oid from pg_database where datname = current_database())
          and l.relation = any($1::oid[])`,
      [tables.map((t) => t.oid)],
    ),
  );
  if (isStatementError(rows)) return; // the probes' lock_timeout still applies
  const byOid = new Map(tables.map((t) => [t.oid, t] as const));
  for (const row of rows) {
    const table = byOid.get(Number(row.oid));
    if (!table) continue;
    const mode = String(row.mode);
    if (mode === 'AccessExclusiveLock') table.lockedFor = 'all';
    else if (
      table.lockedFor === undefined &&
      ['ShareLock', 'ShareRowExclusiveLock', 'ExclusiveLock'].includes(mode)
    ) {
      table.lockedFor = 'writes';
    }
  }
}

const TABLES_SQL = `
select c.oid::int8 as oid, n.nspname as schema, c.relname as name,
       format('%I.%I', n.nspname, c.relname) as display,
       pg_get_userbyid(c.relowner) as owner,
       c.relrowsecurity as rls_enabled, c.relforcerowsecurity as rls_forced,
       c.reltuples::float8 as row_estimate,
       coalesce((
         select jsonb_object_agg(r.rolname, jsonb_build_object(
                  'select', has_any_column_privilege(r.oid, c.oid, 'SELECT'),
                  'insert', has_any_column_privilege(r.oid, c.oid, 'INSERT'),
                  'update', has_any_column_privilege(r.oid, c.oid, 'UPDATE'),
                  'delete', has_table_privilege(r.oid, c.oid, 'DELETE')))
           from pg_roles r where r.rolname = any($2::text[])), '{}'::jsonb) as grants,
       coalesce((
         select jsonb_agg(jsonb_build_object(
                  'name', a.attname,
                  'type', format_type(a.atttypid, a.atttypmod),
                  'notNull', a.attnotnull,
                  'hasDefault', a.atthasdef,
                  'generated', a.attgenerated <> '' or a.attidentity = 'a',
                  'leadsIndex', exists (select from pg_index i
                                         where i.indrelid = c.oid and i.indkey[0] = a.attnum),
                  'unique', exists (select from pg_index i
                                     where i.indrelid = c.oid and i.indisunique
                                       and a.attnum = any (i.indkey::int2[])))
                order by a.attnum)
           from pg_attribute a
          where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped), '[]'::jsonb) as columns
  from pg_class c
  join pg_namespace n on n.oid = c.relnamespace
 where n.nspname = any($1::text[]) and c.relkind in ('r', 'p') and not c.relispartition`;

const POLICIES_SQL = `
select p.polrelid::int8 as table_oid, p.polname as name, p.polpermissive as permissive,
       p.polcmd as command,
       array(select case when r = 0 then 'public' else pg_get_userbyid(r)::text end
               from unnest(p.polroles) as r) as roles,
       pg_get_expr(p.polqual, p.polrelid) as using,
       pg_get_expr(p.polwithcheck, p.polrelid) as with_check,
       array(select d.refobjid::int8 from pg_depend d
              where d.classid = 'pg_policy'::regclass and d.objid = p.oid
                and d.refclassid = 'pg_proc'::regclass) as functions
  from pg_policy p
 where p.polrelid = any($1::oid[])`;

const FUNCTIONS_SQL = `
select p.oid::int8 as oid, n.nspname as schema, p.proname as name,
       format('%I.%I(%s)', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid)) as signature,
       l.lanname as language, p.prosecdef as security_definer,
       (select substr(s, length('search_path=') + 1) from unnest(p.proconfig) as s
         where s like 'search_path=%' limit 1) as search_path,
       n.nspname = any($1::text[]) as exposed,
       exists (select from pg_depend d where d.classid = 'pg_proc'::regclass
                 and d.objid = p.oid and d.deptype = 'e') as extension,
       array(select r.rolname::text from pg_roles r
              where r.rolname = any($3::text[]) and has_function_privilege(r.oid, p.oid, 'EXECUTE')
              order by 1) as executable_by,
       (p.proacl is null or exists (select from aclexplode(p.proacl) as a
                                     where a.grantee = 0 and a.privilege_type = 'EXECUTE')) as public_execute,
       case when l.lanname = 'sql' then p.prosrc end as source,
       case when l.lanname = 'sql' and p.prosrc = '' then pg_get_functiondef(p.oid) end as definition,
       p.provolatile as volatility,
       (l.lanname not in ('internal', 'c')
        and coalesce(nullif(p.prosrc, ''),
                     case when p.prokind in ('f', 'p') then pg_get_functiondef(p.oid) end, '')
            ~* '\\mcurrent_setting\\M|\\mrequest\\.jwt|\\mauth\\.(jwt|uid|role|email)\\M') as reads_request
  from pg_proc p
  join pg_namespace n on n.oid = p.pronamespace
  join pg_language l on l.oid = p.prolang
 where (n.nspname = any($1::text[]) and p.prokind in ('f', 'p'))
    or p.oid = any($2::oid[])`;

function toTable(row: Row): CatalogTable {
  const columns = (row.columns as Row[]).map(
    (c): CatalogColumn => ({
      name: String(c.name),
      type: String(c.type),
      notNull: c.notNull === true,
      hasDefault: c.hasDefault === true,
      generated: c.generated === true,
      leadsIndex: c.leadsIndex === true,
      unique: c.unique === true,
    }),
  );
  const grants: Partial<Record<ApiRole, CommandGrants>> = {};
  const granted = row.grants as Record<string, Row>;
  for (const role of API_ROLES) {
    const g = granted[role];
    if (!g) continue;
    grants[role] = {
      select: g.select === true,
      insert: g.insert === true,
      update: g.update === true,
      delete: g.delete === true,
    };
  }
  const schema = String(row.schema);
  const name = String(row.name);
  return {
    oid: Number(row.oid),
    schema,
    name,
    display: String(row.display),
    sql: `${pg.escapeIdentifier(schema)}.${pg.escapeIdentifier(name)}`,
    owner: String(row.owner),
    rlsEnabled: row.rls_enabled === true,
    rlsForced: row.rls_forced === true,
    rowEstimate: Number(row.row_estimate),
    grants,
    columns,
    policies: undefined,
  };
}

const COMMANDS: Readonly<Record<string, CatalogPolicy['command']>> = {
  '*': 'all',
  r: 'select',
  a: 'insert',
  w: 'update',
  d: 'delete',
};

function toPolicy(row: Row): CatalogPolicy {
  return {
    name: String(row.name),
    permissive: row.permissive === true,
    command: COMMANDS[String(row.command)] ?? 'all',
    roles: (row.roles as string[]).slice().sort(compare),
    using: typeof row.using === 'string' ? row.using : null,
    withCheck: typeof row.with_check === 'string' ? row.with_check : null,
    functionOids: (row.functions as (string | number)[]).map(Number),
  };
}

const VOLATILITY: Readonly<Record<string, CatalogFunction['volatility']>> = {
  i: 'immutable',
  s: 'stable',
  v: 'volatile',
};

function toFunction(row: Row): CatalogFunction {
  const executableBy = [...(row.executable_by as string[])];
  if (row.public_execute === true) executableBy.push('public');
  return {
    oid: Number(row.oid),
    schema: String(row.schema),
    name: String(row.name),
    signature: String(row.signature),
    language: String(row.language),
    securityDefiner: row.security_definer === true,
    searchPath: typeof row.search_path === 'string' ? row.search_path : null,
    executableBy: executableBy.sort(compare),
    exposed: row.exposed === true,
    extension: row.extension === true,
    source: typeof row.source === 'string' ? row.source : null,
    definition: typeof row.definition === 'string' ? row.definition : null,
    volatility: VOLATILITY[String(row.volatility)] ?? 'volatile',
    readsRequest: row.reads_request === true,
  };
}

function catalogProblem(catalog: string, error: StatementError): Finding {
  return {
    level: 'warn',
    lint: 'review-catalog-unreadable',
    objectType: 'catalog',
    object: catalog,
    why: `the review could not read ${catalog} (${describe(error)}), so everything that depends on it is missing from this report`,
    fix:
      error.code === '42501'
        ? `grant the reviewing login read access (select on ${catalog}), or run the review as a role that has it`
        : 'rerun the review; if it persists, report it with the message above',
  };
}

function lockFix(error: StatementError): string {
  return error.code === '55P03' || error.code === '57014'
    ? 'another session holds a lock on the table: rerun the review when it is released (see pg_locks), or raise --lock-timeout'
    : 'rerun the review; if it persists, report it with the message above';
}
