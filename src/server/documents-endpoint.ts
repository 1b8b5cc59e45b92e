import type { Kysely } from 'kysely';
import type pg from 'pg';
import { queryAsUserPg } from '../db/query-as-user-pg.js';
import { type AsUserOptions, DEFAULT_ROLES } from '../db/request-settings.js';
import { refuseRole } from '../supabase/edge-responses.js';
import type { VerifiedClaims } from '../tokens/index.js';
import type { ExampleDatabase } from './example-database.js';
import { oauthError } from './oauth-error.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const COLUMNS = ['id', 'org_id', 'owner_id', 'title', 'body', 'created_at'] as const;
const MAX_TITLE = 200;
const MAX_BODY = 10_000;

/** What the documents handler gets from the authenticating wrapper. */
export interface DocumentsRequestContext {
  /** Verified, non-revoked claims of the bearer token. */
  readonly claims: VerifiedClaims;
  /** A transaction running as the token's user (role `authenticated`, RLS applies). */
  readonly db: Kysely<ExampleDatabase>;
}

/**
 * The example app's API under `/api/documents`, written as a plain
 * fetch-style handler that runs inside the user's transaction: every query
 * goes through row level security, so this code never filters by
 * organization itself — Postgres decides.
 *
 * - `GET /api/documents[?limit=1..100]`: the visible documents, newest first;
 * - `POST /api/documents` `{"title", "body"?}`: a document in the token's
 *   `org_id`, owned by its `sub` (201; 403 when RLS refuses, e.g. a viewer);
 * - `PATCH /api/documents/:id` `{"title"?, "body"?}`: 200, 404 when not
 *   visible, 403 when visible but not writable;
 * - `DELETE /api/documents/:id`: 204, 404, 403 likewise.
 *
 * @example
 * ```ts
 * const edge = createEdgeHandler({ verifier, db }, (request, { claims, db }) => documentsHandler(request, { claims, db }));
 * ```
 */
export async function documentsHandler(
  request: Request,
  { claims, db }: DocumentsRequestContext,
): Promise<Response> {
  const url = new URL(request.url);
  const rest = url.pathname.replace(/^\/api\/documents\/?/, '');
  if (rest === '') {
    if (request.method === 'GET' || request.method === 'HEAD') return list(url, db);
    if (request.method === 'POST') return create(request, claims, db);
    return methodNotAllowed('GET, POST');
  }
  if (!UUID.test(rest)) return notFound();
  if (request.method === 'PATCH') return update(request, rest, db);
  if (request.method === 'DELETE') return remove(rest, db);
  return methodNotAllowed('PATCH, DELETE');
}

async function list(url: URL, db: Kysely<ExampleDatabase>): Promise<Response> {
  const limit = listLimit(url);
  if (limit instanceof Response) return limit;
  return json(200, (await db.executeQuery(compileList(db, limit))).rows);
}

/** `?limit=` of the list (default 50), or the 400 for a bad one. */
function listLimit(url: URL): number | Response {
  const raw = url.searchParams.get('limit');
  const limit = raw === null ? 50 : Number(raw);
  if (!Number.isInteger(limit) || limit < 1 || limit > 100) {
    return oauthError(400, 'invalid_request', 'limit must be a whole number from 1 to 100');
  }
  return limit;
}

/**
 * The list's one statement for `?limit=`, compiled once per (long-lived)
 * Kysely instance and limit — at most 100 of them: building and compiling
 * it on every request cost more Node time than the rest of the handler —
 * or the 400 for a bad `limit`.
 */
function listQuery(url: URL, db: Kysely<ExampleDatabase>) {
  const limit = listLimit(url);
  if (limit instanceof Response) return limit;
  let byLimit = compiledLists.get(db);
  if (byLimit === undefined) {
    byLimit = new Map();
    compiledLists.set(db, byLimit);
  }
  let compiled = byLimit.get(limit);
  if (compiled === undefined) {
    compiled = compileList(db, limit);
    byLimit.set(limit, compiled);
  }
  return compiled;
}

function compileList(db: Kysely<ExampleDatabase>, limit: number) {
  return db
    .selectFrom('documents')
    .select(COLUMNS)
    .orderBy('created_at', 'desc')
    .orderBy('id')
    .limit(limit)
    .compile();
}

const compiledLists = new WeakMap<
  Kysely<ExampleDatabase>,
  Map<number, ReturnType<typeof compileList>>
>();

/**
 * `GET /api/documents` in one round trip: the list is one statement, so it
 * runs through `queryAsUserPg` (the settings and the query in one implicit
 * transaction, on the service's pool directly) instead of a transaction
 * around the handler. `db` compiles the query (once per limit); the claims
 * are verified (revocation included) by the wrapper; roles other than
 * `anon` and `authenticated` get 403.
 *
 * @example
 * ```ts
 * const list = createEdgeHandler({ verifier }, (request, { claims }) => documentsListHandler(request, claims, db, pool));
 * ```
 */
export async function documentsListHandler(
  request: Request,
  claims: VerifiedClaims,
  db: Kysely<ExampleDatabase>,
  pool: pg.Pool,
  options?: Pick<AsUserOptions, 'preparedStatements'>,
): Promise<Response> {
  const refused = refuseRole(claims, DEFAULT_ROLES, undefined);
  if (refused) return refused;
  const url = new URL(request.url);
  const query = listQuery(url, db);
  if (query instanceof Response) return query;
  const { rows } = await queryAsUserPg(
    pool,
    claims,
    { text: query.sql, values: query.parameters },
    {
      ...options,
      request: { method: request.method, path: url.pathname, headers: request.headers },
    },
  );
  return json(200, rows);
}

async function create(
  request: Request,
  claims: VerifiedClaims,
  db: Kysely<ExampleDatabase>,
): Promise<Response> {
  const input = await readJson(request);
  if (input instanceof Response) return input;
  const title = checkText(input.title, 'title', MAX_TITLE, true);
  if (title instanceof Response) return title;
  const body = checkText(input.body, 'body', MAX_BODY, false);
  if (body instanceof Response) return body;
  if (typeof claims.org_id !== 'string') {
    return oauthError(
      403,
      'forbidden',
      'the token has no org_id: the user belongs to no organization',
    );
  }
  // A refusal by RLS (42501, e.g. a viewer) propagates: the transaction must roll back, and
  // the edge wrapper (createEdgeHandler) answers 403.
  const row = await db
    .insertInto('documents')
    .values({
      org_id: claims.org_id,
      owner_id: claims.sub,
      title: title!,
      ...(body === undefined ? {} : { body }),
    })
    .returning(COLUMNS)
    .executeTakeFirstOrThrow();
  return json(201, row);
}

async function update(
  request: Request,
  id: string,
  db: Kysely<ExampleDatabase>,
): Promise<Response> {
  const input = await readJson(request);
  if (input instanceof Response) return input;
  const title = checkText(input.title, 'title', MAX_TITLE, false);
  if (title instanceof Response) return title;
  const body = checkText(input.body, 'body', MAX_BODY, false);
  if (body instanceof Response) return body;
  if (title === undefined && body === undefined) {
    return oauthError(400, 'invalid_request', 'send title and/or body to change');
  }
  const row = await db
    .updateTable('documents')
    .set({ ...(title === undefined ? {} : { title }), ...(body === undefined ? {} : { body }) })
    .where('id', '=', id)
    .returning(COLUMNS)
    .executeTakeFirst();
  if (row !== undefined) return json(200, row);
  return (await visible(db, id)) ? forbidden('update this document') : notFound();
}

async function remove(id: string, db: Kysely<ExampleDatabase>): Promise<Response> {
  const row = await db
    .deleteFrom('documents')
    .where('id', '=', id)
    .returning('id')
    .executeTakeFirst();
  if (row !== undefined) return new Response(null, { status: 204 });
  return (await visible(db, id)) ? forbidden('delete this document') : notFound();
}

async function visible(db: Kysely<ExampleDatabase>, id: string): Promise<boolean> {
  const row = await db.selectFrom('documents').select('id').where('id', '=', id).executeTakeFirst();
  return row !== undefined;
}

async function readJson(request: Request): Promise<Record<string, unknown> | Response> {
  const type = (request.headers.get('content-type') ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== 'application/json') {
    return oauthError(415, 'invalid_request', 'the request body must be application/json');
  }
  let value: unknown;
  try {
    value = JSON.parse(await request.text());
  } catch {
    return oauthError(400, 'invalid_request', 'the request body is not valid JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return oauthError(400, 'invalid_request', 'the request body must be a JSON object');
  }
  return value as Record<string, unknown>;
}

function checkText(
  value: unknown,
  name: string,
  max: number,
  required: boolean,
): string | undefined | Response {
  if (value === undefined && !required) return undefined;
  if (typeof value !== 'string' || (required && value.trim() === '') || value.length > max) {
    return oauthError(
      400,
      'invalid_request',
      `${name} must be a ${required ? 'non-empty ' : ''}string of at most ${max} characters`,
    );
  }
  return value;
}

function json(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { 'content-type': 'application/json', 'cache-control': 'no-store' },
  });
}

function forbidden(what: string): Response {
  return oauthError(403, 'forbidden', `row level security does not let this user ${what}`);
}

function notFound(): Response {
  return oauthError(404, 'not_found', 'no such document (or not visible to this user)');
}

function methodNotAllowed(allow: string): Response {
  return oauthError(405, 'method_not_allowed', `method not allowed here; use ${allow}`, { allow });
}
