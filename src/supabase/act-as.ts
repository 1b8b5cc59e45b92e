import { CompiledQuery, type Kysely } from 'kysely';
import type pg from 'pg';
import type { AsUserOptions, RequestClaims } from '../db/index.js';
import { RlsKitError } from '../errors.js';

/**
 * Who a policy test acts as: the full claims JSON of a token (e.g. from
 * {@link gotrueClaims}; its `role` picks the Postgres role), or `'anon'`
 * for a request without a token.
 *
 * @example
 * ```ts
 * const viewer: Persona = gotrueClaims({ sub: daveId, org_id: acmeId, user_role: 'viewer' });
 * const nobody: Persona = 'anon';
 * ```
 */
export type Persona = RequestClaims | 'anon';

/** Thrown through the transaction so it always rolls back; carries the callback's value out. */
class RollBack<T> {
  constructor(readonly value: T) {}
}

/**
 * Runs `fn` as a persona — the Postgres role from its claims and the whole
 * claims JSON in `request.jwt.claims`, exactly as a request with that
 * token would (`auth.uid()`, `auth.jwt()`, `auth.role()`, `auth.email()`
 * all answer from it) — in one transaction that is always rolled back, so
 * a test can insert, update and delete freely and leave the database as it
 * found it. For your own policy test suites; the SQL twin is `rls_kit.act_as`.
 *
 * Takes a `pg.Pool` (the callback gets the transaction's client) or a root
 * `Kysely` (the callback gets the transaction). It is the kit's `asUserPg` /
 * `asUser` underneath, so the same checks apply: only `anon` and
 * `authenticated` unless `options.allowRoles` lists more, never a login or
 * superuser role. Whatever `fn` returns comes back; whatever it throws
 * (for example a row level security violation, SQLSTATE 42501) is rethrown
 * unchanged after the rollback.
 *
 * @throws RlsKitError `ERR_USAGE` when `fn` ended the transaction itself
 * (its writes may have been committed), and the `asUser` errors
 * (`ERR_CLAIMS`, `ERR_ROLE_NOT_ALLOWED`) for a persona that cannot run.
 *
 * @example
 * ```ts
 * const alice = gotrueClaims({ sub: aliceId, org_id: acmeId, user_role: 'owner' });
 * const titles = await actAs(pool, alice, async (client) => {
 *   await client.query("insert into documents (org_id, owner_id, title) values ($1, $2, 'draft')", [acmeId, aliceId]);
 *   return (await client.query('select title from documents')).rows;
 * }); // the insert is rolled back
 * ```
 */
export function actAs<T>(
  pool: pg.Pool,
  persona: Persona,
  fn: (client: pg.ClientBase) => Promise<T>,
  options?: AsUserOptions,
): Promise<T>;
export function actAs<DB, T>(
  db: Kysely<DB>,
  persona: Persona,
  fn: (trx: Kysely<DB>) => Promise<T>,
  options?: AsUserOptions,
): Promise<T>;
export async function actAs<DB, T>(
  target: pg.Pool | Kysely<DB>,
  persona: Persona,
  fn: ((client: pg.ClientBase) => Promise<T>) | ((trx: Kysely<DB>) => Promise<T>),
  options?: AsUserOptions,
): Promise<T> {
  if (typeof fn !== 'function') {
    throw new RlsKitError(
      'ERR_USAGE',
      'actAs needs a callback: actAs(pool, persona, async (client) => ...)',
    );
  }
  const claims: RequestClaims = persona === 'anon' ? { role: 'anon' } : persona;
  const { asUser, asUserPg } = await import('../db/index.js');
  try {
    if (isKysely<DB>(target)) {
      await asUser(
        target,
        claims,
        async (trx) => {
          const value = await (fn as (trx: Kysely<DB>) => Promise<T>)(trx);
          await stillOpen((text) =>
            trx.executeQuery<Record<string, unknown>>(CompiledQuery.raw(text)).then((r) => r.rows),
          );
          throw new RollBack(value);
        },
        options,
      );
    } else if (isPool(target)) {
      await asUserPg(
        target,
        claims,
        async (client) => {
          const value = await (fn as (client: pg.ClientBase) => Promise<T>)(client);
          await stillOpen((text) => client.query(text).then((r) => r.rows));
          throw new RollBack(value);
        },
        options,
      );
    } else {
      throw new RlsKitError(
        'ERR_USAGE',
        'actAs needs a pg.Pool or a root Kysely instance (a single pg.Client cannot be lent out safely)',
      );
    }
  } catch (err) {
    if (err instanceof RollBack) return err.value as T;
    throw err;
  }
  // asUser/asUserPg only return when the callback returned, and ours never does.
  throw new RlsKitError('ERR_USAGE', 'actAs: the transaction was not rolled back');
}

/**
 * After the callback: the transaction must still be ours. Once a COMMIT or
 * ROLLBACK ran inside it, the transaction-local role is gone (`none`) and
 * what followed may have been committed — say so instead of reporting a
 * clean rollback. An aborted transaction (an error the callback swallowed)
 * is still open and rolls back: fine.
 */
async function stillOpen(
  query: (text: string) => Promise<readonly Record<string, unknown>[]>,
): Promise<void> {
  let role: unknown;
  try {
    role = (await query("select pg_catalog.current_setting('role') as role"))[0]?.role;
  } catch (err) {
    if ((err as { code?: unknown }).code === '25P02') return; // in failed transaction: rolls back
    throw err;
  }
  if (role === 'none') {
    throw new RlsKitError(
      'ERR_USAGE',
      'the actAs callback ended the transaction (COMMIT or ROLLBACK): its writes may have been committed; never end the transaction inside actAs',
    );
  }
}

function isKysely<DB>(value: unknown): value is Kysely<DB> {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { selectFrom?: unknown }).selectFrom === 'function' &&
    typeof (value as { connection?: unknown }).connection === 'function'
  );
}

function isPool(value: unknown): value is pg.Pool {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { connect?: unknown }).connect === 'function' &&
    typeof (value as { totalCount?: unknown }).totalCount === 'number'
  );
}
