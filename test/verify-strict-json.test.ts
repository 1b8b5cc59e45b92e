import { describe, expect, it } from 'vitest';
import { findDuplicateMember } from '../src/tokens/strict-json.js';

describe('findDuplicateMember', () => {
  it('finds a duplicate at the top level', () => {
    expect(findDuplicateMember('{"sub":"a","role":"x","sub":"b"}')).toBe('sub');
  });
  it('finds duplicates written with escapes', () => {
    expect(findDuplicateMember('{"sub":"a","s\\u0075b":"b"}')).toBe('sub');
    expect(findDuplicateMember('{"a\\"b":1,"a\\u0022b":2}')).toBe('a"b');
  });
  it('finds duplicates in nested objects, inside arrays too', () => {
    expect(findDuplicateMember('{"m":{"x":1,"y":{"z":1,"z":2}}}')).toBe('z');
    expect(findDuplicateMember('{"a":[1,{"k":1,"k":2}]}')).toBe('k');
  });
  it('keeps names of sibling objects apart', () => {
    expect(
      findDuplicateMember('{"a":{"x":1},"b":{"x":2},"c":[{"x":1},{"x":1}],"x":0}'),
    ).toBeUndefined();
  });
  it('ignores names inside string values, with escaped quotes and backslashes', () => {
    expect(findDuplicateMember('{"a":"\\"a\\":1","b":"\\\\","c":"{\\"a\\":2}"}')).toBeUndefined();
    expect(findDuplicateMember('{"a":"\\\\","a":1}')).toBe('a');
  });
  it('treats array strings as values, not names', () => {
    expect(findDuplicateMember('{"amr":["pwd","pwd"],"x":["a","a"]}')).toBeUndefined();
  });
  it('handles unicode names and values', () => {
    expect(findDuplicateMember('{"ключ":1,"ключ":2}')).toBe('ключ');
    expect(findDuplicateMember('{"é":1,"e\\u0301":2}')).toBeUndefined();
  });
  it('never throws on malformed or hostile text', () => {
    for (const text of [
      '',
      '{',
      '}',
      '{"a',
      '{"a":"b',
      ']]]]',
      '{"a\\',
      '"',
      '{"\\u00zz":1,"\\u00zz":1}',
      '['.repeat(100_000),
    ]) {
      expect(() => findDuplicateMember(text)).not.toThrow();
    }
  });
  it('returns undefined for well-formed JSON without duplicates', () => {
    expect(
      findDuplicateMember(JSON.stringify({ a: 1, b: [1, 2, { c: 'd' }], e: { f: null } })),
    ).toBeUndefined();
  });
});

describe('findDuplicateMember on large objects', () => {
  it('finds duplicates past the linear-search size, at any position', () => {
    const many = Array.from({ length: 200 }, (_, i) => `"k${i}":${i}`);
    expect(findDuplicateMember(`{${many.join(',')}}`)).toBeUndefined();
    expect(findDuplicateMember(`{${many.join(',')},"k3":0}`)).toBe('k3');
    expect(findDuplicateMember(`{${many.join(',')},"k199":0}`)).toBe('k199');
    expect(findDuplicateMember(`{"k7":0,${many.join(',')}}`)).toBe('k7');
  });
  it('keeps the large-object index per object', () => {
    const a = Array.from({ length: 40 }, (_, i) => `"a${i}":1`).join(',');
    expect(findDuplicateMember(`{"x":{${a}},"y":{${a}},"z":[{${a}},{${a}}]}`)).toBeUndefined();
    expect(findDuplicateMember(`{"x":{${a}},"y":{${a},"a39":2}}`)).toBe('a39');
  });
  it('handles a hostile 8 KiB object of 1,500 distinct names', () => {
    const names = Array.from({ length: 1500 }, (_, i) => `"${i.toString(36)}":0`).join(',');
    const text = `{${names}}`;
    expect(findDuplicateMember(text)).toBeUndefined();
    expect(findDuplicateMember(`${text.slice(0, -1)},"0":1}`)).toBe('0');
  });
});
