-- supabase-rls-kit: core (private schema rls_kit)
--
-- What: creates the schema rls_kit that holds every kit object (revocation
-- list, RBAC, hooks, the revocation guard). It is private: never list it in
-- the Data API's exposed schemas ([api] schemas in supabase/config.toml).
--
-- Privileges: nobody but the owner (and superusers / service roles granted
-- explicitly by later kit migrations) may use it. A later kit migration that
-- adds a function meant for API roles (for example rls_kit.is_token_active(),
-- evaluated inside policies) grants USAGE on the schema and EXECUTE on that one
-- function; every kit function revokes EXECUTE from PUBLIC explicitly, because
-- per-schema default privileges cannot take away PUBLIC's EXECUTE.
--
-- Idempotent: objects are created only when missing; privileges are set only
-- when the schema is created, so applying this file again (also under another
-- version number) never undoes grants made by later kit migrations.

do $core$
begin
  if pg_catalog.to_regnamespace('rls_kit') is null then
    create schema rls_kit;
    revoke all on schema rls_kit from public;
    revoke all on schema rls_kit from anon, authenticated;
    comment on schema rls_kit is
      'supabase-rls-kit: token revocation, RBAC and Auth-hook objects. Private: never expose it through the Data API.';
  end if;
end
$core$;

-- ---------------------------------------------------------------------------
-- PLACEHOLDER (revocation issue): rls_kit.protect(tbl regclass)
-- ---------------------------------------------------------------------------
-- The revocation guard is defined here once the revocation issue lands:
--   rls_kit.protect(tbl regclass) adds, idempotently, the RESTRICTIVE policy
--   rls_kit_token_active  FOR ALL TO authenticated
--                         USING ((select rls_kit.is_token_active()))
-- to the given table. Application migrations (see
-- supabase/migrations/20250101000100_example_app.sql) then call
--   select rls_kit.protect('public.documents');
-- for each table they want guarded.
