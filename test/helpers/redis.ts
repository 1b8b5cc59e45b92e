import { Redis } from 'ioredis';

/**
 * True when a Redis answers PING at `url` within a second: the Redis tests
 * skip (or, under CI, fail) and the revocation bench drops its Redis rows
 * without it.
 *
 * @example
 * ```ts
 * const available = await redisAnswers('redis://127.0.0.1:6379');
 * ```
 */
export async function redisAnswers(url: string): Promise<boolean> {
  const probe = new Redis(url, {
    lazyConnect: true,
    retryStrategy: () => null,
    maxRetriesPerRequest: 0,
    connectTimeout: 1000,
  });
  probe.on('error', () => undefined);
  try {
    await probe.connect();
    return (await probe.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    probe.disconnect();
  }
}
