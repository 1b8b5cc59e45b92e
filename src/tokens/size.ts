/** One claim's share of a token. */
export interface ClaimSize {
  readonly name: string;
  /** Bytes of `"name":value` in the payload JSON (the token carries about 4/3 of that in base64url). */
  readonly bytes: number;
}

/**
 * Byte size of each claim in a JWT payload, largest first: what to trim
 * when a token is over its size budget. Counted on the JSON member
 * (`"name":value`, UTF-8) because that is what base64url then inflates by 4/3.
 *
 * @example
 * ```ts
 * claimSizes({ sub: '…', org_id: '…' }); // [{ name: 'org_id', bytes: 47 }, { name: 'sub', bytes: 44 }]
 * ```
 */
export function claimSizes(claims: Readonly<Record<string, unknown>>): ClaimSize[] {
  const out: ClaimSize[] = [];
  for (const [name, value] of Object.entries(claims)) {
    if (value === undefined) continue;
    out.push({
      name,
      bytes: Buffer.byteLength(`${JSON.stringify(name)}:${JSON.stringify(value)}`, 'utf8'),
    });
  }
  return out.sort((a, b) => b.bytes - a.bytes || a.name.localeCompare(b.name));
}

/**
 * Length of the unpadded base64url encoding of `bytes` bytes.
 *
 * @example
 * ```ts
 * base64urlLength(32); // 43
 * ```
 */
export function base64urlLength(bytes: number): number {
  return Math.ceil((bytes * 4) / 3);
}
