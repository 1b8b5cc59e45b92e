import { loadModule, parseSync } from 'libpg-query';

/**
 * One JWT claim an expression reads.
 *
 * @example
 * ```ts
 * const read: ClaimRead = { claim: 'org_id', path: 'org_id', via: 'auth.jwt()' };
 * ```
 */
export interface ClaimRead {
  /** Top-level claim name (`sub`, `org_id`, `app_metadata`); `*` when the whole token is passed on. */
  readonly claim: string;
  /** The full path read, dot-separated (`app_metadata.tenant`); `?` marks a non-constant key. */
  readonly path: string;
  /** How it is read: `auth.jwt()`, `auth.uid()`, `current_setting('request.jwt.claims')`, … */
  readonly via: string;
}

/**
 * What {@link analyzeExpression} and {@link analyzeSqlFunctionBody} find in SQL.
 *
 * @example
 * ```ts
 * const found: SqlAnalysis = analyzeExpression("org_id = ((select auth.jwt()) ->> 'org_id')::uuid");
 * found.claims; // [{ claim: 'org_id', path: 'org_id', via: 'auth.jwt()' }]
 * ```
 */
export interface SqlAnalysis {
  /** Claims read, deduplicated, in order of first appearance. */
  readonly claims: readonly ClaimRead[];
  /**
   * `auth.*()` / `current_setting()` calls that are not inside a sub-select:
   * Postgres may evaluate them once per row instead of once per statement.
   */
  readonly perRowCalls: readonly string[];
  /** Settings read with `current_setting('request.headers' | 'request.cookies' | …)`: client-controlled. */
  readonly requestSettings: readonly string[];
  /** Columns referenced outside sub-selects (the policy's own table's columns). */
  readonly columns: readonly string[];
  /** Names of the functions called (as written, qualified when the SQL qualifies them). */
  readonly functions: readonly string[];
  /** True when `auth.users.raw_user_meta_data` (user-writable) is referenced. */
  readonly readsRawUserMetadata: boolean;
  /** True when the expression is the constant `true`. */
  readonly constantTrue: boolean;
  /** The parser's message when the SQL could not be parsed (nothing else is then known). */
  readonly parseError?: string;
}

type Node = Record<string, unknown>;

/** The standard claim functions and the claim each returns. */
const CLAIM_FUNCTIONS: Readonly<Record<string, string>> = {
  'auth.uid': 'sub',
  'auth.role': 'role',
  'auth.email': 'email',
};

/** Settings PostgREST fills from the HTTP request: the client controls them. */
const REQUEST_SETTINGS = new Set([
  'request.headers',
  'request.cookies',
  'request.path',
  'request.method',
]);
const REQUEST_SETTING_PREFIXES = ['request.header.', 'request.cookie.'];

const JSON_PATH_FUNCTIONS = new Set([
  'jsonb_extract_path',
  'jsonb_extract_path_text',
  'json_extract_path',
  'json_extract_path_text',
]);

let loaded: Promise<void> | undefined;

/**
 * Loads the WASM Postgres parser once per process. {@link analyzeExpression}
 * and {@link analyzeSqlFunctionBody} need it; call this first.
 *
 * @example
 * ```ts
 * await loadSqlParser();
 * analyzeExpression('auth.uid() = owner_id');
 * ```
 */
export function loadSqlParser(): Promise<void> {
  loaded ??= loadModule();
  return loaded;
}

/**
 * Analyzes one SQL expression (a policy's `USING` or `WITH CHECK` as
 * `pg_get_expr` prints it) with the real Postgres parser: the JWT claims it
 * reads, per-row claim calls, columns, functions.
 *
 * @example
 * ```ts
 * await loadSqlParser();
 * analyzeExpression('owner_id = auth.uid()').perRowCalls; // ['auth.uid()']
 * ```
 */
export function analyzeExpression(expression: string): SqlAnalysis {
  let tree: unknown;
  try {
    tree = parseSync(`SELECT (${expression})`);
  } catch (err) {
    return failed(err);
  }
  const select = child(child(first(arr(asNode(tree)?.stmts)), 'stmt'), 'SelectStmt');
  const target = child(first(arr(select?.targetList)), 'ResTarget');
  const value = asNode(target?.val);
  const collector = new Collector();
  collector.visit(value, false);
  return collector.result(isConstantTrue(value));
}

/**
 * Analyzes the body of a `language sql` function (one or more statements):
 * the claims it reads. Used one level deep for the helpers policies call.
 *
 * @example
 * ```ts
 * await loadSqlParser();
 * analyzeSqlFunctionBody("select (auth.jwt() ->> 'user_role') = 'admin'").claims[0]?.claim; // 'user_role'
 * ```
 */
export function analyzeSqlFunctionBody(body: string): SqlAnalysis {
  let tree: unknown;
  try {
    tree = parseSync(body);
  } catch (err) {
    return failed(err);
  }
  const collector = new Collector();
  for (const stmt of arr(asNode(tree)?.stmts)) collector.visit(asNode(stmt), true);
  return collector.result(false);
}

/**
 * Analyzes a `language sql` function: its string body (`prosrc`) when it has
 * one, else the SQL-standard body (`RETURN …` / `BEGIN ATOMIC … END`) found
 * in its `pg_get_functiondef` text. Used one level deep for the helpers
 * policies call.
 *
 * @example
 * ```ts
 * await loadSqlParser();
 * analyzeSqlFunction('', "CREATE FUNCTION f() RETURNS text LANGUAGE sql RETURN auth.jwt() ->> 'team'").claims;
 * // [{ claim: 'team', path: 'team', via: 'auth.jwt()' }]
 * ```
 */
export function analyzeSqlFunction(source: string, definition?: string): SqlAnalysis {
  if (source.trim() !== '') return analyzeSqlFunctionBody(source);
  if (definition === undefined) return failed(new Error('the function has no body to analyze'));
  let tree: unknown;
  try {
    tree = parseSync(definition);
  } catch (err) {
    return failed(err);
  }
  const create = child(child(first(arr(asNode(tree)?.stmts)), 'stmt'), 'CreateFunctionStmt');
  const body = asNode(create?.sql_body);
  if (!body) return failed(new Error('the function has no SQL body'));
  const collector = new Collector();
  collector.visit(body, true);
  return collector.result(false);
}

/** Walks a parse tree collecting what {@link SqlAnalysis} reports. */
class Collector {
  private readonly claims = new Map<string, ClaimRead>();
  private readonly perRow = new Set<string>();
  private readonly requestSettings = new Set<string>();
  private readonly columns = new Set<string>();
  private readonly functions = new Set<string>();
  private rawUserMetadata = false;

  result(constantTrue: boolean): SqlAnalysis {
    return {
      claims: [...this.claims.values()],
      perRowCalls: [...this.perRow],
      requestSettings: [...this.requestSettings],
      columns: [...this.columns],
      functions: [...this.functions],
      readsRawUserMetadata: this.rawUserMetadata,
      constantTrue,
    };
  }

  private addClaim(path: readonly string[], via: string): void {
    const claim = path[0] ?? '*';
    const text = path.length === 0 ? '*' : path.join('.');
    const key = `${text}\u0000${via}`;
    if (!this.claims.has(key)) this.claims.set(key, { claim, path: text, via });
  }

  /**
   * `inSubLink`: the node sits inside a sub-select, which Postgres can run
   * once per statement (an InitPlan) rather than once per row.
   */
  visit(node: Node | undefined, inSubLink: boolean): void {
    if (!node) return;
    const [type, body] = unwrap(node);
    if (!type || !body) {
      this.visitChildren(node, inSubLink);
      return;
    }
    switch (type) {
      case 'A_Expr':
      case 'FuncCall': {
        const path = jwtPath(node);
        if (path && path.path.length > 0) {
          this.addClaim(path.path, path.via);
          if (!inSubLink && !path.wrapped) this.perRow.add(path.call);
          // The chain's own arguments are constants; visit the rest of a
          // function call's arguments (e.g. jsonb_extract_path's) only.
          return;
        }
        if (type === 'FuncCall') {
          this.visitFuncCall(body, inSubLink);
          return;
        }
        break;
      }
      case 'SubLink': {
        const base = jwtBase(node);
        if (base) {
          // `(select auth.jwt())` passed on whole (to a function, compared as a value).
          this.addClaim([], base.via);
          return;
        }
        this.visit(asNode(body.testexpr), inSubLink);
        this.visit(asNode(body.subselect), true);
        return;
      }
      case 'TypeCast': {
        const base = jwtBase(node);
        if (base) {
          this.addClaim([], base.via);
          if (!inSubLink && !base.wrapped) this.perRow.add(base.call);
          return;
        }
        break;
      }
      case 'ColumnRef': {
        const fields = arr(body.fields).map((f) => child(asNode(f), 'String')?.sval);
        const last = fields[fields.length - 1];
        if (typeof last === 'string') {
          if (last === 'raw_user_meta_data') this.rawUserMetadata = true;
          if (!inSubLink && fields.length === 1) this.columns.add(last);
        }
        return;
      }
    }
    this.visitChildren(body, inSubLink);
  }

  private visitFuncCall(body: Node, inSubLink: boolean): void {
    const name = funcName(body);
    const args = arr(body.args).map(asNode);
    const call = `${name}()`;
    if (name === 'auth.jwt') {
      this.addClaim([], 'auth.jwt()');
      if (!inSubLink) this.perRow.add(call);
      return;
    }
    const claim = CLAIM_FUNCTIONS[name];
    if (claim) {
      this.addClaim([claim], call);
      if (!inSubLink) this.perRow.add(call);
      return;
    }
    const bare = name.startsWith('pg_catalog.') ? name.slice('pg_catalog.'.length) : name;
    if (bare === 'current_setting') {
      const setting = stringConst(args[0]);
      if (!inSubLink) this.perRow.add(`current_setting(${quote(setting ?? '?')})`);
      if (setting !== undefined) {
        if (setting === 'request.jwt.claims' || setting === 'request.jwt.claim') {
          this.addClaim([], `current_setting(${quote(setting)})`);
        } else if (setting.startsWith('request.jwt.claim.')) {
          this.addClaim(
            [setting.slice('request.jwt.claim.'.length)],
            `current_setting(${quote(setting)})`,
          );
        } else if (
          REQUEST_SETTINGS.has(setting) ||
          REQUEST_SETTING_PREFIXES.some((p) => setting.startsWith(p))
        ) {
          this.requestSettings.add(setting);
        }
      }
      for (const arg of args.slice(1)) this.visit(arg, inSubLink);
      return;
    }
    if (!bare.startsWith('pg_catalog.')) this.functions.add(name);
    for (const arg of args) this.visit(arg, inSubLink);
    this.visit(asNode(body.agg_filter), inSubLink);
  }

  private visitChildren(value: unknown, inSubLink: boolean): void {
    if (Array.isArray(value)) {
      for (const item of value) this.visitChildren(item, inSubLink);
      return;
    }
    if (typeof value !== 'object' || value === null) return;
    for (const [key, item] of Object.entries(value)) {
      if (typeof item !== 'object' || item === null) continue;
      if (key.length > 0 && key[0] === key[0]!.toUpperCase() && !Array.isArray(item)) {
        // A node: { TypeName: { … } }
        this.visit({ [key]: item } as Node, inSubLink);
      } else {
        this.visitChildren(item, inSubLink);
      }
    }
  }
}

interface JwtBase {
  /** How the claims object is obtained. */
  readonly via: string;
  /** The call evaluated (for the per-row list). */
  readonly call: string;
  /** True when the call sits inside a sub-select. */
  readonly wrapped: boolean;
}

interface JwtPath extends JwtBase {
  readonly path: readonly string[];
}

/** `auth.jwt()`, `(select auth.jwt())`, `current_setting('request.jwt.claims', true)::jsonb`, … */
function jwtBase(node: Node | undefined): JwtBase | undefined {
  if (!node) return undefined;
  const [type, body] = unwrap(node);
  if (!type || !body) return undefined;
  switch (type) {
    case 'FuncCall': {
      const name = funcName(body);
      if (name === 'auth.jwt') return { via: 'auth.jwt()', call: 'auth.jwt()', wrapped: false };
      const bare = name.replace(/^pg_catalog\./, '');
      if (bare === 'nullif' || bare === 'coalesce') {
        for (const arg of arr(body.args)) {
          const inner = jwtBase(asNode(arg)) ?? claimsSetting(asNode(arg));
          if (inner) return inner;
        }
      }
      return undefined;
    }
    case 'TypeCast': {
      const arg = asNode(body.arg);
      return jwtBase(arg) ?? claimsSetting(arg);
    }
    // nullif(x, '') and coalesce(x, …) (the grammar's own node types, not FuncCalls)
    case 'A_Expr':
      if (body.kind !== 'AEXPR_NULLIF') return undefined;
      return jwtBase(asNode(body.lexpr)) ?? claimsSetting(asNode(body.lexpr));
    case 'CoalesceExpr':
      for (const arg of arr(body.args)) {
        const inner = jwtBase(asNode(arg)) ?? claimsSetting(asNode(arg));
        if (inner) return inner;
      }
      return undefined;
    case 'SubLink': {
      if (body.subLinkType !== 'EXPR_SUBLINK') return undefined;
      const select = child(asNode(body.subselect), 'SelectStmt');
      if (!select || select.fromClause !== undefined) return undefined;
      const targets = arr(select.targetList);
      if (targets.length !== 1) return undefined;
      const inner = jwtBase(asNode(child(asNode(targets[0]), 'ResTarget')?.val));
      return inner ? { ...inner, wrapped: true } : undefined;
    }
    default:
      return undefined;
  }
}

/** `current_setting('request.jwt.claims'[, true])` (text: a base only once cast to json). */
function claimsSetting(node: Node | undefined): JwtBase | undefined {
  const nullif = child(node, 'A_Expr');
  if (nullif?.kind === 'AEXPR_NULLIF') return claimsSetting(asNode(nullif.lexpr));
  const coalesce = child(node, 'CoalesceExpr');
  if (coalesce) {
    for (const arg of arr(coalesce.args)) {
      const inner = claimsSetting(asNode(arg));
      if (inner) return inner;
    }
    return undefined;
  }
  const call = child(node, 'FuncCall');
  if (!call) return undefined;
  const bare = funcName(call).replace(/^pg_catalog\./, '');
  if (bare === 'nullif' || bare === 'coalesce') {
    for (const arg of arr(call.args)) {
      const inner = claimsSetting(asNode(arg));
      if (inner) return inner;
    }
    return undefined;
  }
  if (bare !== 'current_setting') return undefined;
  const setting = stringConst(asNode(arr(call.args)[0]));
  if (setting !== 'request.jwt.claims' && setting !== 'request.jwt.claim') return undefined;
  const text = `current_setting(${quote(setting)})`;
  return { via: text, call: text, wrapped: false };
}

/** A path into the claims: `base -> 'a' ->> 'b'`, `base #>> '{a,b}'`, `jsonb_extract_path(base, 'a')`. */
function jwtPath(node: Node | undefined): JwtPath | undefined {
  if (!node) return undefined;
  const [type, body] = unwrap(node);
  if (!type || !body) return undefined;
  if (type === 'A_Expr' && body.kind === 'AEXPR_OP') {
    const op = child(asNode(first(arr(body.name))), 'String')?.sval;
    if (op !== '->' && op !== '->>' && op !== '#>' && op !== '#>>') return undefined;
    const left = asNode(body.lexpr);
    const prefix = jwtPath(left) ?? withPath(jwtBase(left));
    if (!prefix) return undefined;
    const right = asNode(body.rexpr);
    const keys = op === '->' || op === '->>' ? [keyConst(right)] : pathConst(right);
    return { ...prefix, path: [...prefix.path, ...keys] };
  }
  if (type === 'FuncCall') {
    const bare = funcName(body).replace(/^pg_catalog\./, '');
    if (!JSON_PATH_FUNCTIONS.has(bare)) return undefined;
    const args = arr(body.args).map(asNode);
    const prefix = jwtPath(args[0]) ?? withPath(jwtBase(args[0]));
    if (!prefix) return undefined;
    return { ...prefix, path: [...prefix.path, ...args.slice(1).map(keyConst)] };
  }
  if (type === 'TypeCast') return jwtPath(asNode(body.arg));
  return undefined;
}

function withPath(base: JwtBase | undefined): JwtPath | undefined {
  return base ? { ...base, path: [] } : undefined;
}

/** `'org_id'` → org_id, `0` → [0], anything else → `?`. */
function keyConst(node: Node | undefined): string {
  const text = stringConst(node);
  if (text !== undefined) return text;
  const c = child(node, 'A_Const');
  const ival = child(c, 'ival');
  if (c && ival) return `[${typeof ival.ival === 'number' ? ival.ival : 0}]`;
  return '?';
}

/** `'{a,b}'` (or `array['a','b']`) → [a, b]. */
function pathConst(node: Node | undefined): string[] {
  const text = stringConst(node);
  if (text !== undefined) {
    const inner = text.trim().replace(/^\{/, '').replace(/\}$/, '');
    if (inner === '') return [];
    return inner.split(',').map((part) => part.trim().replace(/^"(.*)"$/, '$1'));
  }
  const array =
    child(node, 'A_ArrayExpr') ?? child(child(node, 'TypeCast')?.arg as Node, 'A_ArrayExpr');
  if (array) return arr(array.elements).map((e) => keyConst(asNode(e)));
  return ['?'];
}

/** A string constant, also through casts (`'x'::text`). */
function stringConst(node: Node | undefined): string | undefined {
  if (!node) return undefined;
  const cast = child(node, 'TypeCast');
  if (cast) return stringConst(asNode(cast.arg));
  const sval = child(child(node, 'A_Const'), 'sval')?.sval;
  return typeof sval === 'string' ? sval : undefined;
}

function isConstantTrue(node: Node | undefined): boolean {
  const c = child(node, 'A_Const');
  return child(c, 'boolval')?.boolval === true;
}

function funcName(call: Node): string {
  return arr(call.funcname)
    .map((part) => child(asNode(part), 'String')?.sval ?? '?')
    .join('.');
}

function quote(text: string): string {
  return `'${text.replace(/'/g, "''")}'`;
}

function unwrap(node: Node): [string | undefined, Node | undefined] {
  const keys = Object.keys(node);
  if (keys.length !== 1) return [undefined, undefined];
  const key = keys[0]!;
  return [key, asNode(node[key])];
}

function asNode(value: unknown): Node | undefined {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
    ? (value as Node)
    : undefined;
}

function child(node: Node | undefined, key: string): Node | undefined {
  return node ? asNode(node[key]) : undefined;
}

function arr(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [];
}

function first(values: unknown[]): Node | undefined {
  return asNode(values[0]);
}

function failed(err: unknown): SqlAnalysis {
  return {
    claims: [],
    perRowCalls: [],
    requestSettings: [],
    columns: [],
    functions: [],
    readsRawUserMetadata: false,
    constantTrue: false,
    parseError: err instanceof Error ? err.message.split('\n')[0] : String(err),
  };
}
