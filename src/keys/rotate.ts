import { parseDuration } from './duration.js';
import { generateKey } from './generate-key.js';
import { createKeyring } from './keyring.js';
import type { Keyring, KeyringKey, SigningAlg } from './types.js';

/** Options of {@link rotate}. */
export interface RotateOptions {
  /** The current time (epoch ms or Date); tests pass a fake clock. */
  now?: number | Date;
  /**
   * The longest lifetime of a token the active key may have signed; a
   * retired key keeps verifying this long (plus `clockTolerance`). Default
   * `1h`, the minter's cap unless it was explicitly lifted.
   */
  tokenTtl?: string | number;
  /**
   * How long verifiers may cache the JWKS. A standby key is promoted only
   * after it has been published this long, so no verifier meets a token
   * signed with a key it has not fetched yet. Default `1h` (the largest
   * cache TTL the kit's verifier accepts).
   */
  jwksCacheTtl?: string | number;
  /**
   * How long each key signs before the next takes over. A standby key is
   * added when the current one is promoted, so it is promoted once it has
   * waited `max(jwksCacheTtl, rotateEvery)`. Default: 0 (promote as soon as
   * the cache window allows — the behaviour of a daily cron job).
   */
  rotateEvery?: string | number;
  /** Verifiers accept tokens this long past `exp`; added to retirement. Default `30s`. */
  clockTolerance?: string | number;
  /** Algorithm of a new standby key; default: the active key's (ES256 when none). */
  alg?: SigningAlg;
}

/** One thing {@link rotate} did. */
export interface RotationChange {
  readonly action: 'added' | 'promoted' | 'retired' | 'dropped';
  readonly kid: string;
  readonly alg: SigningAlg;
  /** For `retired`: when the key stops verifying (ISO 8601). */
  readonly notAfter?: string;
}

/** What {@link rotate} returns: the new keyring (the input is not modified) and the changes. */
export interface RotateResult {
  readonly keyring: Keyring;
  readonly changes: readonly RotationChange[];
}

/**
 * One step of the key schedule, meant to run periodically (for example
 * daily from cron via `rls-kit keys rotate`):
 * 1. retired keys past `rls_kit_not_after` are dropped;
 * 2. the oldest standby private key published for at least `jwksCacheTtl`
 *    (and `rotateEvery`) becomes active, and the old active key is retired with
 *    `rls_kit_not_after = now + tokenTtl + clockTolerance` (when nothing is
 *    active, a standby key is promoted at once: no token can be in flight);
 * 3. when no standby private key is left, a new one is added, so the next
 *    rotation has a key that verifiers have already cached.
 *
 * Pure apart from generating the new key: time comes from `now`, so tests
 * use a fake clock and never sleep. "Published" counts from
 * `rls_kit_created_at`: a key is in the public JWKS as soon as it is in the
 * keyring.
 *
 * @example
 * ```ts
 * const { keyring, changes } = await rotate(ring, { now: Date.now(), tokenTtl: '10m' });
 * await writeKeyringFile('keys.json', keyring);
 * ```
 */
export async function rotate(keyring: Keyring, options: RotateOptions = {}): Promise<RotateResult> {
  const ring = createKeyring(keyring.keys);
  const nowMs = options.now instanceof Date ? options.now.getTime() : (options.now ?? Date.now());
  const tokenTtl = parseDuration(options.tokenTtl ?? '1h', 'token TTL');
  const cacheTtl = parseDuration(options.jwksCacheTtl ?? '1h', 'JWKS cache TTL');
  const tolerance = parseDuration(options.clockTolerance ?? '30s', 'clock tolerance');
  const every = parseDuration(options.rotateEvery ?? 0, 'rotation period');
  const wait = Math.max(cacheTtl, every);
  const changes: RotationChange[] = [];

  let keys: KeyringKey[] = [];
  for (const key of ring.keys) {
    if (
      key.rls_kit_state === 'retired' &&
      key.rls_kit_not_after !== undefined &&
      Date.parse(key.rls_kit_not_after) <= nowMs
    ) {
      changes.push({ action: 'dropped', kid: key.kid, alg: key.alg });
      continue;
    }
    keys.push({ ...key });
  }

  const isPrivate = (k: KeyringKey) => k.d !== undefined || k.k !== undefined;
  const active = keys.find((k) => k.rls_kit_state === 'active');
  const standby = keys
    .filter((k) => k.rls_kit_state === 'standby' && isPrivate(k))
    .sort((a, b) => Date.parse(a.rls_kit_created_at) - Date.parse(b.rls_kit_created_at));
  const ready = active
    ? standby.find((k) => Date.parse(k.rls_kit_created_at) + wait * 1000 <= nowMs)
    : standby[0];
  if (ready) {
    if (active) {
      const notAfter = new Date(nowMs + (tokenTtl + tolerance) * 1000).toISOString();
      active.rls_kit_state = 'retired';
      active.rls_kit_not_after = notAfter;
      changes.push({ action: 'retired', kid: active.kid, alg: active.alg, notAfter });
    }
    ready.rls_kit_state = 'active';
    changes.push({ action: 'promoted', kid: ready.kid, alg: ready.alg });
  }

  if (!keys.some((k) => k.rls_kit_state === 'standby' && isPrivate(k))) {
    const alg =
      options.alg ??
      (ready ?? active ?? keys.find((k) => k.rls_kit_state !== 'retired'))?.alg ??
      'ES256';
    let added = await generateKey({ alg, state: 'standby', now: new Date(nowMs) });
    // A thumbprint prefix collision is astronomically unlikely; regenerate rather than reason about it.
    while (keys.some((k) => k.kid === added.kid)) {
      added = await generateKey({ alg, state: 'standby', now: new Date(nowMs) });
    }
    keys = [...keys, added];
    changes.push({ action: 'added', kid: added.kid, alg });
  }
  return { keyring: createKeyring(keys), changes };
}
