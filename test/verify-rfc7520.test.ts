/**
 * RFC 7520 compact JWS examples for the algorithms the kit supports (RS256
 * §4.1, HS256 §4.4): verified at the JWS layer with jose, each key pinned to
 * its algorithm. Vectors and their origin: test/fixtures/rfc7520/.
 */
import { readFileSync } from 'node:fs';
import { compactVerify, importJWK, type JWK } from 'jose';
import { describe, expect, it } from 'vitest';
import { createVerifier } from '../src/tokens/verify.js';
import { expectCode } from './helpers/tokens.js';

interface Vector {
  section: string;
  alg: 'RS256' | 'HS256';
  payload: string;
  key: JWK;
  protected: Record<string, string>;
  compact: string;
}

const load = (file: string): Vector =>
  JSON.parse(
    readFileSync(new URL(`./fixtures/rfc7520/${file}`, import.meta.url), 'utf8'),
  ) as Vector;

for (const file of ['4_1.rs256.json', '4_4.hs256.json']) {
  const v = load(file);
  describe(v.section, () => {
    it('verifies with its key, algorithm pinned, and yields the exact payload and header', async () => {
      const key = await importJWK(v.key, v.alg);
      const { payload, protectedHeader } = await compactVerify(v.compact, key, {
        algorithms: [v.alg],
      });
      expect(new TextDecoder().decode(payload)).toBe(v.payload);
      expect(protectedHeader).toEqual(v.protected);
    });

    it('fails when one signature character changes (the vector really is checked)', async () => {
      const key = await importJWK(v.key, v.alg);
      const last = v.compact.at(-2) === 'A' ? 'B' : 'A';
      const tampered = `${v.compact.slice(0, -2)}${last}${v.compact.at(-1)}`;
      await expect(compactVerify(tampered, key, { algorithms: [v.alg] })).rejects.toThrow();
    });

    it('is refused when another algorithm is pinned', async () => {
      const key = await importJWK(v.key, v.alg);
      await expect(compactVerify(v.compact, key, { algorithms: ['ES256'] })).rejects.toThrow(
        /alg/i,
      );
    });

    it('is refused by the kit verifier as a JWT: its payload is text, not a claims set', async () => {
      const verifier = createVerifier({
        issuer: 'https://example.com',
        audience: 'x',
        keys: { jwks: { keys: [v.key] } },
      });
      await expectCode(verifier.verify(v.compact), 'ERR_TOKEN_MALFORMED');
    });
  });
}
