import { readFile } from 'node:fs/promises';
import type { Readable, Writable } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import pg from 'pg';
import { describeUrl, parseDatabaseUrl, unreachable } from '../../db/database.js';
import { RlsKitError } from '../../errors.js';
import type { RevocationCheck } from '../../tokens/revocation-check.js';
import { createVerifier, type Verifier, type VerifierKeys } from '../../tokens/verify.js';
import { parseFlags } from '../args.js';
import type { CliIO, Command } from '../command.js';

/** The verifier's default length cap; longer stdin lines are answered without being buffered. */
const MAX_LINE = 8192;

/**
 * `rls-kit verify --iss ISS --aud AUD (--jwks FILE|--jwks-url URL|--secret-env VAR) [--db-url URL] [TOKEN]`
 *
 * One TOKEN: `{"ok":true,"claims":{...}}` and exit 0, or
 * `{"ok":false,"code":"ERR_..."}`, one line on stderr and exit 1. Without
 * TOKEN, one token per stdin line, one JSON line each, in order, written as
 * soon as that token is verified; exit 0. Revocation is checked only with an
 * explicit `--db-url` (never `DATABASE_URL`), through `rls_kit.token_status`.
 *
 * @example
 * ```sh
 * rls-kit verify --iss https://api.example.com --aud authenticated --jwks jwks.json "$TOKEN"
 * cat tokens.txt | rls-kit verify --iss https://api.example.com --aud authenticated --jwks-url https://api.example.com/.well-known/jwks.json
 * ```
 */
export const verifyCommand: Command = {
  path: ['verify'],
  summary: 'verify a token (or one per stdin line) against an issuer, an audience and keys',
  usage:
    'rls-kit verify --iss ISS --aud AUD (--jwks FILE | --jwks-url URL | --secret-env VAR) [--db-url URL] [TOKEN]\n\n' +
    '  --iss ISS          accepted issuer (repeat for several)\n' +
    '  --aud AUD          accepted audience (repeat for several)\n' +
    '  --jwks FILE        a JWK Set file (public JWKS or a keyring file)\n' +
    '  --jwks-url URL     a JWKS URL (https, or http on a loopback host)\n' +
    '  --secret-env VAR   name of the environment variable holding an HS256 secret\n' +
    '  --db-url URL       also check revocation in this database (rls_kit.token_status)\n' +
    '  TOKEN              the token; without it, one token per stdin line',
  async run(args, io) {
    const { values, positionals } = parseFlags(
      args,
      {
        iss: { type: 'string', multiple: true },
        aud: { type: 'string', multiple: true },
        jwks: { type: 'string' },
        'jwks-url': { type: 'string' },
        'secret-env': { type: 'string' },
        'db-url': { type: 'string' },
      },
      'verify',
      true,
    );
    const usage = (message: string) =>
      new RlsKitError('ERR_USAGE', `${message} (see: rls-kit verify --help)`);
    const issuer = values.iss?.filter((v) => v !== '') ?? [];
    const audience = values.aud?.filter((v) => v !== '') ?? [];
    if (issuer.length === 0) throw usage('--iss is required');
    if (audience.length === 0) throw usage('--aud is required');
    if (positionals.length > 1) throw usage('give at most one TOKEN (or none to read stdin)');
    const sources = [values.jwks, values['jwks-url'], values['secret-env']].filter(
      (v) => v !== undefined,
    );
    if (sources.length !== 1) throw usage('give exactly one of --jwks, --jwks-url or --secret-env');

    const keys = await loadKeys(values, io);
    const dbUrl = values['db-url'];
    const revocation = dbUrl === undefined ? undefined : await databaseRevocation(dbUrl);
    try {
      const verifier = createVerifier({
        issuer,
        audience,
        keys,
        ...(revocation ? { revocation: revocation.check } : {}),
      });
      const token = positionals[0];
      if (token !== undefined) {
        const result = await verifyOne(verifier, token.trim());
        await writeLine(io.stdout, result.line);
        if (result.error)
          io.stderr.write(`rls-kit: ${result.error.message} [${result.error.code}]\n`);
        return result.error ? 1 : 0;
      }
      let ok = 0;
      let rejected = 0;
      for await (const line of lines(io.stdin, MAX_LINE)) {
        const result = line === undefined ? tooLong() : await verifyOne(verifier, line.trim());
        if (result.error) rejected++;
        else ok++;
        await writeLine(io.stdout, result.line);
      }
      io.stderr.write(`verified ${ok + rejected} tokens: ${ok} ok, ${rejected} rejected\n`);
      return 0;
    } finally {
      await revocation?.close();
    }
  },
};

interface Outcome {
  readonly line: string;
  readonly error?: RlsKitError;
}

async function verifyOne(verifier: Verifier, token: string): Promise<Outcome> {
  try {
    const claims = verifier.verifyCached(token) ?? (await verifier.verify(token));
    return { line: JSON.stringify({ ok: true, claims }) };
  } catch (err) {
    const error =
      err instanceof RlsKitError
        ? err
        : new RlsKitError('ERR_TOKEN_MALFORMED', 'the token could not be verified', { cause: err });
    return { line: JSON.stringify({ ok: false, code: error.code }), error };
  }
}

function tooLong(): Outcome {
  const error = new RlsKitError('ERR_TOKEN_TOO_LARGE', `the line is over ${MAX_LINE} characters`);
  return { line: JSON.stringify({ ok: false, code: error.code }), error };
}

/** Writes one line, waiting for the consumer when its buffer is full (streaming large inputs). */
async function writeLine(out: Writable, line: string): Promise<void> {
  if (!out.write(`${line}\n`)) {
    await new Promise<void>((resolve) => {
      const done = () => {
        out.off('drain', done);
        out.off('close', done);
        out.off('error', done);
        resolve();
      };
      out.once('drain', done);
      out.once('close', done);
      out.once('error', done);
    });
  }
}

/**
 * Lines of `input`, decoded as UTF-8 (invalid bytes become U+FFFD, so binary
 * input is just a malformed token). A line over `max` characters is yielded
 * as `undefined` and never held in memory whole.
 */
async function* lines(input: Readable, max: number): AsyncGenerator<string | undefined> {
  const decoder = new StringDecoder('utf8');
  let pending = '';
  let overflow = false;
  for await (const chunk of input) {
    let text = typeof chunk === 'string' ? chunk : decoder.write(chunk as Buffer);
    for (;;) {
      const nl = text.indexOf('\n');
      if (nl < 0) {
        if (!overflow) {
          pending += text;
          if (pending.length > max) {
            overflow = true;
            pending = '';
          }
        }
        break;
      }
      const part = text.slice(0, nl);
      text = text.slice(nl + 1);
      if (overflow || pending.length + part.length > max) yield undefined;
      else yield pending + part;
      pending = '';
      overflow = false;
    }
  }
  const rest = pending + decoder.end();
  if (overflow || rest.length > max) yield undefined;
  else if (rest.length > 0) yield rest;
}

type KeyFlags = {
  jwks?: string | undefined;
  'jwks-url'?: string | undefined;
  'secret-env'?: string | undefined;
};

async function loadKeys(values: KeyFlags, io: CliIO): Promise<VerifierKeys> {
  if (values['jwks-url'] !== undefined) return { jwksUrl: values['jwks-url'] };
  if (values['secret-env'] !== undefined) {
    const name = values['secret-env'];
    const secret = io.env[name];
    if (secret === undefined || secret === '') {
      throw new RlsKitError(
        'ERR_USAGE',
        `the environment variable ${name} (--secret-env) is not set or empty`,
      );
    }
    return { secret };
  }
  const file = values.jwks!;
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as { code?: string }).code ?? 'unreadable';
    throw new RlsKitError('ERR_KEY_INVALID', `cannot read the JWKS file ${file} (${code})`, {
      cause: err,
    });
  }
  if (text.trimStart().startsWith('-----BEGIN')) {
    throw new RlsKitError(
      'ERR_KEY_INVALID',
      `${file} is a PEM file; --jwks takes a JWK Set (JSON): convert it with rls-kit keys, or publish a JWKS`,
    );
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new RlsKitError(
      'ERR_KEY_INVALID',
      `${file} is not JSON; --jwks takes a JWK Set ({"keys":[...]})`,
      {
        cause: err,
      },
    );
  }
  // A lone JWK is accepted as a set of one.
  if (typeof doc === 'object' && doc !== null && 'kty' in doc) doc = { keys: [doc] };
  return { jwks: doc as { keys: [] } };
}

/**
 * Revocation through the database: `rls_kit.token_status(claims jsonb)` (the
 * kit's migrations). Until the revocation list lands as a library, the CLI
 * asks the database once per token; its answer may be a boolean (true =
 * active) or an object with `active`, `revoked` or `status`. Any other
 * answer, or an error, fails closed (`ERR_REVOCATION_UNAVAILABLE`).
 */
async function databaseRevocation(
  url: string,
): Promise<{ check: RevocationCheck; close(): Promise<void> }> {
  parseDatabaseUrl(url);
  const pool = new pg.Pool({ connectionString: url, max: 2, connectionTimeoutMillis: 5_000 });
  pool.on('error', () => undefined);
  try {
    const { rows } = await pool.query<{ present: boolean }>(
      "select to_regprocedure('rls_kit.token_status(jsonb)') is not null as present",
    );
    if (!rows[0]?.present) {
      throw new RlsKitError(
        'ERR_REVOCATION_UNAVAILABLE',
        `the database at ${describeUrl(url)} has no rls_kit.token_status(jsonb): apply the kit's migrations (rls-kit migrate) to check revocation`,
      );
    }
  } catch (err) {
    await pool.end().catch(() => undefined);
    throw err instanceof RlsKitError ? err : unreachable(url, err);
  }
  return {
    check: {
      async isRevoked(claims) {
        const { rows } = await pool.query<{ status: unknown }>(
          'select to_jsonb(rls_kit.token_status($1::jsonb)) as status',
          [JSON.stringify(claims)],
        );
        return revokedFrom(rows[0]?.status);
      },
    },
    close: () => pool.end(),
  };
}

function revokedFrom(status: unknown): boolean {
  if (typeof status === 'boolean') return !status;
  if (typeof status === 'object' && status !== null) {
    const s = status as { active?: unknown; revoked?: unknown; status?: unknown };
    if (typeof s.active === 'boolean') return !s.active;
    if (typeof s.revoked === 'boolean') return s.revoked;
    if (typeof s.status === 'string') return s.status !== 'active';
  }
  throw new Error('rls_kit.token_status answered in an unexpected shape');
}
