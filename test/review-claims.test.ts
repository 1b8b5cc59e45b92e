import { beforeAll, describe, expect, it } from 'vitest';
import { analyzeExpression, analyzeSqlFunction, loadSqlParser } from '../src/review/analyze-sql.js';

beforeAll(() => loadSqlParser());

function claims(sql: string): string[] {
  return analyzeExpression(sql).claims.map((c) => `${c.path} via ${c.via}`);
}

describe('claims a policy reads, found with the Postgres parser', () => {
  it.each([
    ["org_id = ((select auth.jwt()) ->> 'org_id')::uuid", ['org_id via auth.jwt()']],
    [
      "(( SELECT auth.jwt() AS jwt) -> 'app_metadata' ->> 'tenant') = 'x'",
      ['app_metadata.tenant via auth.jwt()'],
    ],
    ["auth.jwt() #>> '{app_metadata,roles,0}' = 'admin'", ['app_metadata.roles.0 via auth.jwt()']],
    ["(auth.jwt() #> array['a', 'b']) is not null", ['a.b via auth.jwt()']],
    ['owner_id = auth.uid()', ['sub via auth.uid()']],
    ["auth.role() = 'authenticated'", ['role via auth.role()']],
    ['email = (select auth.email())', ['email via auth.email()']],
    [
      "org_id = (current_setting('request.jwt.claims', true)::jsonb ->> 'org_id')::uuid",
      ["org_id via current_setting('request.jwt.claims')"],
    ],
    [
      "org_id = (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'org_id')::uuid",
      ["org_id via current_setting('request.jwt.claims')"],
    ],
    [
      "org_id::text = current_setting('request.jwt.claim.org_id', true)",
      ["org_id via current_setting('request.jwt.claim.org_id')"],
    ],
    [
      "jsonb_extract_path_text(auth.jwt(), 'app_metadata', 'org') = org_id::text",
      ['app_metadata.org via auth.jwt()'],
    ],
    ['public.is_member(org_id, (select auth.jwt()))', ['* via auth.jwt()']],
    [
      "(auth.jwt() ->> 'user_metadata') is not null and (auth.jwt() -> 'user_metadata' ->> 'admin')::boolean",
      ['user_metadata via auth.jwt()', 'user_metadata.admin via auth.jwt()'],
    ],
    ['true', []],
  ])('%s', (sql, expected) => {
    expect(claims(sql)).toEqual(expected);
  });

  it('flags auth calls outside a sub-select as per-row, not those inside', () => {
    expect(
      analyzeExpression("owner_id = auth.uid() and org_id = (auth.jwt() ->> 'org_id')::uuid")
        .perRowCalls,
    ).toEqual(['auth.uid()', 'auth.jwt()']);
    expect(
      analyzeExpression(
        "owner_id = (select auth.uid()) and org_id = ((select auth.jwt()) ->> 'org_id')::uuid",
      ).perRowCalls,
    ).toEqual([]);
    expect(analyzeExpression("current_setting('app.tenant') = tenant").perRowCalls).toEqual([
      "current_setting('app.tenant')",
    ]);
  });

  it('finds client-controlled settings, raw_user_meta_data, columns and constant true', () => {
    expect(
      analyzeExpression(
        "org_id::text = (select current_setting('request.headers', true)::json ->> 'x-org')",
      ).requestSettings,
    ).toEqual(['request.headers']);
    expect(
      analyzeExpression(
        "exists (select 1 from auth.users u where u.id = (select auth.uid()) and u.raw_user_meta_data ->> 'admin' = 'true')",
      ).readsRawUserMetadata,
    ).toBe(true);
    const a = analyzeExpression(
      'org_id = (select auth.uid()) and exists (select 1 from t where t.x = owner_id)',
    );
    expect(a.columns).toEqual(['org_id']);
    expect(analyzeExpression('true').constantTrue).toBe(true);
    expect(analyzeExpression('(true)').constantTrue).toBe(true);
    expect(analyzeExpression("owner_id = 'x'").constantTrue).toBe(false);
  });

  it('reads SQL function bodies, string and SQL-standard', () => {
    expect(
      analyzeSqlFunction("select (auth.jwt() ->> 'user_role') in ('owner', 'admin')").claims,
    ).toEqual([{ claim: 'user_role', path: 'user_role', via: 'auth.jwt()' }]);
    expect(
      analyzeSqlFunction(
        '',
        "CREATE OR REPLACE FUNCTION public.team()\n RETURNS text\n LANGUAGE sql\nRETURN (auth.jwt() ->> 'team'::text)",
      ).claims.map((c) => c.path),
    ).toEqual(['team']);
  });

  it('reports what it cannot parse instead of throwing', () => {
    expect(analyzeExpression('this is not sql (((').parseError).toMatch(/syntax error/);
  });
});
