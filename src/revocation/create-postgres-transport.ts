import pg from 'pg';
import type {
  RevocationTransport,
  RevocationTransportConnection,
  RevocationTransportHandlers,
} from './transport.js';

/**
 * The channel the revocation migration's triggers notify.
 *
 * @example
 * ```ts
 * await client.query(`listen ${REVOCATION_CHANNEL}`);
 * ```
 */
export const REVOCATION_CHANNEL = 'rls_kit_revocations';

/**
 * Options of {@link createPostgresTransport}.
 *
 * @example
 * ```ts
 * const options: PostgresTransportOptions = { url: process.env.DATABASE_URL };
 * ```
 */
export interface PostgresTransportOptions {
  /** Connection string of the LISTEN connection (service_role or an owner of `rls_kit`). */
  url?: string;
  /** Used for its connection options when `url` is absent (never for LISTEN itself). */
  pool?: pg.Pool;
  /**
   * Makes the dedicated LISTEN connection (a new one on every reconnect).
   * Never a pooled connection: LISTEN belongs to one session for its whole life.
   */
  listenClient?: () => pg.Client;
}

/**
 * The default transport: LISTEN `rls_kit_revocations` on a dedicated
 * connection, which also serves the list's snapshot loads and heartbeat
 * probes (`select 1`, which notices a dead socket). One Postgres connection
 * per process; for hundreds of processes, see `createRedisTransport`.
 *
 * @example
 * ```ts
 * const transport = createPostgresTransport({ url: process.env.DATABASE_URL });
 * const list = createRevocationList({ url: process.env.DATABASE_URL, transport });
 * ```
 */
export function createPostgresTransport(options: PostgresTransportOptions): RevocationTransport {
  const { url, pool } = options;
  const makeClient =
    options.listenClient ??
    (() =>
      new pg.Client(
        // keepAlive and a connect timeout: a black-holed server must end in a reconnect, not a hang.
        url !== undefined
          ? { connectionString: url, keepAlive: true, connectionTimeoutMillis: 5000 }
          : { ...pool?.options, keepAlive: true, connectionTimeoutMillis: 5000 },
      ));

  return {
    name: 'postgres',
    async open(handlers: RevocationTransportHandlers): Promise<RevocationTransportConnection> {
      const client = makeClient();
      let closed = false;
      const lost = (err?: unknown) => {
        if (!closed) handlers.lost(err);
      };
      client.on('error', lost);
      client.on('end', () => lost(new Error('the LISTEN connection ended')));
      client.on('notification', (msg) => {
        if (!closed && msg.channel === REVOCATION_CHANNEL) handlers.message(msg.payload ?? '');
      });
      const close = async () => {
        closed = true;
        client.removeAllListeners('notification');
        await client.end().catch(() => undefined);
      };
      try {
        await client.connect();
        await client.query(`listen ${REVOCATION_CHANNEL}`);
      } catch (err) {
        await close();
        throw err;
      }
      return {
        snapshotClient: client,
        async probe() {
          await client.query('select 1');
        },
        close,
      };
    },
  };
}
