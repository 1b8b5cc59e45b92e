import { LRUCache } from 'lru-cache';
import type { KeyEntry } from './key-source.js';
import type { VerifiedClaims } from './verified-claims.js';

/**
 * The verified-token cache: a bounded LRU whose entries are identified by
 * the full token string (no cryptographic hashing: a hit requires the exact
 * same string, so two tokens can never share an entry). An entry holds the
 * frozen claims, the key that verified them and the instant it stops being
 * served. Only signature and claim checks are cached; revocation is asked on
 * every hit by the verifier.
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
  /** The whole token: a hit must match it exactly. */
  readonly token: string;
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
      const slot = slotOf(token);
      const entry = lru.get(slot);
      if (entry === undefined || entry.token !== token) return undefined;
      if (entry.until <= now || !entry.key.live) {
        lru.delete(slot);
        return undefined;
      }
      return entry.claims;
    },
    set(token, claims, key, until) {
      lru.set(slotOf(token), { token, claims, key, until });
    },
    dropDeadKeys() {
      const dead: string[] = [];
      for (const [slot, entry] of lru.entries()) if (!entry.key.live) dead.push(slot);
      for (const slot of dead) lru.delete(slot);
    },
    get size() {
      return lru.size;
    },
  };
}

/**
 * The map key of a token: its last 48 characters (signature bytes, which
 * differ between any two tokens). V8 hashes a string over its whole length,
 * about 2 ns per character: an 800-character RS256 token would cost more to
 * look up than everything else on the fast path. The entry still holds the
 * whole token and a hit compares it in full, so this only narrows the search.
 */
function slotOf(token: string): string {
  return token.length > 48 ? token.slice(-48) : token;
}
