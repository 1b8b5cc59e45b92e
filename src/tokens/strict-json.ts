/**
 * Finds a member name that occurs twice in the same JSON object of `text`, the
 * way RFC 7515 §4 and RFC 7519 §4 require a JOSE header or claims set with
 * duplicate names to be refused. `JSON.parse` silently keeps the last value,
 * so `{"sub":"alice","sub":"admin"}` would mean different things to parsers
 * that keep the first one: the verifier refuses such tokens before jose sees
 * them.
 *
 * This is a validity check, not a parser: it never throws and never builds
 * values. Text that is not well-formed JSON returns `undefined` here and is
 * refused by `JSON.parse` afterwards. Names are compared after JSON unescaping,
 * so `"sub"` and `"s\u0075b"` are the same name.
 *
 * @example
 * ```ts
 * findDuplicateMember('{"sub":"a","sub":"b"}'); // 'sub'
 * findDuplicateMember('{"a":{"x":1},"b":{"x":2}}'); // undefined: different objects
 * ```
 */
export function findDuplicateMember(text: string): string | undefined {
  // Names of every open object, flattened; `starts` holds where each open container's names
  // begin (-1 for arrays). Objects in tokens are small, so a linear search beats a Set per
  // object; past SMALL names an object gets a Set, so hostile input stays linear.
  const names: string[] = [];
  const starts: number[] = [];
  let sets: (Set<string> | undefined)[] | undefined;
  let expectKey = false;
  const n = text.length;
  let i = 0;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      const end = stringEnd(text, i);
      if (end < 0) return undefined;
      if (expectKey) {
        const depth = starts.length - 1;
        const start = starts[depth];
        if (start === undefined || start < 0) return undefined;
        const name = memberName(text, i, end);
        if (name === undefined) return undefined;
        if (names.length - start < SMALL) {
          for (let k = start; k < names.length; k++) if (names[k] === name) return name;
        } else {
          sets ??= [];
          let set = sets[depth];
          if (set === undefined) {
            set = new Set(names.slice(start));
            sets[depth] = set;
          }
          if (set.has(name)) return name;
          set.add(name);
        }
        names.push(name);
        expectKey = false;
      }
      i = end + 1;
      continue;
    }
    if (c === OPEN_BRACE) {
      starts.push(names.length);
      expectKey = true;
    } else if (c === OPEN_BRACKET) {
      starts.push(-1);
      expectKey = false;
    } else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) {
      if (sets) sets[starts.length - 1] = undefined;
      const start = starts.pop();
      if (start === undefined) return undefined;
      if (start >= 0) names.length = start;
      expectKey = false;
    } else if (c === COMMA) {
      // After a comma inside an object the next string is a name; inside an array, a value.
      expectKey = starts.length > 0 && starts[starts.length - 1]! >= 0;
    }
    i++;
  }
  return undefined;
}

/** Up to this many names per object, duplicates are found by linear search. */
const SMALL = 16;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const COMMA = 0x2c;

/** Index of the quote closing the string that opens at `start`, or -1 if unterminated. */
function stringEnd(text: string, start: number): number {
  // indexOf is vectorised; most of a token's text is inside strings, so jump quote to quote.
  let q = text.indexOf('"', start + 1);
  while (q >= 0 && text.charCodeAt(q - 1) === BACKSLASH) {
    // An odd run of backslashes before the quote escapes it.
    let backslashes = 1;
    for (let j = q - 2; j > start && text.charCodeAt(j) === BACKSLASH; j--) backslashes++;
    if (backslashes % 2 === 0) return q;
    q = text.indexOf('"', q + 1);
  }
  return q;
}

/** The unescaped member name between the quotes at `start` and `end`. */
function memberName(text: string, start: number, end: number): string | undefined {
  const raw = text.slice(start + 1, end);
  if (raw.indexOf('\\') < 0) return raw;
  try {
    return JSON.parse(text.slice(start, end + 1)) as string;
  } catch {
    return undefined;
  }
}
