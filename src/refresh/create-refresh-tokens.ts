import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { RlsKitError } from '../errors.js';
import { parseDuration } from '../keys/index.js';
import type { ClaimDefinitions, ClaimValues, Minter } from '../tokens/index.js';
import { generateRefreshToken } from './generate-refresh-token.js';
import { hashRefreshToken } from './hash-refresh-token.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Options of {@link createRefreshTokens}. */
export interface RefreshTokensOptions<S extends ClaimDefinitions = ClaimDefinitions> {
  /** A pool whose role owns `rls_kit.refresh_tokens` or is `service_role` (give this or `url`). */
  pool?: pg.Pool;
  /** Connection string; the store then owns its pool and `close()` ends it (give this or `pool`). */
  url?: string;
  /** Mints the access tokens (with `sid` = the refresh family). */
  minter: Minter<S>;
  /** Lifetime of the access tokens; the minter's default when absent. */
  accessTtl?: string | number;
  /** Absolute lifetime of a family (a login), counted from `issue`; `30d` unless given. */
  absoluteLifetime?: string | number;
  /** How long an unused refresh token lives (never past the absolute end); `7d` unless given. */
  idleLifetime?: string | number;
  /**
   * How long after a token was used presenting it again counts as the same
   * client's concurrent refresh (answered `ERR_REFRESH_CONCURRENT`, nothing
   * changed) rather than reuse (the family is revoked); `10s` unless given.
   */
  reuseGrace?: string | number;
}

/** Custom claims for a new access token, or a resolver that computes them for the session's user. */
export type RefreshClaims<S extends ClaimDefinitions = ClaimDefinitions> =
  | ClaimValues<S>
  | ((session: {
      readonly sub: string;
      readonly sid: string;
    }) => ClaimValues<S> | Promise<ClaimValues<S>>);

/** A login: the first refresh token of a new family. */
export interface IssueRefreshInput<S extends ClaimDefinitions = ClaimDefinitions> {
  /** The user, a uuid. */
  sub: string;
  /** Role of the access token; `authenticated` unless given. */
  role?: string;
  /** Custom claims of the access token. */
  claims?: ClaimValues<S>;
  /**
   * The upstream session this login was exchanged from (a Supabase
   * `session_id`, a uuid): `rls_kit.revoke_session(upstreamSession)` then
   * ends this family and its access tokens too.
   */
  upstreamSession?: string;
}

/** Options of one refresh. */
export interface RefreshOptions<S extends ClaimDefinitions = ClaimDefinitions> {
  /**
   * Fresh claims of the new access token (or a resolver, called inside the
   * refresh's transaction with the session's `sub` and `sid`: the opaque
   * token tells the caller neither). None when absent.
   */
  claims?: RefreshClaims<S>;
  /** Role of the new access token; `authenticated` unless given. */
  role?: string;
}

/** A new token pair. */
export interface RefreshedSession {
  /** The opaque refresh token to hand the client (shown once, stored only hashed). */
  readonly refreshToken: string;
  /** The access token, a JWT with `sid` = the family. */
  readonly accessToken: string;
  /** The refresh family (the access token's `sid`). */
  readonly sid: string;
  /** The family's absolute end: no refresh after it. */
  readonly expiresAt: Date;
}

/** Refresh-token rotation with reuse detection, backed by `rls_kit.refresh_tokens`. */
export interface RefreshTokens<S extends ClaimDefinitions = ClaimDefinitions> {
  /** Starts a family (a login) and returns its first token pair. */
  issue(input: IssueRefreshInput<S>): Promise<RefreshedSession>;
  /** Exchanges a refresh token for a new pair; the presented token is then used. */
  refresh(refreshToken: string, options?: RefreshOptions<S>): Promise<RefreshedSession>;
  /** Ends a family (sign-out): its tokens can no longer refresh and its access tokens die in RLS. */
  revokeFamily(sid: string, reason?: string): Promise<void>;
  /** Ends the pool when the store created it from `url`; otherwise does nothing. */
  close(): Promise<void>;
}

type Outcome =
  | { readonly kind: 'ok'; readonly session: RefreshedSession }
  | { readonly kind: 'reused' };

/**
 * Creates the refresh-token store (issue 4, item 4). Refresh tokens are
 * opaque (`rk1_` + 256 random bits, base64url) and stored only as SHA-256
 * hashes; every refresh marks the presented token used and returns a new
 * refresh token of the same family with a new access token whose `sid` is
 * the family, so `rls_kit.revoke_session(sid)` ends both.
 *
 * Each refresh is one transaction. It starts with a conditional
 * `UPDATE … SET used_at = now() WHERE hash = $1 AND used_at IS NULL AND
 * revoked_at IS NULL AND <not expired>`: the row lock makes exactly one of
 * any number of concurrent refreshes of a token win; the others wait for it
 * and then see the token used. A token presented again
 * - within `reuseGrace` of its use: `ERR_REFRESH_CONCURRENT`, nothing
 *   changes — a client that raced itself (two tabs) retries with the token
 *   the winner stored. Handing the losers the winner's child instead would
 *   mean keeping that child's secret retrievable; this design never does.
 * - after `reuseGrace`: reuse, i.e. a stolen or replayed token. The family
 *   ends (`rls_kit.revoke_session(family, 'refresh token reuse')`), its
 *   latest token included, and so does every access token with that `sid`;
 *   `ERR_REFRESH_REUSED`.
 *
 * Also `ERR_REFRESH_INVALID` for garbage, unknown tokens and tokens of an
 * ended family, `ERR_REFRESH_EXPIRED` past the idle or absolute lifetime
 * (neither changes anything), `ERR_DB_UNREACHABLE` / `ERR_DB_QUERY` when the
 * database fails — never a new pair. Messages never contain a token.
 *
 * @example
 * ```ts
 * const refresh = createRefreshTokens({ pool, minter, accessTtl: '10m' });
 * const login = await refresh.issue({ sub: userId, claims: await resolveClaims(userId) });
 * // later, with the client's refresh token:
 * const next = await refresh.refresh(login.refreshToken, { claims: ({ sub }) => resolveClaims(sub) });
 * // sign-out:
 * await refresh.revokeFamily(next.sid);
 * ```
 */
export function createRefreshTokens<S extends ClaimDefinitions = ClaimDefinitions>(
  options: RefreshTokensOptions<S>,
): RefreshTokens<S> {
  if ((options.pool === undefined) === (options.url === undefined)) {
    throw new RlsKitError('ERR_CONFIG', 'refresh tokens: give exactly one of pool or url');
  }
  const { minter } = options;
  if (typeof minter?.issue !== 'function') {
    throw new RlsKitError('ERR_CONFIG', 'refresh tokens: minter is required (createMinter)');
  }
  const absolute = seconds(options.absoluteLifetime ?? '30d', 'absoluteLifetime', 1);
  const idle = Math.min(seconds(options.idleLifetime ?? '7d', 'idleLifetime', 1), absolute);
  const grace = seconds(options.reuseGrace ?? '10s', 'reuseGrace', 0);
  const accessTtl = options.accessTtl;
  const ownsPool = options.pool === undefined;
  const pool = options.pool ?? new pg.Pool({ connectionString: options.url });
  // An idle client of our own pool dying must not crash the process; the
  // next query reports the failure instead.
  if (ownsPool) pool.on('error', () => undefined);

  const issue = async (input: IssueRefreshInput<S>): Promise<RefreshedSession> => {
    const sub = input?.sub;
    if (typeof sub !== 'string' || !UUID.test(sub)) {
      throw new RlsKitError('ERR_TOKEN_CLAIMS', 'refresh tokens: sub must be a uuid');
    }
    const upstream = input.upstreamSession;
    if (upstream !== undefined && (typeof upstream !== 'string' || !UUID.test(upstream))) {
      throw new RlsKitError('ERR_TOKEN_CLAIMS', 'refresh tokens: upstreamSession must be a uuid');
    }
    const sid = randomUUID();
    // Mint first: a claim the minter refuses leaves nothing behind.
    const access = await minter.issue({
      sub,
      sid,
      ...(input.role === undefined ? {} : { role: input.role }),
      ...(input.claims === undefined ? {} : { claims: input.claims }),
      ...(accessTtl === undefined ? {} : { ttl: accessTtl }),
    });
    const refreshToken = generateRefreshToken();
    const { rows } = await query<{ expires_at: Date }>(
      pool,
      `insert into rls_kit.refresh_tokens
              (hash, family, parent, sub, expires_at, idle_expires_at, upstream_session)
       select $1, $2::uuid, null, $3::uuid, e.at,
              least(e.at, now() + make_interval(secs => $5::double precision)), $6::uuid
         from (select now() + make_interval(secs => $4::double precision) as at) e
       returning expires_at`,
      [hashRefreshToken(refreshToken), sid, sub, absolute, idle, upstream ?? null],
    );
    return Object.freeze({
      refreshToken,
      accessToken: access.token,
      sid,
      expiresAt: (rows[0] as { expires_at: Date }).expires_at,
    });
  };

  const refresh = async (
    refreshToken: string,
    refreshOptions: RefreshOptions<S> = {},
  ): Promise<RefreshedSession> => {
    const hash = hashRefreshToken(refreshToken);
    if (hash === undefined) {
      throw new RlsKitError(
        'ERR_REFRESH_INVALID',
        'the refresh token is malformed (expected rk1_ and 43 base64url characters): sign in again',
      );
    }
    const outcome = await transaction(pool, async (client): Promise<Outcome> => {
      const won = await query<{ family: string; sub: string; expires_at: Date }>(
        client,
        `update rls_kit.refresh_tokens t set used_at = now()
          where t.hash = $1 and t.used_at is null and t.revoked_at is null
            and t.expires_at > now() and t.idle_expires_at > now()
          returning t.family::text as family, t.sub::text as sub, t.expires_at`,
        [hash],
      );
      const row = won.rows[0];
      if (row !== undefined) {
        const { family: sid, sub } = row;
        const given = refreshOptions.claims;
        const claims = typeof given === 'function' ? await given({ sub, sid }) : given;
        const access = await minter.issue({
          sub,
          sid,
          ...(refreshOptions.role === undefined ? {} : { role: refreshOptions.role }),
          ...(claims === undefined ? {} : { claims }),
          ...(accessTtl === undefined ? {} : { ttl: accessTtl }),
        });
        const next = generateRefreshToken();
        // The child carries the family's absolute end over; the partial
        // unique index refresh_tokens_live_idx backs "one live token".
        await query(
          client,
          `insert into rls_kit.refresh_tokens
                  (hash, family, parent, sub, expires_at, idle_expires_at, upstream_session)
           select $1, p.family, p.hash, p.sub, p.expires_at,
                  least(p.expires_at, now() + make_interval(secs => $3::double precision)),
                  p.upstream_session
             from rls_kit.refresh_tokens p where p.hash = $2`,
          [hashRefreshToken(next), hash, idle],
        );
        return {
          kind: 'ok',
          session: Object.freeze({
            refreshToken: next,
            accessToken: access.token,
            sid,
            expiresAt: row.expires_at,
          }),
        };
      }
      const seen = await query<{
        family: string;
        used: boolean;
        revoked: boolean;
        expired: boolean;
        in_grace: boolean;
      }>(
        client,
        `select t.family::text as family,
                t.used_at is not null as used,
                t.revoked_at is not null as revoked,
                t.expires_at <= now() or t.idle_expires_at <= now() as expired,
                coalesce(t.used_at > now() - make_interval(secs => $2::double precision), false) as in_grace
           from rls_kit.refresh_tokens t where t.hash = $1`,
        [hash, grace],
      );
      const state = seen.rows[0];
      if (state === undefined) {
        throw new RlsKitError(
          'ERR_REFRESH_INVALID',
          'the refresh token is unknown (never issued, or purged): sign in again',
        );
      }
      if (state.revoked) {
        throw new RlsKitError(
          'ERR_REFRESH_INVALID',
          'the refresh token belongs to a session that has ended: sign in again',
        );
      }
      if (state.used && state.in_grace) {
        throw new RlsKitError(
          'ERR_REFRESH_CONCURRENT',
          'the refresh token was just used by a concurrent refresh: use the refresh token that refresh returned',
        );
      }
      if (state.used) {
        // Reuse after the grace interval: the token was stolen or replayed.
        // End the family (its latest token included) and every access token
        // with its sid; revoke_session records it in rls_kit.revoked_sessions.
        await query(
          client,
          `update rls_kit.refresh_tokens t set revoked_at = now(), reason = 'refresh token reuse'
            where t.family = $1::uuid and t.revoked_at is null`,
          [state.family],
        );
        await query(client, 'select rls_kit.revoke_session($1::uuid, $2)', [
          state.family,
          'refresh token reuse',
        ]);
        return { kind: 'reused' };
      }
      throw new RlsKitError(
        'ERR_REFRESH_EXPIRED',
        'the refresh token has expired (idle or absolute lifetime): sign in again',
      );
    });
    if (outcome.kind === 'reused') {
      throw new RlsKitError(
        'ERR_REFRESH_REUSED',
        'the refresh token was already used: its session has been ended as a precaution; sign in again',
      );
    }
    return outcome.session;
  };

  const revokeFamily = async (sid: string, reason = 'signed out'): Promise<void> => {
    if (typeof sid !== 'string' || !UUID.test(sid)) {
      throw new RlsKitError('ERR_USAGE', 'revokeFamily: sid must be a uuid (the refresh family)');
    }
    await query(pool, 'select rls_kit.revoke_session($1::uuid, $2)', [sid, String(reason)]);
  };

  return Object.freeze({
    issue,
    refresh,
    revokeFamily,
    close: async () => {
      if (ownsPool) await pool.end();
    },
  });
}

function seconds(value: string | number, what: string, min: number): number {
  let n: number;
  try {
    n = parseDuration(value, what);
  } catch (err) {
    throw new RlsKitError('ERR_CONFIG', `refresh tokens: ${(err as Error).message}`, {
      cause: err,
    });
  }
  if (n < min) {
    throw new RlsKitError('ERR_CONFIG', `refresh tokens: the ${what} must be at least ${min}s`);
  }
  return n;
}

/** Runs one statement; a failure becomes an RlsKitError (never a "valid" answer). */
async function query<R extends pg.QueryResultRow = pg.QueryResultRow>(
  on: pg.Pool | pg.PoolClient,
  text: string,
  values: readonly unknown[],
): Promise<pg.QueryResult<R>> {
  try {
    return await on.query<R>(text, [...values]);
  } catch (err) {
    throw dbError(err);
  }
}

/**
 * One transaction on one pooled connection. RlsKitErrors (and the
 * resolver's own errors) roll it back and reach the caller unchanged; a
 * connection that failed is destroyed rather than returned to the pool.
 */
async function transaction<T>(
  pool: pg.Pool,
  fn: (client: pg.PoolClient) => Promise<T>,
): Promise<T> {
  let client: pg.PoolClient;
  try {
    client = await pool.connect();
  } catch (err) {
    throw dbError(err);
  }
  let broken: Error | undefined;
  const onError = (err: Error) => {
    broken ??= err;
  };
  client.on('error', onError);
  try {
    await query(client, 'begin', []);
    const value = await fn(client);
    await query(client, 'commit', []);
    return value;
  } catch (err) {
    await client.query('rollback').catch((e: unknown) => {
      broken ??= e instanceof Error ? e : new Error(String(e));
    });
    throw err;
  } finally {
    client.off('error', onError);
    client.release(broken);
  }
}

function dbError(err: unknown): RlsKitError {
  if (err instanceof RlsKitError) return err;
  const code = (err as { code?: unknown }).code;
  const first = (err instanceof Error ? err.message : String(err)).split('\n')[0];
  const lost =
    (typeof code === 'string' && (code.startsWith('08') || /^E[A-Z]+$/.test(code))) ||
    /connection|terminat|timeout/i.test(first ?? '');
  return new RlsKitError(
    lost ? 'ERR_DB_UNREACHABLE' : 'ERR_DB_QUERY',
    lost
      ? `refresh tokens: the database connection failed (${typeof code === 'string' ? code : first}); nothing was refreshed`
      : `refresh tokens: the database refused the query (${typeof code === 'string' ? code : 'error'}: ${first})`,
    { cause: err },
  );
}
