-- supabase-rls-kit example app: multi-tenant documents
--
-- What: the example application the kit's tests, demos and benchmarks run
-- against: organizations, memberships and documents in schema public, guarded
-- by row level security driven only by the claims of the caller's token:
--   sub        the user (auth.uid())
--   role       'authenticated' (the Postgres role the request runs as)
--   org_id     the user's active organization (uuid)
--   user_role  the user's role there: owner | admin | member | viewer
--
-- Rules:
--   * members of the token's organization (any user_role) read its
--     organization row, its memberships and its documents;
--   * owner, admin and member insert documents into that organization, as
--     themselves (owner_id = sub); viewers cannot insert;
--   * a document's owner updates or deletes it, and so does an owner or admin
--     of the organization; the updated row must still pass the same rule, so
--     an update never moves a document to another organization, and a member
--     cannot hand their document to someone else;
--   * nothing of another organization is visible or writable; anon gets
--     nothing at all.
--
-- Tokens from Supabase Auth get org_id and user_role from this file's claims
-- resolver, rls_kit.resolve_claims (called by the kit's Custom Access Token
-- Hook, rls_kit.custom_access_token_hook, as supabase_auth_admin):
--   * org_id = the user's chosen active organization — app_metadata
--     active_org_id, which only the server can set (auth admin API) — when
--     it names an enabled membership of theirs, else their oldest enabled
--     membership (created_at, then org_id); user_role = their role there;
--   * a user without memberships gets neither claim (no access, no error);
--   * a user whose memberships are all disabled is refused (403).
--
-- Claim handling:
--   * every claim is read through `(select auth.jwt())` / `(select auth.uid())`
--     so Postgres evaluates it once per statement (an InitPlan), not per row;
--   * a token without org_id (or user_role) gets no rows and may write nothing:
--     the comparison with NULL is never true;
--   * a token whose org_id (or sub) is not a valid uuid makes statements on
--     these tables fail with 22P02 (invalid_text_representation). That is a
--     deliberate fail-closed choice: such a token cannot come from the kit's
--     verifier (its claim schema requires a uuid), so it signals a broken or
--     foreign issuer, and an error says so where silently empty results would
--     hide it. No data is ever returned for it.
--
-- Applied once by the Supabase CLI (or `rls-kit migrate`); unlike the kit's
-- migrations it is not meant to be applied twice.

-- ---------------------------------------------------------------------------
-- Tables
-- ---------------------------------------------------------------------------
create table public.organizations (
  id uuid primary key default gen_random_uuid(),
  name text
);

comment on table public.organizations is
  'Example app: a tenant. Members see only the organization named by their token''s org_id claim.';
comment on column public.organizations.id is 'Organization id: the org_id claim of its members'' tokens.';
comment on column public.organizations.name is 'Display name.';

create table public.memberships (
  org_id uuid not null references public.organizations (id) on delete cascade,
  user_id uuid not null references auth.users (id) on delete cascade,
  role text not null check (role in ('owner', 'admin', 'member', 'viewer')),
  created_at timestamptz not null default now(),
  disabled boolean not null default false,
  primary key (org_id, user_id)
);

comment on table public.memberships is
  'Example app: who belongs to which organization, with which role. The token''s org_id and user_role claims are minted from a row of this table.';
comment on column public.memberships.org_id is 'The organization.';
comment on column public.memberships.user_id is 'The member (auth.users.id, the sub claim).';
comment on column public.memberships.role is 'The member''s role in the organization, carried as the user_role claim: owner, admin, member or viewer.';
comment on column public.memberships.created_at is 'When the user joined; without a chosen active organization, the oldest enabled membership becomes the token''s org_id.';
comment on column public.memberships.disabled is 'A disabled membership never becomes the token''s org_id; a user whose memberships are all disabled cannot sign in (the hook refuses them with 403).';

create table public.documents (
  id uuid primary key default gen_random_uuid(),
  org_id uuid not null references public.organizations (id) on delete cascade,
  owner_id uuid not null,
  title text not null,
  body text not null default '',
  created_at timestamptz not null default now()
);

comment on table public.documents is
  'Example app: documents of an organization. Read by its members; written by its non-viewers as themselves; updated or deleted by the owner or by an owner/admin of the organization.';
comment on column public.documents.org_id is 'The organization the document belongs to; compared with the org_id claim.';
comment on column public.documents.owner_id is 'The user who owns the document (the sub claim of its author).';
comment on column public.documents.created_at is 'Creation time; pages list the newest first.';

-- ---------------------------------------------------------------------------
-- Indexes on every column a policy or foreign key filters by
-- ---------------------------------------------------------------------------
-- memberships(org_id) is served by the primary key (org_id, user_id).
create index documents_org_id_created_at_idx on public.documents (org_id, created_at desc);
create index documents_owner_id_idx on public.documents (owner_id);
create index memberships_user_id_idx on public.memberships (user_id);

comment on index public.documents_org_id_created_at_idx is
  'Serves the tenant filter of every documents policy and the page of newest documents of an organization; also covers the org_id foreign key.';
comment on index public.documents_owner_id_idx is
  'Serves the owner check of the documents update/delete policies and "my documents" lookups.';
comment on index public.memberships_user_id_idx is
  'Finds a user''s memberships (minting claims, deleting a user) and covers the user_id foreign key.';

-- ---------------------------------------------------------------------------
-- Privileges: authenticated gets exactly what the policies may allow; anon
-- nothing. (On Supabase, default privileges would hand every new public table
-- to anon and authenticated in full: take that back explicitly.)
-- ---------------------------------------------------------------------------
revoke all on table public.organizations, public.memberships, public.documents
  from public, anon, authenticated, service_role;

grant select on table public.organizations, public.memberships to authenticated;
grant select, insert, update, delete on table public.documents to authenticated;

-- service_role bypasses RLS: it is the trusted server's role, as on Supabase.
grant select, insert, update, delete on table public.organizations, public.memberships, public.documents
  to service_role;

-- ---------------------------------------------------------------------------
-- Row level security (FORCE: the table owner is held to it too, unless it
-- bypasses RLS as a superuser or BYPASSRLS role does)
-- ---------------------------------------------------------------------------
alter table public.organizations enable row level security;
alter table public.organizations force row level security;
alter table public.memberships enable row level security;
alter table public.memberships force row level security;
alter table public.documents enable row level security;
alter table public.documents force row level security;

create policy organizations_select_own_org on public.organizations
  for select to authenticated
  using (id = ((select auth.jwt()) ->> 'org_id')::uuid);

comment on policy organizations_select_own_org on public.organizations is
  'Members see the organization of their token''s org_id claim, and no other.';

create policy memberships_select_own_org on public.memberships
  for select to authenticated
  using (org_id = ((select auth.jwt()) ->> 'org_id')::uuid);

comment on policy memberships_select_own_org on public.memberships is
  'Members see the memberships of their token''s organization (org_id claim), and no other.';

create policy documents_select_own_org on public.documents
  for select to authenticated
  using (org_id = ((select auth.jwt()) ->> 'org_id')::uuid);

comment on policy documents_select_own_org on public.documents is
  'Members of any user_role read the documents of their token''s organization (org_id claim).';

create policy documents_insert_non_viewers on public.documents
  for insert to authenticated
  with check (
    org_id = ((select auth.jwt()) ->> 'org_id')::uuid
    and owner_id = (select auth.uid())
    and ((select auth.jwt()) ->> 'user_role') in ('owner', 'admin', 'member')
  );

comment on policy documents_insert_non_viewers on public.documents is
  'Owners, admins and members (not viewers) insert documents into their token''s organization, owned by themselves (owner_id = sub).';

-- RBAC: "owner of the document, or authorized". rls_kit.authorize() looks the
-- token's user_role up in rls_kit.role_permissions, where this migration
-- grants documents.update and documents.delete to owner and admin (below):
-- the same outcome as testing user_role in ('owner', 'admin'). As a scalar
-- subquery it runs once per statement.
insert into rls_kit.role_permissions (role, permission) values
  ('owner', 'documents.update'),
  ('owner', 'documents.delete'),
  ('admin', 'documents.update'),
  ('admin', 'documents.delete')
on conflict do nothing;

create policy documents_update_owner_or_admin on public.documents
  for update to authenticated
  using (
    org_id = ((select auth.jwt()) ->> 'org_id')::uuid
    and (
      owner_id = (select auth.uid())
      or (select rls_kit.authorize('documents.update'))
    )
  )
  with check (
    org_id = ((select auth.jwt()) ->> 'org_id')::uuid
    and (
      owner_id = (select auth.uid())
      or (select rls_kit.authorize('documents.update'))
    )
  );

comment on policy documents_update_owner_or_admin on public.documents is
  'A document''s owner, or a user whose user_role holds documents.update (owner, admin: rls_kit.authorize), updates it; the new row must stay in the token''s organization and pass the same rule (a member cannot hand their document to someone else).';

create policy documents_delete_owner_or_admin on public.documents
  for delete to authenticated
  using (
    org_id = ((select auth.jwt()) ->> 'org_id')::uuid
    and (
      owner_id = (select auth.uid())
      or (select rls_kit.authorize('documents.delete'))
    )
  );

comment on policy documents_delete_owner_or_admin on public.documents is
  'A document''s owner, or a user whose user_role holds documents.delete (owner, admin: rls_kit.authorize), deletes it.';

-- ---------------------------------------------------------------------------
-- Revocation guard (rls_kit.protect) and membership triggers
-- ---------------------------------------------------------------------------
-- 1. Tenant conditions in leakproof form. rls_kit.protect() adds a RESTRICTIVE
-- policy, and PostgreSQL evaluates a table's restrictive policies before its
-- permissive ones (they get a lower security level). A permissive condition
-- may then serve as an index condition only if it is leakproof — and
-- `org_id = ((select auth.jwt()) ->> 'org_id')::uuid` is not (->> and the
-- uuid cast are not leakproof functions), so with the guard the planner
-- falls back to scanning all documents (measured: 2.3 s instead of 0.2 ms for
-- a page of one organization's newest documents over 1M rows). Comparing the
-- column with one scalar subquery that yields the value,
-- `org_id = (select ((select auth.jwt()) ->> 'org_id')::uuid)`, is
-- `uuid = $param`: leakproof, indexable, still evaluated once per statement,
-- same outcome. (The inner `(select auth.jwt())` keeps Supabase's
-- auth_rls_initplan advisor, which looks for that text, satisfied.)
alter policy organizations_select_own_org on public.organizations
  using (id = (select ((select auth.jwt()) ->> 'org_id')::uuid));
alter policy memberships_select_own_org on public.memberships
  using (org_id = (select ((select auth.jwt()) ->> 'org_id')::uuid));
alter policy documents_select_own_org on public.documents
  using (org_id = (select ((select auth.jwt()) ->> 'org_id')::uuid));
alter policy documents_update_owner_or_admin on public.documents
  using (
    org_id = (select ((select auth.jwt()) ->> 'org_id')::uuid)
    and (
      owner_id = (select auth.uid())
      or (select rls_kit.authorize('documents.update'))
    )
  )
  with check (
    org_id = (select ((select auth.jwt()) ->> 'org_id')::uuid)
    and (
      owner_id = (select auth.uid())
      or (select rls_kit.authorize('documents.update'))
    )
  );
alter policy documents_delete_owner_or_admin on public.documents
  using (
    org_id = (select ((select auth.jwt()) ->> 'org_id')::uuid)
    and (
      owner_id = (select auth.uid())
      or (select rls_kit.authorize('documents.delete'))
    )
  );

-- 2. The guard: a request whose token is revoked (its jti, its user's
-- cut-off, its session) gets no rows and may write none, on every table.
select rls_kit.protect('public.organizations');
select rls_kit.protect('public.memberships');
select rls_kit.protect('public.documents');

-- 3. Membership changes revoke the user's access tokens — not their
-- sessions: the claims org_id/user_role were minted from the old membership,
-- so those tokens must die, and the next refresh mints tokens with the new
-- claims. One statement-level trigger per event, so deleting an organization
-- (its memberships cascade) revokes all its members in one batch.
create function public.memberships_revoke_access_tokens()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  subs uuid[];
begin
  if TG_OP = 'DELETE' then
    select pg_catalog.array_agg(distinct o.user_id) into subs from old_rows o;
  else
    -- Rows whose organization, user, role or disabled flag changed; both the old and the
    -- new user of a moved membership lose their current tokens.
    select pg_catalog.array_agg(distinct u.user_id) into subs
    from (
      select o.user_id from old_rows o
      where not exists (select from new_rows n
                        where n.org_id = o.org_id and n.user_id = o.user_id and n.role = o.role
                          and n.disabled = o.disabled)
      union
      select n.user_id from new_rows n
      where not exists (select from old_rows o
                        where o.org_id = n.org_id and o.user_id = n.user_id and o.role = n.role
                          and o.disabled = n.disabled)
    ) u;
  end if;
  if subs is not null then
    perform rls_kit.revoke_subjects(
      subs,
      case TG_OP when 'DELETE' then 'membership removed' else 'membership changed' end,
      false);
  end if;
  return null;
end
$$;

revoke all on function public.memberships_revoke_access_tokens() from public, anon, authenticated;

comment on function public.memberships_revoke_access_tokens() is
  'Example app: when memberships are removed or their role, disabled flag (or organization) changes, revokes the affected users'' access tokens (rls_kit.revoke_subjects, end_sessions => false), so their next refresh carries the new claims. SECURITY DEFINER so that whoever may change memberships needs no privilege on rls_kit.';

create trigger memberships_revoke_on_delete
  after delete on public.memberships
  referencing old table as old_rows
  for each statement
  execute function public.memberships_revoke_access_tokens();

comment on trigger memberships_revoke_on_delete on public.memberships is
  'Removing memberships revokes the members'' access tokens (not their sessions).';

create trigger memberships_revoke_on_update
  after update on public.memberships
  referencing old table as old_rows new table as new_rows
  for each statement
  execute function public.memberships_revoke_access_tokens();

comment on trigger memberships_revoke_on_update on public.memberships is
  'Changing a membership''s role or disabled flag (or moving it) revokes the member''s access tokens (not their sessions).';

-- ---------------------------------------------------------------------------
-- Claims for Supabase Auth tokens: the resolver of the kit's hook
-- ---------------------------------------------------------------------------
-- rls_kit.custom_access_token_hook runs as supabase_auth_admin (not SECURITY
-- DEFINER, as Supabase documents), so that role reads memberships through a
-- policy of its own; the revocation guard is TO authenticated only.
grant usage on schema public to supabase_auth_admin;
grant select on table public.memberships to supabase_auth_admin;

create policy memberships_select_auth_admin on public.memberships
  for select to supabase_auth_admin
  using (true);

comment on policy memberships_select_auth_admin on public.memberships is
  'Supabase Auth (supabase_auth_admin) reads every membership: the claims resolver of the Custom Access Token Hook picks the token''s org_id and user_role from them.';

create or replace function rls_kit.resolve_claims(user_id uuid, claims jsonb)
returns jsonb
language plpgsql
stable
set search_path = ''
as $$
declare
  wanted constant text := pg_catalog.lower(claims -> 'app_metadata' ->> 'active_org_id');
  chosen record;
begin
  select m.org_id, m.role into chosen
  from public.memberships m
  where m.user_id = resolve_claims.user_id and not m.disabled
  order by (m.org_id::text is not distinct from wanted) desc, m.created_at, m.org_id
  limit 1;
  if found then
    return pg_catalog.jsonb_build_object('org_id', chosen.org_id, 'user_role', chosen.role);
  end if;
  if exists (select from public.memberships m where m.user_id = resolve_claims.user_id) then
    raise exception using
      errcode = 'RK403',
      message = 'All of this account''s memberships are disabled.';
  end if;
  return '{}'::jsonb; -- no membership: no org_id, so policies grant nothing
end
$$;

comment on function rls_kit.resolve_claims(uuid, jsonb) is
  'Example app: the claims resolver of the kit''s Custom Access Token Hook. org_id = app_metadata.active_org_id when it names an enabled membership of the user, else the oldest enabled membership (created_at, then org_id); user_role = the role there. No membership: no claims. Only disabled memberships: refused (SQLSTATE RK403, the hook answers 403).';

revoke all on function rls_kit.resolve_claims(uuid, jsonb) from public, anon, authenticated, service_role;
grant execute on function rls_kit.resolve_claims(uuid, jsonb) to supabase_auth_admin;
