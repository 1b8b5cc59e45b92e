import type pg from 'pg';

/** What a call learns about its checked-out connection. @internal */
export interface PoolClientLease {
  /** Set when the connection must not serve anyone else: release then destroys it. */
  broken?: Error;
}

/**
 * Runs `fn` on a client checked out of `pool` and always gives it back — as
 * broken (destroyed by the pool) when `fn` set `lease.broken` or the
 * connection failed meanwhile. A checked-out client has no pool listener:
 * without this one, a connection dying mid-call would be an unhandled
 * 'error' event (a process crash).
 * @internal
 */
export async function withPoolClient<T>(
  pool: pg.Pool,
  fn: (client: pg.PoolClient, lease: PoolClientLease) => Promise<T>,
): Promise<T> {
  const client = await pool.connect();
  const lease: PoolClientLease = {};
  const onError = (err: Error) => {
    lease.broken ??= err;
  };
  client.on('error', onError);
  try {
    return await fn(client, lease);
  } finally {
    client.removeListener('error', onError);
    client.release(lease.broken ?? false);
  }
}
