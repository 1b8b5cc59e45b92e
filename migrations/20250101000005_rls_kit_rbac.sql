-- supabase-rls-kit: RBAC (authorize) and the SQL policy-test helper (act_as)
--
-- What:
--   * rls_kit.role_permissions      which user_role holds which permission
--                                   (rows the app's migration inserts, e.g.
--                                   ('admin', 'documents.delete'))
--   * rls_kit.authorize(permission) true when the current request's token
--                                   (auth.jwt()) has a user_role claim that
--                                   holds the permission; for policies:
--                                     using (... or (select rls_kit.authorize('documents.delete')))
--                                   written as a scalar subquery, it runs once
--                                   per statement (an InitPlan), not per row
--   * rls_kit.act_as(role, claims)  for users' own SQL policy tests: become a
--                                   persona (Postgres role + full claims JSON)
--                                   for the rest of the current transaction
--
-- Privileges: API roles get EXECUTE on authorize() only (policies call it as
-- the request's role); it is SECURITY DEFINER with search_path = '' so that
-- they need no privilege on role_permissions, which they cannot read or
-- write at all. act_as() is for privileged sessions (the migration owner,
-- superusers): revoked from PUBLIC and every API role.
--
-- Idempotent: the table is created only when missing (its rows, the app's,
-- are never touched); functions, grants and comments are restated
-- identically.

-- ---------------------------------------------------------------------------
-- role_permissions
-- ---------------------------------------------------------------------------
do $rbac$
begin
  if pg_catalog.to_regclass('rls_kit.role_permissions') is null then
    create table rls_kit.role_permissions (
      role text not null,
      permission text not null,
      constraint role_permissions_pkey primary key (role, permission)
    );
    comment on table rls_kit.role_permissions is
      'supabase-rls-kit RBAC: the permissions each user_role claim value holds; read by rls_kit.authorize(). The app''s migration inserts its rows.';
    comment on column rls_kit.role_permissions.role is 'A value of the user_role claim, e.g. admin.';
    comment on column rls_kit.role_permissions.permission is 'A permission name, e.g. documents.delete.';
    comment on index rls_kit.role_permissions_pkey is
      'One row per (role, permission); serves authorize()''s lookup.';
  end if;
end
$rbac$;

revoke all on table rls_kit.role_permissions from public, anon, authenticated, service_role;
grant select, insert, update, delete on table rls_kit.role_permissions to service_role;

-- ---------------------------------------------------------------------------
-- authorize
-- ---------------------------------------------------------------------------
create or replace function rls_kit.authorize(permission text)
returns boolean
language sql
stable
security definer
set search_path = ''
as $$
  select exists (
    select
    from rls_kit.role_permissions rp
    where rp.role = (auth.jwt() ->> 'user_role')
      and rp.permission = authorize.permission
  )
$$;

comment on function rls_kit.authorize(text) is
  'supabase-rls-kit RBAC: true when the user_role claim of the current request''s token (auth.jwt()) holds the permission in rls_kit.role_permissions; false without a token, without user_role, or for an unknown permission. Use it in policies as (select rls_kit.authorize(''documents.delete'')) so it runs once per statement. SECURITY DEFINER (search_path '''') so callers need no privilege on role_permissions.';

revoke all on function rls_kit.authorize(text) from public, anon, authenticated, service_role;
grant execute on function rls_kit.authorize(text) to anon, authenticated, service_role;

-- ---------------------------------------------------------------------------
-- act_as (policy tests)
-- ---------------------------------------------------------------------------
-- SECURITY INVOKER on purpose: SET ROLE is not allowed inside a SECURITY
-- DEFINER function, and the caller must be allowed to become the role anyway
-- (a superuser, or a member of it, as Supabase's postgres is of anon and
-- authenticated). Every setting is made with is_local = true, so it ends with
-- the transaction: begin; select rls_kit.act_as(...); ...; rollback;
create or replace function rls_kit.act_as(
  role text,
  claims jsonb default '{}',
  allow_other_role boolean default false
)
returns void
language plpgsql
volatile
set search_path = ''
as $$
declare
  effective jsonb;
  legacy record;
begin
  if role is null or (role not in ('anon', 'authenticated') and allow_other_role is not true) then
    raise exception using
      errcode = '22023',
      message = pg_catalog.format('rls_kit.act_as: role %s is not an API role (anon, authenticated)', coalesce(role, 'NULL')),
      hint = 'Pass allow_other_role => true to act as another role on purpose.';
  end if;
  if claims is null or pg_catalog.jsonb_typeof(claims) <> 'object' then
    raise exception using
      errcode = '22023',
      message = 'rls_kit.act_as: claims must be a JSON object';
  end if;
  if claims ? 'role' and claims ->> 'role' is distinct from role then
    raise exception using
      errcode = '22023',
      message = pg_catalog.format('rls_kit.act_as: claims.role (%s) differs from role %s', claims ->> 'role', role);
  end if;
  effective := claims || pg_catalog.jsonb_build_object('role', role);

  perform pg_catalog.set_config('request.jwt.claims', effective::text, true);
  -- Blank every legacy setting: auth.jwt() prefers request.jwt.claim, and
  -- auth.uid()/role()/email() prefer request.jwt.claim.<name> when non-empty.
  perform pg_catalog.set_config('request.jwt.claim', '', true);
  perform pg_catalog.set_config('request.jwt.claim.sub', '', true);
  perform pg_catalog.set_config('request.jwt.claim.role', '', true);
  perform pg_catalog.set_config('request.jwt.claim.email', '', true);
  -- Custom settings cannot be listed (pg_settings hides placeholders), so
  -- besides those three the ones named after the persona's claims are blanked.
  for legacy in
    select k from pg_catalog.jsonb_object_keys(effective) k
  loop
    perform pg_catalog.set_config('request.jwt.claim.' || legacy.k, '', true);
  end loop;
  perform pg_catalog.set_config('role', role, true);
end
$$;

comment on function rls_kit.act_as(text, jsonb, boolean) is
  'supabase-rls-kit policy tests: for the rest of the current transaction, run as the Postgres role (anon or authenticated; others only with allow_other_role => true) with request.jwt.claims = claims (its role set to the role; the legacy settings request.jwt.claim and request.jwt.claim.<name> for sub, role, email and every claim given blanked), as PostgREST does for a request. Use inside a transaction: begin; select rls_kit.act_as(''authenticated'', ''{"sub": "..."}''); select ...; rollback; (outside one it lasts a single statement). For privileged sessions only: not executable by the API roles.';

revoke all on function rls_kit.act_as(text, jsonb, boolean) from public, anon, authenticated, service_role;
