import { parseJsonObject } from './parse-json-object.js';

/**
 * Which table a notification is about, as the trigger names it: `jti`
 * (revoked_tokens), `sub` (subject_revocations), `sid` (revoked_sessions).
 *
 * @example
 * ```ts
 * const kind: RevocationKind = 'jti';
 * ```
 */
export type RevocationKind = 'jti' | 'sub' | 'sid';

/**
 * One parsed payload of channel `rls_kit_revocations`: `+` upserts
 * `[key, epoch seconds]` pairs, `-` deletes keys, `*` means the table was
 * truncated (reload it).
 *
 * @example
 * ```ts
 * const n: RevocationNotification = { t: 'sub', op: '-', v: ['6f1d1c9e-3c1a-4b5e-9d7a-1a2b3c4d5e6f'] };
 * ```
 */
export type RevocationNotification =
  | {
      readonly t: RevocationKind;
      readonly op: '+';
      readonly v: readonly (readonly [string, number])[];
    }
  | { readonly t: RevocationKind; readonly op: '-'; readonly v: readonly string[] }
  | { readonly t: RevocationKind; readonly op: '*' };

/**
 * Parses a payload of channel `rls_kit_revocations`
 * (`{"t":"jti"|"sub"|"sid","op":"+"|"-"|"*","v":...}`, see the revocation
 * migration). Defensive: anything else — bad JSON, unknown kind or op, a
 * malformed element — gives `undefined`, and the caller resyncs from the
 * tables rather than guess.
 *
 * @example
 * ```ts
 * const n = parseRevocationNotification('{"t":"jti","op":"+","v":[["abc",1767225600]]}');
 * ```
 */
export function parseRevocationNotification(
  payload: string | undefined,
): RevocationNotification | undefined {
  if (typeof payload !== 'string') return undefined;
  const doc = parseJsonObject(payload);
  if (doc === undefined) return undefined;
  const { t, op, v } = doc;
  if (t !== 'jti' && t !== 'sub' && t !== 'sid') return undefined;
  if (op === '*') return { t, op };
  if (!Array.isArray(v)) return undefined;
  if (op === '-') {
    for (const key of v) if (typeof key !== 'string' || key === '') return undefined;
    return { t, op, v: v as string[] };
  }
  if (op === '+') {
    for (const e of v) {
      if (
        !Array.isArray(e) ||
        e.length !== 2 ||
        typeof e[0] !== 'string' ||
        e[0] === '' ||
        typeof e[1] !== 'number' ||
        !Number.isSafeInteger(e[1])
      )
        return undefined;
    }
    return { t, op, v: v as [string, number][] };
  }
  return undefined;
}
