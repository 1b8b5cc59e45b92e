import { readFile } from 'node:fs/promises';
import { parse as parseYaml } from 'yaml';
import { RlsKitError } from '../errors.js';
import { type ClaimSchema, defineClaimSchema } from './claim-schema.js';

/**
 * Reads a claim schema file (JSON or YAML: claim name → definition) and
 * checks it with {@link defineClaimSchema}. Every failure is one
 * `ERR_CONFIG`-style line that names the file.
 *
 * @example
 * ```ts
 * const schema = await loadClaimSchemaFile('claims.yaml');
 * ```
 */
export async function loadClaimSchemaFile(path: string): Promise<ClaimSchema> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'unknown error';
    throw new RlsKitError(
      'ERR_CONFIG',
      `the claim schema file ${path} cannot be read (${code === 'ENOENT' ? 'it does not exist' : code})`,
      { cause: err },
    );
  }
  let value: unknown;
  try {
    // YAML is a superset of JSON: one parser reads both.
    value = parseYaml(text, { maxAliasCount: 0 });
  } catch (err) {
    throw new RlsKitError('ERR_CONFIG', `the claim schema file ${path} is neither JSON nor YAML`, {
      cause: err,
    });
  }
  try {
    return defineClaimSchema(value as Record<string, never>);
  } catch (err) {
    if (err instanceof RlsKitError) {
      throw new RlsKitError(err.code, `${path}: ${err.message}`, { cause: err });
    }
    throw err;
  }
}
