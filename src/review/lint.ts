import type { CatalogFacts, PolicyFacts } from './analyze-catalog.js';
import { REVOCATION_GUARD } from './analyze-catalog.js';
import type { Persona } from './persona.js';
import type { Catalog, CatalogFunction, CatalogPolicy, CatalogTable } from './read-catalog.js';
import type { ApiRole, Finding, MatrixRow, TableCommand } from './types.js';
import { compare } from './util.js';

/** Inputs of {@link lintReview}. */
export interface LintInput {
  readonly catalog: Catalog;
  readonly facts: CatalogFacts;
  /** The probed matrix (empty when not probed). */
  readonly matrix: readonly MatrixRow[];
  readonly personas: readonly Persona[];
  /** Claims tokens carry (standard + claim schema). */
  readonly mintedClaims: readonly string[];
  /** The claim schema's own claims (checked for "minted but never read"). */
  readonly customClaims: readonly string[];
  readonly tenantColumn: string;
  readonly tenantClaim: string;
  /** Tables at or above this many (estimated) rows count as large. */
  readonly largeTableRows: number;
}

/**
 * Every lint id {@link lintReview} can report, with its level. The review's
 * own problems (`review-*`: unreadable catalogs, probe timeouts, policy
 * errors, bad personas) are listed in docs/review.md.
 *
 * @example
 * ```ts
 * LINTS['rls-disabled-exposed']; // 'error'
 * ```
 */
export const LINTS = {
  'rls-disabled-exposed': 'error',
  'policies-without-rls': 'error',
  'user-metadata-in-policy': 'error',
  'request-setting-in-policy': 'error',
  'cross-tenant-access': 'error',
  'immutable-reads-request': 'error',
  'auth-call-per-row': 'warn',
  'multiple-permissive-policies': 'warn',
  'permissive-true-write': 'warn',
  'function-search-path-mutable': 'warn',
  'security-definer-anon': 'warn',
  'policy-to-public': 'warn',
  'update-without-with-check': 'warn',
  'missing-revocation-guard': 'warn',
  'rls-enabled-no-policy': 'info',
  'claim-not-minted': 'info',
  'claim-never-read': 'info',
  'unindexed-policy-column': 'info',
} as const;

/**
 * A lint id of {@link LINTS}.
 *
 * @example
 * ```ts
 * const id: LintId = 'auth-call-per-row';
 * ```
 */
export type LintId = keyof typeof LINTS;

const COMMANDS: readonly TableCommand[] = ['select', 'insert', 'update', 'delete'];
const CLIENT_ROLES: readonly ApiRole[] = ['anon', 'authenticated'];
const STANDARD_CLAIM_FUNCTIONS = new Set([
  'auth.jwt()',
  'auth.uid()',
  'auth.role()',
  'auth.email()',
]);

/**
 * Runs the lints over the catalog, the parser's facts and the matrix.
 * Lints that need a catalog the review could not read skip the objects it
 * concerns (the review reports the gap itself).
 *
 * @example
 * ```ts
 * const findings = lintReview({ catalog, facts, matrix, personas, mintedClaims, customClaims,
 *   tenantColumn: 'org_id', largeTableRows: 10_000 });
 * ```
 */
export function lintReview(input: LintInput): Finding[] {
  const findings: Finding[] = [];
  const add = (
    lint: LintId,
    object: Pick<Finding, 'objectType' | 'object'>,
    why: string,
    fix: string,
  ) => findings.push({ level: LINTS[lint], lint, ...object, why, fix });
  const { catalog, facts } = input;

  for (const table of catalog.tables) {
    const tableObject = { objectType: 'table' as const, object: table.display };
    const policies = table.policies;
    // --- RLS switched off
    if (!table.rlsEnabled) {
      const open = CLIENT_ROLES.flatMap((role) => {
        const g = table.grants[role];
        const commands = g ? COMMANDS.filter((c) => g[c]) : [];
        return commands.length > 0 ? [`${role} (${commands.join(', ')})`] : [];
      });
      if (open.length > 0) {
        add(
          'rls-disabled-exposed',
          tableObject,
          `row level security is off on ${table.display}, an exposed table, and ${open.join(' and ')} may use it: every row is open to whoever holds the API key`,
          `alter table ${table.display} enable row level security; then add policies — or revoke all on ${table.display} from anon, authenticated`,
        );
      }
      if (policies && policies.length > 0) {
        add(
          'policies-without-rls',
          tableObject,
          `${table.display} has ${policies.length} polic${policies.length === 1 ? 'y' : 'ies'} (${policies.map((p) => p.name).join(', ')}) but row level security is off, so none of them is enforced`,
          `alter table ${table.display} enable row level security;`,
        );
      }
    } else if (policies && policies.length === 0) {
      add(
        'rls-enabled-no-policy',
        tableObject,
        `row level security is on for ${table.display} but it has no policy, so API roles see and change nothing (only the owner and BYPASSRLS roles do)`,
        'fine if intended (a server-only table); otherwise add policies for the API roles',
      );
    }
    if (!policies) continue;

    for (const policy of policies) {
      const f = facts.policies.get(policy);
      if (f) lintPolicy(add, table, policy, f, input);
    }
    if (table.rlsEnabled) lintTablePolicies(add, table, policies, facts, input);
  }

  lintFunctions(add, catalog);
  lintClaims(add, catalog, facts, input);
  lintMatrix(add, input);
  return findings;
}

type Add = (
  lint: LintId,
  object: Pick<Finding, 'objectType' | 'object'>,
  why: string,
  fix: string,
) => void;

function lintPolicy(
  add: Add,
  table: CatalogTable,
  policy: CatalogPolicy,
  f: PolicyFacts,
  input: LintInput,
): void {
  const name = `${policy.name} on ${table.display}`;
  const object = { objectType: 'policy' as const, object: name };
  if (f.readsUserMetadata) {
    const paths = f.claims.filter((c) => c.claim === 'user_metadata').map((c) => c.path);
    add(
      'user-metadata-in-policy',
      object,
      `policy ${name} reads ${paths.length > 0 ? paths.join(', ') : 'raw_user_meta_data'}: users can change their own user_metadata (supabase.auth.updateUser), so anyone can grant themselves what it guards`,
      'decide from app_metadata (only the server writes it), a custom claim from the claim schema, or a table the user cannot write',
    );
  }
  if (f.requestSettings.length > 0) {
    add(
      'request-setting-in-policy',
      object,
      `policy ${name} reads ${f.requestSettings.join(', ')}, which the client controls (HTTP headers, cookies, path): access would follow what the caller claims, not what a verified token says`,
      'decide only from the verified token (auth.jwt(), auth.uid()) and data the client cannot write',
    );
  }
  if (f.perRowCalls.length > 0) {
    add(
      'auth-call-per-row',
      object,
      `policy ${name} calls ${f.perRowCalls.join(', ')} outside a sub-select, so Postgres may evaluate it once per row instead of once per statement`,
      `wrap each call in a sub-select, e.g. (select auth.uid()) and (select auth.jwt()) ->> 'claim'`,
    );
  }
  const writes = policy.command !== 'select';
  const trueUsing = f.using?.constantTrue === true && policy.command !== 'insert';
  const trueCheck = f.withCheck?.constantTrue === true;
  if (policy.permissive && writes && (trueUsing || trueCheck)) {
    const which = [trueUsing ? 'USING (true)' : '', trueCheck ? 'WITH CHECK (true)' : '']
      .filter(Boolean)
      .join(' and ');
    add(
      'permissive-true-write',
      object,
      `policy ${name} allows ${policy.command === 'all' ? 'every command' : policy.command.toUpperCase()} with ${which} for ${policy.roles.join(', ')}: any row, any values`,
      'restrict it to the rows the caller owns or belongs to, e.g. USING (owner_id = (select auth.uid())) WITH CHECK (owner_id = (select auth.uid()))',
    );
  }
  if (policy.roles.includes('public')) {
    add(
      'policy-to-public',
      object,
      `policy ${name} applies TO public, i.e. to every role including anon: it is easy to grant anonymous callers more than intended`,
      `name the roles: create policy … to authenticated (or to anon where that is meant)`,
    );
  }
  if (policy.command === 'update' && policy.withCheck === null) {
    add(
      'update-without-with-check',
      object,
      `UPDATE policy ${name} has no WITH CHECK, so the new row is checked only by USING; the rule for what a row may become stays implicit`,
      'add WITH CHECK stating what an updated row must satisfy (usually the USING condition)',
    );
  }
  const notMinted = [
    ...new Set(
      f.claims.map((c) => c.claim).filter((c) => c !== '*' && !input.mintedClaims.includes(c)),
    ),
  ].sort(compare);
  if (notMinted.length > 0) {
    add(
      'claim-not-minted',
      object,
      `policy ${name} reads ${notMinted.join(', ')}, which the claim schema never mints: for kit tokens the policy sees NULL`,
      'declare the claim in the claim schema (and mint it), or change the policy; ignore for claims only other issuers (Supabase Auth) set',
    );
  }
}

function lintTablePolicies(
  add: Add,
  table: CatalogTable,
  policies: readonly CatalogPolicy[],
  facts: CatalogFacts,
  input: LintInput,
): void {
  const tableObject = { objectType: 'table' as const, object: table.display };
  // Several permissive policies for one role and command: each runs for
  // every row, OR-ed together — slower, and harder to reason about.
  for (const command of COMMANDS) {
    for (const role of CLIENT_ROLES) {
      if (!input.catalog.roles.includes(role)) continue;
      const applicable = policies.filter(
        (p) =>
          p.permissive &&
          (p.command === 'all' || p.command === command) &&
          (p.roles.includes(role) || p.roles.includes('public')),
      );
      if (applicable.length > 1) {
        add(
          'multiple-permissive-policies',
          tableObject,
          `${table.display} has ${applicable.length} permissive policies for ${role} ${command.toUpperCase()} (${applicable.map((p) => p.name).join(', ')}): Postgres evaluates each of them for every row and ORs the results`,
          'merge them into one policy per role and command (conditions joined with OR), or make the extra ones RESTRICTIVE if they must all hold',
        );
      }
    }
  }
  const guard = policies.find((p) => p.name === REVOCATION_GUARD);
  const others = policies.filter((p) => p.name !== REVOCATION_GUARD);
  if (others.length > 0 && !(guard && facts.policies.get(guard)?.isRevocationGuard)) {
    add(
      'missing-revocation-guard',
      tableObject,
      guard
        ? `${table.display} has a policy named ${REVOCATION_GUARD}, but not in the guard's shape (RESTRICTIVE, FOR ALL, TO authenticated, USING ((select rls_kit.is_token_active()))), so revoked tokens may still pass`
        : `${table.display} has policies but not the revocation guard: a revoked token (rls_kit.revoke_token / revoke_subject / revoke_session) keeps its access here until it expires`,
      `select rls_kit.protect('${table.display.replace(/'/g, "''")}');`,
    );
  }
  // Policy filters on columns no index leads with, on large tables.
  if (table.rowEstimate >= input.largeTableRows) {
    const byColumn = new Map<string, string[]>();
    for (const p of policies) {
      for (const column of facts.policies.get(p)?.columns ?? []) {
        const col = table.columns.find((c) => c.name === column);
        if (!col || col.leadsIndex) continue;
        byColumn.set(column, [...(byColumn.get(column) ?? []), p.name]);
      }
    }
    for (const [column, names] of [...byColumn].sort(([a], [b]) => compare(a, b))) {
      add(
        'unindexed-policy-column',
        { objectType: 'table', object: `${table.display}.${column}` },
        `policies ${names.join(', ')} filter ${table.display} (about ${Math.round(table.rowEstimate)} rows) on ${column}, which no index starts with: every query scans the table`,
        `create index on ${table.display} (${column});`,
      );
    }
  }
}

function lintFunctions(add: Add, catalog: Catalog): void {
  const calledByPolicy = new Set<number>();
  for (const table of catalog.tables) {
    for (const p of table.policies ?? []) for (const oid of p.functionOids) calledByPolicy.add(oid);
  }
  const list = [...catalog.functions.values()].sort((a, b) => compare(a.signature, b.signature));
  for (const fn of list) {
    if (fn.extension || STANDARD_CLAIM_FUNCTIONS.has(fn.signature)) continue;
    const inScope = fn.exposed || calledByPolicy.has(fn.oid);
    if (!inScope) continue;
    const object = { objectType: 'function' as const, object: fn.signature };
    if (fn.searchPath === null && !['internal', 'c'].includes(fn.language)) {
      add(
        'function-search-path-mutable',
        object,
        `${fn.signature} ${describeScope(fn, calledByPolicy)} does not fix search_path, so what its unqualified names resolve to depends on the caller's${fn.securityDefiner ? " — and it is SECURITY DEFINER: a caller can shadow a name and run code with its owner's rights" : ''}`,
        `alter function ${fn.signature} set search_path = ''; and qualify every name in its body`,
      );
    }
    // The planner may fold an IMMUTABLE call into a constant while planning;
    // a generic plan cached for a prepared statement then replays the first
    // request's claims to every later request on that connection.
    if (fn.volatility === 'immutable' && fn.readsRequest) {
      add(
        'immutable-reads-request',
        object,
        `${fn.signature} ${describeScope(fn, calledByPolicy)} is IMMUTABLE yet reads the request (current_setting, request.jwt or auth.jwt/uid/role/email): Postgres may evaluate it once at planning time, so a cached generic plan (prepared statements, which PostgREST and queryAsUser use by default) keeps one request's claims for later requests — a cross-tenant leak`,
        `alter function ${fn.signature} stable;`,
      );
    }
    // Exposed functions only (as Supabase's advisor does): anon reaches them
    // directly as /rpc. A definer function that only policies call (the kit's
    // rls_kit.is_token_active()) runs where the policy's author put it.
    if (fn.securityDefiner && fn.exposed && fn.executableBy.includes('anon')) {
      add(
        'security-definer-anon',
        object,
        `${fn.signature} runs with its owner's rights (SECURITY DEFINER) and anon may execute it through the Data API (/rpc): anyone with the anon key gets whatever it does, past row level security`,
        `revoke execute on function ${fn.signature} from public, anon; (grant it to authenticated only if meant), or make it SECURITY INVOKER`,
      );
    }
  }
}

function describeScope(fn: CatalogFunction, calledByPolicy: Set<number>): string {
  if (fn.exposed && calledByPolicy.has(fn.oid)) return '(exposed, and called by policies)';
  return fn.exposed ? '(in an exposed schema)' : '(called by policies)';
}

function lintClaims(add: Add, catalog: Catalog, facts: CatalogFacts, input: LintInput): void {
  if (!catalog.complete.policies) return;
  const read = new Set<string>();
  for (const f of facts.policies.values()) for (const c of f.claims) read.add(c.claim);
  const wholeToken = read.has('*');
  for (const claim of [...input.customClaims].sort(compare)) {
    if (read.has(claim)) continue;
    add(
      'claim-never-read',
      { objectType: 'claim', object: claim },
      `the claim schema mints ${claim}, but no policy in ${catalog.schemas.join(', ')} reads it${wholeToken ? ' (some policy passes the whole token to a function the review cannot see into)' : ''}: it only makes tokens bigger`,
      'drop it from the claim schema, or use it where it was meant to be used',
    );
  }
}

function lintMatrix(add: Add, input: LintInput): void {
  const roleOf = new Map(input.personas.map((p) => [p.name, String(p.claims.role)] as const));
  for (const row of input.matrix) {
    // service_role bypasses row level security by design: it is the server.
    if (roleOf.get(row.persona) === 'service_role') continue;
    const what: string[] = [];
    if ((row.select.otherTenantRows ?? 0) > 0) {
      what.push(`sees ${row.select.otherTenantRows} row(s) of another tenant`);
    }
    if (row.insert.crossTenant === 'allowed') what.push('inserts rows into another tenant');
    if (row.update.crossTenant === 'allowed')
      what.push("updates another tenant's rows (or moves its rows there)");
    if (row.delete.crossTenant === 'allowed') what.push("deletes another tenant's rows");
    if (what.length === 0) continue;
    add(
      'cross-tenant-access',
      { objectType: 'table', object: row.table },
      `persona ${row.persona} ${what.join(', ')} of ${row.table} (${input.tenantColumn} ≠ its ${input.tenantClaim} claim)`,
      `make every policy of ${row.table} compare ${input.tenantColumn} with the token's ${input.tenantClaim} claim, in USING and in WITH CHECK, e.g. ${input.tenantColumn} = ((select auth.jwt()) ->> '${input.tenantClaim}')::uuid`,
    );
  }
}
