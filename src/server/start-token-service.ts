import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createAdaptorServer } from '@hono/node-server';
import type { Hono } from 'hono';
import { RlsKitError } from '../errors.js';
import {
  createTokenService,
  DEFAULT_HOST,
  DEFAULT_PORT,
  isLoopbackHost,
  type TokenServiceApp,
} from './create-token-service.js';
import { oauthError } from './oauth-error.js';
import type { TokenServiceOptions } from './token-service-options.js';

/**
 * A running token service; see {@link startTokenService}.
 *
 * @example
 * ```ts
 * const service = await startTokenService({ port: 0 });
 * await fetch(`${service.url}/readyz`);
 * await service.close();
 * ```
 */
export interface TokenService {
  /** Base URL it listens on, e.g. `http://127.0.0.1:8787` (the real port when `port: 0`). */
  readonly url: string;
  readonly app: Hono;
  /** The app in-process (no socket; the rate limiter sees client `local`). */
  fetch(request: Request): Promise<Response>;
  /** Everything the service is built of: keys, metrics, revocation list, pool. */
  readonly service: TokenServiceApp;
  /**
   * Graceful shutdown: stops accepting connections, lets requests in flight
   * finish (up to `drainTimeoutMs`), then closes the revocation list, the
   * pool and an embedded database it started. Idempotent.
   */
  close(): Promise<void>;
}

/**
 * Starts the token service: listens on `host:port` (default
 * `127.0.0.1:8787`) first — so `port: 0` yields the real port before the
 * issuer is fixed — then builds the service ({@link createTokenService});
 * until it is ready every request is answered 503. Signals are the caller's
 * business (`rls-kit start` closes on SIGINT/SIGTERM).
 *
 * @example
 * ```ts
 * const service = await startTokenService({ databaseUrl: process.env.DATABASE_URL, port: 0, demo: false });
 * console.log(`${service.url}/.well-known/jwks.json`);
 * process.once('SIGTERM', () => void service.close());
 * ```
 */
export async function startTokenService(options: TokenServiceOptions = {}): Promise<TokenService> {
  const host = options.host ?? DEFAULT_HOST;
  const port = options.port ?? DEFAULT_PORT;
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new RlsKitError(
      'ERR_CONFIG',
      `port must be a whole number from 0 to 65535 (got ${port})`,
    );
  }
  // Refused before anything listens (createTokenService checks it again).
  if (options.demo === true && !(options.databaseUrl === undefined && isLoopbackHost(host))) {
    throw new RlsKitError(
      'ERR_CONFIG',
      'demo mode needs the embedded database and a loopback host (127.0.0.1 or ::1): drop --db-url/DATABASE_URL and --host, or turn demo off',
    );
  }
  let handler: (request: Request, env: unknown) => Response | Promise<Response> = () =>
    oauthError(503, 'temporarily_unavailable', 'the service is starting; retry shortly', {
      'retry-after': '1',
    });
  const server = createAdaptorServer({
    fetch: (request, env) => handler(request, env),
    hostname: host,
  }) as Server;
  // Requests in flight, counted until their response is fully sent (or the socket died):
  // close() waits for these before it cuts connections.
  let inFlight = 0;
  let closingDown = false;
  let drained: (() => void) | undefined;
  server.on('request', (_req: IncomingMessage, res: ServerResponse) => {
    inFlight++;
    // While draining, keep-alive clients are told to reconnect elsewhere.
    if (closingDown) res.setHeader('connection', 'close');
    res.once('close', () => {
      inFlight--;
      if (inFlight === 0) drained?.();
    });
  });
  // Slow-loris and idle-socket bounds (Node's defaults are generous).
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        new RlsKitError(
          'ERR_CONFIG',
          `cannot listen on ${host}:${port} (${err.code ?? err.message}): choose another --port or --host`,
          { cause: err },
        ),
      ),
    );
    server.listen(port, host, () => resolve());
  });
  const actualPort = (server.address() as AddressInfo).port;
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${actualPort}`;
  const closeServer = () =>
    new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeIdleConnections();
    });

  let service: TokenServiceApp;
  try {
    service = await createTokenService({ ...options, host, port: actualPort });
  } catch (err) {
    server.closeAllConnections();
    await closeServer();
    throw err;
  }
  handler = (request, env) => service.app.fetch(request, env);

  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= (async () => {
      closingDown = true;
      const stopped = closeServer(); // no new connections; idle keep-alive sockets closed
      if (inFlight > 0) {
        const timeout = options.drainTimeoutMs ?? 10_000;
        await Promise.race([
          new Promise<void>((resolve) => {
            drained = resolve;
          }),
          new Promise<void>((resolve) => setTimeout(resolve, timeout).unref()),
        ]);
      }
      server.closeAllConnections();
      await stopped;
      service.logger.info({ url }, 'token service stopped');
      await service.close();
    })();
    return closing;
  };
  return {
    url,
    app: service.app,
    fetch: service.fetch,
    service,
    close,
  };
}
