-- supabase-rls-kit: Supabase Auth Custom Access Token Hook
--
-- What: rls_kit.custom_access_token_hook(event jsonb), a Postgres hook for
-- Supabase Auth that makes its access tokens small and policy-ready:
--   * keeps every claim Supabase Auth requires (iss, aud, exp, iat, sub,
--     email, phone, role, aal, session_id, is_anonymous) with its value
--     unchanged — email and phone may be emptied ("") by configuration —
--     and any other claim Supabase adds (jti, nbf, client_id, ...);
--   * drops user_metadata (user-editable: never an authorization input),
--     app_metadata and amr; named app_metadata keys can be kept (allowlist,
--     empty by default);
--   * adds the app's claims, returned by rls_kit.resolve_claims(user_id,
--     claims), a function the app defines (created here, adding nothing,
--     only when it is missing: re-applying this file never replaces an app's
--     resolver);
--   * refuses banned users (banned_until in the future), deleted users
--     (deleted_at set, or no auth.users row) and whomever the resolver
--     refuses, with {"error": {"http_code": 403, "message": ...}};
--   * answers a malformed event with {"error": {"http_code": 400, ...}} and a
--     failing resolver with {"error": {"http_code": 500, ...}}: it never
--     raises, so a bad event cannot break sign-in with a SQL exception.
--     (Supabase Auth propagates any http_code with a non-empty message to the
--     client; an error without http_code would count as 500.)
--
--   * rls_kit.hook_settings   one row: which app_metadata keys to keep, and
--                             whether email / phone keep their values
--
-- Enable it in supabase/config.toml:
--   [auth.hook.custom_access_token]
--   enabled = true
--   uri = "pg-functions://postgres/rls_kit/custom_access_token_hook"
-- or in the dashboard (Authentication > Hooks > Custom Access Token, schema
-- rls_kit). Exposing rls_kit through the Data API is never needed.
--
-- Privileges (as Supabase documents for Postgres hooks): the hook runs as
-- supabase_auth_admin — STABLE, not SECURITY DEFINER — so that role gets
-- USAGE on rls_kit, EXECUTE on the hook and the resolver, and SELECT on
-- hook_settings; EXECUTE is revoked from PUBLIC, anon and authenticated
-- (nobody else may mint claims through it). Tables the resolver reads need
-- a policy TO supabase_auth_admin (the example's memberships has one). Its
-- search_path on Supabase is auth: every name here is qualified and the
-- functions set search_path = ''.
--
-- On plain Postgres the compat migration's auth.users belongs to the
-- migrating role, with row level security on; Supabase Auth's role owns it on
-- Supabase. So that the hook sees users here as it does there, this file adds
-- a SELECT policy TO supabase_auth_admin on auth.users — only where auth.users
-- is not supabase_auth_admin's and the migrating role may alter it (never on
-- Supabase, where it is Supabase's table).
--
-- Idempotent: the table, its row, the resolver and the policy are created
-- only when missing; the hook, grants and comments are restated identically,
-- so applying the file again (also under another version number) leaves the
-- catalog unchanged and an app's resolver and settings untouched.

grant usage on schema rls_kit to supabase_auth_admin;

-- ---------------------------------------------------------------------------
-- Settings (one row)
-- ---------------------------------------------------------------------------
do $settings$
begin
  if pg_catalog.to_regclass('rls_kit.hook_settings') is null then
    create table rls_kit.hook_settings (
      id boolean primary key default true constraint hook_settings_one_row check (id),
      app_metadata_keys text[] not null default '{}',
      keep_email boolean not null default true,
      keep_phone boolean not null default true
    );
    comment on table rls_kit.hook_settings is
      'supabase-rls-kit: settings of rls_kit.custom_access_token_hook (one row). Change them with UPDATE; re-applying the kit''s migrations keeps them.';
    comment on column rls_kit.hook_settings.id is 'Always true: the table holds one row.';
    comment on column rls_kit.hook_settings.app_metadata_keys is
      'app_metadata keys the hook keeps in the token (allowlist, empty by default: app_metadata is dropped). Only the server writes app_metadata, but keep only what policies read.';
    comment on column rls_kit.hook_settings.keep_email is
      'false: the email claim is emptied ("") — it stays present, as Supabase Auth requires.';
    comment on column rls_kit.hook_settings.keep_phone is
      'false: the phone claim is emptied ("") — it stays present, as Supabase Auth requires.';
    comment on constraint hook_settings_one_row on rls_kit.hook_settings is 'The table holds one row.';
    comment on index rls_kit.hook_settings_pkey is 'The table holds one row.';
    insert into rls_kit.hook_settings (id) values (true);
  end if;
end
$settings$;

revoke all on table rls_kit.hook_settings from public, anon, authenticated, service_role;
grant select on table rls_kit.hook_settings to supabase_auth_admin;

-- ---------------------------------------------------------------------------
-- The app's claims resolver (created only when missing, never replaced)
-- ---------------------------------------------------------------------------
do $resolver$
begin
  if pg_catalog.to_regprocedure('rls_kit.resolve_claims(uuid, jsonb)') is null then
    create function rls_kit.resolve_claims(user_id uuid, claims jsonb)
    returns jsonb
    language sql
    stable
    set search_path = ''
    as $body$
      select '{}'::jsonb
    $body$;
    comment on function rls_kit.resolve_claims(uuid, jsonb) is
      'supabase-rls-kit: the app''s claims for a user''s access token, called by rls_kit.custom_access_token_hook as supabase_auth_admin with the user''s id and Supabase''s claims (app_metadata included). Returns an object of claims to add (NULL or {} adds nothing); raise SQLSTATE ''RK403'' with a message to refuse the user (403). Replace it in your own migration (create or replace); the kit''s default adds nothing, and re-applying the kit never replaces yours.';
  end if;
end
$resolver$;

revoke all on function rls_kit.resolve_claims(uuid, jsonb) from public, anon, authenticated, service_role;
grant execute on function rls_kit.resolve_claims(uuid, jsonb) to supabase_auth_admin;

-- ---------------------------------------------------------------------------
-- The hook
-- ---------------------------------------------------------------------------
create or replace function rls_kit.custom_access_token_hook(event jsonb)
returns jsonb
language plpgsql
stable
set search_path = ''
as $$
declare
  -- Claims Supabase Auth requires in every access token, plus iss.
  required constant text[] := array[
    'iss', 'aud', 'exp', 'iat', 'sub', 'email', 'phone', 'role', 'aal', 'session_id', 'is_anonymous'];
  uuid_pattern constant text := '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$';
  uid uuid;
  claims jsonb;
  kept jsonb;
  added jsonb;
  app jsonb;
  clash text;
  s record;
  u record;
begin
  if event is null or pg_catalog.jsonb_typeof(event) <> 'object' then
    return pg_catalog.jsonb_build_object('error', pg_catalog.jsonb_build_object(
      'http_code', 400, 'message', 'custom_access_token_hook: the event must be a JSON object'));
  end if;
  if pg_catalog.jsonb_typeof(event -> 'user_id') is distinct from 'string'
     or (event ->> 'user_id') !~* uuid_pattern then
    return pg_catalog.jsonb_build_object('error', pg_catalog.jsonb_build_object(
      'http_code', 400, 'message', 'custom_access_token_hook: event.user_id must be a uuid string'));
  end if;
  claims := event -> 'claims';
  if pg_catalog.jsonb_typeof(claims) is distinct from 'object' then
    return pg_catalog.jsonb_build_object('error', pg_catalog.jsonb_build_object(
      'http_code', 400, 'message', 'custom_access_token_hook: event.claims must be a JSON object'));
  end if;
  uid := (event ->> 'user_id')::uuid;
  if pg_catalog.jsonb_typeof(claims -> 'sub') is distinct from 'string'
     or pg_catalog.lower(claims ->> 'sub') <> uid::text then
    return pg_catalog.jsonb_build_object('error', pg_catalog.jsonb_build_object(
      'http_code', 400, 'message', 'custom_access_token_hook: event.claims.sub must equal event.user_id'));
  end if;

  select users.banned_until, users.deleted_at into u from auth.users where users.id = uid;
  if not found then
    return pg_catalog.jsonb_build_object('error', pg_catalog.jsonb_build_object(
      'http_code', 403, 'message', 'This account does not exist.'));
  end if;
  if u.deleted_at is not null then
    return pg_catalog.jsonb_build_object('error', pg_catalog.jsonb_build_object(
      'http_code', 403, 'message', 'This account has been deleted.'));
  end if;
  if u.banned_until is not null and u.banned_until > pg_catalog.now() then
    return pg_catalog.jsonb_build_object('error', pg_catalog.jsonb_build_object(
      'http_code', 403, 'message', 'This account is banned.'));
  end if;

  select h.app_metadata_keys, h.keep_email, h.keep_phone into s
  from rls_kit.hook_settings h where h.id;

  -- Everything but the three dropped claims stays as Supabase made it.
  kept := claims - 'user_metadata' - 'app_metadata' - 'amr';
  if s.keep_email is false and kept ? 'email' then
    kept := kept || '{"email": ""}';
  end if;
  if s.keep_phone is false and kept ? 'phone' then
    kept := kept || '{"phone": ""}';
  end if;
  if pg_catalog.cardinality(s.app_metadata_keys) > 0
     and pg_catalog.jsonb_typeof(claims -> 'app_metadata') = 'object' then
    select pg_catalog.jsonb_object_agg(e.key, e.value) into app
    from pg_catalog.jsonb_each(claims -> 'app_metadata') e
    where e.key = any (s.app_metadata_keys);
    if app is not null then
      kept := kept || pg_catalog.jsonb_build_object('app_metadata', app);
    end if;
  end if;

  added := rls_kit.resolve_claims(uid, claims);
  if added is null or added = 'null'::jsonb then
    added := '{}';
  elsif pg_catalog.jsonb_typeof(added) <> 'object' then
    return pg_catalog.jsonb_build_object('error', pg_catalog.jsonb_build_object(
      'http_code', 500, 'message', 'custom_access_token_hook: rls_kit.resolve_claims must return a JSON object'));
  end if;
  -- The resolver adds claims; it never replaces one Supabase made (a role
  -- claim of its choosing, for instance, would change the Postgres role).
  select k into clash
  from pg_catalog.jsonb_object_keys(added) k
  where kept ? k or k = any (required) or k in ('user_metadata', 'amr')
  order by k limit 1;
  if clash is not null then
    return pg_catalog.jsonb_build_object('error', pg_catalog.jsonb_build_object(
      'http_code', 500, 'message', pg_catalog.format(
        'custom_access_token_hook: rls_kit.resolve_claims may not set the claim %s', clash)));
  end if;

  return pg_catalog.jsonb_build_object('claims', kept || added);
exception
  when sqlstate 'RK403' then
    -- The resolver refuses this user.
    return pg_catalog.jsonb_build_object('error', pg_catalog.jsonb_build_object(
      'http_code', 403, 'message', coalesce(nullif(sqlerrm, ''), 'This account may not sign in.')));
  when others then
    -- Never an exception (it would break sign-in with an opaque error); the
    -- details go to the server log, not to the client.
    raise warning 'rls_kit.custom_access_token_hook failed: % (SQLSTATE %)', sqlerrm, sqlstate;
    return pg_catalog.jsonb_build_object('error', pg_catalog.jsonb_build_object(
      'http_code', 500, 'message', pg_catalog.format(
        'custom_access_token_hook: the claims could not be computed (SQLSTATE %s)', sqlstate)));
end
$$;

comment on function rls_kit.custom_access_token_hook(jsonb) is
  'supabase-rls-kit: Supabase Auth Custom Access Token Hook (pg-functions://postgres/rls_kit/custom_access_token_hook). Keeps Supabase''s claims (email/phone may be emptied, see rls_kit.hook_settings), drops user_metadata, app_metadata (but allowlisted keys) and amr, adds rls_kit.resolve_claims(user_id, claims). Banned, deleted or resolver-refused users get {"error":{"http_code":403,...}}, a malformed event {"error":{"http_code":400,...}}; it never raises. Runs as supabase_auth_admin: STABLE, not SECURITY DEFINER, executable by supabase_auth_admin only.';

revoke all on function rls_kit.custom_access_token_hook(jsonb) from public, anon, authenticated, service_role;
grant execute on function rls_kit.custom_access_token_hook(jsonb) to supabase_auth_admin;

-- ---------------------------------------------------------------------------
-- auth.users for supabase_auth_admin on plain Postgres (see the header)
-- ---------------------------------------------------------------------------
do $auth_users$
declare
  owner_oid oid;
begin
  select c.relowner into owner_oid from pg_catalog.pg_class c where c.oid = pg_catalog.to_regclass('auth.users');
  if owner_oid is not null
     and owner_oid <> (select r.oid from pg_catalog.pg_roles r where r.rolname = 'supabase_auth_admin')
     and pg_catalog.pg_has_role(current_user, owner_oid, 'usage')
     and not exists (
       select from pg_catalog.pg_policy p
       where p.polrelid = 'auth.users'::regclass and p.polname = 'rls_kit_auth_admin_read')
  then
    create policy rls_kit_auth_admin_read on auth.users
      for select to supabase_auth_admin
      using (true);
    comment on policy rls_kit_auth_admin_read on auth.users is
      'supabase-rls-kit (plain Postgres only): Supabase Auth''s role reads every user, as it does on Supabase where it owns auth.users; rls_kit.custom_access_token_hook needs banned_until and deleted_at.';
  end if;
end
$auth_users$;
