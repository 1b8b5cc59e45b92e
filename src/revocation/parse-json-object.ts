/**
 * Parses text that must be one JSON object (not an array, not null), of at
 * most `maxLength` characters; undefined for anything else. The revocation
 * channels' messages all start this way.
 *
 * @example
 * ```ts
 * const doc = parseJsonObject('{"t":"jti","op":"*"}'); // { t: 'jti', op: '*' }
 * ```
 */
export function parseJsonObject(
  text: string,
  maxLength = Number.POSITIVE_INFINITY,
): Record<string, unknown> | undefined {
  if (text.length > maxLength) return undefined;
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) return undefined;
  return doc as Record<string, unknown>;
}
