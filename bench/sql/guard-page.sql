-- pgbench script: statement-level cost of the revocation guard on the example's
-- page of the 50 newest documents (q1), guarded vs unguarded,
-- in the same transaction, so both see the same load. Needs the kit + example
-- + benchmark data (rls_kit_bench) and guard_cost.documents, the unguarded copy
-- that bench/lib/guard-cost.ts creates. Run both orders with -r (per-statement
-- latencies) and compare the two SELECT lines:
--   pgbench -n -r -M prepared -c 1 -T 20 \
--     -f bench/sql/guard-page.sql@1 -f bench/sql/guard-page-reversed.sql@1 rls_kit_bench
-- Claims as the kit's as-user API sets them (a member of one of 100
-- organizations, a token with jti and session_id so every probe runs).
-- (chr(58) is ':' — pgbench would read ':name' inside a literal as a variable.)
\set o random(1, 100)
BEGIN;
SELECT pg_catalog.num_nonnulls(pg_catalog.set_config('role', 'authenticated', true), pg_catalog.set_config('request.jwt.claims', json_build_object('sub', md5('bench-user' || chr(58) || :o::int || chr(58) || 'member')::uuid, 'role', 'authenticated', 'org_id', md5('bench-org' || chr(58) || :o::int)::uuid, 'user_role', 'member', 'iat', extract(epoch from now())::bigint - 60, 'exp', extract(epoch from now())::bigint + 600, 'jti', md5(random()::text), 'session_id', gen_random_uuid())::text, true), pg_catalog.set_config('request.jwt.claim', '', true), pg_catalog.set_config('request.jwt.claim.sub', '', true), pg_catalog.set_config('request.jwt.claim.role', '', true), pg_catalog.set_config('request.jwt.claim.email', '', true));
SELECT id, title, created_at, owner_id FROM public.documents ORDER BY created_at DESC LIMIT 50;
SELECT id, title, created_at, owner_id FROM guard_cost.documents ORDER BY created_at DESC LIMIT 50;
COMMIT;
