import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { getRequestListener } from '@hono/node-server';
import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import { createKeyring, generateKey, type Keyring } from '../../src/keys/index.js';
import { createMinter, exampleClaimSchema, type Minter } from '../../src/tokens/index.js';

/** The example app's tables, as far as these tests read them. */
export interface ExampleDB {
  documents: { id: string; org_id: string; owner_id: string; title: string; body: string };
  memberships: { org_id: string; user_id: string; role: string };
}

/** Seeded organizations and users (supabase/seed.sql). */
export const ACME = 'a0000000-0000-4000-8000-000000000001';
export const GLOBEX = 'a0000000-0000-4000-8000-000000000002';
export const INITECH = 'a0000000-0000-4000-8000-000000000003';
export const ALICE = 'b0000000-0000-4000-8000-000000000001'; // Acme owner, Globex member
export const DAVE = 'b0000000-0000-4000-8000-000000000004'; // Acme viewer
export const ERIN = 'b0000000-0000-4000-8000-000000000005'; // Globex owner
export const GRACE = 'b0000000-0000-4000-8000-000000000007'; // Initech owner
/** Documents per organization in the seed. */
export const SEEDED_DOCS = { [ACME]: 36, [GLOBEX]: 30, [INITECH]: 24 } as const;

/** A kit issuer for tests: an ES256 keyring and a minter of example-shaped tokens. */
export interface KitIssuer {
  readonly issuer: string;
  readonly ring: Keyring;
  readonly minter: Minter<typeof exampleClaimSchema.definitions>;
}

export async function kitIssuer(
  issuer = 'https://kit.example.test',
  options: { clock?: () => number } = {},
): Promise<KitIssuer> {
  const ring = createKeyring([await generateKey({ alg: 'ES256' })]);
  const minter = await createMinter({
    keyring: ring,
    issuer,
    audience: 'authenticated',
    claimSchema: exampleClaimSchema,
    ...(options.clock ? { clock: options.clock } : {}),
  });
  return { issuer, ring, minter };
}

/** A root Kysely on `url` with a small pool (tests share one server of 100 connections). */
export function exampleKysely(url: string, max = 4): { db: Kysely<ExampleDB>; pool: pg.Pool } {
  const pool = new pg.Pool({ connectionString: url, max, connectionTimeoutMillis: 3000 });
  pool.on('error', () => undefined);
  // A checked-out client has no pool listener: without one, a connection killed mid-request is
  // an uncaught 'error' (a crash) instead of a rejected query. Apps need the same line.
  pool.on('connect', (client) => client.on('error', () => undefined));
  return { db: new Kysely<ExampleDB>({ dialect: new PostgresDialect({ pool }) }), pool };
}

/** A real node:http server on 127.0.0.1 serving a fetch handler (the Node path of the docs). */
export interface FetchServer {
  readonly url: string;
  close(): Promise<void>;
}

export async function serveFetch(
  handler: (request: Request) => Response | Promise<Response>,
): Promise<FetchServer> {
  const server = createServer(getRequestListener((request) => handler(request)));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A port on 127.0.0.1 where nothing listens (bound, then released). */
export async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
