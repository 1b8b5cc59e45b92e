import { getConnInfo } from '@hono/node-server/conninfo';
import { type Context, Hono } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { cors } from 'hono/cors';
import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import type { Logger } from 'pino';
import { kitHome } from '../db/embedded.js';
import { RlsKitError } from '../errors.js';
import type { Keyring } from '../keys/index.js';
import { createRefreshTokens } from '../refresh/index.js';
import { createRevocationList, type RevocationList } from '../revocation/index.js';
import { createEdgeHandler, createWellKnownHandler } from '../supabase/index.js';
import { createSupabaseVerifier, type Verifier } from '../tokens/index.js';
import { createAlertDetector } from './alerts.js';
import { clientAddress, isLoopbackHost, normalize } from './client-address.js';
import { createRateLimiter } from './create-rate-limiter.js';
import { createServiceLogger } from './create-service-logger.js';
import { demoLoginEndpoint } from './demo-login-endpoint.js';
import { documentsHandler, documentsListHandler } from './documents-endpoint.js';
import type { ExampleDatabase } from './example-database.js';
import { createKeyRotationSchedule } from './key-rotation.js';
import { logoutEndpoint } from './logout-endpoint.js';
import { createServiceMetrics, type ServiceMetrics } from './metrics.js';
import { metricsGate, metricsRefusal } from './metrics-access.js';
import { oauthError } from './oauth-error.js';
import { prepareDatabase, type ServiceDatabase } from './prepare-database.js';
import { revokeEndpoint } from './revoke-endpoint.js';
import { errorCode, failureResponse, type ServiceContext } from './service-context.js';
import { loadServiceKeys, type ServiceKeys, type ServiceMinter } from './service-keys.js';
import { rateLimited, tokenEndpoint } from './token-endpoint.js';
import type { TokenServiceOptions } from './token-service-options.js';

export { isLoopbackHost };

/** Default port of `rls-kit start`. */
export const DEFAULT_PORT = 8787;
/** Default interface: loopback only. */
export const DEFAULT_HOST = '127.0.0.1';

const KIB = 1024;

/** What `/readyz` reports. */
export interface Readiness {
  readonly ready: boolean;
  /** The database answered `select 1` within a second. */
  readonly database: boolean;
  /** The revocation list is connected and loaded. */
  readonly revocations: boolean;
}

/**
 * The token service without a listening socket: a Hono app (fetch-API
 * handlers) over a database, a keyring, a refresh store and a revocation
 * list. `startTokenService` serves it over HTTP; benchmarks and tests can
 * call `fetch` in-process or mount more routes on `app`.
 */
export interface TokenServiceApp {
  readonly app: Hono;
  /** The app's fetch handler (a socket-less request is rate limited as client `local`). */
  fetch(request: Request): Promise<Response>;
  /** `iss` of the tokens this service mints. */
  readonly issuer: string;
  readonly audience: string;
  /** True when `POST /demo/login` is served. */
  readonly demo: boolean;
  /** Connection string of the service's database (holds credentials: never log it). */
  readonly databaseUrl: string;
  readonly keys: ServiceKeys;
  readonly metrics: ServiceMetrics;
  readonly revocations: RevocationList;
  readonly logger: Logger;
  /** The service's pool (service role): for extra routes and tests. */
  readonly pool: pg.Pool;
  /** Kysely over the pool: pass it to `asUser` for queries as a token's user. */
  readonly db: Kysely<ExampleDatabase>;
  /** Installs a new keyring now (minting, verification and the JWKS switch together). */
  useKeyring(keyring: Keyring): Promise<void>;
  /** Database and revocation-list health, as `/readyz` reports it. */
  readiness(): Promise<Readiness>;
  /** Stops the revocation list, ends the pool, stops an embedded database this service started. */
  close(): Promise<void>;
}

/** True for an `http:` URL whose host is loopback (the default issuer of a local service). */
function isLoopbackHttpUrl(value: string): boolean {
  try {
    const url = new URL(value);
    return url.protocol === 'http:' && isLoopbackHost(url.hostname);
  } catch {
    return false;
  }
}

/**
 * The host of a `Host` header when it names a loopback host (`127.0.0.1:8787`,
 * `[::1]:8787`, `localhost`), else undefined. Demo login checks it so a page on
 * another origin cannot reach it by rebinding its DNS name to 127.0.0.1.
 */
function loopbackHostHeader(header: string | undefined): string | undefined {
  const m = /^(\[[0-9a-fA-F:.]+\]|[^:[\]]+)(?::\d{1,5})?$/.exec(header ?? '');
  const name = m?.[1];
  return name !== undefined && isLoopbackHost(name) ? name : undefined;
}

/**
 * Builds the token service without listening: opens (or starts) the
 * database, applies the example's migrations (and the seed in demo mode),
 * loads or creates the keyring (0600), starts the revocation list and wires
 * every endpoint. `issuer` defaults to `http://<host>:<port>`.
 *
 * @throws RlsKitError `ERR_CONFIG` for demo mode off the embedded database or
 * a loopback host, and for bad option values; database and key errors as
 * their own codes.
 *
 * @example
 * ```ts
 * const service = await createTokenService({ databaseUrl: process.env.DATABASE_URL, issuer: 'http://127.0.0.1:8787' });
 * const res = await service.fetch(new Request('http://127.0.0.1:8787/healthz'));
 * await service.close();
 * ```
 */
export async function createTokenService(
  options: TokenServiceOptions = {},
): Promise<TokenServiceApp> {
  const host = options.host ?? DEFAULT_HOST;
  const port = options.port ?? DEFAULT_PORT;
  const embedded = options.databaseUrl === undefined;
  const loopback = isLoopbackHost(host);
  // Demo mode hands out passwordless logins: only for a service nobody else can
  // reach — the embedded database, a loopback interface, no proxy in front, and
  // an http loopback issuer (an https issuer means a TLS proxy publishes it).
  const proxied = (options.trustedProxies ?? []).length > 0;
  const localIssuer = options.issuer === undefined || isLoopbackHttpUrl(options.issuer);
  if (options.demo === true && !(embedded && loopback && !proxied && localIssuer)) {
    throw new RlsKitError(
      'ERR_CONFIG',
      'demo mode needs the embedded database, a loopback host (127.0.0.1 or ::1), no trusted proxy and an http loopback issuer: drop --db-url/DATABASE_URL, --host, --trusted-proxy and --issuer, or turn demo off',
    );
  }
  const demo = options.demo ?? (embedded && loopback && !proxied && localIssuer);
  const issuer = options.issuer ?? `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  const audience = options.audience ?? 'authenticated';
  const accessTokenTtl = options.accessTokenTtl ?? 600;
  if (!Number.isInteger(accessTokenTtl) || accessTokenTtl < 10 || accessTokenTtl > 3600) {
    throw new RlsKitError('ERR_CONFIG', 'accessTokenTtl must be whole seconds from 10 to 3600');
  }
  const cookiePath = options.cookiePath ?? '/token';
  if (!/^\/[\x21-\x3a\x3c-\x7e]*$/.test(cookiePath)) {
    throw new RlsKitError('ERR_CONFIG', 'cookiePath must be a path starting with /');
  }
  if (options.preparedStatements !== undefined && typeof options.preparedStatements !== 'boolean') {
    throw new RlsKitError(
      'ERR_CONFIG',
      'preparedStatements must be true or false: leave it out for the default (true)',
    );
  }
  const gate = metricsGate(options.metricsAccess);
  const logger = options.logger ?? createServiceLogger();
  const home = kitHome(options.home);

  const database: ServiceDatabase = await prepareDatabase({
    databaseUrl: options.databaseUrl,
    home,
    embeddedName: options.embeddedName,
    migrate: options.migrate ?? true,
    seed: demo,
  });
  const cleanups: (() => Promise<void>)[] = [() => database.close()];
  let closed: Promise<void> | undefined;
  const cleanup = () => {
    closed ??= (async () => {
      for (const fn of [...cleanups].reverse()) await fn().catch(() => undefined);
    })();
    return closed;
  };
  try {
    const pool = new pg.Pool({
      connectionString: database.url,
      max: options.poolSize ?? 10,
      // Fail fast when Postgres is down: requests answer 503 instead of queueing.
      connectionTimeoutMillis: 2000,
      idleTimeoutMillis: 30_000,
    });
    pool.on('error', (err) =>
      logger.warn({ code: (err as { code?: string }).code }, 'idle database connection lost'),
    );
    // Every client keeps an error listener, also while checked out: a backend killed between
    // two statements of a request (Postgres restarting) must fail that request, not crash the
    // process with an unhandled 'error' event. pg-pool drops such clients on release.
    pool.on('connect', (client) => {
      client.on('error', () => undefined);
    });
    cleanups.push(() => pool.end());
    const db = new Kysely<ExampleDatabase>({ dialect: new PostgresDialect({ pool }) });

    const alerts =
      options.alerts === false
        ? false
        : createAlertDetector({
            logger,
            ...(options.alerts ? { thresholds: options.alerts } : {}),
          });
    const metrics = createServiceMetrics({ alerts });
    cleanups.push(async () => metrics.close());

    const revocations = createRevocationList({ ...options.revocation, url: database.url });
    await revocations.start();
    cleanups.push(() => revocations.stop());
    metrics.revocationLag(() => revocations.lagMs / 1000);

    const keys = await loadServiceKeys({
      file: options.keysFile ?? `${home}/keys.json`,
      issuer,
      audience,
      accessTokenTtl,
      revocation: revocations,
      metricsParent: metrics.verifierOutcomes,
      logger,
    });
    // The refresh store mints through whichever key is active now (rotation swaps it).
    const minter: ServiceMinter = {
      get kid() {
        return keys.minter().kid;
      },
      get alg() {
        return keys.minter().alg;
      },
      get issuer() {
        return keys.minter().issuer;
      },
      mint: (input) => keys.minter().mint(input),
      issue: (input) => keys.minter().issue(input),
    };
    const refresh = createRefreshTokens({
      pool,
      minter,
      accessTtl: accessTokenTtl,
      ...options.refresh,
    });

    if (options.keyRotation !== false) {
      const schedule = createKeyRotationSchedule({
        keysFile: keys.file,
        every: '30d',
        jwksCacheWindow: '10m',
        ...(options.keyRotation ?? {}),
        tokenLifetime: accessTokenTtl,
        logger,
        onChange: (keyring) => keys.replace(keyring),
      });
      await schedule.start();
      cleanups.push(async () => schedule.stop());
    }

    let supabase: Verifier | undefined;
    if (options.supabase !== undefined) {
      supabase = createSupabaseVerifier({
        projectUrl: options.supabase.projectUrl,
        ...(options.supabase.jwtSecret === undefined
          ? {}
          : { jwtSecret: options.supabase.jwtSecret }),
        ...(options.supabase.audience === undefined ? {} : { audience: options.supabase.audience }),
        // A revoked Supabase session (rls_kit.revoke_session(session_id)) cannot be exchanged.
        revocation: revocations,
        metricsParent: metrics.verifierOutcomes,
      });
    }

    const ctx: ServiceContext = {
      logger,
      pool,
      db,
      keys,
      refresh,
      revocations,
      metrics,
      supabase,
      demo,
      issuer,
      audience,
      accessTokenTtl,
      cookie: { path: cookiePath, insecure: loopback && issuer.startsWith('http:') },
      limiter: options.rateLimit === false ? undefined : createRateLimiter(options.rateLimit ?? {}),
      metricsGate: gate,
      asUserOptions: { preparedStatements: options.preparedStatements ?? true },
      trustedProxies: new Set(
        (options.trustedProxies ?? []).map((a) => {
          const n = normalize(a);
          if (n === undefined)
            throw new RlsKitError('ERR_CONFIG', `trustedProxies: ${a} is not an IP address`);
          return n;
        }),
      ),
    };

    const readiness = async (): Promise<Readiness> => {
      const database = await ping(pool);
      const inSync = revocations.inSync;
      return { ready: database && inSync, database, revocations: inSync };
    };

    const app = buildApp(ctx, { readiness, cors: options.cors });
    logger.info(
      {
        issuer,
        demo,
        embedded: database.embedded,
        keysFile: keys.file,
        activeKid: keys.minter().kid,
      },
      'token service ready',
    );
    return {
      app,
      fetch: async (request) => app.fetch(request),
      issuer,
      audience,
      demo,
      databaseUrl: database.url,
      keys,
      metrics,
      revocations,
      logger,
      pool,
      db,
      readiness,
      useKeyring: (keyring) => keys.replace(keyring),
      close: cleanup,
    };
  } catch (err) {
    await cleanup();
    throw err;
  }
}

async function ping(pool: pg.Pool): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      pool.query('select 1').then(() => true),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), 1000);
      }),
    ]);
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
  }
}

/** A label for logs: the route, never the raw path (a client could put a token in it). */
function routeLabel(path: string): string {
  if (KNOWN_PATHS.has(path)) return path;
  if (path.startsWith('/api/documents/')) return '/api/documents/:id';
  return 'other';
}
const KNOWN_PATHS = new Set([
  '/',
  '/healthz',
  '/readyz',
  '/metrics',
  '/token',
  '/revoke',
  '/logout',
  '/demo/login',
  '/api/documents',
  '/.well-known/jwks.json',
  '/.well-known/openid-configuration',
]);

function socketAddress(c: Context): string | undefined {
  try {
    return getConnInfo(c).remote.address;
  } catch {
    return undefined; // called in-process, without a socket
  }
}

function buildApp(
  ctx: ServiceContext,
  extra: { readiness: () => Promise<Readiness>; cors: { origins: readonly string[] } | undefined },
): Hono {
  const app = new Hono();
  const { logger } = ctx;
  const tooLarge = (max: number) =>
    bodyLimit({
      maxSize: max,
      onError: () =>
        oauthError(413, 'invalid_request', `the request body is larger than ${max} bytes`),
    });
  const limitedAs =
    (scope: 'sign-in' | 'sign-out') => async (c: Context, next: () => Promise<void>) => {
      const refused = rateLimited(ctx, socketAddress(c), c.req.raw, scope);
      if (refused) return refused;
      await next();
    };
  const limited = limitedAs('sign-in');
  const signOutLimited = limitedAs('sign-out');

  app.use('*', async (c, next) => {
    const started = performance.now();
    await next();
    const status = c.res.status;
    const line = {
      method: c.req.method,
      route: routeLabel(c.req.path),
      status,
      ms: Math.round((performance.now() - started) * 10) / 10,
    };
    if (status >= 500) logger.warn(line, 'request');
    else logger.info(line, 'request');
  });
  if (extra.cors !== undefined && extra.cors.origins.length > 0) {
    app.use(
      '*',
      cors({
        origin: [...extra.cors.origins],
        credentials: true,
        allowMethods: ['GET', 'POST', 'PATCH', 'DELETE'],
        allowHeaders: ['authorization', 'content-type'],
        maxAge: 600,
      }),
    );
  }

  app.get('/', (c) =>
    c.json({
      service: 'supabase-rls-kit token service',
      issuer: ctx.issuer,
      demo: ctx.demo,
      docs: 'docs/service.md',
    }),
  );
  app.get('/healthz', (c) => c.json({ status: 'ok' }, 200, { 'cache-control': 'no-store' }));
  app.get('/readyz', async (c) => {
    const r = await extra.readiness();
    return c.json(r, r.ready ? 200 : 503, { 'cache-control': 'no-store' });
  });
  // The Supabase module's issuer documents (the same a project's third-party auth reads),
  // with the keyring read per request so a rotation shows at once.
  const base = ctx.issuer.replace(/\/+$/, '');
  const wellKnown = createWellKnownHandler({
    issuer: ctx.issuer,
    keyring: () => ctx.keys.keyring(),
    extra: {
      token_endpoint: `${base}/token`,
      revocation_endpoint: `${base}/revoke`,
      grant_types_supported: ['refresh_token', 'urn:ietf:params:oauth:grant-type:token-exchange'],
      token_endpoint_auth_methods_supported: ['none'],
      revocation_endpoint_auth_methods_supported: ['none'],
    },
  });
  app.get('/.well-known/*', (c) => {
    const response = wellKnown(c.req.raw);
    if (response === undefined) return oauthError(404, 'not_found', 'no such document');
    if (c.req.path.endsWith('/jwks.json')) ctx.metrics.jwksFetch(response.ok ? 'ok' : 'error');
    return response;
  });
  app.get('/metrics', async (c) => {
    const client = clientAddress(
      socketAddress(c),
      c.req.header('x-forwarded-for') ?? null,
      ctx.trustedProxies,
    );
    const refused = metricsRefusal(ctx.metricsGate, client, c.req.header('authorization') ?? null);
    if (refused) return refused;
    const { contentType, body } = await ctx.metrics.render();
    return new Response(body, {
      headers: { 'content-type': contentType, 'cache-control': 'no-store' },
    });
  });

  app.post('/token', tooLarge(16 * KIB), limited, (c) => tokenEndpoint(ctx, c.req.raw));
  app.post('/revoke', tooLarge(16 * KIB), signOutLimited, (c) => revokeEndpoint(ctx, c.req.raw));
  app.post('/logout', tooLarge(16 * KIB), signOutLimited, (c) => logoutEndpoint(ctx, c.req.raw));
  if (ctx.demo) {
    app.post('/demo/login', tooLarge(4 * KIB), limited, (c) =>
      loopbackHostHeader(c.req.header('host')) === undefined
        ? oauthError(
            403,
            'forbidden',
            'demo login answers only requests addressed to a loopback host (Host: 127.0.0.1, [::1] or localhost)',
          )
        : demoLoginEndpoint(ctx, c.req.raw),
    );
  }
  for (const path of ['/token', '/revoke', '/logout', ...(ctx.demo ? ['/demo/login'] : [])]) {
    app.all(path, () =>
      oauthError(405, 'method_not_allowed', `use POST ${path}`, { allow: 'POST' }),
    );
  }

  // The example API through the Supabase module's Edge-Function wrapper: bearer verified
  // (revocation included), the handler in one transaction as the user, 401/403/503 per RFC 6750.
  const documents = createEdgeHandler(
    {
      verifier: ctx.keys.verifier,
      db: ctx.db,
      asUserOptions: ctx.asUserOptions,
      onError: (err, { status }) =>
        logger.warn({ what: 'api', status, code: errorCode(err) }, 'example API request failed'),
    },
    (request, { claims, db }) => documentsHandler(request, { claims, db }),
  );
  // The list is one statement: one round trip through queryAsUser, same wrapper otherwise.
  const documentsList = createEdgeHandler(
    {
      verifier: ctx.keys.verifier,
      onError: (err, { status }) =>
        logger.warn({ what: 'api', status, code: errorCode(err) }, 'example API request failed'),
    },
    (request, { claims }) =>
      documentsListHandler(request, claims, ctx.db, ctx.pool, ctx.asUserOptions),
  );
  app.on(['GET', 'HEAD'], '/api/documents', (c) => documentsList(c.req.raw));
  app.on(
    ['GET', 'HEAD', 'POST', 'PATCH', 'DELETE'],
    ['/api/documents', '/api/documents/*'],
    tooLarge(64 * KIB),
    (c) => documents(c.req.raw),
  );

  app.notFound(() => oauthError(404, 'not_found', 'no such endpoint; see docs/service.md'));
  app.onError((err) => failureResponse(ctx, err, 'unhandled'));
  return app;
}
