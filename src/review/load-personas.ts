import { readFile } from 'node:fs/promises';
import { parse as parseYaml } from 'yaml';
import { PERSONA_ROLES, type Persona } from './persona.js';
import type { Finding } from './types.js';

/**
 * What {@link loadPersonasFile} read: the personas (undefined when the file
 * as a whole is unusable) and what was wrong, as findings.
 *
 * @example
 * ```ts
 * const loaded: LoadedPersonas = { personas: [], problems: [] };
 * ```
 */
export interface LoadedPersonas {
  readonly personas: Persona[] | undefined;
  readonly problems: Finding[];
}

/**
 * Reads a personas file, JSON or YAML: a mapping of persona name → claims.
 * The `role` claim defaults to `authenticated` when `sub` is present, else
 * `anon`; it must be `anon`, `authenticated` or `service_role`.
 *
 * Nothing here throws for bad content: an unreadable file or invalid
 * JSON/YAML yields `personas: undefined` and an ERROR finding (the caller
 * falls back to derived personas); a malformed entry is skipped with a WARN;
 * a claim the claim schema never mints (usually a typo such as `org_idd`) is
 * kept and reported as a WARN.
 *
 * ```yaml
 * member:
 *   role: authenticated
 *   sub: b0000000-0000-4000-8000-000000000003
 *   org_id: a0000000-0000-4000-8000-000000000001
 *   user_role: member
 * anon:
 *   role: anon
 * ```
 *
 * @example
 * ```ts
 * const { personas, problems } = await loadPersonasFile('personas.yaml', { mintedClaims });
 * ```
 */
export async function loadPersonasFile(
  path: string,
  options: { readonly mintedClaims: readonly string[] },
): Promise<LoadedPersonas> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'unknown error';
    return fileProblem(
      path,
      `cannot be read (${code === 'ENOENT' ? 'it does not exist' : code})`,
      'check the path given to --personas',
    );
  }
  return parsePersonas(text, { ...options, source: path });
}

/**
 * {@link loadPersonasFile} for text already in memory.
 *
 * @example
 * ```ts
 * const { personas } = parsePersonas('anon: { role: anon }', { mintedClaims: ['role'], source: 'inline' });
 * ```
 */
export function parsePersonas(
  text: string,
  options: { readonly mintedClaims: readonly string[]; readonly source: string },
): LoadedPersonas {
  const { source } = options;
  let value: unknown;
  try {
    // YAML is a superset of JSON: one parser reads both. Aliases are refused
    // (a "billion laughs" file would otherwise expand without bound).
    value = parseYaml(text, { maxAliasCount: 0, uniqueKeys: true });
  } catch (err) {
    const message = err instanceof Error ? (err.message.split('\n')[0] ?? '') : String(err);
    return fileProblem(
      source,
      `is neither valid JSON nor valid YAML (${message})`,
      'fix the syntax; the file maps persona names to claims, e.g. "member: {role: authenticated, sub: <uuid>, org_id: <uuid>}"',
    );
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return fileProblem(
      source,
      'must be a mapping of persona name → claims',
      'write one entry per persona, e.g. "member: {role: authenticated, sub: <uuid>, org_id: <uuid>}"',
    );
  }
  const minted = new Set(options.mintedClaims);
  const personas: Persona[] = [];
  const problems: Finding[] = [];
  for (const [name, raw] of Object.entries(value as Record<string, unknown>)) {
    const object = `${name} (${source})`;
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
      problems.push({
        level: 'warn',
        lint: 'review-persona-invalid',
        objectType: 'persona',
        object,
        why: `persona ${JSON.stringify(name)} is not a mapping of claims, so it was skipped`,
        fix: `write its claims as a mapping, e.g. "${name}: {role: authenticated, sub: <uuid>}"`,
      });
      continue;
    }
    const claims: Record<string, unknown> = { ...(raw as Record<string, unknown>) };
    claims.role ??= typeof claims.sub === 'string' ? 'authenticated' : 'anon';
    if (typeof claims.role !== 'string' || !PERSONA_ROLES.has(claims.role)) {
      problems.push({
        level: 'warn',
        lint: 'review-persona-invalid',
        objectType: 'persona',
        object,
        why: `persona ${JSON.stringify(name)} has role ${JSON.stringify(claims.role)}; the review runs personas only as anon, authenticated or service_role, so it was skipped`,
        fix: 'set its role claim to anon, authenticated or service_role',
      });
      continue;
    }
    const unknown = Object.keys(claims)
      .filter((k) => !minted.has(k))
      .sort();
    if (unknown.length > 0) {
      problems.push({
        level: 'warn',
        lint: 'review-persona-unknown-claim',
        objectType: 'persona',
        object,
        why: `persona ${JSON.stringify(name)} carries ${unknown.map((k) => JSON.stringify(k)).join(', ')}, which tokens never carry (not a standard claim and not in the claim schema): a typo? It was probed as written`,
        fix: `rename or remove ${unknown.length === 1 ? 'it' : 'them'}, or declare the claim in the claim schema (--claim-schema)`,
      });
    }
    personas.push({ name, source: 'file', claims });
  }
  if (personas.length === 0 && problems.length === 0) {
    return fileProblem(source, 'lists no personas', 'add at least one persona');
  }
  return { personas, problems };
}

function fileProblem(source: string, what: string, fix: string): LoadedPersonas {
  return {
    personas: undefined,
    problems: [
      {
        level: 'error',
        lint: 'review-personas-invalid',
        objectType: 'personas-file',
        object: source,
        why: `the personas file ${what}; the matrix was probed with personas derived from the claim schema instead`,
        fix,
      },
    ],
  };
}
