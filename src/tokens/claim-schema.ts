import { RlsKitError } from '../errors.js';

/** Fields every claim definition may carry. */
interface ClaimBase {
  /** Minting without this claim is refused. */
  readonly required?: boolean;
  /**
   * Opt-in for a name on the sensitive list ({@link isSensitiveClaimName}).
   * Tokens are readable by whoever holds them (and are logged by proxies), so
   * personal data in claims needs a deliberate decision per claim.
   */
  readonly allowSensitive?: boolean;
  /** Free text for reviewers (shown by the policy review). */
  readonly description?: string;
}

/**
 * The type of one custom claim. Kept to JSON scalars and string arrays:
 * everything a policy compares with `auth.jwt() ->> 'name'` or `?|`.
 *
 * @example
 * ```ts
 * const def: ClaimDefinition = { enum: ['owner', 'admin', 'member', 'viewer'] };
 * ```
 */
export type ClaimDefinition =
  | (ClaimBase & { readonly type: 'string'; readonly maxLength?: number })
  | (ClaimBase & { readonly type: 'uuid' })
  | (ClaimBase & { readonly type: 'integer'; readonly minimum?: number; readonly maximum?: number })
  | (ClaimBase & { readonly type: 'number'; readonly minimum?: number; readonly maximum?: number })
  | (ClaimBase & { readonly type: 'boolean' })
  | (ClaimBase & { readonly type?: 'enum'; readonly enum: readonly string[] })
  | (ClaimBase & {
      readonly type: 'string-array';
      readonly maxItems?: number;
      readonly maxLength?: number;
      readonly enum?: readonly string[];
    });

/** Claim name → definition. */
export type ClaimDefinitions = Readonly<Record<string, ClaimDefinition>>;

/** The TypeScript value type of one definition. */
export type ClaimValueOf<D extends ClaimDefinition> = D extends {
  readonly type: 'string-array';
  readonly enum: readonly (infer E)[];
}
  ? E[]
  : D extends { readonly type: 'string-array' }
    ? string[]
    : D extends { readonly enum: readonly (infer E)[] }
      ? E
      : D extends { readonly type: 'string' | 'uuid' }
        ? string
        : D extends { readonly type: 'integer' | 'number' }
          ? number
          : D extends { readonly type: 'boolean' }
            ? boolean
            : never;

type RequiredNames<S extends ClaimDefinitions> = {
  [K in keyof S]: S[K] extends { readonly required: true } ? K : never;
}[keyof S];

/**
 * The custom claims a schema accepts: required ones mandatory, the rest
 * optional.
 *
 * @example
 * ```ts
 * type C = ClaimValues<typeof exampleClaimSchema.definitions>;
 * // { org_id?: string; user_role?: 'owner' | 'admin' | 'member' | 'viewer' }
 * ```
 */
export type ClaimValues<S extends ClaimDefinitions> = {
  -readonly [K in RequiredNames<S>]: ClaimValueOf<S[K]>;
} & { -readonly [K in Exclude<keyof S, RequiredNames<S>>]?: ClaimValueOf<S[K]> };

/** A JSON value a custom claim may hold. */
export type ClaimValue = string | number | boolean | string[];

/**
 * A checked claim schema: the only way custom claims get into a kit token.
 *
 * @example
 * ```ts
 * const claims = schema.check({ org_id: orgId, user_role: 'admin' });
 * ```
 */
export interface ClaimSchema<S extends ClaimDefinitions = ClaimDefinitions> {
  /** The definitions as given (frozen). */
  readonly definitions: S;
  /** Declared claim names, in declaration order. */
  readonly names: readonly string[];
  /**
   * Checks custom claims: every name declared, every value of its type,
   * required ones present. Returns a fresh object in declaration order.
   * Refusals are `ERR_TOKEN_CLAIMS` naming the claim, never echoing values.
   */
  check(claims: unknown): ClaimValues<S>;
  /**
   * Turns command-line text into the claim's type (`--claim k=v`):
   * integers and numbers parsed, `true`/`false` for booleans, string arrays
   * comma-separated (or a JSON array).
   */
  parseValue(name: string, text: string): ClaimValue;
}

/**
 * Claim names the kit sets itself or that mean something to JOSE, OAuth,
 * OIDC, Supabase Auth or JavaScript objects; a schema cannot redeclare them.
 */
export const RESERVED_CLAIM_NAMES: ReadonlySet<string> = new Set([
  // RFC 7519 registered claims
  'iss',
  'sub',
  'aud',
  'exp',
  'nbf',
  'iat',
  'jti',
  // the kit's and PostgREST's
  'role',
  'sid',
  // JOSE header names: a claim by the same name invites confusion
  'alg',
  'kid',
  'typ',
  'cty',
  'crit',
  'jku',
  'jwk',
  'x5u',
  'x5c',
  'x5t',
  'enc',
  'zip',
  // Supabase Auth's claims
  'session_id',
  'aal',
  'amr',
  'is_anonymous',
  'ref',
  // OAuth / OIDC
  'azp',
  'nonce',
  'auth_time',
  'acr',
  'cnf',
  'scope',
  'client_id',
  'act',
  'may_act',
  // JavaScript object internals
  '__proto__',
  'constructor',
  'prototype',
]);

/** Compared after lower-casing and removing `_` and `-`. */
const SENSITIVE_EXACT = new Set([
  'email',
  'emailaddress',
  'phone',
  'phonenumber',
  'mobile',
  'password',
  'passwd',
  'pwd',
  'address',
  'streetaddress',
  'postalcode',
  'zipcode',
  'usermetadata',
  'appmetadata',
  'rawusermetadata',
  'rawappmetadata',
  'ssn',
  'socialsecuritynumber',
  'birthdate',
  'birthday',
  'dateofbirth',
  'dob',
  'name',
  'fullname',
  'firstname',
  'lastname',
  'givenname',
  'familyname',
  'middlename',
  'nickname',
  'preferredusername',
  'gender',
  'ip',
  'ipaddress',
  'creditcard',
  'cardnumber',
  'iban',
  'passport',
  'nationalid',
  'taxid',
  'location',
  'latitude',
  'longitude',
  'apikey',
  'accesstoken',
  'refreshtoken',
  'idtoken',
  'otp',
  'pin',
]);
const SENSITIVE_PARTS = [
  'password',
  'passwd',
  'passphrase',
  'secret',
  'email',
  'phone',
  'apikey',
  'address',
  'privatekey',
  'accesskey',
  'token',
];

/**
 * True for claim names that usually carry personal data or secrets
 * (`email`, `phone`, `password`, `address`, `user_metadata`, `birthdate`,
 * `name`, ... and any name containing `password`, `secret`, `email`,
 * `phone`). Such claims are refused unless declared with
 * `allowSensitive: true`.
 *
 * @example
 * ```ts
 * isSensitiveClaimName('user_email'); // true
 * isSensitiveClaimName('org_id'); // false
 * ```
 */
export function isSensitiveClaimName(name: string): boolean {
  const n = name.toLowerCase().replace(/[_-]/g, '');
  return SENSITIVE_EXACT.has(n) || SENSITIVE_PARTS.some((part) => n.includes(part));
}

const NAME = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const DEFAULT_MAX_LENGTH = 256;
const DEFAULT_MAX_ITEMS = 32;
const KNOWN_FIELDS = new Set([
  'type',
  'required',
  'allowSensitive',
  'description',
  'maxLength',
  'minimum',
  'maximum',
  'enum',
  'maxItems',
]);

/** A safe way to name a claim in a message, whatever the caller passed. */
function label(name: string): string {
  return JSON.stringify(name.length > 40 ? `${name.slice(0, 40)}…` : name);
}

type Validator = (value: unknown) => string | undefined;

function configError(name: string, why: string): RlsKitError {
  return new RlsKitError('ERR_CONFIG', `claim schema: ${label(name)} ${why}`);
}

function compile(name: string, raw: unknown): Validator {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw configError(name, 'must be an object such as {"type": "uuid"}');
  }
  const def = raw as Record<string, unknown>;
  for (const field of Object.keys(def)) {
    if (!KNOWN_FIELDS.has(field)) throw configError(name, `has an unknown field ${label(field)}`);
  }
  const type = def.type ?? (def.enum !== undefined ? 'enum' : undefined);
  const positiveInt = (field: string, fallback: number): number => {
    const v = def[field] ?? fallback;
    if (!Number.isSafeInteger(v) || (v as number) < 1) {
      throw configError(name, `has an invalid ${field} (a whole number, 1 or more)`);
    }
    return v as number;
  };
  const enumValues = (): ReadonlySet<string> => {
    const list = def.enum;
    if (
      !Array.isArray(list) ||
      list.length === 0 ||
      !list.every((v) => typeof v === 'string' && v.length > 0 && v.length <= 64) ||
      new Set(list).size !== list.length
    ) {
      throw configError(name, 'needs "enum": a non-empty list of distinct strings (1-64 chars)');
    }
    return new Set(list as string[]);
  };
  const bounds = (integer: boolean): [number, number] => {
    const lo = def.minimum ?? (integer ? Number.MIN_SAFE_INTEGER : -Number.MAX_VALUE);
    const hi = def.maximum ?? (integer ? Number.MAX_SAFE_INTEGER : Number.MAX_VALUE);
    if (typeof lo !== 'number' || typeof hi !== 'number' || !(lo <= hi)) {
      throw configError(name, 'has invalid minimum/maximum');
    }
    return [lo, hi];
  };
  const noEnum = () => {
    if (def.enum !== undefined) throw configError(name, `cannot have "enum" with type ${type}`);
  };
  switch (type) {
    case 'string': {
      noEnum();
      const max = positiveInt('maxLength', DEFAULT_MAX_LENGTH);
      return (v) =>
        typeof v !== 'string'
          ? 'must be a string'
          : v.length > max
            ? `must be at most ${max} characters`
            : undefined;
    }
    case 'uuid':
      noEnum();
      return (v) => (typeof v === 'string' && UUID.test(v) ? undefined : 'must be a uuid');
    case 'integer': {
      noEnum();
      const [lo, hi] = bounds(true);
      return (v) =>
        !Number.isSafeInteger(v)
          ? 'must be an integer'
          : (v as number) < lo || (v as number) > hi
            ? `must be between ${lo} and ${hi}`
            : undefined;
    }
    case 'number': {
      noEnum();
      const [lo, hi] = bounds(false);
      return (v) =>
        typeof v !== 'number' || !Number.isFinite(v)
          ? 'must be a finite number'
          : v < lo || v > hi
            ? `must be between ${lo} and ${hi}`
            : undefined;
    }
    case 'boolean':
      noEnum();
      return (v) => (typeof v === 'boolean' ? undefined : 'must be true or false');
    case 'enum': {
      const allowed = enumValues();
      const list = [...allowed].join(', ');
      return (v) =>
        typeof v === 'string' && allowed.has(v) ? undefined : `must be one of: ${list}`;
    }
    case 'string-array': {
      const maxItems = positiveInt('maxItems', DEFAULT_MAX_ITEMS);
      const maxLength = positiveInt('maxLength', DEFAULT_MAX_LENGTH);
      const allowed = def.enum === undefined ? undefined : enumValues();
      return (v) => {
        if (!Array.isArray(v)) return 'must be an array of strings';
        if (v.length > maxItems) return `must have at most ${maxItems} items`;
        for (const item of v) {
          if (typeof item !== 'string' || item.length > maxLength) {
            return `must hold strings of at most ${maxLength} characters`;
          }
          if (allowed && !allowed.has(item)) {
            return `must hold only: ${[...allowed].join(', ')}`;
          }
        }
        if (new Set(v).size !== v.length) return 'must not repeat items';
        return undefined;
      };
    }
    default:
      throw configError(
        name,
        'has an unknown type; use string, uuid, integer, number, boolean, enum or string-array',
      );
  }
}

/**
 * Declares the custom claims tokens may carry. The schema is checked once,
 * here (`ERR_CONFIG`): names are 1-64 characters of `[A-Za-z0-9_]`, not
 * reserved ({@link RESERVED_CLAIM_NAMES}), not sensitive unless
 * `allowSensitive: true`, with a known type and no unknown fields (a typo
 * such as `requried` is an error, not a silent no-op).
 *
 * Works on a typed literal (values are then typed in `mint`) or on JSON/YAML
 * read from a file (`rls-kit mint --claim-schema FILE`).
 *
 * @example
 * ```ts
 * const schema = defineClaimSchema({
 *   org_id: { type: 'uuid', required: true },
 *   user_role: { enum: ['owner', 'admin', 'member', 'viewer'] },
 * });
 * ```
 */
export function defineClaimSchema<const S extends ClaimDefinitions>(
  definitions: S,
): ClaimSchema<S> {
  if (typeof definitions !== 'object' || definitions === null || Array.isArray(definitions)) {
    throw new RlsKitError(
      'ERR_CONFIG',
      'claim schema: expected an object of claim name → definition, such as {"org_id": {"type": "uuid"}}',
    );
  }
  const validators = new Map<string, Validator>();
  const required: string[] = [];
  for (const name of Object.keys(definitions)) {
    if (!NAME.test(name)) {
      throw configError(name, 'is not a valid claim name (1-64 characters of A-Z a-z 0-9 _)');
    }
    if (RESERVED_CLAIM_NAMES.has(name)) {
      throw configError(name, 'is reserved (set by the minter, JOSE, OAuth or Supabase Auth)');
    }
    const def = definitions[name] as ClaimDefinition;
    if (
      isSensitiveClaimName(name) &&
      (def as { allowSensitive?: unknown }).allowSensitive !== true
    ) {
      throw configError(
        name,
        'looks like personal data or a secret, which every holder of a token can read; declare it with "allowSensitive": true if you must',
      );
    }
    validators.set(name, compile(name, def));
    if ((def as { required?: unknown }).required === true) required.push(name);
  }
  const names = [...validators.keys()];
  const frozen = Object.freeze(structuredClone(definitions)) as S;

  const check = (claims: unknown): ClaimValues<S> => {
    if (claims === undefined) claims = {};
    if (typeof claims !== 'object' || claims === null || Array.isArray(claims)) {
      throw new RlsKitError('ERR_TOKEN_CLAIMS', 'custom claims must be an object');
    }
    const input = claims as Record<string, unknown>;
    for (const name of Object.keys(input)) {
      if (validators.has(name)) continue;
      const why = RESERVED_CLAIM_NAMES.has(name)
        ? 'is set by the minter, not by custom claims (use the sub, role or sid options)'
        : isSensitiveClaimName(name)
          ? 'looks like personal data or a secret and is not in the claim schema; tokens are readable by anyone holding them'
          : 'is not in the claim schema; declare it there first';
      throw new RlsKitError('ERR_TOKEN_CLAIMS', `claim ${label(name)} ${why}`);
    }
    const out: Record<string, unknown> = {};
    for (const [name, validate] of validators) {
      const value = input[name];
      if (value === undefined) continue;
      const problem = validate(value);
      if (problem) throw new RlsKitError('ERR_TOKEN_CLAIMS', `claim ${label(name)} ${problem}`);
      out[name] = Array.isArray(value) ? [...value] : value;
    }
    for (const name of required) {
      if (!(name in out)) {
        throw new RlsKitError('ERR_TOKEN_CLAIMS', `claim ${label(name)} is required`);
      }
    }
    return out as ClaimValues<S>;
  };

  const parseValue = (name: string, text: string): ClaimValue => {
    const validate = validators.get(name);
    const def = definitions[name];
    if (!validate || !def) {
      check({ [name]: text }); // throws the same message as minting would
      throw new RlsKitError('ERR_TOKEN_CLAIMS', `claim ${label(name)} is not in the claim schema`);
    }
    let value: unknown = text;
    switch (def.type) {
      case 'integer':
      case 'number':
        value = /^-?\d+(\.\d+)?([eE][+-]?\d+)?$/.test(text.trim()) ? Number(text) : Number.NaN;
        break;
      case 'boolean':
        value = text === 'true' ? true : text === 'false' ? false : text;
        break;
      case 'string-array':
        if (text.trim().startsWith('[')) {
          try {
            value = JSON.parse(text);
          } catch {
            value = text;
          }
        } else {
          value = text === '' ? [] : text.split(',').map((s) => s.trim());
        }
        break;
    }
    const problem = validate(value);
    if (problem) throw new RlsKitError('ERR_TOKEN_CLAIMS', `claim ${label(name)} ${problem}`);
    return value as ClaimValue;
  };

  return Object.freeze({ definitions: frozen, names, check, parseValue });
}
