/**
 * Every attack class of RFC 8725 (JWT Best Current Practices) and its draft
 * successor (draft-ietf-oauth-rfc8725bis), each its own test. Attack tokens
 * are built byte by byte with node:crypto so nothing "helpful" normalises them.
 */
import { createHmac, generateKeyPairSync, randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { CompactEncrypt, generateSecret } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createVerifier, type Verifier } from '../src/tokens/verify.js';
import {
  AUD,
  b64u,
  expectCode,
  header,
  ISS,
  kitClaims,
  kitToken,
  makeKey,
  nowSec,
  signature,
  signRaw,
  type TestKey,
} from './helpers/tokens.js';

const es = makeKey('ES256');
const rs = makeKey('RS256');
const ed = makeKey('EdDSA');
const hs = makeKey('HS256');

/** A verifier over a local JWKS of `keys`. */
function verifierFor(keys: TestKey[], extra: Record<string, unknown> = {}): Verifier {
  return createVerifier({
    issuer: ISS,
    audience: AUD,
    keys: { jwks: { keys: keys.map((k) => k.jwk) } },
    cache: false,
    ...extra,
  });
}

const all = verifierFor([es, rs, ed, hs]);

/** A token whose header and payload are exactly `h` and `p`, "signed" with HMAC-SHA256 under `secret`. */
function hmacToken(h: object | string, p: object | string, secret: Buffer | string): string {
  const hs256 = typeof h === 'string' ? h : JSON.stringify(h);
  const ps = typeof p === 'string' ? p : JSON.stringify(p);
  const input = `${b64u(hs256)}.${b64u(ps)}`;
  return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
}

it('sanity: every test key verifies a well-formed token (so refusals below are the attack, not the setup)', async () => {
  for (const key of [es, rs, ed, hs])
    await expect(all.verify(kitToken(key))).resolves.toBeDefined();
});

describe('alg "none" (RFC 8725 §2.1, §3.1)', () => {
  for (const alg of ['none', 'None', 'NONE', 'nOnE']) {
    it(`refuses alg "${alg}" with an empty signature`, async () => {
      const token = `${b64u(JSON.stringify({ alg, typ: 'JWT', kid: es.kid }))}.${b64u(JSON.stringify(kitClaims()))}.`;
      await expectCode(all.verify(token), 'ERR_TOKEN_ALG', token);
    });
    it(`refuses alg "${alg}" carrying a signature`, async () => {
      const token = signRaw(es, { alg, kid: es.kid }, kitClaims());
      await expectCode(all.verify(token), 'ERR_TOKEN_ALG', token);
    });
  }
  it('refuses alg "none" even for a verifier with a single kid-less key', async () => {
    const v = createVerifier({ issuer: ISS, audience: AUD, keys: { secret: hs.secret! } });
    await expectCode(
      v.verify(`${b64u('{"alg":"none"}')}.${b64u(JSON.stringify(kitClaims()))}.`),
      'ERR_TOKEN_ALG',
    );
  });
});

describe('algorithm confusion: public key used as an HMAC secret (RFC 8725 §2.1, §3.1)', () => {
  for (const key of [rs, es]) {
    const pub = key.publicKey!;
    const pem = pub.export({ type: 'spki', format: 'pem' }).toString();
    const encodings: [string, Buffer | string][] = [
      ['PEM with trailing newline', pem.endsWith('\n') ? pem : `${pem}\n`],
      ['PEM without trailing newline', pem.replace(/\n+$/, '')],
      ['DER (SPKI)', pub.export({ type: 'spki', format: 'der' })],
      ['JWK JSON', JSON.stringify(key.jwk)],
      ['JWK JSON of the bare public key', JSON.stringify(pub.export({ format: 'jwk' }))],
    ];
    if (key.alg === 'RS256') {
      encodings.push(['PKCS#1 PEM', pub.export({ type: 'pkcs1', format: 'pem' }).toString()]);
    }
    for (const [name, secret] of encodings) {
      it(`${key.alg} key → HS256 token signed with its ${name}, kid of the victim key`, async () => {
        const token = hmacToken({ alg: 'HS256', typ: 'JWT', kid: key.kid }, kitClaims(), secret);
        await expectCode(verifierFor([key]).verify(token), 'ERR_TOKEN_ALG', token);
        await expectCode(all.verify(token), 'ERR_TOKEN_ALG', token);
      });
      it(`${key.alg} key → HS256 token signed with its ${name}, no kid (single-key verifier)`, async () => {
        const token = hmacToken({ alg: 'HS256', typ: 'JWT' }, kitClaims(), secret);
        await expectCode(verifierFor([key]).verify(token), 'ERR_TOKEN_ALG', token);
      });
    }
  }
  it('refuses a token whose alg is another algorithm of the same family than its key (RS512, PS256, ES384)', async () => {
    const rs512 = `${b64u(JSON.stringify({ alg: 'RS512', kid: rs.kid }))}.${b64u(JSON.stringify(kitClaims()))}`;
    for (const t of [
      `${rs512}.${signature(rs, rs512)}`,
      signRaw(rs, { alg: 'PS256', kid: rs.kid }, kitClaims()),
    ]) {
      await expectCode(all.verify(t), 'ERR_TOKEN_ALG');
    }
    await expectCode(
      all.verify(signRaw(es, { alg: 'ES384', kid: es.kid }, kitClaims())),
      'ERR_TOKEN_ALG',
    );
  });
  it('refuses an asymmetric alg on an HMAC key (reverse confusion)', async () => {
    await expectCode(
      all.verify(signRaw(es, { alg: 'ES256', kid: hs.kid }, kitClaims())),
      'ERR_TOKEN_ALG',
    );
  });
});

describe('ECDSA signature malleability', () => {
  it('refuses an all-zero ES256 signature (psychic signatures, CVE-2022-21449)', async () => {
    const input = `${b64u(JSON.stringify(header(es)))}.${b64u(JSON.stringify(kitClaims()))}`;
    const token = `${input}.${Buffer.alloc(64).toString('base64url')}`;
    await expectCode(all.verify(token), 'ERR_TOKEN_SIGNATURE', token);
  });
  it('refuses r = s = n (the curve order) and r = 0 with a valid s', async () => {
    const n = Buffer.from(
      'ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551',
      'hex',
    );
    const input = `${b64u(JSON.stringify(header(es)))}.${b64u(JSON.stringify(kitClaims()))}`;
    const good = Buffer.from(signature(es, input), 'base64url');
    for (const sig of [
      Buffer.concat([n, n]),
      Buffer.concat([Buffer.alloc(32), good.subarray(32)]),
    ]) {
      await expectCode(all.verify(`${input}.${sig.toString('base64url')}`), 'ERR_TOKEN_SIGNATURE');
    }
  });
  it('refuses a DER-encoded ECDSA signature (JWS needs raw r||s)', async () => {
    const { sign } = await import('node:crypto');
    const input = `${b64u(JSON.stringify(header(es)))}.${b64u(JSON.stringify(kitClaims()))}`;
    const der = sign('sha256', Buffer.from(input), es.privateKey!).toString('base64url');
    await expectCode(all.verify(`${input}.${der}`), 'ERR_TOKEN_SIGNATURE');
  });
});

describe('keys carried by the token (RFC 8725 §3.10, rfc8725bis)', () => {
  const attacker = makeKey('ES256');
  it('refuses an embedded "jwk" header signed by the attacker key', async () => {
    const token = signRaw(
      attacker,
      { alg: 'ES256', kid: attacker.kid, jwk: attacker.jwk },
      kitClaims(),
    );
    await expectCode(all.verify(token), 'ERR_TOKEN_MALFORMED', token);
  });
  it('refuses an embedded "jwk" header even with the kid of a trusted key', async () => {
    const token = signRaw(attacker, { alg: 'ES256', kid: es.kid, jwk: attacker.jwk }, kitClaims());
    await expectCode(all.verify(token), 'ERR_TOKEN_MALFORMED', token);
  });
  it('refuses "x5c" certificate chains in the header', async () => {
    const token = signRaw(
      attacker,
      { alg: 'ES256', kid: es.kid, x5c: ['MIIBszCCAVmgAwIBAgIU'] },
      kitClaims(),
    );
    await expectCode(all.verify(token), 'ERR_TOKEN_MALFORMED', token);
  });

  describe('"jku" and "x5u" pointing at a live server', () => {
    let server: Server;
    let requests = 0;
    let base = '';
    beforeAll(async () => {
      server = createServer((_req, res) => {
        requests++;
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ keys: [attacker.jwk] }));
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    });
    afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

    it('the attacker server answers (so zero requests below means the verifier never asked)', async () => {
      const res = await fetch(`${base}/probe`);
      expect(res.status).toBe(200);
      expect(requests).toBe(1);
      requests = 0;
    });
    for (const name of ['jku', 'x5u']) {
      it(`refuses "${name}" and never fetches it`, async () => {
        for (const kid of [attacker.kid, es.kid]) {
          const token = signRaw(
            attacker,
            { alg: 'ES256', kid, [name]: `${base}/jwks.json` },
            kitClaims(),
          );
          await expectCode(all.verify(token), 'ERR_TOKEN_MALFORMED', token);
        }
        expect(requests).toBe(0);
      });
    }
  });
});

describe('kid injection (kid is only a lookup among known keys)', () => {
  const injections = [
    '../../dev/null',
    '../../../../../../etc/passwd',
    "' OR 1=1 --",
    "x' UNION SELECT 'secret",
    'abc\u0000def',
    '\u0000',
    '|| cat /etc/passwd',
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a log4shell-style string, literally
    '${jndi:ldap://127.0.0.1/a}',
    'k'.repeat(4000),
  ];
  for (const kid of injections) {
    const label = JSON.stringify(kid.length > 40 ? `${kid.slice(0, 10)}…(${kid.length})` : kid);
    it(`kid ${label} with an empty-key HMAC signature is an unknown key`, async () => {
      const token = hmacToken({ alg: 'HS256', typ: 'JWT', kid }, kitClaims(), '');
      await expectCode(all.verify(token), 'ERR_KEY_UNKNOWN', token);
    });
  }
  it('with one kid-less secret, an injected kid still verifies against that secret only', async () => {
    const v = createVerifier({ issuer: ISS, audience: AUD, keys: { secret: hs.secret! } });
    await expectCode(
      v.verify(hmacToken({ alg: 'HS256', kid: '../../dev/null' }, kitClaims(), '')),
      'ERR_TOKEN_SIGNATURE',
    );
  });
  it('refuses a kid that is not a string', async () => {
    for (const kid of [1, null, ['a'], { $ne: '' }, '']) {
      await expectCode(
        all.verify(signRaw(es, { alg: 'ES256', kid }, kitClaims())),
        'ERR_TOKEN_MALFORMED',
      );
    }
  });
});

describe('critical header extensions (RFC 7515 §4.1.11, RFC 7797)', () => {
  it('refuses b64:false with crit ["b64"] and an unencoded payload', async () => {
    const h = b64u(JSON.stringify({ alg: 'HS256', kid: hs.kid, b64: false, crit: ['b64'] }));
    const payload = JSON.stringify(kitClaims());
    const sig = createHmac('sha256', hs.secret!).update(`${h}.${payload}`).digest('base64url');
    await expectCode(all.verify(`${h}.${payload}.${sig}`), 'ERR_TOKEN_MALFORMED');
  });
  it('refuses b64:false with crit ["b64"] even over a base64url payload', async () => {
    const token = signRaw(
      hs,
      { alg: 'HS256', kid: hs.kid, b64: false, crit: ['b64'] },
      kitClaims(),
    );
    await expectCode(all.verify(token), 'ERR_TOKEN_MALFORMED');
  });
  it('refuses an unknown critical extension', async () => {
    const token = signRaw(
      es,
      { alg: 'ES256', kid: es.kid, crit: ['urn:x-acme:policy'], 'urn:x-acme:policy': 1 },
      kitClaims(),
    );
    await expectCode(all.verify(token), 'ERR_TOKEN_MALFORMED', token);
  });
  it('refuses crit naming a registered claim (exp) and a malformed crit', async () => {
    for (const crit of [['exp'], [], 'exp']) {
      await expectCode(
        all.verify(signRaw(es, { alg: 'ES256', kid: es.kid, crit, exp: 1 }, kitClaims())),
        'ERR_TOKEN_MALFORMED',
      );
    }
  });
  it('refuses nested tokens (cty: JWT)', async () => {
    await expectCode(
      all.verify(signRaw(es, header(es, { cty: 'JWT' }), kitClaims())),
      'ERR_TOKEN_TYPE',
    );
  });
});

describe('signature stripping and tampering', () => {
  const token = kitToken(es);
  const [h, p, s] = token.split('.') as [string, string, string];
  it('refuses an empty signature', async () => {
    await expectCode(all.verify(`${h}.${p}.`), 'ERR_TOKEN_SIGNATURE');
  });
  it('refuses a stripped signature part (two parts)', async () => {
    await expectCode(all.verify(`${h}.${p}`), 'ERR_TOKEN_MALFORMED');
  });
  it('refuses a truncated signature', async () => {
    await expectCode(all.verify(`${h}.${p}.${s.slice(0, 40)}`), 'ERR_TOKEN_SIGNATURE');
  });
  it('refuses a modified payload under the original signature', async () => {
    const forged = b64u(JSON.stringify({ ...kitClaims(), sub: 'admin', role: 'service_role' }));
    await expectCode(all.verify(`${h}.${forged}.${s}`), 'ERR_TOKEN_SIGNATURE');
  });
  it('refuses a signature from another token of the same key', async () => {
    const other = kitToken(es).split('.')[2];
    await expectCode(all.verify(`${h}.${p}.${other}`), 'ERR_TOKEN_SIGNATURE');
  });
  it('refuses an HS256 token signed with a different secret', async () => {
    await expectCode(
      all.verify(hmacToken(header(hs), kitClaims(), randomBytes(32))),
      'ERR_TOKEN_SIGNATURE',
    );
  });
});

describe('weak HMAC secrets (RFC 8725 §3.5)', () => {
  const weak: [string, string | Uint8Array][] = [
    ['empty', ''],
    ['"secret"', 'secret'],
    ['31 random bytes', randomBytes(31)],
    ['a published tutorial default', 'your-256-bit-secret'],
    ["Supabase CLI's local default", 'super-secret-jwt-token-with-at-least-32-characters-long'],
    ['a repeated pattern', 'abcd'.repeat(16)],
    ['32 zero bytes', new Uint8Array(32)],
    ['low entropy text', 'aaaaaaaaaaaaaaaaaaaabbbbbbbbbbbbbbbbbbbbcccccccccccc'],
  ];
  for (const [name, secret] of weak) {
    it(`refuses to verify with ${name}`, async () => {
      await expectCode(
        () => createVerifier({ issuer: ISS, audience: AUD, keys: { secret } }),
        'ERR_KEY_WEAK',
      );
    });
  }
  it('refuses a weak oct key inside a JWKS', async () => {
    const k = Buffer.from('secret').toString('base64url');
    await expectCode(
      () =>
        createVerifier({
          issuer: ISS,
          audience: AUD,
          keys: { jwks: { keys: [{ kty: 'oct', k, kid: 'w' }] } },
        }),
      'ERR_KEY_WEAK',
    );
  });
  it('accepts a 32-byte random secret (the check is not simply "refuse all")', async () => {
    const v = createVerifier({ issuer: ISS, audience: AUD, keys: { secret: hs.secret! } });
    await expect(v.verify(kitToken(hs))).resolves.toBeDefined();
  });
});

describe('duplicate member names (RFC 7515 §4, RFC 7519 §4)', () => {
  const claims = JSON.stringify(kitClaims()).slice(1, -1);
  it('refuses two "alg" members in the header', async () => {
    const token = signRaw(hs, `{"alg":"HS256","kid":"${hs.kid}","alg":"none"}`, kitClaims());
    await expectCode(all.verify(token), 'ERR_TOKEN_MALFORMED');
  });
  it('refuses two "kid" members in the header', async () => {
    await expectCode(
      all.verify(signRaw(es, `{"alg":"ES256","kid":"${es.kid}","kid":"${rs.kid}"}`, kitClaims())),
      'ERR_TOKEN_MALFORMED',
    );
  });
  it('refuses two "sub" members in the payload', async () => {
    const token = signRaw(
      es,
      header(es),
      `{${claims},"sub":"00000000-0000-0000-0000-000000000000"}`,
    );
    await expectCode(all.verify(token), 'ERR_TOKEN_MALFORMED');
  });
  it('refuses two "role" members when one is written with a unicode escape', async () => {
    const token = signRaw(es, header(es), `{${claims},"r\\u006fle":"service_role"}`);
    await expectCode(all.verify(token), 'ERR_TOKEN_MALFORMED');
  });
  it('refuses duplicates inside a nested object', async () => {
    const token = signRaw(
      es,
      header(es),
      `{${claims},"app_metadata":{"tier":"free","tier":"admin"}}`,
    );
    await expectCode(all.verify(token), 'ERR_TOKEN_MALFORMED');
  });
  it('accepts the same name in different objects and names inside string values', async () => {
    const token = signRaw(
      es,
      header(es),
      `{${claims},"a":{"x":1},"b":{"x":2},"c":[{"x":1},{"x":2}],"d":"\\"sub\\":1,\\"sub\\":2"}`,
    );
    await expect(all.verify(token)).resolves.toBeDefined();
  });
});

describe('oversized input (length capped before parsing)', () => {
  it('refuses a token over 8 KiB with ERR_TOKEN_TOO_LARGE', async () => {
    const token = kitToken(es, { pad: 'x'.repeat(9000) });
    await expectCode(all.verify(token), 'ERR_TOKEN_TOO_LARGE', token);
  });
  it('refuses a 16 MiB string without parsing it', async () => {
    await expectCode(all.verify('a'.repeat(16 * 1024 * 1024)), 'ERR_TOKEN_TOO_LARGE');
  });
  it('honours a custom maxTokenLength', async () => {
    const v = verifierFor([es], { maxTokenLength: 256 });
    await expectCode(v.verify(kitToken(es)), 'ERR_TOKEN_TOO_LARGE');
  });
});

describe('other serializations (RFC 8725 §2.8, §3.9)', () => {
  it('refuses a JWE (five parts)', async () => {
    const jwe = await new CompactEncrypt(new TextEncoder().encode(JSON.stringify(kitClaims())))
      .setProtectedHeader({ alg: 'dir', enc: 'A256GCM', kid: hs.kid })
      .encrypt(await generateSecret('A256GCM'));
    expect(jwe.split('.')).toHaveLength(5);
    await expectCode(all.verify(jwe), 'ERR_TOKEN_MALFORMED', jwe);
  });
  it('refuses a flattened JSON serialization', async () => {
    const [h, p, s] = kitToken(es).split('.');
    await expectCode(
      all.verify(JSON.stringify({ protected: h, payload: p, signature: s })),
      'ERR_TOKEN_MALFORMED',
    );
  });
  it('refuses a general JSON serialization', async () => {
    const [h, p, s] = kitToken(es).split('.');
    await expectCode(
      all.verify(JSON.stringify({ payload: p, signatures: [{ protected: h, signature: s }] })),
      'ERR_TOKEN_MALFORMED',
    );
  });
  it('refuses four and six parts, padding, standard base64 and whitespace', async () => {
    const t = kitToken(es);
    const [h, p, s] = t.split('.') as [string, string, string];
    for (const bad of [
      `${t}.x`,
      `${h}.${p}.${s}.x.y.z`,
      `${h}=.${p}.${s}`,
      ` ${t}`,
      `${t}\n`,
      `${h}.${p}.${s.replace(/-/g, '+')}+`,
      `Bearer ${t}`,
    ]) {
      await expectCode(all.verify(bad), 'ERR_TOKEN_MALFORMED');
    }
  });
  it('refuses garbage, binary and non-string input', async () => {
    for (const bad of [
      '',
      '.',
      '..',
      'not a token',
      randomBytes(300).toString('latin1'),
      '\u0000.\u0000.\u0000',
      'e30.e30.e30',
    ]) {
      await expectCode(all.verify(bad), 'ERR_TOKEN_MALFORMED');
    }
    for (const bad of [undefined, null, 42, {}, Buffer.from('x')]) {
      await expectCode(all.verify(bad as unknown as string), 'ERR_TOKEN_MALFORMED');
    }
  });
  it('refuses a header or payload that is not a JSON object', async () => {
    await expectCode(all.verify(signRaw(es, '["ES256"]', kitClaims())), 'ERR_TOKEN_MALFORMED');
    await expectCode(all.verify(signRaw(es, '{"alg":"ES256"', kitClaims())), 'ERR_TOKEN_MALFORMED');
    await expectCode(all.verify(signRaw(es, header(es), '"just a string"')), 'ERR_TOKEN_MALFORMED');
    await expectCode(all.verify(signRaw(es, header(es), '[1,2]')), 'ERR_TOKEN_MALFORMED');
    await expectCode(all.verify(signRaw(es, { kid: es.kid }, kitClaims())), 'ERR_TOKEN_MALFORMED');
    await expectCode(
      all.verify(signRaw(es, { alg: 5, kid: es.kid }, kitClaims())),
      'ERR_TOKEN_MALFORMED',
    );
  });
});

describe('typ confusion (RFC 8725 §2.8, §3.11)', () => {
  it('refuses tokens typed for another purpose, signed by a trusted key', async () => {
    for (const typ of ['dpop+jwt', 'logout+jwt', 'secevent+jwt', 'id_token+jwt', 'JWS']) {
      await expectCode(all.verify(signRaw(es, header(es, { typ }), kitClaims())), 'ERR_TOKEN_TYPE');
    }
  });
  it('a verifier for at+jwt refuses plain JWT and untyped tokens', async () => {
    const v = verifierFor([es], { typ: 'at+jwt' });
    await expectCode(v.verify(kitToken(es)), 'ERR_TOKEN_TYPE');
    await expectCode(
      v.verify(signRaw(es, { alg: 'ES256', kid: es.kid }, kitClaims())),
      'ERR_TOKEN_TYPE',
    );
    await expect(
      v.verify(signRaw(es, header(es, { typ: 'at+jwt' }), kitClaims())),
    ).resolves.toBeDefined();
  });
});

describe('NumericDate types: exp, nbf, iat', () => {
  const now = nowSec();
  for (const claim of ['exp', 'nbf', 'iat'] as const) {
    const good = { exp: now + 600, nbf: now - 10, iat: now }[claim];
    it(`refuses ${claim} as a string`, async () => {
      await expectCode(all.verify(kitToken(es, { [claim]: String(good) })), 'ERR_TOKEN_CLAIMS');
    });
    it(`refuses ${claim} as a huge number (2^60)`, async () => {
      // nbf that far ahead fails jose's own nbf check first; exp and iat fail the kit's range check.
      const code = claim === 'nbf' ? 'ERR_TOKEN_NOT_YET_VALID' : 'ERR_TOKEN_CLAIMS';
      await expectCode(all.verify(kitToken(es, { [claim]: 2 ** 60 })), code);
    });
    it(`refuses ${claim} as 1e400 (Infinity once parsed)`, async () => {
      const text = JSON.stringify(kitClaims({ [claim]: 12345 })).replace('12345', '1e400');
      const code = claim === 'nbf' ? 'ERR_TOKEN_NOT_YET_VALID' : 'ERR_TOKEN_CLAIMS';
      await expectCode(all.verify(signRaw(es, header(es), text)), code);
    });
    it(`refuses ${claim} as null, boolean, array or object`, async () => {
      for (const value of [null, true, [good], { value: good }]) {
        await expectCode(all.verify(kitToken(es, { [claim]: value })), 'ERR_TOKEN_CLAIMS');
      }
    });
    it(`refuses a negative ${claim}`, async () => {
      await expectCode(
        all.verify(kitToken(es, { [claim]: -1 })),
        claim === 'exp' ? 'ERR_TOKEN_EXPIRED' : 'ERR_TOKEN_CLAIMS',
      );
    });
  }
  it('accepts fractional exp, nbf and iat (decided: RFC 7519 NumericDate may be non-integer)', async () => {
    await expect(
      all.verify(kitToken(es, { iat: now + 0.25, nbf: now - 0.5, exp: now + 600.75 })),
    ).resolves.toBeDefined();
  });
  it('accepts exp up to 2^53 - 1 and refuses it beyond', async () => {
    await expect(all.verify(kitToken(es, { exp: Number.MAX_SAFE_INTEGER }))).resolves.toBeDefined();
    await expectCode(
      all.verify(kitToken(es, { exp: Number.MAX_SAFE_INTEGER + 2 })),
      'ERR_TOKEN_CLAIMS',
    );
  });
});

describe('aud', () => {
  it('refuses an empty aud array', async () => {
    await expectCode(all.verify(kitToken(es, { aud: [] })), 'ERR_TOKEN_AUDIENCE');
  });
  it('refuses an aud array without the audience', async () => {
    await expectCode(all.verify(kitToken(es, { aud: ['billing', 'anon'] })), 'ERR_TOKEN_AUDIENCE');
  });
  it('refuses an aud array holding a non-string next to the audience', async () => {
    await expectCode(all.verify(kitToken(es, { aud: [AUD, 5] })), 'ERR_TOKEN_CLAIMS');
  });
  it('refuses aud as an object or a number', async () => {
    await expectCode(all.verify(kitToken(es, { aud: { 0: AUD } })), 'ERR_TOKEN_AUDIENCE');
    await expectCode(all.verify(kitToken(es, { aud: 1 })), 'ERR_TOKEN_AUDIENCE');
  });
  it('accepts an aud array that contains the audience', async () => {
    await expect(all.verify(kitToken(es, { aud: ['billing', AUD] }))).resolves.toBeDefined();
  });
});

describe('required claims and time', () => {
  for (const claim of ['sub', 'exp', 'iat', 'jti']) {
    it(`refuses a token without ${claim}`, async () => {
      await expectCode(all.verify(kitToken(ed, { [claim]: undefined })), 'ERR_TOKEN_CLAIMS');
    });
  }
  it('refuses an iat 5 minutes in the future (jose alone accepts it)', async () => {
    await expectCode(all.verify(kitToken(ed, {}, Date.now() + 300_000)), 'ERR_TOKEN_NOT_YET_VALID');
  });
  it('refuses a long-expired token', async () => {
    await expectCode(all.verify(kitToken(ed, {}, Date.now() - 86_400_000)), 'ERR_TOKEN_EXPIRED');
  });
  it('refuses RSA keys with another key type swapped in (an RSA JWK published as ES256)', async () => {
    const rsaJwk = {
      ...generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ format: 'jwk' }),
      alg: 'ES256',
      kid: 'x',
    };
    await expectCode(
      () => createVerifier({ issuer: ISS, audience: AUD, keys: { jwks: { keys: [rsaJwk] } } }),
      'ERR_KEY_INVALID',
    );
  });
});
