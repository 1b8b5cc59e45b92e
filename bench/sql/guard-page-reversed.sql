-- Same as guard-page.sql with the two queries swapped (order effects cancel out).
\set o random(1, 100)
BEGIN;
SELECT pg_catalog.num_nonnulls(pg_catalog.set_config('role', 'authenticated', true), pg_catalog.set_config('request.jwt.claims', json_build_object('sub', md5('bench-user' || chr(58) || :o::int || chr(58) || 'member')::uuid, 'role', 'authenticated', 'org_id', md5('bench-org' || chr(58) || :o::int)::uuid, 'user_role', 'member', 'iat', extract(epoch from now())::bigint - 60, 'exp', extract(epoch from now())::bigint + 600, 'jti', md5(random()::text), 'session_id', gen_random_uuid())::text, true), pg_catalog.set_config('request.jwt.claim', '', true), pg_catalog.set_config('request.jwt.claim.sub', '', true), pg_catalog.set_config('request.jwt.claim.role', '', true), pg_catalog.set_config('request.jwt.claim.email', '', true));
SELECT id, title, created_at, owner_id FROM guard_cost.documents ORDER BY created_at DESC LIMIT 50;
SELECT id, title, created_at, owner_id FROM public.documents ORDER BY created_at DESC LIMIT 50;
COMMIT;
