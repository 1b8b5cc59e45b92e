/**
 * The report of `rls-kit review` and {@link reviewDatabase}: its JSON form is
 * the documented, stable schema (docs/review.md). Everything outside
 * `volatile` is deterministic for a given database state: arrays are sorted,
 * no timestamps, oids or random ids — so reports diff and snapshot cleanly.
 *
 * @example
 * ```ts
 * const report: ReviewReport = await reviewDatabase({ url });
 * const errors = report.findings.filter((f) => f.level === 'error');
 * ```
 */
export interface ReviewReport {
  /** Always `supabase-rls-kit/review`. */
  readonly format: 'supabase-rls-kit/review';
  /** Schema version of this JSON; bumped on incompatible changes. */
  readonly version: 1;
  readonly settings: ReviewSettings;
  readonly summary: ReviewSummary;
  /** Tables of the exposed schemas, by schema then name. */
  readonly tables: readonly TableReport[];
  /** Functions in the exposed schemas and those policies call, by schema, name, arguments. */
  readonly functions: readonly FunctionReport[];
  /** Personas of the access matrix, in the order they were given or derived. */
  readonly personas: readonly PersonaReport[];
  /** One row per table × persona, tables in `tables` order, personas in `personas` order. */
  readonly matrix: readonly MatrixRow[];
  /** Findings by level (error, warn, info), then lint id, object and text. */
  readonly findings: readonly Finding[];
  /** Values that change from run to run; leave them out of snapshots and diffs. */
  readonly volatile: ReviewVolatile;
}

/**
 * What the review looked at and how.
 *
 * @example
 * ```ts
 * const schemas = report.settings.schemas; // ['public']
 * ```
 */
export interface ReviewSettings {
  /** The exposed schemas reviewed, sorted. */
  readonly schemas: readonly string[];
  /** Where they came from: `option` (`--schema`), `pgrst.db_schemas` (Supabase), or `default` (`public`). */
  readonly schemasFrom: 'option' | 'pgrst.db_schemas' | 'default';
  /** Column that names a row's tenant (`org_id` by default). */
  readonly tenantColumn: string;
  /** Claim that names the persona's tenant (`org_id` by default). */
  readonly tenantClaim: string;
  /** Claims tokens carry: the kit's standard claims and the claim schema's, sorted. */
  readonly mintedClaims: readonly string[];
  /** Whether the persona matrix was probed. */
  readonly matrix: boolean;
  /** Where the personas came from. */
  readonly personasFrom: 'file' | 'derived' | 'given' | 'none';
}

/**
 * Counts for the report's first lines.
 *
 * @example
 * ```ts
 * if (report.summary.findings.error > 0) process.exitCode = 1;
 * ```
 */
export interface ReviewSummary {
  readonly tables: number;
  /** Tables with row level security enabled. */
  readonly rlsEnabled: number;
  readonly policies: number;
  readonly functions: number;
  readonly personas: number;
  readonly findings: { readonly error: number; readonly warn: number; readonly info: number };
}

/**
 * The API roles whose grants the review reports.
 *
 * @example
 * ```ts
 * const role: ApiRole = 'authenticated';
 * ```
 */
export type ApiRole = 'anon' | 'authenticated' | 'service_role';

/**
 * The four commands of a policy and of the matrix.
 *
 * @example
 * ```ts
 * const command: TableCommand = 'update';
 * ```
 */
export type TableCommand = 'select' | 'insert' | 'update' | 'delete';

/**
 * Table privileges of one role, per command (column grants count for select/insert/update).
 *
 * @example
 * ```ts
 * report.tables[0]?.grants.anon?.select; // false
 * ```
 */
export type CommandGrants = { readonly [C in TableCommand]: boolean };

/**
 * One table of an exposed schema.
 *
 * @example
 * ```ts
 * const open = report.tables.filter((t) => !t.rls.enabled);
 * ```
 */
export interface TableReport {
  /** `schema.table`, quoted where Postgres would quote it. */
  readonly name: string;
  readonly schema: string;
  readonly table: string;
  readonly owner: string;
  readonly rls: { readonly enabled: boolean; readonly forced: boolean };
  /** Grants of the API roles that exist in the database. */
  readonly grants: Readonly<Partial<Record<ApiRole, CommandGrants>>>;
  /** The tenant column when the table has it, else null. */
  readonly tenantColumn: string | null;
  /** The column the INSERT probe fills with the persona's `sub`, else null. */
  readonly ownerColumn: string | null;
  /** Policies by name. */
  readonly policies: readonly PolicyReport[];
  /** Claims the table's policies read (top-level names, sorted). */
  readonly claims: readonly string[];
  /** True when the revocation guard (`rls_kit.protect`) is in place. */
  readonly revocationGuard: boolean;
}

/**
 * One policy.
 *
 * @example
 * ```ts
 * const readsOrg = (p: PolicyReport) => p.claims.some((c) => c.claim === 'org_id');
 * ```
 */
export interface PolicyReport {
  readonly name: string;
  readonly mode: 'permissive' | 'restrictive';
  readonly command: 'all' | TableCommand;
  /** Role names, sorted; `public` for `TO public`. */
  readonly roles: readonly string[];
  /** `USING` as SQL (`pg_get_expr`), or null. */
  readonly using: string | null;
  /** `WITH CHECK` as SQL, or null. */
  readonly withCheck: string | null;
  /** Claims read by the policy and, one level deep, by the SQL functions it calls. */
  readonly claims: readonly ClaimUse[];
  /** Functions the policy calls (`schema.name(argument types)`), sorted. */
  readonly functions: readonly string[];
}

/**
 * A claim a policy or function reads, and how.
 *
 * @example
 * ```ts
 * const use: ClaimUse = { claim: 'org_id', path: 'org_id', via: 'auth.jwt()' };
 * ```
 */
export interface ClaimUse {
  /** Top-level claim name; `*` when the whole token is handed to something. */
  readonly claim: string;
  /** Dot-separated path (`app_metadata.tenant`). */
  readonly path: string;
  /** `auth.jwt()`, `auth.uid()`, `current_setting('request.jwt.claims')`, … */
  readonly via: string;
  /** The SQL helper function the read happens in, when not in the policy itself. */
  readonly in?: string;
}

/**
 * A function in an exposed schema or called by a policy.
 *
 * @example
 * ```ts
 * const definers = report.functions.filter((f) => f.securityDefiner);
 * ```
 */
export interface FunctionReport {
  /** `schema.name(argument types)`. */
  readonly name: string;
  readonly schema: string;
  readonly language: string;
  readonly securityDefiner: boolean;
  /** The fixed `search_path` (`SET search_path = …`), or null when it is mutable. */
  readonly searchPath: string | null;
  /** API roles (and `public`) that may execute it, sorted. */
  readonly executableBy: readonly string[];
  /** True when it sits in an exposed schema (callable through the Data API's RPC). */
  readonly exposed: boolean;
  /** Policies calling it (`policy on schema.table`), sorted. */
  readonly calledBy: readonly string[];
  /** Claims a SQL function reads (empty for other languages). */
  readonly claims: readonly ClaimUse[];
}

/**
 * A persona of the access matrix.
 *
 * @example
 * ```ts
 * report.personas.map((p) => p.name); // ['anon', 'owner', 'admin', 'member', 'viewer']
 * ```
 */
export interface PersonaReport {
  readonly name: string;
  /** `file` (personas file), `derived` (from the claim schema and data), `given` (API caller). */
  readonly source: 'file' | 'derived' | 'given';
  /** The Postgres role the probes run as (the `role` claim). */
  readonly role: string;
  /** The claims, sorted by name; `iat`/`exp` of derived personas are left out (time-dependent). */
  readonly claims: Readonly<Record<string, unknown>>;
  /** Why this persona exists (derived ones). */
  readonly description?: string;
}

/**
 * Outcome of one probe:
 * - `allowed`: rows were visible (select) or the probe row was written;
 * - `no-rows`: the statement ran but policies filtered every row;
 * - `denied`: the role lacks the privilege, or a policy rejected the row;
 * - `constraint`: the policies let the row through but a constraint
 *   (unique, not null, foreign key, check) rejected it;
 * - `error`: evaluating the statement failed (e.g. a policy casting a claim);
 * - `timeout`: `lock_timeout` or `statement_timeout` hit;
 * - `untested`: nothing to probe (an empty table for update/delete, a
 *   persona that could not be set up).
 *
 * @example
 * ```ts
 * const denied = report.matrix.filter((m) => m.insert.outcome === 'denied');
 * ```
 */
export type ProbeOutcome =
  | 'allowed'
  | 'no-rows'
  | 'denied'
  | 'constraint'
  | 'error'
  | 'timeout'
  | 'untested';

/**
 * One cell of the matrix: a persona and a command on a table.
 *
 * @example
 * ```ts
 * const cell: MatrixCell = { outcome: 'allowed', rows: 36, otherTenantRows: 0 };
 * ```
 */
export interface MatrixCell {
  readonly outcome: ProbeOutcome;
  /** select: rows visible (counted up to the probe cap). */
  readonly rows?: number;
  /** select: visible rows of another tenant. */
  readonly otherTenantRows?: number;
  /**
   * Writes: the persona wrote another tenant's row (`allowed`), or every
   * cross-tenant attempt failed (`blocked`). Absent when not probed.
   */
  readonly crossTenant?: 'allowed' | 'blocked';
  /** Why: `no privilege`, `policy`, the SQLSTATE and message of an error or constraint. */
  readonly detail?: string;
}

/**
 * The matrix row of one table and one persona.
 *
 * @example
 * ```ts
 * const row = report.matrix.find((m) => m.table === 'public.documents' && m.persona === 'viewer');
 * ```
 */
export interface MatrixRow {
  readonly table: string;
  readonly persona: string;
  readonly select: MatrixCell;
  readonly insert: MatrixCell;
  readonly update: MatrixCell;
  readonly delete: MatrixCell;
}

/**
 * Severity of a finding; `--fail-on` compares against it.
 *
 * @example
 * ```ts
 * const level: FindingLevel = 'warn';
 * ```
 */
export type FindingLevel = 'info' | 'warn' | 'error';

/**
 * What a finding is about.
 *
 * @example
 * ```ts
 * report.findings.filter((f) => f.objectType === 'policy');
 * ```
 */
export type FindingObjectType =
  | 'table'
  | 'policy'
  | 'function'
  | 'claim'
  | 'persona'
  | 'catalog'
  | 'personas-file'
  | 'database';

/**
 * One lint result.
 *
 * @example
 * ```ts
 * for (const f of report.findings) console.log(`${f.level} ${f.lint} ${f.object}: ${f.fix}`);
 * ```
 */
export interface Finding {
  readonly level: FindingLevel;
  /** Stable lint id (docs/review.md lists them all). */
  readonly lint: string;
  readonly objectType: FindingObjectType;
  /** The object: `public.documents`, `documents_select on public.documents`, `public.f(uuid)`, … */
  readonly object: string;
  /** Why it matters, with the specifics. */
  readonly why: string;
  /** How to fix it. */
  readonly fix: string;
}

/**
 * Run-dependent facts, excluded from the stable part of the report.
 *
 * @example
 * ```ts
 * console.error(`reviewed in ${report.volatile.durationMs} ms`);
 * ```
 */
export interface ReviewVolatile {
  /** ISO time the review started. */
  readonly generatedAt: string;
  readonly durationMs: number;
  /** `server_version` of the database. */
  readonly serverVersion: string;
  readonly database: string;
  /** The login the review ran as. */
  readonly reviewer: string;
  /** Planner row estimates (`pg_class.reltuples`) by table. */
  readonly rowEstimates: Readonly<Record<string, number>>;
}
