import { LRUCache } from 'lru-cache';
import type { KeyEntry } from './key-source.js';
import type { VerifiedClaims } from './verified-claims.js';

/**
 * The verified-token cache: a bounded LRU keyed on the full token string
 * (no hashing: the string is the key, so two tokens can never share an
 * entry). An entry holds the frozen claims, the key that verified them and
 * the instant it stops being served. Only signature and claim checks are
 * cached; revocation is asked on every hit by the verifier.
 */
export interface VerifyCache {
  /** The claims if `token` is cached, not expired at `now` (ms) and its key is still in the set. */
  get(token: string, now: number): VerifiedClaims | undefined;
  set(token: string, claims: VerifiedClaims, key: KeyEntry, until: number): void;
  /** Drops the entries of keys that left the key set (rotation, retirement). */
  dropDeadKeys(): void;
  readonly size: number;
}

interface Entry {
  readonly claims: VerifiedClaims;
  readonly key: KeyEntry;
  /** Epoch ms: the token's `exp`, earlier with `maxTokenAge` or a retiring key. */
  readonly until: number;
}

/**
 * Creates a {@link VerifyCache} holding at most `max` tokens.
 *
 * @example
 * ```ts
 * const cache = createVerifyCache(10_000);
 * cache.set(token, claims, key, claims.exp * 1000);
 * cache.get(token, Date.now()); // claims
 * ```
 */
export function createVerifyCache(max: number): VerifyCache {
  // Expiry is checked against the verifier's clock here, not lru-cache's own TTL timers,
  // so an injected clock drives both and no timers run.
  const lru = new LRUCache<string, Entry>({ max });
  return {
    get(token, now) {
      const entry = lru.get(token);
      if (entry === undefined) return undefined;
      if (entry.until <= now || !entry.key.live) {
        lru.delete(token);
        return undefined;
      }
      return entry.claims;
    },
    set(token, claims, key, until) {
      lru.set(token, { claims, key, until });
    },
    dropDeadKeys() {
      const dead: string[] = [];
      for (const [token, entry] of lru.entries()) if (!entry.key.live) dead.push(token);
      for (const token of dead) lru.delete(token);
    },
    get size() {
      return lru.size;
    },
  };
}
