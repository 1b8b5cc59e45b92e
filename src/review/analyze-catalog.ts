import {
  analyzeExpression,
  analyzeSqlFunction,
  loadSqlParser,
  type SqlAnalysis,
} from './analyze-sql.js';
import type { Catalog, CatalogPolicy, CatalogTable } from './read-catalog.js';
import type { ClaimUse } from './types.js';
import { compare } from './util.js';

/** What the parser found in one policy (and, one level deep, in its SQL helpers). */
export interface PolicyFacts {
  readonly using: SqlAnalysis | undefined;
  readonly withCheck: SqlAnalysis | undefined;
  /** Claims read by the policy itself and by the SQL functions it calls. */
  readonly claims: readonly ClaimUse[];
  /** Signatures of the functions the policy calls, sorted. */
  readonly functions: readonly string[];
  /** Per-row `auth.*()` / `current_setting()` calls in the policy itself. */
  readonly perRowCalls: readonly string[];
  /** Client-controlled request settings read (policy or helpers). */
  readonly requestSettings: readonly string[];
  /** The policy or a helper reads `user_metadata` or `raw_user_meta_data`. */
  readonly readsUserMetadata: boolean;
  /** Columns of the table the policy filters on. */
  readonly columns: readonly string[];
  /** This is the kit's revocation guard, in its exact shape. */
  readonly isRevocationGuard: boolean;
}

/** Parser results for the whole catalog. */
export interface CatalogFacts {
  readonly policies: Map<CatalogPolicy, PolicyFacts>;
  /** Claims read by each SQL function, by oid. */
  readonly functions: Map<number, SqlAnalysis>;
}

/** The name `rls_kit.protect` gives the revocation guard. */
export const REVOCATION_GUARD = 'rls_kit_token_active';

/** The standard claim functions: known semantics, not analyzed as helpers. */
const CLAIM_FUNCTION_SIGNATURES = new Set([
  'auth.jwt()',
  'auth.uid()',
  'auth.role()',
  'auth.email()',
]);

/**
 * Parses every policy expression and every SQL function the policies call
 * (one level deep) with the real Postgres parser, and collects the claims
 * read, per-row claim calls, filtered columns, and whether a policy is the
 * kit's revocation guard.
 *
 * @example
 * ```ts
 * const facts = await analyzeCatalog(catalog);
 * for (const [policy, f] of facts.policies) console.log(policy.name, f.claims);
 * ```
 */
export async function analyzeCatalog(catalog: Catalog): Promise<CatalogFacts> {
  await loadSqlParser();
  const functions = new Map<number, SqlAnalysis>();
  for (const fn of catalog.functions.values()) {
    if (fn.language !== 'sql' || CLAIM_FUNCTION_SIGNATURES.has(fn.signature)) continue;
    functions.set(fn.oid, analyzeSqlFunction(fn.source ?? '', fn.definition ?? undefined));
  }
  // Schemas repeat policy shapes across tables (and USING and WITH CHECK are
  // often the same text): parse each distinct expression once.
  const memo = new Map<string, SqlAnalysis>();
  const analyze = (sql: string): SqlAnalysis => {
    let found = memo.get(sql);
    if (!found) {
      found = analyzeExpression(sql);
      memo.set(sql, found);
    }
    return found;
  };
  const policies = new Map<CatalogPolicy, PolicyFacts>();
  for (const table of catalog.tables) {
    for (const policy of table.policies ?? []) {
      policies.set(policy, policyFacts(catalog, table, policy, functions, analyze));
    }
  }
  return { policies, functions };
}

function policyFacts(
  catalog: Catalog,
  table: CatalogTable,
  policy: CatalogPolicy,
  functions: Map<number, SqlAnalysis>,
  analyze: (sql: string) => SqlAnalysis,
): PolicyFacts {
  const using = policy.using === null ? undefined : analyze(policy.using);
  const withCheck = policy.withCheck === null ? undefined : analyze(policy.withCheck);
  const own = [using, withCheck].filter((a): a is SqlAnalysis => a !== undefined);
  const claims = new Map<string, ClaimUse>();
  const add = (use: ClaimUse) => {
    const key = `${use.path}\u0000${use.via}\u0000${use.in ?? ''}`;
    if (!claims.has(key)) claims.set(key, use);
  };
  for (const a of own) for (const c of a.claims) add(c);
  const signatures: string[] = [];
  let helperUserMetadata = false;
  const requestSettings = new Set(own.flatMap((a) => a.requestSettings));
  for (const oid of policy.functionOids) {
    const fn = catalog.functions.get(oid);
    if (!fn) continue;
    signatures.push(fn.signature);
    const helper = functions.get(oid);
    if (!helper) continue;
    for (const c of helper.claims) add({ ...c, in: fn.signature });
    for (const s of helper.requestSettings) requestSettings.add(s);
    if (helper.readsRawUserMetadata || helper.claims.some(isUserMetadata))
      helperUserMetadata = true;
  }
  const tableColumns = new Set(table.columns.map((c) => c.name));
  const isRevocationGuard =
    policy.name === REVOCATION_GUARD &&
    !policy.permissive &&
    policy.command === 'all' &&
    policy.roles.includes('authenticated') &&
    policy.withCheck === null &&
    (using?.functions.includes('rls_kit.is_token_active') ?? false);
  return {
    using,
    withCheck,
    claims: [...claims.values()].sort(
      (a, b) =>
        compare(a.claim, b.claim) ||
        compare(a.path, b.path) ||
        compare(a.via, b.via) ||
        compare(a.in ?? '', b.in ?? ''),
    ),
    functions: [...new Set(signatures)].sort(compare),
    perRowCalls: [...new Set(own.flatMap((a) => a.perRowCalls))].sort(compare),
    requestSettings: [...requestSettings].sort(compare),
    readsUserMetadata:
      helperUserMetadata ||
      own.some((a) => a.readsRawUserMetadata || a.claims.some(isUserMetadata)),
    columns: [...new Set(own.flatMap((a) => a.columns))]
      .filter((c) => tableColumns.has(c))
      .sort(compare),
    isRevocationGuard,
  };
}

function isUserMetadata(claim: { readonly claim: string }): boolean {
  return claim.claim === 'user_metadata' || claim.claim === 'raw_user_meta_data';
}
