import { randomBytes } from 'node:crypto';
import { open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { RlsKitError } from '../errors.js';
import { serializeKeyring } from './serialize-keyring.js';
import type { Keyring } from './types.js';

/**
 * Writes a keyring file atomically with mode 0600: the text goes to a new
 * temporary file beside the target (created 0600, so the keys are never
 * readable by others, not even for a moment), is flushed to disk, then
 * renamed over the target. A crash leaves either the old file or the new
 * one, never half of each — losing a keyring mid-rotation would strand every
 * token it signed.
 *
 * @example
 * ```ts
 * await writeKeyringFile('keys.json', (await rotate(ring)).keyring);
 * ```
 */
export async function writeKeyringFile(path: string, keyring: Keyring): Promise<void> {
  const text = serializeKeyring(keyring);
  const temp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    const handle = await open(temp, 'wx', 0o600);
    try {
      await handle.writeFile(text, 'utf8');
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, path);
  } catch (err) {
    await rm(temp, { force: true }).catch(() => undefined);
    const code = (err as NodeJS.ErrnoException).code ?? 'unknown error';
    throw new RlsKitError('ERR_KEY_INVALID', `cannot write the keyring file ${path} (${code})`, {
      cause: err,
    });
  }
}
