import pg from 'pg';
import { PERSONA_ROLES, type Persona } from './persona.js';
import type { Catalog, CatalogPolicy, CatalogTable } from './read-catalog.js';
import {
  isStatementError,
  type ReviewSession,
  type Row,
  type StatementError,
} from './review-session.js';
import type { ApiRole, Finding, MatrixCell, MatrixRow, TableCommand } from './types.js';
import { describe } from './util.js';

/** Options of {@link probeMatrix}. */
export interface ProbeMatrixOptions {
  /** Column naming a row's tenant (default `org_id`). */
  readonly tenantColumn: string;
  /** Claim naming the persona's tenant (default `org_id`). */
  readonly tenantClaim: string;
  /** Columns the INSERT probe fills with the persona's `sub`, first match wins. */
  readonly ownerColumns?: readonly string[];
  /** SELECT counts visible rows up to this many (default 10,000). */
  readonly rowCap?: number;
  /** The `lock_timeout` in force, for messages. */
  readonly lockTimeoutMs: number;
}

/**
 * What {@link probeMatrix} found.
 *
 * @example
 * ```ts
 * const { rows, problems } = await probeMatrix(session, catalog, personas, options);
 * ```
 */
export interface ProbeMatrixResult {
  readonly rows: MatrixRow[];
  /** Probes that failed for reasons worth a look: policy errors, timeouts, setup failures. */
  readonly problems: Finding[];
}

/**
 * Default columns that name a row's owner (the persona's `sub` goes there).
 *
 * @example
 * ```ts
 * await reviewDatabase({ url, ownerColumns: [...DEFAULT_OWNER_COLUMNS, 'profile_id'] });
 * ```
 */
export const DEFAULT_OWNER_COLUMNS: readonly string[] = [
  'owner_id',
  'user_id',
  'created_by',
  'author_id',
];

const PROBE = 'rls_kit_review_probe';
const ROLLBACK = `rollback to savepoint ${PROBE}`;
/** A tenant value no row has, for the cross-tenant INSERT when the table offers no other. */
const OTHER_TENANT_UUID = '00000000-0000-4000-8000-00000000b002';

type Result = Row[] | number | StatementError;

/** Per table: the rows the probes aim at, picked by the reviewing login. */
interface Targets {
  /** Per persona key (see {@link personaKey}). */
  readonly byKey: Map<string, KeyTargets>;
  /** Why targets are missing, when the read failed. */
  readonly failure?: StatementError;
}

interface KeyTargets {
  /** A row of the persona's tenant (its own, by the owner column, when there is one). */
  readonly own?: { readonly tableoid: string; readonly ctid: string; readonly row: Row };
  /** A row of another tenant. */
  readonly other?: { readonly tableoid: string; readonly ctid: string; readonly tenant: unknown };
}

/** What each probe returned, per table × persona, before it becomes cells. */
interface Results {
  select?: Result;
  insertOwn?: Result;
  insertOther?: Result;
  updateOwn?: Result;
  updateOther?: Result;
  updateMove?: Result;
  deleteOwn?: Result;
  deleteOther?: Result;
}

type ProbeName = keyof Results;

interface Plan {
  readonly table: CatalogTable;
  readonly probe: ProbeName;
  readonly write: boolean;
  readonly sql: string;
  readonly parameters: readonly unknown[];
}

/**
 * Probes what each persona can do to each table, for real: in the caller's
 * transaction (which must be rolled back afterwards), each persona runs as
 * its role with its claims in `request.jwt.claims`, and every probe is undone
 * with `ROLLBACK TO SAVEPOINT` right after it ran.
 *
 * Per table and persona:
 * - SELECT counts the visible rows (up to `rowCap`) and those of another
 *   tenant (tenant column ≠ the persona's tenant claim);
 * - INSERT writes a probe row: an existing row of the persona's tenant (read
 *   by the reviewing login) with key columns that have defaults left to their
 *   defaults, the tenant column set to the persona's tenant and the owner
 *   column to its `sub`; then the same row with another tenant's value;
 * - UPDATE (`SET col = col`) and DELETE aim at one row of the persona's
 *   tenant (preferring its own) and one of another tenant, by ctid; UPDATE
 *   also tries to move the persona's row to another tenant.
 * Grants are read from the catalog first: a command the role has no
 * privilege for is `denied` without a probe. Errors 23xxx are `constraint`
 * (the policies let the row through), 42501 `denied`, 55P03/57014 `timeout`.
 *
 * Statements are pipelined (one persona's probes go out together), so the
 * matrix of hundreds of tables costs a few round trips. Tables another
 * session has locked are probed last, one statement at a time, and given up
 * after the first `lock_timeout`.
 *
 * @example
 * ```ts
 * await session.query('begin');
 * const matrix = await probeMatrix(session, catalog, personas, {
 *   tenantColumn: 'org_id', tenantClaim: 'org_id', lockTimeoutMs: 1000,
 * });
 * await session.query('rollback');
 * ```
 */
export async function probeMatrix(
  session: ReviewSession,
  catalog: Catalog,
  personas: readonly Persona[],
  options: ProbeMatrixOptions,
): Promise<ProbeMatrixResult> {
  const problems: Finding[] = [];
  const rowCap = options.rowCap ?? 10_000;
  const ownerColumns = options.ownerColumns ?? DEFAULT_OWNER_COLUMNS;
  const readOnly =
    (await session.query(`select current_setting('transaction_read_only') as ro`))[0]?.ro === 'on';
  if (readOnly) {
    problems.push({
      level: 'warn',
      lint: 'review-read-only-session',
      objectType: 'database',
      object: catalog.database,
      why: 'the review session is read-only (default_transaction_read_only or a standby), so INSERT/UPDATE/DELETE could not be probed',
      fix: 'review against a primary with a login whose transactions may write (the probes are always rolled back)',
    });
  }

  const bypass = await session.query(
    `select rolsuper or rolbypassrls as bypass from pg_roles where rolname = current_user`,
  );
  if (bypass[0]?.bypass !== true && catalog.tables.some((t) => t.rlsEnabled)) {
    problems.push({
      level: 'info',
      lint: 'review-reviewer-filtered',
      objectType: 'database',
      object: catalog.database,
      why: `the reviewing login ${catalog.reviewer} is neither superuser nor BYPASSRLS, so row level security (and missing grants) limit the rows it can read to aim the probes: UPDATE/DELETE cells may say "untested" and derived personas may use placeholder ids`,
      fix: 'for a complete matrix, review a copy of the database as its owner or a superuser (the review never commits anything)',
    });
  }
  const switchable = await switchableRoles(session, personas);
  const tables = catalog.tables;
  const shapes = new Map(tables.map((t) => [t, tableShape(t, options, ownerColumns)] as const));
  const keys = [...new Set(personas.map((p) => personaKey(p, options.tenantClaim)))];
  const targets = await readTargets(session, tables, shapes, keys);
  const timedOut = new Map<CatalogTable, { all: boolean; error: StatementError }>();
  for (const [table, t] of targets) {
    if (t.failure && isTimeout(t.failure)) timedOut.set(table, { all: true, error: t.failure });
  }

  const rows: MatrixRow[] = [];
  const errorsByPolicy = new Map<
    string,
    { finding: Omit<Finding, 'why'>; personas: Set<string>; error: string }
  >();
  for (const persona of personas) {
    const role = String(persona.claims.role);
    const skip = personaProblem(persona, role, switchable, catalog);
    if (skip) {
      problems.push(skip);
      for (const table of tables) rows.push(untestedRow(table, persona, 'persona not probed'));
      continue;
    }
    if (persona.revoke) {
      const revoked = await revoke(session, persona);
      if (revoked) {
        problems.push(revoked);
        for (const table of tables)
          rows.push(untestedRow(table, persona, 'token could not be revoked'));
        continue;
      }
    }
    await session.query('reset role');
    await session.query(`set local role ${pg.escapeIdentifier(role)}`);
    await session.query(CLAIMS_SQL, [JSON.stringify(persona.claims)]);
    await session.query(`savepoint ${PROBE}`);

    const key = personaKey(persona, options.tenantClaim);
    const results = new Map<CatalogTable, Results>(tables.map((t) => [t, {}] as const));
    // Reads first: UPDATE/DELETE of another tenant's row need only be tried
    // where SELECT shows such rows (see planProbes).
    for (const phase of ['read', 'write'] as const) {
      const fast: Plan[] = [];
      const slow: Plan[] = [];
      for (const table of tables) {
        const plans = planProbes(
          table,
          shapes.get(table)!,
          persona,
          role as ApiRole,
          targets.get(table)!,
          key,
          { rowCap, readOnly, tenantClaim: options.tenantClaim, phase },
          results.get(table)!,
        );
        for (const plan of plans) {
          if (table.lockedFor === 'all' || (table.lockedFor === 'writes' && plan.write)) {
            slow.push(plan);
          } else {
            fast.push(plan);
          }
        }
      }
      await runPipelined(session, fast, results);
      await runOneByOne(session, slow, results, timedOut);
    }

    const personaRows: MatrixRow[] = [];
    for (const table of tables) {
      const timeout = timedOut.get(table);
      personaRows.push(
        toRow(table, persona, role as ApiRole, shapes.get(table)!, results.get(table)!, {
          readOnly,
          targets: targets.get(table)!,
          key,
          timeout,
        }),
      );
    }
    rows.push(...personaRows);
    await attributeErrors(session, persona, personaRows, tables, targets, key, errorsByPolicy);
    await session.query(ROLLBACK);
    await session.query(`release savepoint ${PROBE}`);
    await session.query('reset role');
  }

  // Table by table, personas in their order: how every renderer reads it.
  const tableOrder = new Map(tables.map((t, i) => [t.display, i] as const));
  const personaOrder = new Map(personas.map((p, i) => [p.name, i] as const));
  rows.sort(
    (a, b) =>
      tableOrder.get(a.table)! - tableOrder.get(b.table)! ||
      personaOrder.get(a.persona)! - personaOrder.get(b.persona)!,
  );
  for (const [table, { error }] of timedOut) {
    problems.push({
      level: 'warn',
      lint: 'review-probe-timeout',
      objectType: 'table',
      object: table.display,
      why: `probes of ${table.display} could not run: ${describe(error)} (lock_timeout ${options.lockTimeoutMs} ms); another session holds a lock on it, so its matrix cells say "timeout"`,
      fix: 'rerun the review when the lock is released (pg_locks shows who holds it), or raise --lock-timeout',
    });
  }
  for (const [table, t] of targets) {
    if (t.failure && !isTimeout(t.failure)) {
      problems.push({
        level: 'warn',
        lint: 'review-table-unreadable',
        objectType: 'table',
        object: table.display,
        why: `the reviewing login could not read rows of ${table.display} to aim the probes (${describe(t.failure)}), so UPDATE/DELETE were not probed and INSERT used a row built from defaults`,
        fix: 'review with a login that can read the table (a superuser or the owner on a local copy), or grant it SELECT',
      });
    }
  }
  for (const { finding, personas: who, error } of errorsByPolicy.values()) {
    problems.push({
      ...finding,
      why: `${finding.objectType === 'policy' ? 'evaluating the policy' : 'probing the table'} fails for ${[...who].map((p) => `persona ${p}`).join(', ')}: ${error}; requests with such tokens get an error instead of rows`,
    });
  }
  return { rows, problems };
}

/** Sets the persona's claims the way PostgREST and the kit's as-user API do; legacy settings blanked. */
const CLAIMS_SQL = `select set_config('request.jwt.claims', $1, true),
       set_config('request.jwt.claim', '', true),
       set_config('request.jwt.claim.sub', '', true),
       set_config('request.jwt.claim.role', '', true),
       set_config('request.jwt.claim.email', '', true)`;

interface TableShape {
  /** The tenant column, when the table has it. */
  readonly tenant?: string;
  /** The owner column, when the table has one. */
  readonly owner?: string;
  /** The column UPDATE probes set to itself. */
  readonly touch?: string;
  /** Columns the INSERT probe may write (not generated). */
  readonly writable: ReadonlySet<string>;
  /** Columns the INSERT probe leaves to their default (unique columns with a default: fresh keys). */
  readonly defaulted: ReadonlySet<string>;
  /** The tenant column is a uuid (a synthetic other tenant can be made up). */
  readonly tenantIsUuid: boolean;
}

function tableShape(
  table: CatalogTable,
  options: ProbeMatrixOptions,
  ownerColumns: readonly string[],
): TableShape {
  const names = new Set(table.columns.map((c) => c.name));
  const tenantCol = table.columns.find((c) => c.name === options.tenantColumn && !c.generated);
  const owner = ownerColumns.find(
    (c) =>
      names.has(c) &&
      c !== options.tenantColumn &&
      !table.columns.find((x) => x.name === c)?.generated,
  );
  const writable = new Set(table.columns.filter((c) => !c.generated).map((c) => c.name));
  const defaulted = new Set(
    table.columns.filter((c) => c.unique && c.hasDefault).map((c) => c.name),
  );
  return {
    ...(tenantCol ? { tenant: tenantCol.name } : {}),
    ...(owner ? { owner } : {}),
    ...(tenantCol
      ? { touch: tenantCol.name }
      : writable.size > 0
        ? { touch: [...writable][0]! }
        : {}),
    writable,
    defaulted,
    tenantIsUuid: tenantCol?.type === 'uuid',
  };
}

/** A persona's tenant and sub, the key its targets are picked by. */
function personaKey(persona: Persona, tenantClaim: string): string {
  return JSON.stringify([claimText(persona.claims[tenantClaim]), claimText(persona.claims.sub)]);
}

/**
 * A claim as the text Postgres prints for the column value it names: uuids
 * in lower case (their canonical form), numbers and booleans as written.
 */
function claimText(value: unknown): string | null {
  if (typeof value === 'string') {
    return /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(value)
      ? value.toLowerCase()
      : value;
  }
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return null;
}

/** Roles the reviewing login may SET ROLE to (tried in a savepoint each). */
async function switchableRoles(
  session: ReviewSession,
  personas: readonly Persona[],
): Promise<Map<string, StatementError | undefined>> {
  const roles = [...new Set(personas.map((p) => String(p.claims.role)))].filter((r) =>
    PERSONA_ROLES.has(r),
  );
  const out = new Map<string, StatementError | undefined>();
  for (const role of roles) {
    const result = await session.guarded(async () => {
      await session.query(`set local role ${pg.escapeIdentifier(role)}`);
      // Undo the switch: the savepoint's rollback would, but only on failure.
      await session.query('reset role');
    });
    out.set(role, isStatementError(result) ? result : undefined);
  }
  return out;
}

function personaProblem(
  persona: Persona,
  role: string,
  switchable: Map<string, StatementError | undefined>,
  catalog: Catalog,
): Finding | undefined {
  const base = { level: 'warn' as const, objectType: 'persona' as const, object: persona.name };
  if (!PERSONA_ROLES.has(role) || !catalog.roles.includes(role as ApiRole)) {
    return {
      ...base,
      lint: 'review-persona-skipped',
      why: `persona ${persona.name} runs as role ${JSON.stringify(role)}, which ${PERSONA_ROLES.has(role) ? 'does not exist in this database' : 'is not an API role'}; it was not probed`,
      fix: 'use anon, authenticated or service_role (apply the kit migrations for the Supabase roles on plain Postgres)',
    };
  }
  const error = switchable.get(role);
  if (error) {
    return {
      ...base,
      lint: 'review-role-switch-denied',
      why: `the reviewing login cannot SET ROLE ${role} (${describe(error)}), so persona ${persona.name} was not probed`,
      fix: `grant ${role} to the reviewing login (as Supabase grants it to authenticator), or review as a role that has it`,
    };
  }
  return undefined;
}

async function revoke(session: ReviewSession, persona: Persona): Promise<Finding | undefined> {
  const result = await session.guarded(() =>
    session.query(
      `select rls_kit.revoke_token($1::text, now() + interval '1 day', 'rls-kit review probe', $2::uuid)`,
      [
        String(persona.claims.jti),
        typeof persona.claims.sub === 'string' ? persona.claims.sub : null,
      ],
    ),
  );
  if (!isStatementError(result)) return undefined;
  return {
    level: 'warn',
    lint: 'review-persona-skipped',
    objectType: 'persona',
    object: persona.name,
    why: `the token of persona ${persona.name} could not be revoked (${describe(result)}), so it was not probed`,
    fix: 'review as a login that may execute rls_kit.revoke_token (the call is rolled back)',
  };
}

/** Reads one own-tenant and one other-tenant row per table and persona key, all tables pipelined. */
async function readTargets(
  session: ReviewSession,
  tables: readonly CatalogTable[],
  shapes: Map<CatalogTable, TableShape>,
  keys: readonly string[],
): Promise<Map<CatalogTable, Targets>> {
  await session.query(`savepoint ${PROBE}`);
  const out = new Map<CatalogTable, Targets>();
  const pending: [CatalogTable, Promise<Result>][] = [];
  const run = (table: CatalogTable) => {
    const { sql, parameters } = targetsQuery(table, shapes.get(table)!, keys);
    const result = session.attempt(sql, parameters);
    const rollback = session.attempt(ROLLBACK);
    return Promise.all([result, rollback]).then(([r]) => r);
  };
  for (const table of tables) {
    if (table.lockedFor !== 'all') pending.push([table, run(table)]);
  }
  for (const [table, promise] of pending) out.set(table, toTargets(await promise, keys));
  // Locked tables one at a time: each waits out lock_timeout at most once.
  for (const table of tables) {
    if (table.lockedFor === 'all') out.set(table, toTargets(await run(table), keys));
  }
  await session.query(`release savepoint ${PROBE}`);
  return out;
}

/**
 * Tenant and owner are compared as text: a persona whose claim is not a
 * valid value of the column's type (a non-uuid org_id) must not make the
 * review's own statements fail — only the policies' casts may, and those
 * failures are what the review reports.
 */
function targetsQuery(
  table: CatalogTable,
  shape: TableShape,
  keys: readonly string[],
): { sql: string; parameters: unknown[] } {
  const id = pg.escapeIdentifier;
  const tenant = shape.tenant ? id(shape.tenant) : undefined;
  const mine = shape.owner ? `(x0.${id(shape.owner)}::text = k.v ->> 'sub')` : 'null::boolean';
  const ownFilter = tenant ? `where x0.${tenant}::text = k.v ->> 'tenant'` : '';
  const other = tenant
    ? `left join lateral (
         select x.tableoid::int8::text as tableoid, x.ctid::text as ctid, to_jsonb(x.${tenant}) as tenant
           from ${table.sql} as x
          where x.${tenant} is not null
            and (k.v ->> 'tenant' is null or x.${tenant}::text <> k.v ->> 'tenant')
          limit 1) as other on true`
    : 'left join lateral (select null::text as tableoid, null::text as ctid, null::jsonb as tenant) as other on true';
  const sql = `
select k.ord::int as key, own.tableoid as own_tableoid, own.ctid as own_ctid, own.row as own_row,
       other.tableoid as other_tableoid, other.ctid as other_ctid, other.tenant as other_tenant
  from jsonb_array_elements($1::jsonb) with ordinality as k(v, ord)
  left join lateral (
    select s.tableoid, s.ctid, s.row
      from (select x0.tableoid::int8::text as tableoid, x0.ctid::text as ctid, x0.ctid as sort_ctid,
                   to_jsonb(x0) as row, ${mine} as mine
              from ${table.sql} as x0 ${ownFilter}
             limit 1000) as s
     order by s.mine desc nulls last, s.tableoid, s.sort_ctid
     limit 1) as own on true
  ${other}`;
  const parameters = keys.map((k) => {
    const [t, sub] = JSON.parse(k) as [string | null, string | null];
    return { tenant: t, sub };
  });
  return { sql, parameters: [JSON.stringify(parameters)] };
}

function toTargets(result: Result, keys: readonly string[]): Targets {
  const byKey = new Map<string, KeyTargets>();
  if (isStatementError(result)) return { byKey, failure: result };
  if (typeof result === 'number') return { byKey };
  for (const row of result) {
    const key = keys[Number(row.key) - 1];
    if (key === undefined) continue;
    byKey.set(key, {
      ...(typeof row.own_ctid === 'string'
        ? {
            own: {
              tableoid: String(row.own_tableoid),
              ctid: row.own_ctid,
              row: (row.own_row ?? {}) as Row,
            },
          }
        : {}),
      ...(typeof row.other_ctid === 'string'
        ? {
            other: {
              tableoid: String(row.other_tableoid),
              ctid: row.other_ctid,
              tenant: row.other_tenant,
            },
          }
        : {}),
    });
  }
  return { byKey };
}

function planProbes(
  table: CatalogTable,
  shape: TableShape,
  persona: Persona,
  role: ApiRole,
  targets: Targets,
  key: string,
  options: {
    rowCap: number;
    readOnly: boolean;
    tenantClaim: string;
    phase: 'read' | 'write';
  },
  done: Results,
): Plan[] {
  const grants = table.grants[role];
  if (!grants) return [];
  const id = pg.escapeIdentifier;
  const plans: Plan[] = [];
  const tenantValue = persona.claims[options.tenantClaim];
  const record = (n: number) => `(jsonb_populate_record(null::${table.sql}, $${n}::jsonb))`;
  if (grants.select && options.phase === 'read') {
    const tenant = shape.tenant ? id(shape.tenant) : undefined;
    plans.push({
      table,
      probe: 'select',
      write: false,
      sql: tenant
        ? `select count(*)::int as rows,
                  count(*) filter (where s.t is not null and s.t::text is distinct from $2::text)::int as other
             from (select x.${tenant} as t from ${table.sql} as x limit $1) as s`
        : `select count(*)::int as rows from (select from ${table.sql} limit $1) as s`,
      parameters: tenant ? [options.rowCap, claimText(tenantValue)] : [options.rowCap],
    });
  }
  if (options.readOnly || options.phase === 'read') return plans;
  const mine = targets.byKey.get(key);
  // UPDATE and DELETE with a WHERE clause (every Data API request has one,
  // and so do these probes) see only rows the SELECT policies let through:
  // another tenant's row can be reached only if SELECT showed some. When
  // SELECT did not say (no grant, an error), try anyway.
  const selected = done.select;
  const otherVisible =
    selected === undefined || !Array.isArray(selected) || Number(selected[0]?.other ?? 1) > 0;
  if (grants.insert) {
    const template = mine?.own?.row ?? anyTemplate(targets) ?? {};
    const row: Row = {};
    for (const [column, value] of Object.entries(template)) {
      if (shape.writable.has(column) && !shape.defaulted.has(column)) row[column] = value;
    }
    if (shape.tenant && tenantValue !== undefined) row[shape.tenant] = tenantValue;
    const sub = persona.claims.sub;
    if (shape.owner && typeof sub === 'string') row[shape.owner] = sub;
    plans.push(insertPlan(table, 'insertOwn', row));
    if (shape.tenant && tenantValue !== undefined) {
      const other = mine?.other?.tenant ?? (shape.tenantIsUuid ? OTHER_TENANT_UUID : undefined);
      if (other !== undefined)
        plans.push(insertPlan(table, 'insertOther', { ...row, [shape.tenant]: other }));
    }
  }
  const touch = shape.touch ? id(shape.touch) : undefined;
  const where = 'where tableoid = $1::int8::oid and ctid = $2::tid';
  if (grants.update && touch) {
    if (mine?.own) {
      plans.push({
        table,
        probe: 'updateOwn',
        write: true,
        sql: `update ${table.sql} set ${touch} = ${touch} ${where}`,
        parameters: [mine.own.tableoid, mine.own.ctid],
      });
      if (shape.tenant && mine.other) {
        const tenant = id(shape.tenant);
        plans.push({
          table,
          probe: 'updateMove',
          write: true,
          sql: `update ${table.sql} set ${tenant} = ${record(3)}.${tenant} ${where}`,
          parameters: [
            mine.own.tableoid,
            mine.own.ctid,
            JSON.stringify({ [shape.tenant]: mine.other.tenant }),
          ],
        });
      }
    }
    if (mine?.other && otherVisible) {
      plans.push({
        table,
        probe: 'updateOther',
        write: true,
        sql: `update ${table.sql} set ${touch} = ${touch} ${where}`,
        parameters: [mine.other.tableoid, mine.other.ctid],
      });
    }
  }
  if (grants.delete) {
    if (mine?.own) {
      plans.push({
        table,
        probe: 'deleteOwn',
        write: true,
        sql: `delete from ${table.sql} ${where}`,
        parameters: [mine.own.tableoid, mine.own.ctid],
      });
    }
    if (mine?.other && otherVisible) {
      plans.push({
        table,
        probe: 'deleteOther',
        write: true,
        sql: `delete from ${table.sql} ${where}`,
        parameters: [mine.other.tableoid, mine.other.ctid],
      });
    }
  }
  return plans;
}

function anyTemplate(targets: Targets): Row | undefined {
  for (const t of targets.byKey.values()) if (t.own) return t.own.row;
  return undefined;
}

function insertPlan(table: CatalogTable, probe: 'insertOwn' | 'insertOther', row: Row): Plan {
  const columns = Object.keys(row).map(pg.escapeIdentifier);
  // No RETURNING: it would also require the SELECT policies to pass.
  const sql =
    columns.length === 0
      ? `insert into ${table.sql} default values`
      : `insert into ${table.sql} (${columns.join(', ')})
         select ${columns.join(', ')} from jsonb_populate_record(null::${table.sql}, $1::jsonb)`;
  return {
    table,
    probe,
    write: true,
    sql,
    parameters: columns.length === 0 ? [] : [JSON.stringify(row)],
  };
}

/**
 * Sends every plan at once, then reads the answers in order. Writes are
 * each followed by a rollback to the probe savepoint; reads change nothing
 * and go without one — but a read that fails leaves the transaction
 * aborted, so whatever follows it fails with 25P02 and is run again, alone,
 * afterwards.
 */
async function runPipelined(
  session: ReviewSession,
  plans: readonly Plan[],
  results: Map<CatalogTable, Results>,
): Promise<void> {
  const send = (plan: Plan): Promise<Result> => {
    const result = plan.write
      ? session.execute(plan.sql, plan.parameters)
      : session.attempt(plan.sql, plan.parameters);
    if (!plan.write) return result;
    const rollback = session.attempt(ROLLBACK);
    return Promise.all([result, rollback]).then(([r]) => r);
  };
  const answers = await Promise.all(plans.map(send));
  await session.attempt(ROLLBACK);
  for (const [i, plan] of plans.entries()) {
    let answer = answers[i]!;
    if (isStatementError(answer) && answer.code === '25P02') {
      answer = await send(plan);
      await session.attempt(ROLLBACK);
    }
    results.get(plan.table)![plan.probe] = answer;
  }
}

/** For locked tables: one statement at a time, giving up on a table after its first timeout. */
async function runOneByOne(
  session: ReviewSession,
  plans: readonly Plan[],
  results: Map<CatalogTable, Results>,
  timedOut: Map<CatalogTable, { all: boolean; error: StatementError }>,
): Promise<void> {
  for (const plan of plans) {
    const known = timedOut.get(plan.table);
    if (known && (known.all || plan.write)) {
      results.get(plan.table)![plan.probe] = known.error;
      continue;
    }
    const result = plan.write
      ? await session.execute(plan.sql, plan.parameters)
      : await session.attempt(plan.sql, plan.parameters);
    await session.attempt(ROLLBACK);
    results.get(plan.table)![plan.probe] = result;
    if (isStatementError(result) && isTimeout(result)) {
      timedOut.set(plan.table, { all: !plan.write, error: result });
    }
  }
}

function isTimeout(error: StatementError): boolean {
  return error.code === '55P03' || error.code === '57014';
}

/** A write's outcome from its row count or error. */
function writeOutcome(result: Result | undefined): MatrixCell | undefined {
  if (result === undefined) return undefined;
  if (typeof result === 'number') {
    return result > 0 ? { outcome: 'allowed' } : { outcome: 'no-rows', detail: 'policy' };
  }
  if (Array.isArray(result)) return { outcome: 'allowed' };
  return errorCell(result);
}

function errorCell(error: StatementError): MatrixCell {
  if (error.code === '42501') {
    return {
      outcome: 'denied',
      detail: /row-level security|row level security/i.test(error.message)
        ? 'policy'
        : 'no privilege',
    };
  }
  if (error.code.startsWith('23')) {
    return {
      outcome: 'constraint',
      detail: `${error.code}${error.constraint ? ` (${error.constraint})` : ''}: ${error.message}`,
    };
  }
  if (isTimeout(error)) return { outcome: 'timeout', detail: describe(error) };
  return { outcome: 'error', detail: describe(error) };
}

const NO_PRIVILEGE: MatrixCell = { outcome: 'denied', detail: 'no privilege' };

function toRow(
  table: CatalogTable,
  persona: Persona,
  role: ApiRole,
  shape: TableShape,
  r: Results,
  context: {
    readOnly: boolean;
    targets: Targets;
    key: string;
    timeout: { all: boolean; error: StatementError } | undefined;
  },
): MatrixRow {
  const grants = table.grants[role];
  const timeoutCell: MatrixCell | undefined = context.timeout
    ? { outcome: 'timeout', detail: describe(context.timeout.error) }
    : undefined;
  const untested = (detail: string): MatrixCell => ({ outcome: 'untested', detail });
  // SELECT
  let select: MatrixCell;
  if (!grants) select = untested('role missing');
  else if (!grants.select) select = NO_PRIVILEGE;
  else if (r.select === undefined) select = timeoutCell ?? untested('not probed');
  else if (isStatementError(r.select)) select = errorCell(r.select);
  else {
    const row = Array.isArray(r.select) ? r.select[0] : undefined;
    const rows = Number(row?.rows ?? 0);
    const other = row?.other === undefined ? undefined : Number(row.other);
    select = {
      outcome: rows > 0 ? 'allowed' : 'no-rows',
      rows,
      ...(other === undefined ? {} : { otherTenantRows: other }),
    };
  }

  const writeCell = (
    granted: boolean | undefined,
    own: Result | undefined,
    crossResults: (Result | undefined)[],
    noTarget: string,
    crossFromOwn: boolean,
  ): MatrixCell => {
    if (!grants) return untested('role missing');
    if (!granted) return NO_PRIVILEGE;
    if (context.readOnly) return untested('read-only session');
    const main = writeOutcome(own) ?? writeOutcome(crossResults.find((x) => x !== undefined));
    if (!main) return timeoutCell ?? untested(noTarget);
    const cross = crossResults.map(writeOutcome).filter((c): c is MatrixCell => c !== undefined);
    if (crossFromOwn && own !== undefined) cross.push(main);
    let crossTenant: MatrixCell['crossTenant'];
    if (shape.tenant && cross.length > 0) {
      if (cross.some((c) => c.outcome === 'allowed' || c.outcome === 'constraint'))
        crossTenant = 'allowed';
      else if (cross.every((c) => c.outcome === 'denied' || c.outcome === 'no-rows'))
        crossTenant = 'blocked';
    }
    return { ...main, ...(crossTenant ? { crossTenant } : {}) };
  };

  const hasTenantClaim = shape.tenant !== undefined && JSON.parse(context.key)[0] !== null;
  const noTarget = context.targets.failure
    ? 'no readable row to aim at'
    : 'no row to aim at (the table is empty, or the reviewing login sees none)';
  const insert = writeCell(
    grants?.insert,
    r.insertOwn,
    [r.insertOther],
    'not probed',
    !hasTenantClaim,
  );
  const update = writeCell(
    grants?.update,
    r.updateOwn,
    [r.updateOther, r.updateMove],
    noTarget,
    false,
  );
  const del = writeCell(grants?.delete, r.deleteOwn, [r.deleteOther], noTarget, false);
  return { table: table.display, persona: persona.name, select, insert, update, delete: del };
}

function untestedRow(table: CatalogTable, persona: Persona, detail: string): MatrixRow {
  const cell: MatrixCell = { outcome: 'untested', detail };
  return {
    table: table.display,
    persona: persona.name,
    select: cell,
    insert: cell,
    update: cell,
    delete: cell,
  };
}

/**
 * For cells that failed with an error (not a denial), finds the policy at
 * fault: each policy that applies to the persona's role and the command is
 * evaluated on its own, as the persona, against the probe's row (built from
 * JSON, so no other policy runs). Errors no policy explains are reported
 * against the table.
 */
async function attributeErrors(
  session: ReviewSession,
  persona: Persona,
  personaRows: readonly MatrixRow[],
  tables: readonly CatalogTable[],
  targets: Map<CatalogTable, Targets>,
  key: string,
  out: Map<string, { finding: Omit<Finding, 'why'>; personas: Set<string>; error: string }>,
): Promise<void> {
  const role = String(persona.claims.role);
  const commands: TableCommand[] = ['select', 'insert', 'update', 'delete'];
  for (const [i, row] of personaRows.entries()) {
    const table = tables[i]!;
    for (const command of commands) {
      const cell = row[command];
      if (cell.outcome !== 'error') continue;
      const sample = targets.get(table)?.byKey.get(key)?.own?.row ?? {};
      const candidates = (table.policies ?? []).filter(
        (p) =>
          (p.command === 'all' || p.command === command) &&
          (p.roles.includes('public') || p.roles.includes(role)),
      );
      let attributed = false;
      for (const policy of candidates) {
        const error = await evaluatePolicy(session, table, policy, sample);
        if (error && error.code !== '42501') {
          attributed = true;
          record(
            out,
            {
              level: 'warn',
              lint: 'review-policy-error',
              objectType: 'policy',
              object: `${policy.name} on ${table.display}`,
              fix: 'make the policy fail closed for unexpected claims (e.g. compare text, or check the claim before casting), or make sure tokens cannot carry such values',
            },
            persona.name,
            describe(error),
          );
        }
      }
      if (!attributed) {
        record(
          out,
          {
            level: 'warn',
            lint: 'review-probe-error',
            objectType: 'table',
            object: table.display,
            fix: 'look at the error: a trigger, a default or a function used by the policies fails for this persona',
          },
          persona.name,
          `${command}: ${cell.detail ?? 'error'}`,
        );
      }
    }
  }
}

function record(
  out: Map<string, { finding: Omit<Finding, 'why'>; personas: Set<string>; error: string }>,
  finding: Omit<Finding, 'why'>,
  persona: string,
  error: string,
): void {
  const key = `${finding.lint}\u0000${finding.object}\u0000${error}`;
  const entry = out.get(key) ?? { finding, personas: new Set<string>(), error };
  entry.personas.add(persona);
  out.set(key, entry);
}

async function evaluatePolicy(
  session: ReviewSession,
  table: CatalogTable,
  policy: CatalogPolicy,
  sample: Row,
): Promise<StatementError | undefined> {
  for (const expression of [policy.using, policy.withCheck]) {
    if (expression === null) continue;
    // The expression is the catalog's own SQL (pg_get_expr), evaluated on a
    // row made from JSON: the table itself is not read, so no policy but this
    // one runs.
    const result = await session.attempt(
      `select (${expression}) as ok from jsonb_populate_record(null::${table.sql}, $1::jsonb) as ${pg.escapeIdentifier(table.name)}`,
      [JSON.stringify(sample)],
    );
    await session.attempt(ROLLBACK);
    if (isStatementError(result)) return result;
  }
  return undefined;
}
