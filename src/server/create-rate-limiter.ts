import { LRUCache } from 'lru-cache';
import { RlsKitError } from '../errors.js';
import type { RateLimitOptions } from './token-service-options.js';

/** One client's bucket. */
interface Bucket {
  tokens: number;
  at: number;
}

/**
 * An in-memory token bucket per client key; see {@link createRateLimiter}.
 *
 * @example
 * ```ts
 * const { allowed, retryAfter } = limiter.take(clientAddress);
 * ```
 */
export interface RateLimiter {
  /** Takes one request from `key`'s bucket: allowed, or the seconds until one would be. */
  take(key: string): { allowed: boolean; retryAfter: number };
}

/**
 * Creates a token-bucket rate limiter: each key starts with `burst`
 * requests and regains `perSecond` per second, up to `burst`. Keys are
 * held in an LRU of `maxClients`, so a flood of addresses costs bounded
 * memory (a forgotten client starts with a full bucket, which is the
 * lenient direction). One process only: behind a load balancer every node
 * limits on its own.
 *
 * @example
 * ```ts
 * const limiter = createRateLimiter({ burst: 20, perSecond: 2 });
 * if (!limiter.take(address).allowed) return tooManyRequests();
 * ```
 */
export function createRateLimiter(
  options: RateLimitOptions = {},
  clock: () => number = Date.now,
): RateLimiter {
  const burst = options.burst ?? 20;
  const perSecond = options.perSecond ?? 2;
  const maxClients = options.maxClients ?? 10_000;
  if (!(Number.isFinite(burst) && burst >= 1)) {
    throw new RlsKitError('ERR_CONFIG', 'rateLimit.burst must be a number ≥ 1');
  }
  if (!(Number.isFinite(perSecond) && perSecond > 0)) {
    throw new RlsKitError('ERR_CONFIG', 'rateLimit.perSecond must be a number > 0');
  }
  if (!(Number.isSafeInteger(maxClients) && maxClients >= 1)) {
    throw new RlsKitError('ERR_CONFIG', 'rateLimit.maxClients must be a whole number ≥ 1');
  }
  const buckets = new LRUCache<string, Bucket>({ max: maxClients });
  return {
    take(key) {
      const now = clock();
      const bucket = buckets.get(key) ?? { tokens: burst, at: now };
      bucket.tokens = Math.min(burst, bucket.tokens + ((now - bucket.at) / 1000) * perSecond);
      bucket.at = now;
      buckets.set(key, bucket);
      if (bucket.tokens >= 1) {
        bucket.tokens -= 1;
        return { allowed: true, retryAfter: 0 };
      }
      return {
        allowed: false,
        retryAfter: Math.max(1, Math.ceil((1 - bucket.tokens) / perSecond)),
      };
    },
  };
}
