-- supabase-rls-kit: Supabase compatibility layer
--
-- What: on plain Postgres, provides the parts of a Supabase database that the
-- kit relies on:
--   * roles anon, authenticated, service_role, authenticator, supabase_auth_admin
--     (with the attributes and memberships a Supabase project gives them);
--   * schema auth with auth.jwt(), auth.uid(), auth.role(), auth.email()
--     (same signatures and semantics as Supabase's);
--   * tables auth.users and auth.sessions (same column names and types as
--     Supabase Auth's, every column but id nullable or defaulted, except
--     auth.sessions.user_id, which is NOT NULL on Supabase too), plus the enum
--     type auth.aal_level that auth.sessions.aal uses.
--
-- Idempotent: every object is created only when it is missing, so the file can
-- be applied any number of times, also under another version number.
--
-- On a real Supabase database every object below already exists: nothing is
-- created, replaced, altered, granted or commented there, and the file succeeds
-- when run as Supabase's non-superuser `postgres` role. That is why no plain
-- `create ... if not exists` is used for auth objects (Postgres checks CREATE
-- privilege on the schema before it checks existence): every creation sits in a
-- DO block behind a catalog lookup.
--
-- Semantics of the claim functions (identical to Supabase's):
--   auth.jwt()   the claims object: the legacy setting `request.jwt.claim`
--                when non-empty, else `request.jwt.claims`; NULL when neither
--                is set or both are empty.
--   auth.uid()   `request.jwt.claim.sub` when non-empty, else the `sub` member
--                of `request.jwt.claims`, cast to uuid.
--   auth.role()  likewise with `request.jwt.claim.role` / `role`.
--   auth.email() likewise with `request.jwt.claim.email` / `email`.
-- Note that uid()/role()/email() never read the legacy whole-object setting
-- `request.jwt.claim`, exactly as on Supabase.

-- ---------------------------------------------------------------------------
-- Roles
-- ---------------------------------------------------------------------------
-- Roles are cluster-wide; several databases of one server may run this file
-- at the same time (parallel test databases), so a concurrent creation of the
-- same role is tolerated rather than treated as an error.
do $roles$
declare
  spec record;
begin
  for spec in
    select *
    from (values
      ('anon', 'nologin noinherit',
       'API role of requests without a user token (Supabase role; created by supabase-rls-kit on plain Postgres).'),
      ('authenticated', 'nologin noinherit',
       'API role of requests carrying a signed-in user''s token (Supabase role; created by supabase-rls-kit on plain Postgres).'),
      ('service_role', 'nologin noinherit bypassrls',
       'Trusted server role that bypasses row level security (Supabase role; created by supabase-rls-kit on plain Postgres).'),
      ('authenticator', 'login noinherit',
       'Connection role of the API server: holds no privileges itself and switches to anon, authenticated or service_role per request (Supabase role; created by supabase-rls-kit on plain Postgres).'),
      ('supabase_auth_admin', 'login noinherit createrole noreplication',
       'Role of the Auth server, runs Auth hooks (Supabase role; created by supabase-rls-kit on plain Postgres).')
    ) as r(name, attributes, description)
  loop
    if not exists (select from pg_catalog.pg_roles where rolname = spec.name) then
      begin
        execute pg_catalog.format('create role %I %s', spec.name, spec.attributes);
        execute pg_catalog.format('comment on role %I is %L', spec.name, spec.description);
      exception when duplicate_object or unique_violation then
        -- another session created it in the meantime: it exists, which is all we need
        null;
      end;
    end if;
  end loop;

  -- authenticator may switch to each API role (SET ROLE), as on Supabase.
  for spec in
    select unnest(array['anon', 'authenticated', 'service_role']) as name
  loop
    if not exists (
      select
      from pg_catalog.pg_auth_members m
      join pg_catalog.pg_roles g on g.oid = m.roleid
      join pg_catalog.pg_roles u on u.oid = m.member
      where g.rolname = spec.name and u.rolname = 'authenticator'
    ) then
      begin
        execute pg_catalog.format('grant %I to authenticator', spec.name);
      exception when duplicate_object or unique_violation then
        null;
      end;
    end if;
  end loop;
end
$roles$;

-- ---------------------------------------------------------------------------
-- Schema auth
-- ---------------------------------------------------------------------------
do $schema$
begin
  if pg_catalog.to_regnamespace('auth') is null then
    create schema auth;
    comment on schema auth is
      'Supabase Auth''s schema, reduced to what supabase-rls-kit relies on (created by supabase-rls-kit on plain Postgres; on Supabase it is Supabase''s own).';
    -- API roles may call the claim functions from policies, as on Supabase;
    -- they get no privilege on the tables.
    grant usage on schema auth to anon, authenticated, service_role;
    grant usage on schema auth to supabase_auth_admin;
  end if;
end
$schema$;

-- ---------------------------------------------------------------------------
-- Claim functions (created only when missing; never replaced)
-- ---------------------------------------------------------------------------
-- PL/pgSQL rather than SQL, for speed only (the results are the same): a SQL
-- function with a SET clause cannot be inlined, so PostgreSQL before 18 parses
-- and plans its body again in every statement that calls it, while PL/pgSQL
-- keeps the compiled body for the session. Measured on PostgreSQL 15 with the
-- example's select policy (`(select auth.jwt())`, pgbench, one client): the
-- policy's cost over a hand-written WHERE fell from ~50 us to ~30 us per
-- statement. The SET clause stays: every function here pins its search_path.
do $functions$
begin
  if pg_catalog.to_regprocedure('auth.jwt()') is null then
    execute $ddl$
      create function auth.jwt()
      returns jsonb
      language plpgsql
      stable
      set search_path = ''
      as $body$
      begin
        return coalesce(
          nullif(pg_catalog.current_setting('request.jwt.claim', true), ''),
          nullif(pg_catalog.current_setting('request.jwt.claims', true), '')
        )::jsonb;
      end
      $body$
    $ddl$;
    comment on function auth.jwt() is
      'Claims of the current request''s token as jsonb: the legacy setting request.jwt.claim when non-empty, else request.jwt.claims; NULL without a token. Same semantics as Supabase''s auth.jwt().';
    grant execute on function auth.jwt() to anon, authenticated, service_role;
  end if;

  if pg_catalog.to_regprocedure('auth.uid()') is null then
    execute $ddl$
      create function auth.uid()
      returns uuid
      language plpgsql
      stable
      set search_path = ''
      as $body$
      begin
        return coalesce(
          nullif(pg_catalog.current_setting('request.jwt.claim.sub', true), ''),
          nullif(pg_catalog.current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub'
        )::uuid;
      end
      $body$
    $ddl$;
    comment on function auth.uid() is
      'The token''s subject (sub) as uuid: the legacy setting request.jwt.claim.sub when non-empty, else the sub member of request.jwt.claims. Same semantics as Supabase''s auth.uid().';
    grant execute on function auth.uid() to anon, authenticated, service_role;
  end if;

  if pg_catalog.to_regprocedure('auth.role()') is null then
    execute $ddl$
      create function auth.role()
      returns text
      language plpgsql
      stable
      set search_path = ''
      as $body$
      begin
        return coalesce(
          nullif(pg_catalog.current_setting('request.jwt.claim.role', true), ''),
          nullif(pg_catalog.current_setting('request.jwt.claims', true), '')::jsonb ->> 'role'
        )::text;
      end
      $body$
    $ddl$;
    comment on function auth.role() is
      'The token''s role claim: the legacy setting request.jwt.claim.role when non-empty, else the role member of request.jwt.claims. Same semantics as Supabase''s auth.role().';
    grant execute on function auth.role() to anon, authenticated, service_role;
  end if;

  if pg_catalog.to_regprocedure('auth.email()') is null then
    execute $ddl$
      create function auth.email()
      returns text
      language plpgsql
      stable
      set search_path = ''
      as $body$
      begin
        return coalesce(
          nullif(pg_catalog.current_setting('request.jwt.claim.email', true), ''),
          nullif(pg_catalog.current_setting('request.jwt.claims', true), '')::jsonb ->> 'email'
        )::text;
      end
      $body$
    $ddl$;
    comment on function auth.email() is
      'The token''s email claim: the legacy setting request.jwt.claim.email when non-empty, else the email member of request.jwt.claims. Same semantics as Supabase''s auth.email().';
    grant execute on function auth.email() to anon, authenticated, service_role;
  end if;
end
$functions$;

-- ---------------------------------------------------------------------------
-- Tables auth.users and auth.sessions (created only when missing)
-- ---------------------------------------------------------------------------
do $tables$
begin
  if pg_catalog.to_regtype('auth.aal_level') is null then
    create type auth.aal_level as enum ('aal1', 'aal2', 'aal3');
    comment on type auth.aal_level is
      'Authenticator assurance level of a session (aal1: one factor, aal2: multi-factor). Same labels as Supabase Auth''s type.';
  end if;

  if pg_catalog.to_regclass('auth.users') is null then
    -- Column names, types and defaults follow Supabase Auth's auth.users, so
    -- that rows written here (seeds, tests) insert unchanged on Supabase.
    create table auth.users (
      instance_id uuid,
      id uuid not null,
      aud character varying(255),
      role character varying(255),
      email character varying(255),
      encrypted_password character varying(255),
      email_confirmed_at timestamp with time zone,
      invited_at timestamp with time zone,
      confirmation_token character varying(255),
      confirmation_sent_at timestamp with time zone,
      recovery_token character varying(255),
      recovery_sent_at timestamp with time zone,
      email_change_token_new character varying(255),
      email_change character varying(255),
      email_change_sent_at timestamp with time zone,
      last_sign_in_at timestamp with time zone,
      raw_app_meta_data jsonb,
      raw_user_meta_data jsonb,
      is_super_admin boolean,
      created_at timestamp with time zone,
      updated_at timestamp with time zone,
      phone text default null,
      phone_confirmed_at timestamp with time zone,
      phone_change text default '',
      phone_change_token character varying(255) default '',
      phone_change_sent_at timestamp with time zone,
      confirmed_at timestamp with time zone
        generated always as (least(email_confirmed_at, phone_confirmed_at)) stored,
      email_change_token_current character varying(255) default '',
      email_change_confirm_status smallint default 0
        constraint users_email_change_confirm_status_check
        check (email_change_confirm_status >= 0 and email_change_confirm_status <= 2),
      banned_until timestamp with time zone,
      reauthentication_token character varying(255) default '',
      reauthentication_sent_at timestamp with time zone,
      is_sso_user boolean not null default false,
      deleted_at timestamp with time zone,
      is_anonymous boolean not null default false,
      constraint users_pkey primary key (id),
      constraint users_phone_key unique (phone)
    );
    create unique index users_email_partial_key on auth.users (email) where is_sso_user = false;
    -- As on Supabase: RLS on, no policy, no grant to the API roles.
    alter table auth.users enable row level security;
    grant all on table auth.users to supabase_auth_admin;

    comment on table auth.users is
      'User accounts (Supabase Auth''s table; created by supabase-rls-kit on plain Postgres with the same columns). Only id is required.';
    comment on column auth.users.id is 'The user''s id: the sub claim of their tokens.';
    comment on column auth.users.email is 'The user''s email address; the email claim of their tokens.';
    comment on column auth.users.banned_until is 'While in the future, the user cannot sign in or refresh.';
    comment on column auth.users.deleted_at is 'Set when the account was soft-deleted.';
    comment on column auth.users.is_anonymous is 'True for users created by anonymous sign-in.';
    comment on column auth.users.is_sso_user is 'True for accounts from single sign-on; these may share an email address with another account.';
    comment on column auth.users.raw_app_meta_data is 'Metadata only the server may write (app_metadata claim).';
    comment on column auth.users.raw_user_meta_data is 'Metadata the user may write (user_metadata claim): never use it for authorization.';
    comment on index auth.users_email_partial_key is 'One account per email address, except single sign-on accounts.';
  end if;

  if pg_catalog.to_regclass('auth.sessions') is null then
    create table auth.sessions (
      id uuid not null,
      user_id uuid not null,
      created_at timestamp with time zone,
      updated_at timestamp with time zone,
      factor_id uuid,
      aal auth.aal_level,
      not_after timestamp with time zone,
      refreshed_at timestamp without time zone,
      user_agent text,
      ip inet,
      tag text,
      constraint sessions_pkey primary key (id),
      constraint sessions_user_id_fkey foreign key (user_id)
        references auth.users (id) on delete cascade
    );
    create index sessions_user_id_idx on auth.sessions (user_id);
    create index sessions_not_after_idx on auth.sessions (not_after desc);
    alter table auth.sessions enable row level security;
    grant all on table auth.sessions to supabase_auth_admin;

    comment on table auth.sessions is
      'Signed-in sessions; the session_id claim of a Supabase token names a row (Supabase Auth''s table; created by supabase-rls-kit on plain Postgres with the same columns).';
    comment on column auth.sessions.user_id is 'The session''s user; deleting the user ends their sessions.';
    comment on column auth.sessions.not_after is 'When set, the session counts as ended from this time on.';
    comment on column auth.sessions.aal is 'Assurance level reached in this session.';
    comment on column auth.sessions.refreshed_at is 'Last refresh (timestamp without time zone, as on Supabase).';
    comment on index auth.sessions_user_id_idx is 'Finds a user''s sessions (ending them all on revocation).';
    comment on index auth.sessions_not_after_idx is 'Finds sessions by end time (clean-up of ended sessions).';
  end if;
end
$tables$;
