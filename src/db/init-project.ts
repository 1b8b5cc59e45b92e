import { constants } from 'node:fs';
import { copyFile, mkdir, readdir } from 'node:fs/promises';
import path from 'node:path';
import { RlsKitError } from '../errors.js';
import { cliMigrationParts, KIT_MIGRATIONS_DIR, listMigrationFiles } from './migration-files.js';

export interface InitProjectOptions {
  /** The project's migrations folder; created when missing. Default `supabase/migrations`. */
  dir?: string;
  /** The clock for the new timestamps (tests pin it). Default: now. */
  now?: Date;
  /** Where the kit's migrations are read from. Default: the kit's own `migrations/`. */
  source?: string;
}

export interface InitProjectResult {
  /** Kit migrations copied, in order: the kit file and the new file in `dir`. */
  copied: { from: string; to: string }[];
  /** Files already in `dir` that hold a kit migration (same `<name>`), so it was not copied again. */
  skipped: string[];
}

/**
 * Copies the kit's migrations into a Supabase project's migrations folder,
 * under fresh timestamps (14 digits, UTC, one second apart) that sort after
 * every migration already there — so `supabase migration up` / `db push`
 * applies them after the project's own history instead of refusing them as
 * out of order. A kit migration whose `<name>` (the part after the version,
 * e.g. `rls_kit_core`) is already in the folder is skipped, whatever its
 * version, so running `init` twice copies nothing the second time. Never
 * overwrites a file.
 *
 * @example
 * ```ts
 * const { copied, skipped } = await initProject({ dir: 'supabase/migrations' });
 * for (const c of copied) console.log(c.to); // supabase/migrations/20260101120000_rls_kit_supabase_compat.sql
 * ```
 */
export async function initProject(options: InitProjectOptions = {}): Promise<InitProjectResult> {
  const { dir = 'supabase/migrations', now = new Date(), source = KIT_MIGRATIONS_DIR } = options;
  const kit = await listMigrationFiles(source);
  try {
    await mkdir(dir, { recursive: true });
  } catch (err) {
    throw new RlsKitError(
      'ERR_MIGRATION',
      `cannot create the migrations folder ${dir} (${(err as NodeJS.ErrnoException).code ?? String(err)})`,
      { cause: err },
    );
  }

  // What is there already: anything the Supabase CLI would pick up as a migration.
  const present = new Map<string, string>();
  let latest: string | undefined;
  for (const entry of (await readdir(dir)).sort()) {
    const parts = cliMigrationParts(entry);
    if (!parts) continue;
    if (!present.has(parts.name)) present.set(parts.name, path.join(dir, entry));
    if (/^\d{14}$/.test(parts.version) && (latest === undefined || parts.version > latest)) {
      latest = parts.version;
    }
  }

  let next = timestamp(now);
  if (latest !== undefined && next <= latest) next = after(latest);

  const result: InitProjectResult = { copied: [], skipped: [] };
  for (const file of kit) {
    const existing = present.get(file.name);
    if (existing !== undefined) {
      result.skipped.push(existing);
      continue;
    }
    const to = path.join(dir, `${next}_${file.name}.sql`);
    try {
      // COPYFILE_EXCL: never overwrite, even if a file appeared since we looked.
      await copyFile(file.path, to, constants.COPYFILE_EXCL);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new RlsKitError(
        'ERR_MIGRATION',
        code === 'EEXIST'
          ? `${to} already exists: not overwriting it; run init again`
          : `cannot copy ${file.path} to ${to} (${code ?? String(err)})`,
        { cause: err },
      );
    }
    result.copied.push({ from: file.path, to });
    present.set(file.name, to);
    next = after(next);
  }
  return result;
}

/** `YYYYMMDDHHmmss` in UTC, as `supabase migration new` names files. */
function timestamp(d: Date): string {
  return d.toISOString().replace(/\D/g, '').slice(0, 14);
}

/** The next second after a version; a version that is no real date gets the next number. */
function after(version: string): string {
  const m = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})$/.exec(version);
  if (m) {
    const [, y, mo, d, h, mi, s] = m.map(Number) as [number, ...number[]];
    const date = new Date(Date.UTC(y!, mo! - 1, d!, h!, mi!, s!));
    // Only trust the date when it round-trips (20241399000000 does not).
    if (timestamp(date) === version) return timestamp(new Date(date.getTime() + 1000));
  }
  return (BigInt(version) + 1n).toString().padStart(14, '0');
}
