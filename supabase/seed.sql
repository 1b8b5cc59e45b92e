-- supabase-rls-kit example app: seed data
--
-- What: three organizations, eight users covering every role, and 30-40
-- documents per organization, all with fixed ids so tests, demos and
-- benchmarks can name them. Users are plain rows of auth.users (id and email
-- only, which is all Supabase requires). Safe to apply twice (on conflict do
-- nothing).
--
-- Organizations
--   a0000000-0000-4000-8000-000000000001  Acme     36 documents
--   a0000000-0000-4000-8000-000000000002  Globex   30 documents
--   a0000000-0000-4000-8000-000000000003  Initech  24 documents
--
-- Users (auth.users)                                   memberships
--   b0000000-0000-4000-8000-000000000001  alice@acme.test      Acme owner, Globex member
--   b0000000-0000-4000-8000-000000000002  bob@acme.test        Acme admin
--   b0000000-0000-4000-8000-000000000003  carol@acme.test      Acme member
--   b0000000-0000-4000-8000-000000000004  dave@acme.test       Acme viewer
--   b0000000-0000-4000-8000-000000000005  erin@globex.test     Globex owner
--   b0000000-0000-4000-8000-000000000006  frank@globex.test    Globex viewer
--   b0000000-0000-4000-8000-000000000007  grace@initech.test   Initech owner
--   b0000000-0000-4000-8000-000000000008  heidi@initech.test   Initech admin, Globex viewer
--
-- Memberships joined at 2025-01-01 00:0n UTC in the order listed below (so
-- alice's oldest membership is Acme, heidi's is Globex); all enabled. Without
-- a chosen active organization (app_metadata.active_org_id), a Supabase token
-- carries the oldest one as org_id (see rls_kit.resolve_claims).
--
-- Documents
--   id         d000000<O>-0000-4000-8000-<n, 12 digits>   (O = organization 1..3, n = 1..)
--   owner      the organization's non-viewer members in turn:
--                Acme    alice, bob, carol   (n mod 3 = 1, 2, 0)
--                Globex  erin, alice         (n odd, even)
--                Initech grace, heidi        (n odd, even)
--   created_at 2025-01-01 00:00 UTC + n hours (n = 1 is the oldest)
--   title      '<Org> document <n>'

insert into public.organizations (id, name) values
  ('a0000000-0000-4000-8000-000000000001', 'Acme'),
  ('a0000000-0000-4000-8000-000000000002', 'Globex'),
  ('a0000000-0000-4000-8000-000000000003', 'Initech')
on conflict do nothing;

insert into auth.users (id, email) values
  ('b0000000-0000-4000-8000-000000000001', 'alice@acme.test'),
  ('b0000000-0000-4000-8000-000000000002', 'bob@acme.test'),
  ('b0000000-0000-4000-8000-000000000003', 'carol@acme.test'),
  ('b0000000-0000-4000-8000-000000000004', 'dave@acme.test'),
  ('b0000000-0000-4000-8000-000000000005', 'erin@globex.test'),
  ('b0000000-0000-4000-8000-000000000006', 'frank@globex.test'),
  ('b0000000-0000-4000-8000-000000000007', 'grace@initech.test'),
  ('b0000000-0000-4000-8000-000000000008', 'heidi@initech.test')
on conflict do nothing;

insert into public.memberships (org_id, user_id, role, created_at) values
  ('a0000000-0000-4000-8000-000000000001', 'b0000000-0000-4000-8000-000000000001', 'owner', '2025-01-01 00:01:00+00'),
  ('a0000000-0000-4000-8000-000000000001', 'b0000000-0000-4000-8000-000000000002', 'admin', '2025-01-01 00:02:00+00'),
  ('a0000000-0000-4000-8000-000000000001', 'b0000000-0000-4000-8000-000000000003', 'member', '2025-01-01 00:03:00+00'),
  ('a0000000-0000-4000-8000-000000000001', 'b0000000-0000-4000-8000-000000000004', 'viewer', '2025-01-01 00:04:00+00'),
  ('a0000000-0000-4000-8000-000000000002', 'b0000000-0000-4000-8000-000000000005', 'owner', '2025-01-01 00:05:00+00'),
  ('a0000000-0000-4000-8000-000000000002', 'b0000000-0000-4000-8000-000000000001', 'member', '2025-01-01 00:06:00+00'),
  ('a0000000-0000-4000-8000-000000000002', 'b0000000-0000-4000-8000-000000000006', 'viewer', '2025-01-01 00:07:00+00'),
  ('a0000000-0000-4000-8000-000000000002', 'b0000000-0000-4000-8000-000000000008', 'viewer', '2025-01-01 00:08:00+00'),
  ('a0000000-0000-4000-8000-000000000003', 'b0000000-0000-4000-8000-000000000007', 'owner', '2025-01-01 00:09:00+00'),
  ('a0000000-0000-4000-8000-000000000003', 'b0000000-0000-4000-8000-000000000008', 'admin', '2025-01-01 00:10:00+00')
on conflict do nothing;

insert into public.documents (id, org_id, owner_id, title, body, created_at)
select
  pg_catalog.format('d000000%s-0000-4000-8000-%s', o.n, pg_catalog.lpad(d.n::text, 12, '0'))::uuid,
  o.id,
  o.writers[1 + d.n % pg_catalog.array_length(o.writers, 1)],
  pg_catalog.format('%s document %s', o.name, d.n),
  pg_catalog.format('Body of %s document %s.', o.name, d.n),
  timestamptz '2025-01-01 00:00:00+00' + pg_catalog.make_interval(hours => d.n)
from (values
  (1, 'a0000000-0000-4000-8000-000000000001'::uuid, 'Acme', 36,
   -- writers[1 + n % 3]: n % 3 = 0 -> carol, 1 -> alice, 2 -> bob
   array['b0000000-0000-4000-8000-000000000003', 'b0000000-0000-4000-8000-000000000001',
         'b0000000-0000-4000-8000-000000000002']::uuid[]),
  (2, 'a0000000-0000-4000-8000-000000000002'::uuid, 'Globex', 30,
   array['b0000000-0000-4000-8000-000000000001', 'b0000000-0000-4000-8000-000000000005']::uuid[]),
  (3, 'a0000000-0000-4000-8000-000000000003'::uuid, 'Initech', 24,
   array['b0000000-0000-4000-8000-000000000008', 'b0000000-0000-4000-8000-000000000007']::uuid[])
) as o(n, id, name, docs, writers)
cross join lateral pg_catalog.generate_series(1, o.docs) as d(n)
on conflict do nothing;
