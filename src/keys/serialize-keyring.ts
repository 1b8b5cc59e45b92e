import { createKeyring } from './keyring.js';
import type { Keyring } from './types.js';

/**
 * The keyring as file text: pretty-printed JSON (two-space indent, a final
 * newline), one key per object with its state members last, so a person can
 * read which key is active and when a retired one stops verifying. The ring
 * is checked first, so an invalid keyring is never written.
 *
 * @example
 * ```ts
 * process.stdout.write(serializeKeyring(createKeyring([await generateKey()])));
 * ```
 */
export function serializeKeyring(keyring: Keyring): string {
  const checked = createKeyring(keyring.keys);
  return `${JSON.stringify({ keys: checked.keys }, null, 2)}\n`;
}
