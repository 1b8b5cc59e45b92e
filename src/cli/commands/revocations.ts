import pg from 'pg';
import { describeUrl, openDatabase } from '../../db/database.js';
import { RlsKitError } from '../../errors.js';
import { parseFlags } from '../args.js';
import type { CliIO, Command } from '../command.js';

/** Opens the database (`--db-url`, else DATABASE_URL, else the embedded default) for one callback. */
async function withClient<T>(
  dbUrl: string | undefined,
  io: CliIO,
  work: (client: pg.Client, url: string) => Promise<T>,
): Promise<T> {
  const db = await openDatabase({ url: dbUrl ?? (io.env.DATABASE_URL || undefined) });
  const client = new pg.Client({ connectionString: db.url });
  client.on('error', () => undefined); // a lost server rejects the query instead of crashing
  try {
    await client.connect();
    return await work(client, db.url);
  } finally {
    await client.end().catch(() => undefined);
    await db.close();
  }
}

function queryError(err: unknown, url: string, what: string): RlsKitError {
  const code = (err as { code?: string }).code;
  if (code === '42P01' || code === '42883' || code === '3F000') {
    return new RlsKitError(
      'ERR_MIGRATION',
      `the database at ${describeUrl(url)} lacks the kit's revocation tables: apply the kit's migrations (rls-kit migrate)`,
      { cause: err },
    );
  }
  const message = err instanceof Error ? err.message.split('\n')[0] : String(err);
  return new RlsKitError('ERR_DB_QUERY', `${what} failed: ${message}`, { cause: err });
}

interface RevocationRow {
  kind: 'token' | 'subject' | 'session';
  key: string;
  sub: string | null;
  at: Date;
  expires_at: Date | null;
  reason: string | null;
}

/**
 * `rls-kit revocations list [--db-url URL] [--limit N]` — the newest
 * revocations first, one JSON line each: `{"kind":"token","jti":...}`,
 * `{"kind":"subject","sub":...,"not_before":...}` or
 * `{"kind":"session","session_id":...}`.
 *
 * @example
 * ```sh
 * rls-kit revocations list --limit 20 | jq .
 * ```
 */
export const revocationsListCommand: Command = {
  path: ['revocations', 'list'],
  summary: 'list revoked tokens, subject cut-offs and ended sessions (newest first, JSON lines)',
  usage:
    'rls-kit revocations list [--db-url URL] [--limit N]\n\n' +
    '  --db-url URL  the database (default: DATABASE_URL, else the embedded database)\n' +
    '  --limit N     at most N lines (default 100)',
  async run(args, io) {
    const { values } = parseFlags(
      args,
      { 'db-url': { type: 'string' }, limit: { type: 'string' } },
      'revocations list',
    );
    const limitText = values.limit ?? '100';
    if (!/^\d{1,9}$/.test(limitText) || Number(limitText) < 1) {
      throw new RlsKitError(
        'ERR_USAGE',
        `--limit "${limitText}" is not a positive whole number (see: rls-kit revocations list --help)`,
      );
    }
    const limit = Number(limitText);
    return withClient(values['db-url'], io, async (client, url) => {
      let rows: RevocationRow[];
      try {
        ({ rows } = await client.query<RevocationRow>(
          `select * from (
             select 'token' as kind, jti as key, sub::text as sub, revoked_at as at, expires_at, reason
               from rls_kit.revoked_tokens
             union all
             select 'subject', sub::text, sub::text, not_before, null, reason
               from rls_kit.subject_revocations
             union all
             select 'session', session_id::text, sub::text, revoked_at, expires_at, reason
               from rls_kit.revoked_sessions
           ) r order by at desc, kind, key limit $1`,
          [limit],
        ));
      } catch (err) {
        throw queryError(err, url, 'listing revocations');
      }
      for (const r of rows) {
        const line =
          r.kind === 'token'
            ? { kind: r.kind, jti: r.key, sub: r.sub, revoked_at: r.at, expires_at: r.expires_at }
            : r.kind === 'subject'
              ? { kind: r.kind, sub: r.key, not_before: r.at }
              : {
                  kind: r.kind,
                  session_id: r.key,
                  sub: r.sub,
                  revoked_at: r.at,
                  expires_at: r.expires_at,
                };
        io.stdout.write(`${JSON.stringify({ ...line, reason: r.reason })}\n`);
      }
      io.stderr.write(`${rows.length} revocation${rows.length === 1 ? '' : 's'}\n`);
      return 0;
    });
  },
};

/**
 * `rls-kit revocations purge [--db-url URL]` — `rls_kit.purge_expired()`
 * (revoked tokens past their expiry, ended sessions past their retention)
 * and `rls_kit.purge_refresh_tokens()` (refresh families past their absolute
 * end), in one transaction; prints `{"revocations":N,"refresh_tokens":M}`.
 *
 * @example
 * ```sh
 * rls-kit revocations purge --db-url "$DATABASE_URL"
 * ```
 */
export const revocationsPurgeCommand: Command = {
  path: ['revocations', 'purge'],
  summary:
    'delete revocations and refresh tokens that can no longer matter (rls_kit.purge_expired, rls_kit.purge_refresh_tokens)',
  usage:
    'rls-kit revocations purge [--db-url URL]\n\n' +
    '  --db-url URL  the database (default: DATABASE_URL, else the embedded database)\n\n' +
    'Prints {"revocations":N,"refresh_tokens":M}: rows of the revocation tables and of\n' +
    'rls_kit.refresh_tokens deleted.',
  async run(args, io) {
    const { values } = parseFlags(args, { 'db-url': { type: 'string' } }, 'revocations purge');
    return withClient(values['db-url'], io, async (client, url) => {
      let revocations: number;
      let refreshTokens: number;
      try {
        // One statement, so both purges commit or neither does.
        const { rows } = await client.query<{ r: string; f: string }>(
          'select rls_kit.purge_expired()::text as r, rls_kit.purge_refresh_tokens()::text as f',
        );
        revocations = Number(rows[0]?.r ?? 0);
        refreshTokens = Number(rows[0]?.f ?? 0);
      } catch (err) {
        throw queryError(err, url, 'purging revocations');
      }
      io.stdout.write(`${JSON.stringify({ revocations, refresh_tokens: refreshTokens })}\n`);
      io.stderr.write(
        `purged ${revocations} expired revocation${revocations === 1 ? '' : 's'} and ${refreshTokens} refresh token${refreshTokens === 1 ? '' : 's'}\n`,
      );
      return 0;
    });
  },
};
