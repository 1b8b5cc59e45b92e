/**
 * The in-memory mirror of the three revocation tables, with the verdict of
 * `rls_kit.token_status` computed from it. Plain Maps keyed by strings: O(1)
 * lookups, and the values are small integers (epoch seconds) that V8 stores
 * inline, so an entry costs the key string plus one hash-table slot.
 */

const UUID_RE = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
/** `rls_kit.token_status` accepts iat between 0 and 9999-12-31T23:59:59Z. */
const MAX_IAT = 253402300799;

/**
 * A mutable revocation state: denied jtis, subject cut-offs, ended sessions.
 *
 * @example
 * ```ts
 * const store: RevocationStore = createRevocationStore();
 * store.subjects.set(userId.toLowerCase(), Math.floor(Date.now() / 1000));
 * ```
 */
export interface RevocationStore {
  /** jti → expiry (epoch seconds, rounded up). */
  readonly tokens: Map<string, number>;
  /** lower-case sub uuid → cut-off (epoch seconds, rounded down). */
  readonly subjects: Map<string, number>;
  /** lower-case session uuid → retention expiry (epoch seconds). */
  readonly sessions: Map<string, number>;
}

/**
 * An empty store.
 *
 * @example
 * ```ts
 * const store = createRevocationStore();
 * store.tokens.set('abc', Math.ceil(Date.now() / 1000) + 600);
 * ```
 */
export function createRevocationStore(): RevocationStore {
  return { tokens: new Map(), subjects: new Map(), sessions: new Map() };
}

/**
 * Whether claims are dead by the store, with exactly the rules of
 * `rls_kit.token_status`: claims without a string uuid `sub` or a numeric
 * `iat` in range, or with a malformed `session_id`/`sid`, count as revoked
 * (the SQL calls them inactive); otherwise a denied `jti`, an `iat` at or
 * before the subject's cut-off, or an ended session revoke. A jti entry past
 * its expiry is dropped on the way (the token it names is expired anyway).
 *
 * @example
 * ```ts
 * if (isRevokedIn(store, claims, Date.now() / 1000)) refuse();
 * ```
 */
export function isRevokedIn(
  store: RevocationStore,
  claims: Readonly<Record<string, unknown>>,
  nowSec: number,
): boolean {
  if (typeof claims !== 'object' || claims === null || Array.isArray(claims)) return true;
  const sub = claims.sub;
  if (typeof sub !== 'string' || !UUID_RE.test(sub)) return true;
  const iat = claims.iat;
  if (typeof iat !== 'number' || !Number.isFinite(iat) || iat < 0 || iat > MAX_IAT) return true;
  const sessionId = claims.session_id;
  if (sessionId !== undefined && (typeof sessionId !== 'string' || !UUID_RE.test(sessionId)))
    return true;
  const sid = claims.sid;
  if (sid !== undefined && (typeof sid !== 'string' || !UUID_RE.test(sid))) return true;

  // Empty maps are skipped, and with them the lower-casing (a string allocation per claim).
  const { tokens, subjects, sessions } = store;
  if (tokens.size > 0) {
    const jti = jtiText(claims.jti);
    if (jti !== undefined) {
      const exp = tokens.get(jti);
      if (exp !== undefined) {
        if (exp > nowSec) return true;
        tokens.delete(jti);
      }
    }
  }
  if (subjects.size > 0) {
    const cutoff = subjects.get(sub.toLowerCase());
    if (cutoff !== undefined && Math.floor(iat) <= cutoff) return true;
  }
  if (sessions.size > 0) {
    if (typeof sessionId === 'string' && sessions.has(sessionId.toLowerCase())) return true;
    if (typeof sid === 'string' && sessions.has(sid.toLowerCase())) return true;
  }
  return false;
}

/** `claims ->> 'jti'` for the values a jti can sensibly have (a string; a number's JSON text). */
function jtiText(jti: unknown): string | undefined {
  if (typeof jti === 'string') return jti;
  if (typeof jti === 'number' && Number.isFinite(jti)) return JSON.stringify(jti);
  return undefined;
}

/**
 * Drops jti entries and ended sessions past their expiry; returns how many
 * went. Subject cut-offs stay, as in the database (one row per user).
 *
 * @example
 * ```ts
 * sweepExpired(store, Date.now() / 1000);
 * ```
 */
export function sweepExpired(store: RevocationStore, nowSec: number): number {
  let dropped = 0;
  for (const [key, exp] of store.tokens) {
    if (exp <= nowSec) {
      store.tokens.delete(key);
      dropped++;
    }
  }
  for (const [key, exp] of store.sessions) {
    if (exp <= nowSec) {
      store.sessions.delete(key);
      dropped++;
    }
  }
  return dropped;
}
