import pg from 'pg';
import { describeUrl, openDatabase } from '../../db/database.js';
import { RlsKitError } from '../../errors.js';
import { parseFlags } from '../args.js';
import type { Command } from '../command.js';

const UUID_RE = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
/** Printable ASCII without spaces, 1 to 255 characters (the table's limit): every jti a JWT library mints. */
const JTI_RE = /^[\x21-\x7e]{1,255}$/;
/** RFC 3339 date-time with an explicit offset: a bare local time would depend on the machine's zone. */
const ISO_RE = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?([Zz]|[+-]\d{2}:?\d{2})$/;

/**
 * Input rejected before any database work (`ERR_REVOKE_INPUT`): exit 1, as
 * DESIGN.md asks for rejected input; bad flag combinations are `ERR_USAGE`
 * (exit 2).
 */
function rejected(message: string): RlsKitError {
  return new RlsKitError('ERR_REVOKE_INPUT', message);
}

function usage(message: string): RlsKitError {
  return new RlsKitError('ERR_USAGE', `${message} (see: rls-kit revoke --help)`);
}

/** `--exp`: an RFC 3339 time with offset, or epoch seconds (a token's `exp` as it is). */
function parseExpiry(text: string, now: number): Date {
  let at: Date;
  if (/^\d{1,12}$/.test(text)) at = new Date(Number(text) * 1000);
  else if (ISO_RE.test(text)) at = new Date(text.replace(' ', 'T'));
  else
    throw rejected(
      `--exp "${text}" is not a timestamp: give the token's expiry as e.g. 2030-01-01T00:00:00Z or as epoch seconds`,
    );
  if (Number.isNaN(at.getTime()) || !calendarValid(text)) {
    throw rejected(`--exp "${text}" is not a valid date`);
  }
  if (at.getTime() <= now) {
    throw rejected(
      `--exp ${at.toISOString()} is not in the future: an expired token is refused anyway, nothing to revoke`,
    );
  }
  return at;
}

/** Date rolls 2030-02-31 over into March; a typo must not become another day. */
function calendarValid(text: string): boolean {
  const m = /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2})(?::(\d{2}))?/.exec(text);
  if (m === null) return true; // epoch seconds
  const [y, mo, d, h, mi, se] = m.slice(1).map((v) => Number(v ?? 0)) as number[];
  const day = new Date(Date.UTC(y!, mo! - 1, d!));
  return (
    day.getUTCFullYear() === y &&
    day.getUTCMonth() === mo! - 1 &&
    day.getUTCDate() === d &&
    h! <= 23 &&
    mi! <= 59 &&
    se! <= 59
  );
}

function checkUuid(value: string, flag: string): string {
  if (!UUID_RE.test(value)) throw rejected(`--${flag} "${value}" is not a uuid`);
  return value.toLowerCase();
}

/** Turns a failed revoking call into one line: a missing kit, or Postgres's own reason. */
function queryError(err: unknown, url: string): RlsKitError {
  const code = (err as { code?: string }).code;
  if (code === '42883' || code === '3F000') {
    return new RlsKitError(
      'ERR_MIGRATION',
      `the database at ${describeUrl(url)} lacks the kit's revocation functions: apply the kit's migrations (rls-kit migrate)`,
      { cause: err },
    );
  }
  const message = err instanceof Error ? err.message.split('\n')[0] : String(err);
  return new RlsKitError('ERR_DB_QUERY', `revoking failed: ${message}`, { cause: err });
}

/**
 * `rls-kit revoke --db-url URL (--jti J --exp ISO | --sub UUID [--keep-sessions] | --session UUID) [--reason R]`
 *
 * Calls `rls_kit.revoke_token`, `revoke_subject` or `revoke_session` with
 * bound parameters and prints one JSON line of what was revoked. Inputs are
 * checked before the database is touched: a malformed jti, uuid or
 * timestamp, or an expiry in the past, is one line on stderr and exit 1.
 *
 * @example
 * ```sh
 * rls-kit revoke --db-url "$DATABASE_URL" --sub 6f1d1c9e-3c1a-4b5e-9d7a-1a2b3c4d5e6f --reason "password reset"
 * rls-kit revoke --jti Zm9vYmFy --exp 2030-01-01T00:00:00Z
 * ```
 */
export const revokeCommand: Command = {
  path: ['revoke'],
  summary: 'revoke a token (jti), every token of a user (sub) or a session',
  usage:
    'rls-kit revoke [--db-url URL] (--jti J --exp ISO | --sub UUID [--keep-sessions] | --session UUID) [--reason R]\n\n' +
    '  --db-url URL      the database (default: DATABASE_URL)\n' +
    '  --jti J --exp T   one token, kept denied until its expiry T (RFC 3339 with offset, or epoch seconds)\n' +
    '  --sub UUID        every token of the user issued up to now; also ends their sessions\n' +
    '  --keep-sessions   with --sub: keep sessions, so the user refreshes into fresh tokens\n' +
    '  --session UUID    one session (Supabase session_id or kit sid) and its tokens\n' +
    '  --reason R        why (stored for people)',
  async run(args, io) {
    const { values } = parseFlags(
      args,
      {
        'db-url': { type: 'string' },
        jti: { type: 'string' },
        exp: { type: 'string' },
        sub: { type: 'string' },
        'keep-sessions': { type: 'boolean' },
        session: { type: 'string' },
        reason: { type: 'string' },
      },
      'revoke',
    );
    const targets = [values.jti, values.sub, values.session].filter((v) => v !== undefined);
    if (targets.length !== 1) throw usage('give exactly one of --jti, --sub or --session');
    if (values.jti !== undefined && values.exp === undefined)
      throw usage('--jti needs --exp (the token’s expiry)');
    if (values.jti === undefined && values.exp !== undefined) throw usage('--exp goes with --jti');
    if (values['keep-sessions'] && values.sub === undefined)
      throw usage('--keep-sessions goes with --sub');
    const url = values['db-url'] ?? (io.env.DATABASE_URL || undefined);
    if (url === undefined) throw usage('--db-url is required (or set DATABASE_URL)');
    const reason = values.reason ?? null;
    if (reason !== null && reason.length > 1000) throw rejected('--reason is over 1000 characters');

    // Everything is checked before the database is touched.
    let statement: { text: string; values: unknown[] };
    let result: Record<string, unknown>;
    if (values.jti !== undefined) {
      if (!JTI_RE.test(values.jti)) {
        throw rejected(
          '--jti is malformed: give the token’s jti claim (1 to 255 printable characters, no spaces)',
        );
      }
      const exp = parseExpiry(values.exp!, Date.now());
      statement = {
        text: 'select rls_kit.revoke_token($1::text, $2::timestamptz, $3::text) as r',
        values: [values.jti, exp.toISOString(), reason],
      };
      result = { revoked: 'token', jti: values.jti, expires_at: exp.toISOString() };
    } else if (values.sub !== undefined) {
      const sub = checkUuid(values.sub, 'sub');
      const endSessions = !values['keep-sessions'];
      statement = {
        text: 'select rls_kit.revoke_subject($1::uuid, $2::text, $3::boolean) as r',
        values: [sub, reason, endSessions],
      };
      result = { revoked: 'subject', sub, end_sessions: endSessions };
    } else {
      const session = checkUuid(values.session!, 'session');
      statement = {
        text: 'select rls_kit.revoke_session($1::uuid, $2::text) as r',
        values: [session, reason],
      };
      result = { revoked: 'session', session_id: session };
    }

    const db = await openDatabase({ url });
    const client = new pg.Client({ connectionString: db.url });
    client.on('error', () => undefined); // a lost server rejects the query instead of crashing
    try {
      await client.connect();
      let rows: { r: unknown }[];
      try {
        ({ rows } = await client.query<{ r: unknown }>(statement));
      } catch (err) {
        throw queryError(err, db.url);
      }
      const r = rows[0]?.r;
      if (r instanceof Date) result = { ...result, not_before: r.toISOString() };
      io.stdout.write(`${JSON.stringify({ ...result, reason })}\n`);
      return 0;
    } finally {
      await client.end().catch(() => undefined);
      await db.close();
    }
  },
};
