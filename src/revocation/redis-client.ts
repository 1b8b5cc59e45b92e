/**
 * The one place the revocation capability touches `ioredis`, and only
 * lazily: the module is imported when a Redis transport or relay first
 * connects, so `supabase-rls-kit/revocation` loads without it (and
 * without Redis installed) for everyone on the Postgres transport.
 */
import type { Redis, RedisOptions } from 'ioredis';
import { RlsKitError } from '../errors.js';

/**
 * Where Redis is: a URL (`redis://user:pass@host:6379/0`, `rediss://...`)
 * or ioredis options.
 *
 * @example
 * ```ts
 * const where: RedisConnection = { host: '10.0.0.5', port: 6379, password: process.env.REDIS_PASSWORD };
 * ```
 */
export type RedisConnection = string | RedisOptions;

/** The default channel of the fan-out. */
export const DEFAULT_REDIS_CHANNEL = 'rls_kit:revocations';

/**
 * A new ioredis client with `overrides` on top of the caller's options,
 * not connected yet (`lazyConnect`).
 */
export async function newRedisClient(
  where: RedisConnection | undefined,
  overrides: RedisOptions,
): Promise<Redis> {
  const { Redis } = await import('ioredis');
  const options: RedisOptions = { ...overrides, lazyConnect: true };
  if (typeof where === 'string') return new Redis(where, options);
  return new Redis({ host: '127.0.0.1', port: 6379, ...where, ...options });
}

/** Validates a channel name: Redis accepts any bytes, but a typo'd empty one would be silent. */
export function checkChannel(channel: string): string {
  if (typeof channel !== 'string' || channel.length === 0 || channel.length > 256) {
    throw new RlsKitError(
      'ERR_CONFIG',
      'the Redis channel must be a non-empty string of at most 256 characters',
    );
  }
  return channel;
}
