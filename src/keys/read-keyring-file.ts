import { readFile, stat } from 'node:fs/promises';
import { RlsKitError } from '../errors.js';
import { parseKeyring } from './parse-keyring.js';
import type { Keyring } from './types.js';

/** What {@link readKeyringFile} found. */
export interface KeyringFile {
  readonly keyring: Keyring;
  /** True when group or others may read the file (it holds private keys; it should be 0600). */
  readonly exposed: boolean;
}

/** Keyring files are small; anything bigger is not one (and not worth reading into memory). */
const MAX_KEYRING_BYTES = 1024 * 1024;

/**
 * Reads and checks a keyring file. A missing, unreadable, oversized or
 * malformed file is `ERR_KEY_INVALID` with a one-line message naming the
 * path and what to do; the file's content never appears in it.
 *
 * @example
 * ```ts
 * const { keyring, exposed } = await readKeyringFile('keys.json');
 * if (exposed) console.warn('chmod 600 keys.json');
 * ```
 */
export async function readKeyringFile(path: string): Promise<KeyringFile> {
  let text: string;
  let mode: number;
  try {
    const info = await stat(path);
    if (!info.isFile()) throw Object.assign(new Error('not a file'), { code: 'ENOTFILE' });
    if (info.size > MAX_KEYRING_BYTES) {
      throw new RlsKitError(
        'ERR_KEY_INVALID',
        `the keyring file ${path} is ${info.size} bytes; a keyring is at most ${MAX_KEYRING_BYTES}`,
      );
    }
    mode = info.mode;
    text = await readFile(path, 'utf8');
  } catch (err) {
    if (err instanceof RlsKitError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOENT'
        ? 'does not exist; create one with rls-kit keys generate > FILE'
        : code === 'EACCES'
          ? 'is not readable by this user'
          : code === 'ENOTFILE' || code === 'EISDIR'
            ? 'is not a regular file'
            : `cannot be read (${code ?? 'unknown error'})`;
    throw new RlsKitError('ERR_KEY_INVALID', `the keyring file ${path} ${why}`, { cause: err });
  }
  const keyring = parseKeyring(text, `keyring file ${path}`);
  return { keyring, exposed: (mode & 0o077) !== 0 };
}
