/**
 * Interop: tokens minted by jsonwebtoken and fast-jwt verify in the kit; the
 * kit's tokens (its own minter) verify in jose, fast-jwt and jsonwebtoken.
 */
import { createPublicKey, createSecretKey, randomBytes, randomUUID } from 'node:crypto';
import { createVerifier as createFastVerifier, createSigner } from 'fast-jwt';
import { importJWK, type JWK, jwtVerify } from 'jose';
import jsonwebtoken from 'jsonwebtoken';
import { describe, expect, it } from 'vitest';
import { generateKey } from '../src/keys/generate-key.js';
import type { KeyringKey, SigningAlg } from '../src/keys/types.js';
import { exampleClaimSchema } from '../src/tokens/example-claims.js';
import { createMinter } from '../src/tokens/mint.js';
import { createVerifier } from '../src/tokens/verify.js';
import { AUD, ISS, makeKey, SUB, type TestKey } from './helpers/tokens.js';

const ALGS: SigningAlg[] = ['ES256', 'RS256', 'EdDSA', 'HS256'];

/** PEM (asymmetric) or raw secret of a test key, in the form fast-jwt and jsonwebtoken sign with. */
function signingMaterial(key: TestKey): string | Buffer {
  return key.secret ?? key.privateKey!.export({ type: 'pkcs8', format: 'pem' }).toString();
}

function kitVerifier(key: TestKey) {
  return createVerifier({
    issuer: ISS,
    audience: AUD,
    keys: { jwks: { keys: [key.jwk] } },
    cache: false,
  });
}

describe('tokens from other libraries verify in the kit', () => {
  for (const alg of ['ES256', 'RS256', 'HS256'] as const) {
    it(`jsonwebtoken ${alg} (jwtid, keyid, iat, exp)`, async () => {
      const key = makeKey(alg);
      const token = jsonwebtoken.sign(
        { role: 'authenticated', org_id: randomUUID() },
        signingMaterial(key),
        {
          algorithm: alg,
          keyid: key.kid,
          issuer: ISS,
          audience: AUD,
          subject: SUB,
          jwtid: randomBytes(16).toString('base64url'),
          expiresIn: '10m',
        },
      );
      const claims = await kitVerifier(key).verify(token);
      expect(claims.sub).toBe(SUB);
      expect(claims.jti).toBeTypeOf('string');
    });
  }

  for (const alg of ALGS) {
    it(`fast-jwt ${alg} (jti, kid, iat, exp)`, async () => {
      const key = makeKey(alg);
      const sign = createSigner({
        algorithm: alg,
        key: signingMaterial(key),
        kid: key.kid,
        iss: ISS,
        aud: AUD,
        sub: SUB,
        jti: randomBytes(16).toString('base64url'),
        expiresIn: 600_000,
      });
      const token = sign({ role: 'authenticated' });
      const claims = await kitVerifier(key).verify(token);
      expect(claims.sub).toBe(SUB);
      expect(claims.iat).toBeTypeOf('number');
    });
  }

  it('a jsonwebtoken token without jti is refused by default and accepted with requireJti: false', async () => {
    const key = makeKey('ES256');
    const token = jsonwebtoken.sign({}, signingMaterial(key), {
      algorithm: 'ES256',
      keyid: key.kid,
      issuer: ISS,
      audience: AUD,
      subject: SUB,
      expiresIn: 600,
    });
    await expect(kitVerifier(key).verify(token)).rejects.toMatchObject({
      code: 'ERR_TOKEN_CLAIMS',
    });
    const lax = createVerifier({
      issuer: ISS,
      audience: AUD,
      keys: { jwks: { keys: [key.jwk] } },
      requireJti: false,
    });
    await expect(lax.verify(token)).resolves.toBeDefined();
  });
});

describe("the kit's tokens verify in jose, fast-jwt and jsonwebtoken", () => {
  for (const alg of ALGS) {
    it(`${alg}`, async () => {
      const ring = { keys: [(await generateKey({ alg })) as KeyringKey] };
      const minter = await createMinter({
        keyring: ring,
        issuer: ISS,
        audience: AUD,
        claimSchema: exampleClaimSchema,
      });
      const token = await minter.mint({
        sub: SUB,
        claims: { org_id: randomUUID(), user_role: 'member' },
      });
      const priv = ring.keys[0] as JWK;
      const publicJwk: JWK =
        alg === 'HS256'
          ? { kty: 'oct', k: priv.k }
          : Object.fromEntries(
              Object.entries(priv).filter(([k]) => ['kty', 'crv', 'x', 'y', 'n', 'e'].includes(k)),
            );

      // The kit itself.
      const kit = createVerifier({
        issuer: ISS,
        audience: AUD,
        keys: { jwks: { keys: [{ ...publicJwk, kid: minter.kid, alg }] } },
      });
      const claims = await kit.verify(token);
      expect(claims.user_role).toBe('member');

      // jose, algorithm pinned.
      const joseKey = await importJWK({ ...publicJwk, alg }, alg);
      const viaJose = await jwtVerify(token, joseKey, {
        algorithms: [alg],
        issuer: ISS,
        audience: AUD,
      });
      expect(viaJose.payload.jti).toBe(claims.jti);
      expect(viaJose.protectedHeader.kid).toBe(minter.kid);

      // fast-jwt and jsonwebtoken with node KeyObjects / PEM.
      const keyObject =
        alg === 'HS256'
          ? createSecretKey(Buffer.from(publicJwk.k as string, 'base64url'))
          : createPublicKey({ key: publicJwk as never, format: 'jwk' });
      const fastKey =
        alg === 'HS256'
          ? keyObject.export()
          : keyObject.export({ type: 'spki', format: 'pem' }).toString();
      const viaFast = createFastVerifier({
        key: fastKey,
        algorithms: [alg],
        allowedIss: ISS,
        allowedAud: AUD,
      })(token) as Record<string, unknown>;
      expect(viaFast.sub).toBe(SUB);

      if (alg === 'EdDSA') {
        // jsonwebtoken 9 has no EdDSA support at all; it refuses the algorithm.
        expect(() =>
          jsonwebtoken.verify(token, keyObject, { algorithms: ['EdDSA' as never] }),
        ).toThrow();
      } else {
        const viaJwt = jsonwebtoken.verify(token, keyObject, {
          algorithms: [alg],
          issuer: ISS,
          audience: AUD,
        }) as Record<string, unknown>;
        expect(viaJwt.org_id).toBe(claims.org_id);
      }
    });
  }
});
