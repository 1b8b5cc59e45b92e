import { RlsKitError } from '../errors.js';
import type { ClaimSchema } from '../tokens/claim-schema.js';
import { exampleClaimSchema } from '../tokens/example-claims.js';
import { analyzeCatalog, type CatalogFacts } from './analyze-catalog.js';
import { derivePersonas } from './derive-personas.js';
import { lintReview } from './lint.js';
import { loadPersonasFile } from './load-personas.js';
import { type Persona, STANDARD_CLAIMS } from './persona.js';
import { DEFAULT_OWNER_COLUMNS, probeMatrix } from './probe-matrix.js';
import { type Catalog, readCatalog } from './read-catalog.js';
import { openReviewSession, type ReviewSession } from './review-session.js';
import type {
  Finding,
  FindingLevel,
  FunctionReport,
  MatrixRow,
  PersonaReport,
  ReviewReport,
  TableReport,
} from './types.js';
import { compare } from './util.js';

/**
 * Options of {@link reviewDatabase}.
 *
 * @example
 * ```ts
 * const options: ReviewOptions = { url, schemas: ['public'], personasFile: 'personas.yaml', lockTimeoutMs: 500 };
 * ```
 */
export interface ReviewOptions {
  /** Connection string of the database to review (any login that can read the catalogs). */
  readonly url: string;
  /** Schemas to review; default: Supabase's `pgrst.db_schemas`, else `public`. */
  readonly schemas?: readonly string[] | undefined;
  /** Personas to probe; default: {@link ReviewOptions.personasFile}, else derived. */
  readonly personas?: readonly Persona[] | undefined;
  /** A JSON or YAML file of persona name → claims. */
  readonly personasFile?: string | undefined;
  /** The claim schema tokens are minted with; default: the example's (`org_id`, `user_role`). */
  readonly claimSchema?: ClaimSchema | undefined;
  /** Column naming a row's tenant; default `org_id`. */
  readonly tenantColumn?: string | undefined;
  /** Claim naming the persona's tenant; default `org_id`. */
  readonly tenantClaim?: string | undefined;
  /** Columns the INSERT probe fills with the persona's `sub`; default owner_id, user_id, created_by, author_id. */
  readonly ownerColumns?: readonly string[] | undefined;
  /** Probe the persona matrix; default true. */
  readonly matrix?: boolean | undefined;
  /** `lock_timeout` of every statement; default 1000 ms. */
  readonly lockTimeoutMs?: number | undefined;
  /** `statement_timeout` of every statement; default 10,000 ms. */
  readonly statementTimeoutMs?: number | undefined;
  /** SELECT probes count visible rows up to this many; default 10,000. */
  readonly rowCap?: number | undefined;
  /** Tables with at least this many estimated rows are "large" for the index lint; default 10,000. */
  readonly largeTableRows?: number | undefined;
}

const LEVEL_RANK: Readonly<Record<FindingLevel, number>> = { error: 0, warn: 1, info: 2 };

/**
 * Reviews the row level security of a database: reads the catalog, parses
 * every policy for the JWT claims it trusts, probes what each persona can
 * do to each table, and lints the lot. Never leaves a change behind: every
 * statement runs in a transaction that is rolled back (catalog reading in a
 * read-only one), under `lock_timeout` and `statement_timeout`; only
 * sequences may advance (INSERT probes draw default ids).
 *
 * Problems on the way — a catalog the login may not read, a table another
 * session has locked, a policy that fails for a persona, a broken personas
 * file — become findings against that object; the review goes on. It throws
 * only when the database cannot be reached at all (`ERR_DB_UNREACHABLE`) or
 * the connection fails mid-way (`ERR_DB_QUERY`).
 *
 * @example
 * ```ts
 * const report = await reviewDatabase({ url: process.env.DATABASE_URL!, personasFile: 'personas.yaml' });
 * process.stdout.write(renderText(report, { color: false }));
 * ```
 */
export async function reviewDatabase(options: ReviewOptions): Promise<ReviewReport> {
  const started = Date.now();
  const lockTimeoutMs = options.lockTimeoutMs ?? 1000;
  const statementTimeoutMs = options.statementTimeoutMs ?? 10_000;
  const tenantColumn = options.tenantColumn ?? 'org_id';
  const tenantClaim = options.tenantClaim ?? 'org_id';
  const claimSchema = options.claimSchema ?? exampleClaimSchema;
  const mintedClaims = [...new Set([...STANDARD_CLAIMS, ...claimSchema.names])].sort(compare);
  const session = await openReviewSession({ url: options.url });
  try {
    // 1. The catalog, in a read-only snapshot. search_path = pg_catalog makes
    //    pg_get_expr qualify every name, so expressions read the same
    //    whatever the login's own search_path is.
    await session.query('begin isolation level repeatable read read only');
    await applyTimeouts(session, lockTimeoutMs, statementTimeoutMs);
    await session.query(`select set_config('search_path', 'pg_catalog', true)`);
    const catalog = await readCatalog(session, { schemas: options.schemas });
    await session.query('rollback');
    const facts = await analyzeCatalog(catalog);
    const problems: Finding[] = [...catalog.problems];

    // 2. Personas and the matrix, in a transaction that is always rolled back.
    let personas: Persona[] = [];
    let personasFrom: ReviewReport['settings']['personasFrom'] = 'none';
    let matrix: MatrixRow[] = [];
    const probe = options.matrix ?? true;
    if (options.personas) {
      personas = [...options.personas];
      personasFrom = 'given';
    } else if (options.personasFile !== undefined) {
      const loaded = await loadPersonasFile(options.personasFile, { mintedClaims });
      problems.push(...loaded.problems);
      if (loaded.personas) {
        personas = loaded.personas;
        personasFrom = 'file';
      }
    }
    if (probe) {
      await session.query('begin');
      try {
        await applyTimeouts(session, lockTimeoutMs, statementTimeoutMs);
        // Functions without a fixed search_path resolve names as they would
        // for a Data API request: the exposed schemas.
        await session.query(
          `select set_config('search_path',
                  coalesce((select string_agg(quote_ident(s), ', ') from unnest($1::text[]) as s), ''), true)`,
          [catalog.schemas],
        );
        if (personasFrom === 'none') {
          personas = await derivePersonas(session, catalog, {
            claimSchema,
            tenantClaim,
            tenantColumn,
          });
          personasFrom = 'derived';
        }
        const result = await probeMatrix(session, catalog, personas.map(asLiveToken), {
          tenantColumn,
          tenantClaim,
          ownerColumns: options.ownerColumns ?? DEFAULT_OWNER_COLUMNS,
          rowCap: options.rowCap,
          lockTimeoutMs,
        });
        matrix = result.rows;
        problems.push(...result.problems);
      } finally {
        await session.query('rollback').catch(() => undefined);
      }
    }

    const findings = [
      ...problems,
      ...lintReview({
        catalog,
        facts,
        matrix,
        personas,
        mintedClaims,
        customClaims: claimSchema.names,
        tenantColumn,
        tenantClaim,
        largeTableRows: options.largeTableRows ?? 10_000,
      }),
    ].sort(
      (a, b) =>
        LEVEL_RANK[a.level] - LEVEL_RANK[b.level] ||
        compare(a.lint, b.lint) ||
        compare(a.object, b.object) ||
        compare(a.why, b.why),
    );
    return buildReport({
      catalog,
      facts,
      personas,
      personasFrom,
      matrix,
      findings,
      mintedClaims,
      tenantColumn,
      tenantClaim,
      ownerColumns: options.ownerColumns ?? DEFAULT_OWNER_COLUMNS,
      probed: probe,
      started,
    });
  } catch (err) {
    if (err instanceof RlsKitError) throw err;
    throw new RlsKitError(
      'ERR_DB_QUERY',
      `the review failed: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`,
      { cause: err },
    );
  } finally {
    await session.close();
  }
}

async function applyTimeouts(
  session: ReviewSession,
  lockTimeoutMs: number,
  statementTimeoutMs: number,
): Promise<void> {
  await session.query(
    `select set_config('lock_timeout', $1, true), set_config('statement_timeout', $2, true)`,
    [
      `${Math.max(1, Math.round(lockTimeoutMs))}ms`,
      `${Math.max(1, Math.round(statementTimeoutMs))}ms`,
    ],
  );
}

function buildReport(input: {
  catalog: Catalog;
  facts: CatalogFacts;
  personas: readonly Persona[];
  personasFrom: ReviewReport['settings']['personasFrom'];
  matrix: MatrixRow[];
  findings: Finding[];
  mintedClaims: readonly string[];
  tenantColumn: string;
  tenantClaim: string;
  ownerColumns: readonly string[];
  probed: boolean;
  started: number;
}): ReviewReport {
  const { catalog, facts } = input;
  const tables: TableReport[] = catalog.tables.map((t) => {
    const policies = (t.policies ?? []).map((p) => {
      const f = facts.policies.get(p);
      return {
        name: p.name,
        mode: p.permissive ? ('permissive' as const) : ('restrictive' as const),
        command: p.command,
        roles: p.roles,
        using: p.using,
        withCheck: p.withCheck,
        claims: f?.claims ?? [],
        functions: f?.functions ?? [],
      };
    });
    const claims = [...new Set(policies.flatMap((p) => p.claims.map((c) => c.claim)))].sort(
      compare,
    );
    const tenant = t.columns.find((c) => c.name === input.tenantColumn);
    const owner = input.ownerColumns.find((n) =>
      t.columns.some((c) => c.name === n && n !== input.tenantColumn),
    );
    return {
      name: t.display,
      schema: t.schema,
      table: t.name,
      owner: t.owner,
      rls: { enabled: t.rlsEnabled, forced: t.rlsForced },
      grants: t.grants,
      tenantColumn: tenant ? tenant.name : null,
      ownerColumn: owner ?? null,
      policies,
      claims,
      revocationGuard: (t.policies ?? []).some((p) => facts.policies.get(p)?.isRevocationGuard),
    };
  });
  const calledBy = new Map<number, string[]>();
  for (const t of catalog.tables) {
    for (const p of t.policies ?? []) {
      for (const oid of p.functionOids) {
        calledBy.set(oid, [...(calledBy.get(oid) ?? []), `${p.name} on ${t.display}`]);
      }
    }
  }
  const functions: FunctionReport[] = [...catalog.functions.values()]
    .filter((f) => !f.extension || calledBy.has(f.oid))
    .map((f) => ({
      name: f.signature,
      schema: f.schema,
      language: f.language,
      securityDefiner: f.securityDefiner,
      searchPath: f.searchPath,
      executableBy: f.executableBy,
      exposed: f.exposed,
      calledBy: [...new Set(calledBy.get(f.oid) ?? [])].sort(compare),
      claims: (facts.functions.get(f.oid)?.claims ?? [])
        .map((c) => ({ claim: c.claim, path: c.path, via: c.via }))
        .sort((a, b) => compare(a.path, b.path) || compare(a.via, b.via)),
    }))
    .sort((a, b) => compare(a.name, b.name));
  const personas: PersonaReport[] = input.personas.map((p) => {
    const claims: Record<string, unknown> = {};
    for (const key of Object.keys(p.claims).sort(compare)) {
      // Derived tokens are issued "now": leave the clock out of the stable report.
      if (p.source === 'derived' && (key === 'iat' || key === 'exp')) continue;
      claims[key] = p.claims[key];
    }
    return {
      name: p.name,
      source: p.source,
      role: String(p.claims.role),
      claims,
      ...(p.description ? { description: p.description } : {}),
    };
  });
  const count = (level: FindingLevel) => input.findings.filter((f) => f.level === level).length;
  const rowEstimates: Record<string, number> = {};
  for (const t of catalog.tables) rowEstimates[t.display] = Math.max(0, Math.round(t.rowEstimate));
  return {
    format: 'supabase-rls-kit/review',
    version: 1,
    settings: {
      schemas: catalog.schemas,
      schemasFrom: catalog.schemasFrom,
      tenantColumn: input.tenantColumn,
      tenantClaim: input.tenantClaim,
      mintedClaims: input.mintedClaims,
      matrix: input.probed,
      personasFrom: input.personasFrom,
    },
    summary: {
      tables: tables.length,
      rlsEnabled: tables.filter((t) => t.rls.enabled).length,
      policies: tables.reduce((n, t) => n + t.policies.length, 0),
      functions: functions.length,
      personas: personas.length,
      findings: { error: count('error'), warn: count('warn'), info: count('info') },
    },
    tables,
    functions,
    personas,
    matrix: input.matrix,
    findings: input.findings,
    volatile: {
      generatedAt: new Date(input.started).toISOString(),
      durationMs: Date.now() - input.started,
      serverVersion: catalog.serverVersion,
      database: catalog.database,
      reviewer: catalog.reviewer,
      rowEstimates,
    },
  };
}

/**
 * A persona stands for a live token: one written without `iat`/`exp` (as in
 * most personas files) gets "issued a second ago, valid 10 minutes", so the
 * revocation guard (`rls_kit.is_token_active`, which treats a token without
 * `iat` as dead) judges it like the token it describes. Given values stay.
 */
function asLiveToken(p: Persona): Persona {
  if (p.claims.iat !== undefined && p.claims.exp !== undefined) return p;
  const now = Math.floor(Date.now() / 1000);
  return { ...p, claims: { iat: now - 1, exp: now + 600, ...p.claims } };
}
