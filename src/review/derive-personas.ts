import pg from 'pg';
import type { ClaimSchema } from '../tokens/claim-schema.js';
import type { Persona } from './persona.js';
import type { Catalog } from './read-catalog.js';
import { isStatementError, type ReviewSession, type Row } from './review-session.js';
import { compare } from './util.js';

/** Options of {@link derivePersonas}. */
export interface DerivePersonasOptions {
  readonly claimSchema: ClaimSchema;
  /** Claim naming the persona's tenant (default `org_id`). */
  readonly tenantClaim: string;
  /** Column naming a row's tenant (default `org_id`). */
  readonly tenantColumn: string;
  /** The claim whose enum values become one persona each (default `user_role`). */
  readonly roleClaim?: string;
  /** Seconds since the epoch for `iat`/`exp` (default: now). */
  readonly now?: number;
}

/** Placeholder ids for users or tenants the data does not provide. */
const SYNTHETIC_TENANT = '00000000-0000-4000-8000-00000000a001';
const syntheticUser = (n: number) => `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`;

/**
 * Personas from the claim schema and the data: `anon`; one persona per value
 * of the role claim (`user_role`: owner, admin, member, viewer) in one
 * tenant; and `revoked` — the first role's token after
 * `rls_kit.revoke_token` — when the kit's revocation functions exist.
 *
 * The tenant is the one with the most distinct roles in a `memberships`
 * table (columns tenant column, `user_id`, `role`) of an exposed schema,
 * ties broken by the smallest id, and each persona's `sub` is that role's
 * member with the smallest id. Without such a table, the most frequent
 * tenant value of the first table with the tenant column is used and users
 * get placeholder ids; without any data, placeholder tenant and users.
 * Reads run as the reviewing login, inside the caller's transaction.
 *
 * @example
 * ```ts
 * const personas = await derivePersonas(session, catalog, {
 *   claimSchema: exampleClaimSchema, tenantClaim: 'org_id', tenantColumn: 'org_id',
 * });
 * ```
 */
export async function derivePersonas(
  session: ReviewSession,
  catalog: Catalog,
  options: DerivePersonasOptions,
): Promise<Persona[]> {
  const now = options.now ?? Math.floor(Date.now() / 1000);
  const roleClaim = options.roleClaim ?? 'user_role';
  const roleDef = options.claimSchema.definitions[roleClaim];
  const roles: readonly string[] =
    roleDef && 'enum' in roleDef && Array.isArray(roleDef.enum) ? roleDef.enum : [];
  const hasTenantClaim = options.claimSchema.names.includes(options.tenantClaim);

  const personas: Persona[] = [
    { name: 'anon', source: 'derived', claims: { role: 'anon' }, description: 'no token' },
  ];
  const members = await findMembers(session, catalog, options.tenantColumn, roles);
  const tenant = hasTenantClaim
    ? (members?.tenant ?? (await findTenant(session, catalog, options.tenantColumn)))
    : undefined;
  const base = (name: string, sub: string, extra: Record<string, unknown>) => ({
    iss: 'rls-kit-review',
    aud: 'authenticated',
    role: 'authenticated',
    sub,
    iat: now - 1,
    exp: now + 600,
    jti: `rls-kit-review-${name}`,
    ...(tenant === undefined ? {} : { [options.tenantClaim]: tenant }),
    ...extra,
  });
  const tenantText = tenant === undefined ? '' : ` of ${options.tenantClaim} ${tenant}`;
  if (roles.length === 0) {
    personas.push({
      name: 'authenticated',
      source: 'derived',
      claims: base('authenticated', members?.users.get('') ?? syntheticUser(1), {}),
      description: `a signed-in user${tenantText}`,
    });
  }
  roles.forEach((role, i) => {
    const sub = members?.users.get(role);
    personas.push({
      name: role,
      source: 'derived',
      claims: base(role, sub ?? syntheticUser(i + 1), { [roleClaim]: role }),
      description: `${roleClaim} ${role}${tenantText}${sub ? '' : ' (no such member in the data: placeholder sub)'}`,
    });
  });
  if (catalog.revocation.revokeToken && catalog.revocation.isTokenActive && personas.length > 1) {
    const model = personas[1]!;
    personas.push({
      name: 'revoked',
      source: 'derived',
      claims: { ...model.claims, jti: 'rls-kit-review-revoked' },
      description: `the ${model.name} persona's token after rls_kit.revoke_token (inside the rolled-back probe transaction)`,
      revoke: true,
    });
  }
  return personas;
}

interface Members {
  readonly tenant: string;
  /** role → user id. */
  readonly users: Map<string, string>;
}

async function findMembers(
  session: ReviewSession,
  catalog: Catalog,
  tenantColumn: string,
  roles: readonly string[],
): Promise<Members | undefined> {
  const table = catalog.tables.find(
    (t) =>
      t.name === 'memberships' &&
      [tenantColumn, 'user_id', 'role'].every((c) => t.columns.some((col) => col.name === c)),
  );
  if (!table) return undefined;
  const rows = await session.guarded(() =>
    session.query(
      `select m.${esc(tenantColumn)}::text as tenant, m.user_id::text as user_id, m.role::text as role
         from ${table.sql} as m
        where m.${esc(tenantColumn)} is not null and m.user_id is not null
        limit 100000`,
    ),
  );
  if (isStatementError(rows) || rows.length === 0) return undefined;
  const byTenant = new Map<string, Row[]>();
  for (const row of rows) {
    const key = String(row.tenant);
    byTenant.set(key, [...(byTenant.get(key) ?? []), row]);
  }
  const wanted = new Set(roles);
  const score = (list: Row[]) =>
    new Set(list.map((r) => String(r.role)).filter((r) => wanted.has(r))).size;
  const [tenant, list] = [...byTenant.entries()].sort(
    ([a, la], [b, lb]) => score(lb) - score(la) || lb.length - la.length || compare(a, b),
  )[0]!;
  const users = new Map<string, string>();
  for (const row of [...list].sort((a, b) => compare(String(a.user_id), String(b.user_id)))) {
    const role = String(row.role);
    if (!users.has(role)) users.set(role, String(row.user_id));
    if (!users.has('')) users.set('', String(row.user_id));
  }
  return { tenant, users };
}

async function findTenant(
  session: ReviewSession,
  catalog: Catalog,
  tenantColumn: string,
): Promise<string> {
  const table = catalog.tables.find((t) => t.columns.some((c) => c.name === tenantColumn));
  if (!table) return SYNTHETIC_TENANT;
  const rows = await session.guarded(() =>
    session.query(
      `select x.${esc(tenantColumn)}::text as tenant
         from (select ${esc(tenantColumn)} from ${table.sql} limit 100000) as x
        where x.${esc(tenantColumn)} is not null
        group by 1 order by count(*) desc, 1 limit 1`,
    ),
  );
  if (isStatementError(rows) || rows.length === 0) return SYNTHETIC_TENANT;
  return String(rows[0]!.tenant);
}

/** The tenant column's name comes from the options, but is used only once the catalog shows it exists. */
function esc(identifier: string): string {
  return pg.escapeIdentifier(identifier);
}
