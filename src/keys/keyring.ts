import { RlsKitError } from '../errors.js';
import { assertKid, normalizeKeyMaterial } from './jwk-material.js';
import type { Keyring, KeyringKey, KeyState } from './types.js';

const STATES: readonly KeyState[] = ['standby', 'active', 'retired'];
const META = new Set(['rls_kit_state', 'rls_kit_created_at', 'rls_kit_not_after']);

/**
 * Builds a keyring from keys and checks what must hold for every keyring:
 * at least one key, every key a valid signing JWK with a supported `alg`
 * that matches its type, `use: "sig"`, a well-formed kid unique within the
 * ring, a known state, at most one `active` key (holding private material),
 * and a `rls_kit_not_after` on each retired key. Keys are copied and reduced
 * to the members the kit understands.
 *
 * Violations are `ERR_KEY_INVALID` naming the key by position and kid, never
 * by key material.
 *
 * @example
 * ```ts
 * const ring = createKeyring([await generateKey()]);
 * ```
 */
export function createKeyring(keys: readonly unknown[]): Keyring {
  if (!Array.isArray(keys) || keys.length === 0) {
    throw new RlsKitError(
      'ERR_KEY_INVALID',
      'the keyring has no keys; create one with rls-kit keys generate',
    );
  }
  const out = keys.map((raw, i) => checkKey(raw, i));
  const seen = new Set<string>();
  for (const key of out) {
    if (seen.has(key.kid)) {
      throw new RlsKitError(
        'ERR_KEY_INVALID',
        `the keyring has two keys with kid ${key.kid}; kids must be unique within a keyring`,
      );
    }
    seen.add(key.kid);
  }
  const active = out.filter((k) => k.rls_kit_state === 'active');
  if (active.length > 1) {
    throw new RlsKitError(
      'ERR_KEY_INVALID',
      `the keyring has ${active.length} active keys (${active.map((k) => k.kid).join(', ')}); exactly one may sign`,
    );
  }
  return { keys: out };
}

function checkKey(raw: unknown, index: number): KeyringKey {
  const where = `keyring key #${index + 1}`;
  const material = normalizeKeyMaterial(raw, where);
  const obj = raw as Record<string, unknown>;
  assertKid(obj.kid, where);
  const named = `${where} (kid ${obj.kid})`;
  if (obj.alg === undefined) {
    throw new RlsKitError('ERR_KEY_INVALID', `the ${named} has no "alg"; keyring keys pin theirs`);
  }
  for (const name of Object.keys(obj)) {
    if (name.startsWith('rls_kit_') && !META.has(name)) {
      throw new RlsKitError('ERR_KEY_INVALID', `the ${named} has an unknown member "${name}"`);
    }
  }
  const state = obj.rls_kit_state;
  if (!STATES.includes(state as KeyState)) {
    throw new RlsKitError(
      'ERR_KEY_INVALID',
      `the ${named} has no valid "rls_kit_state" (standby, active or retired)`,
    );
  }
  const createdAt = isoTime(obj.rls_kit_created_at, 'rls_kit_created_at', named);
  const notAfter =
    obj.rls_kit_not_after === undefined
      ? undefined
      : isoTime(obj.rls_kit_not_after, 'rls_kit_not_after', named);
  if (state === 'retired' && notAfter === undefined) {
    throw new RlsKitError(
      'ERR_KEY_INVALID',
      `the ${named} is retired but has no "rls_kit_not_after" (when its last token expires)`,
    );
  }
  if (state === 'active' && !material.isPrivate) {
    throw new RlsKitError(
      'ERR_KEY_INVALID',
      `the ${named} is active but has no private part; only a private key can sign`,
    );
  }
  const key: KeyringKey = {
    ...material.jwk,
    kid: obj.kid,
    alg: material.alg,
    use: 'sig',
    rls_kit_state: state as KeyState,
    rls_kit_created_at: createdAt,
  };
  if (notAfter !== undefined && state === 'retired') key.rls_kit_not_after = notAfter;
  return key;
}

function isoTime(value: unknown, name: string, where: string): string {
  if (typeof value === 'string' && /^\d{4}-\d\d-\d\dT/.test(value)) {
    const ms = Date.parse(value);
    if (Number.isFinite(ms)) return new Date(ms).toISOString();
  }
  throw new RlsKitError(
    'ERR_KEY_INVALID',
    `the ${where} has no valid "${name}" (an ISO 8601 time such as 2025-01-01T00:00:00Z)`,
  );
}
