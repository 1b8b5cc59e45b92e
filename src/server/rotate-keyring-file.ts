import { open, rm, stat } from 'node:fs/promises';
import { RlsKitError } from '../errors.js';
import { readKeyringFile } from '../keys/read-keyring-file.js';
import { type RotateOptions, type RotateResult, rotate } from '../keys/rotate.js';
import { writeKeyringFile } from '../keys/write-keyring-file.js';

/**
 * Options of {@link rotateKeyringFile}: those of `rotate` plus the lock's.
 *
 * @example
 * ```ts
 * const options: RotateKeyringFileOptions = { tokenTtl: '10m', jwksCacheTtl: '10m', rotateEvery: '30d' };
 * ```
 */
export interface RotateKeyringFileOptions extends RotateOptions {
  /** How long to wait for another rotation holding the lock (ms, default 5000). */
  lockWaitMs?: number;
  /** A lock file older than this is left over from a crash and is broken (ms, default 30000). */
  lockStaleMs?: number;
}

/** What {@link rotateKeyringFile} did. */
export interface RotateKeyringFileResult extends RotateResult {
  /** True when the file was readable by others before (it has been rewritten 0600). */
  readonly wasExposed: boolean;
  /** True when the file was rewritten. */
  readonly written: boolean;
}

/**
 * One step of the key schedule on a keyring file — the single
 * implementation behind `rls-kit keys rotate` and the token service's
 * rotation schedule: takes the file's lock (`<file>.lock`, created
 * exclusively, so a cron job and a running service never interleave their
 * read-modify-write), reads the keyring, runs `rotate`, and rewrites the
 * file atomically with mode 0600 when something changed (or when the file
 * was readable by others).
 *
 * Errors are `ERR_KEY_INVALID` naming the file (never key material), or
 * `ERR_USAGE` for a malformed duration.
 *
 * @example
 * ```ts
 * const { keyring, changes } = await rotateKeyringFile('.rls-kit/keys.json', { tokenTtl: '10m' });
 * for (const c of changes) console.error(`${c.action} ${c.kid}`);
 * ```
 */
export async function rotateKeyringFile(
  path: string,
  options: RotateKeyringFileOptions = {},
): Promise<RotateKeyringFileResult> {
  const { lockWaitMs = 5000, lockStaleMs = 30_000, ...rotateOptions } = options;
  return withLock(path, lockWaitMs, lockStaleMs, async () => {
    const { keyring, exposed } = await readKeyringFile(path);
    const result = await rotate(keyring, rotateOptions);
    const written = result.changes.length > 0 || exposed;
    if (written) await writeKeyringFile(path, result.keyring);
    return { ...result, wasExposed: exposed, written };
  });
}

async function withLock<T>(
  path: string,
  waitMs: number,
  staleMs: number,
  work: () => Promise<T>,
): Promise<T> {
  const lock = `${path}.lock`;
  const deadline = Date.now() + waitMs;
  for (;;) {
    try {
      const handle = await open(lock, 'wx', 0o600);
      try {
        await handle.writeFile(`${process.pid}\n`);
      } catch (err) {
        await rm(lock, { force: true }).catch(() => undefined); // ours: never leave it behind
        throw err;
      } finally {
        await handle.close();
      }
      break;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'EEXIST') {
        throw new RlsKitError(
          'ERR_KEY_INVALID',
          `cannot lock the keyring file ${path} (${code ?? 'unknown error'}); check the folder's permissions`,
          { cause: err },
        );
      }
      // Lock files are real files: their age is wall-clock time, whatever clock the caller injects.
      const info = await stat(lock).catch(() => undefined);
      if (info && Date.now() - info.mtimeMs > staleMs) {
        await rm(lock, { force: true });
        continue;
      }
      if (Date.now() >= deadline) {
        throw new RlsKitError(
          'ERR_KEY_INVALID',
          `the keyring file ${path} is locked by another rotation (${lock}); retry, or delete the lock if no rotation is running`,
        );
      }
      await new Promise((r) => setTimeout(r, 25));
    }
  }
  try {
    return await work();
  } finally {
    await rm(lock, { force: true }).catch(() => undefined);
  }
}
