import {
  createHmac,
  generateKeyPairSync,
  type KeyObject,
  sign as nodeSign,
  randomBytes,
} from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { JWK } from 'jose';
import { expect } from 'vitest';
import { isRlsKitError, type RlsKitErrorCode } from '../../src/errors.js';
import type { SigningAlg } from '../../src/keys/types.js';

/** Issuer and audience of the tokens the verifier tests mint. */
export const ISS = 'https://api.example.com';
export const AUD = 'authenticated';
export const SUB = '6f1d1c9e-3c1a-4b5e-9d7a-1a2b3c4d5e6f';

/** A signing key for tests, made with node:crypto so attack tokens can be built byte by byte. */
export interface TestKey {
  readonly alg: SigningAlg;
  readonly kid: string;
  /** The private key (asymmetric) or the secret (HS256) as a KeyObject-free value. */
  readonly privateKey?: KeyObject;
  readonly publicKey?: KeyObject;
  readonly secret?: Buffer;
  /** What a JWKS publishes (for HS256: the oct key, as a local keyring would hold it). */
  readonly jwk: JWK;
}

/** A fresh key of `alg`. */
export function makeKey(
  alg: SigningAlg,
  kid = `${alg.toLowerCase()}-${randomBytes(3).toString('hex')}`,
): TestKey {
  if (alg === 'HS256') {
    const secret = randomBytes(32);
    return {
      alg,
      kid,
      secret,
      jwk: { kty: 'oct', k: secret.toString('base64url'), kid, alg, use: 'sig' },
    };
  }
  const pair =
    alg === 'ES256'
      ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
      : alg === 'RS256'
        ? generateKeyPairSync('rsa', { modulusLength: 2048 })
        : generateKeyPairSync('ed25519');
  const jwk = { ...(pair.publicKey.export({ format: 'jwk' }) as JWK), kid, alg, use: 'sig' };
  return { alg, kid, privateKey: pair.privateKey, publicKey: pair.publicKey, jwk };
}

/** base64url of a string's UTF-8 bytes. */
export function b64u(text: string | Buffer): string {
  return Buffer.from(text).toString('base64url');
}

/** The signature of `input` under `key` with `key.alg` (JWS encoding: raw r||s for ECDSA). */
export function signature(key: TestKey, input: string): string {
  const data = Buffer.from(input);
  switch (key.alg) {
    case 'HS256':
      return createHmac('sha256', key.secret!).update(data).digest('base64url');
    case 'ES256':
      return nodeSign('sha256', data, { key: key.privateKey!, dsaEncoding: 'ieee-p1363' }).toString(
        'base64url',
      );
    case 'RS256':
      return nodeSign('sha256', data, key.privateKey!).toString('base64url');
    case 'EdDSA':
      return nodeSign(null, data, key.privateKey!).toString('base64url');
  }
}

/**
 * A compact JWS signed by `key` over exactly the given header and payload
 * text: objects are JSON-encoded, strings are used byte for byte (so tests
 * can send duplicate members, odd types, anything).
 */
export function signRaw(key: TestKey, header: string | object, payload: string | object): string {
  const h = typeof header === 'string' ? header : JSON.stringify(header);
  const p = typeof payload === 'string' ? payload : JSON.stringify(payload);
  const input = `${b64u(h)}.${b64u(p)}`;
  return `${input}.${signature(key, input)}`;
}

/** The kit's header for `key`. */
export function header(key: TestKey, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { alg: key.alg, typ: 'JWT', kid: key.kid, ...extra };
}

/** Seconds since the epoch. */
export function nowSec(at = Date.now()): number {
  return Math.floor(at / 1000);
}

/** A kit-shaped claims set issued at `at` (ms), valid for 10 minutes. */
export function kitClaims(
  overrides: Record<string, unknown> = {},
  at = Date.now(),
): Record<string, unknown> {
  const iat = nowSec(at);
  return {
    iss: ISS,
    sub: SUB,
    aud: AUD,
    role: 'authenticated',
    org_id: '0b8f1c2d-4e5f-4a6b-8c7d-9e0f1a2b3c4d',
    user_role: 'member',
    iat,
    exp: iat + 600,
    jti: randomBytes(16).toString('base64url'),
    ...overrides,
  };
}

/** A valid kit token signed by `key`. */
export function kitToken(
  key: TestKey,
  overrides: Record<string, unknown> = {},
  at = Date.now(),
): string {
  return signRaw(key, header(key), kitClaims(overrides, at));
}

/** Awaits `work` and checks it failed with an RlsKitError of `code` (and no token text in the message). */
export async function expectCode(
  work: Promise<unknown> | (() => unknown),
  code: RlsKitErrorCode,
  token?: string,
): Promise<void> {
  let error: unknown;
  try {
    await (typeof work === 'function' ? work() : work);
  } catch (err) {
    error = err;
  }
  expect(error, `expected ${code}, got success`).toBeDefined();
  expect(isRlsKitError(error), `expected an RlsKitError, got ${String(error)}`).toBe(true);
  expect((error as { code: string }).code).toBe(code);
  const message = (error as Error).message;
  expect(message).not.toContain('\n');
  if (token !== undefined) {
    for (const part of token.split('.')) if (part.length >= 8) expect(message).not.toContain(part);
  }
}

/** A controllable clock (ms) for verifier options. */
export function fakeClock(start = Date.now()): {
  now: () => number;
  advance(ms: number): void;
  set(ms: number): void;
} {
  let t = start;
  return {
    now: () => t,
    advance(ms) {
      t += ms;
    },
    set(ms) {
      t = ms;
    },
  };
}

/** A real HTTP server on 127.0.0.1 with a swappable handler and a request log. */
export interface TestServer {
  readonly url: string;
  /** Paths requested so far, in order. */
  readonly requests: string[];
  handler: (req: IncomingMessage, res: ServerResponse) => void;
  close(): Promise<void>;
}

/** Starts a {@link TestServer} on an ephemeral port. */
export async function startServer(
  handler: (req: IncomingMessage, res: ServerResponse) => void,
): Promise<TestServer> {
  const requests: string[] = [];
  const state: { handler: TestServer['handler'] } = { handler };
  const server = createServer((req, res) => {
    requests.push(req.url ?? '');
    state.handler(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    requests,
    get handler() {
      return state.handler;
    },
    set handler(h) {
      state.handler = h;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A handler answering `body` as JSON. */
export function json(body: unknown, status = 200): TestServer['handler'] {
  return (_req, res) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(typeof body === 'string' ? body : JSON.stringify(body));
  };
}
