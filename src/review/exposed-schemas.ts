import { isStatementError, type ReviewSession } from './review-session.js';
import type { Finding } from './types.js';
import { compare } from './util.js';

/**
 * Which schemas the Data API exposes, and how that was decided.
 *
 * @example
 * ```ts
 * const exposed: ExposedSchemas = { schemas: ['public'], from: 'default', problems: [] };
 * ```
 */
export interface ExposedSchemas {
  /** Existing schemas, sorted. */
  readonly schemas: readonly string[];
  readonly from: 'option' | 'pgrst.db_schemas' | 'default';
  /** Named schemas that do not exist, as findings. */
  readonly problems: readonly Finding[];
}

/**
 * The schemas to review: those given (`--schema`), else Supabase's
 * `pgrst.db_schemas` (PostgREST's in-database setting on the
 * `authenticator` role, database-specific before role-wide), else `public`.
 * Names that do not exist are reported and left out.
 *
 * @example
 * ```ts
 * const { schemas, from } = await resolveExposedSchemas(session, undefined);
 * ```
 */
export async function resolveExposedSchemas(
  session: ReviewSession,
  requested: readonly string[] | undefined,
): Promise<ExposedSchemas> {
  let names: string[];
  let from: ExposedSchemas['from'];
  if (requested && requested.length > 0) {
    names = [...requested];
    from = 'option';
  } else {
    const configured = await session.guarded(() =>
      session.query(
        `select cfg
           from pg_db_role_setting s
           join pg_roles r on r.oid = s.setrole
           cross join lateral unnest(s.setconfig) as cfg
          where r.rolname = 'authenticator'
            and s.setdatabase in (0, (select oid from pg_database where datname = current_database()))
            and cfg like 'pgrst.db_schemas=%'
          order by s.setdatabase desc
          limit 1`,
      ),
    );
    const value =
      !isStatementError(configured) && typeof configured[0]?.cfg === 'string'
        ? configured[0].cfg.slice('pgrst.db_schemas='.length)
        : undefined;
    const listed = (value ?? '')
      .split(',')
      .map((s) => s.trim().replace(/^"(.*)"$/, '$1'))
      .filter((s) => s !== '');
    if (listed.length > 0) {
      names = listed;
      from = 'pgrst.db_schemas';
    } else {
      names = ['public'];
      from = 'default';
    }
  }
  const unique = [...new Set(names)];
  const rows = await session.query(
    'select nspname::text as name from pg_namespace where nspname = any($1::text[])',
    [unique],
  );
  const existing = new Set(rows.map((r) => String(r.name)));
  const problems: Finding[] = unique
    .filter((name) => !existing.has(name))
    .map((name) => ({
      level: 'warn' as const,
      lint: 'review-schema-missing',
      objectType: 'database' as const,
      object: name,
      why: `schema ${JSON.stringify(name)} (from ${from === 'option' ? '--schema' : from}) does not exist, so nothing in it was reviewed`,
      fix: 'check the spelling, or remove it from the exposed schemas',
    }));
  return { schemas: unique.filter((n) => existing.has(n)).sort(compare), from, problems };
}
