import pg from 'pg';

/** A member and a viewer of one seeded organization, and another organization. */
export interface ExamplePersonas {
  member: { sub: string; org: string; role: string };
  viewer: { sub: string; org: string; role: string };
  otherOrg: string;
}

/**
 * A pool of one connection on `url` that counts round trips (ReadyForQuery
 * messages): every call shares the connection, so anything a call left
 * behind would show in {@link sessionState}.
 */
export function oneConnectionPool(url: string): {
  pool: pg.Pool;
  roundTrips: () => number;
  reset: () => void;
} {
  let count = 0;
  const pool = new pg.Pool({ connectionString: url, max: 1 });
  pool.on('connect', (client) => {
    client.connection.on('readyForQuery', () => {
      count++;
    });
    client.on('error', () => undefined);
  });
  return {
    pool,
    roundTrips: () => count,
    reset: () => {
      count = 0;
    },
  };
}

/** The seeded example's personas the one-statement tests use. */
export async function examplePersonas(pool: pg.Pool): Promise<ExamplePersonas> {
  const { rows } = await pool.query<{ sub: string; org: string; role: string }>(
    `select m.user_id::text as sub, m.org_id::text as org, m.role
       from public.memberships m
      where m.role in ('member', 'viewer')
        and exists (select from public.documents d where d.org_id = m.org_id)
      order by m.org_id, m.role`,
  );
  const first = rows[0];
  const member = rows.find((r) => r.org === first?.org && r.role === 'member');
  const viewer = rows.find((r) => r.org === first?.org && r.role === 'viewer');
  const otherOrg = rows.find((r) => r.org !== first?.org)?.org;
  if (!member || !viewer || !otherOrg) throw new Error('the example seed lacks the personas');
  return { member, viewer, otherOrg };
}

/** What the pooled connection looks like between requests (CLEAN_SESSION when nothing is left). */
export async function sessionState(pool: pg.Pool) {
  const { rows } = await pool.query<{ role: string; claims: string | null; path: string }>(
    `select current_setting('role') as role,
            nullif(current_setting('request.jwt.claims', true), '') as claims,
            current_setting('search_path') as path`,
  );
  return rows[0]!;
}

/** {@link sessionState} of a connection nothing was left on. */
export const CLEAN_SESSION = { role: 'none', claims: null, path: '"$user", public' };
