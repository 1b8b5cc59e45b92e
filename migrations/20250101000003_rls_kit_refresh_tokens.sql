-- supabase-rls-kit: refresh tokens with rotation and reuse detection
--
-- What: the store behind supabase-rls-kit/refresh (createRefreshTokens).
--   * rls_kit.refresh_tokens          one row per opaque refresh token, kept
--                                     only as the SHA-256 of the token; rows of
--                                     one login share a family, which is the
--                                     sid claim of every access token issued
--                                     from it
--   * rls_kit.end_refresh_families()  the real hook behind
--                                     revoke_subject(end_sessions => true) and
--                                     revoke_session(): replaces the no-op the
--                                     revocation migration created
--   * rls_kit.purge_refresh_tokens()  drops families past their absolute end
--
-- Rotation: each use marks the token used (used_at) and inserts its child
-- (parent = the used token's hash) in the same family, carrying the family's
-- absolute expiry over. The partial unique index refresh_tokens_live_idx
-- allows one live (unused, unrevoked) token per family, so no race can ever
-- leave two live branches of one family, whatever the application does.
--
-- Reuse: presenting a used token after the grace interval is theft or a
-- replay; the application then calls rls_kit.revoke_session(family), which
-- ends the family here (through end_refresh_families) and records it in
-- rls_kit.revoked_sessions, so every access token whose sid is the family is
-- dead in row level security at the next statement.
--
-- Privileges: anon and authenticated have none (permission denied); only
-- service_role and the server (the table's owner) read and write the table.
--
-- Idempotent: the table and its indexes are created only when missing; the
-- hook, grants and comments are (re)stated with identical definitions, so
-- applying the file again, also under another version number, leaves the
-- catalog unchanged. The revocation migration creates its no-op hook only
-- when none exists, so applying it again later never undoes this one.

-- ---------------------------------------------------------------------------
-- Table
-- ---------------------------------------------------------------------------
do $tables$
begin
  if pg_catalog.to_regclass('rls_kit.refresh_tokens') is null then
    create table rls_kit.refresh_tokens (
      hash bytea primary key
        constraint refresh_tokens_hash_check check (pg_catalog.octet_length(hash) = 32),
      family uuid not null,
      parent bytea,
      sub uuid not null,
      issued_at timestamptz not null default pg_catalog.now(),
      expires_at timestamptz not null,
      idle_expires_at timestamptz not null,
      used_at timestamptz,
      revoked_at timestamptz,
      reason text
    );
    create index refresh_tokens_family_idx on rls_kit.refresh_tokens (family);
    create index refresh_tokens_sub_idx on rls_kit.refresh_tokens (sub);
    create unique index refresh_tokens_live_idx on rls_kit.refresh_tokens (family)
      where used_at is null and revoked_at is null;
  end if;
end
$tables$;

-- The upstream login a family was exchanged from (a Supabase session_id):
-- ending that session ends the families made from it. Added separately so an
-- installation from before the column gains it when this file runs again.
do $upstream$
begin
  if not exists (
    select from pg_catalog.pg_attribute a
     where a.attrelid = 'rls_kit.refresh_tokens'::regclass
       and a.attname = 'upstream_session' and not a.attisdropped
  ) then
    alter table rls_kit.refresh_tokens add column upstream_session uuid;
  end if;
  if pg_catalog.to_regclass('rls_kit.refresh_tokens_upstream_session_idx') is null then
    create index refresh_tokens_upstream_session_idx
      on rls_kit.refresh_tokens (upstream_session) where upstream_session is not null;
  end if;
end
$upstream$;

-- Nobody but the owner and service_role: a refresh token's hash, family and
-- subject are the server's business (API roles get "permission denied").
revoke all on table rls_kit.refresh_tokens from public, anon, authenticated, service_role;
grant select, insert, update, delete on table rls_kit.refresh_tokens to service_role;

comment on table rls_kit.refresh_tokens is
  'Kit refresh tokens (supabase-rls-kit/refresh), stored only as SHA-256 hashes. Rows of one login share a family (the sid claim of access tokens issued from it); each use marks the token used and adds its child. At most one live (unused, unrevoked) token per family. service_role and the server only.';
comment on column rls_kit.refresh_tokens.hash is 'SHA-256 of the opaque refresh token (32 bytes); the token itself is never stored.';
comment on column rls_kit.refresh_tokens.family is 'The refresh family: one per login, the sid claim of every access token issued from it; rls_kit.revoke_session(family) ends it.';
comment on column rls_kit.refresh_tokens.parent is 'Hash of the token this one replaced; NULL for the first token of a family.';
comment on column rls_kit.refresh_tokens.sub is 'The user (the sub claim of the access tokens).';
comment on column rls_kit.refresh_tokens.issued_at is 'When the token was issued.';
comment on column rls_kit.refresh_tokens.expires_at is 'Absolute end of the family, carried over to every child: no refresh after it.';
comment on column rls_kit.refresh_tokens.idle_expires_at is 'End of this token if unused (idle lifetime), never after expires_at.';
comment on column rls_kit.refresh_tokens.used_at is 'When the token was exchanged for its child; presenting it again after the grace interval is reuse and ends the family.';
comment on column rls_kit.refresh_tokens.revoked_at is 'When the family was ended (sign-out, reuse, revoke_subject, revoke_session).';
comment on column rls_kit.refresh_tokens.reason is 'Why the token was revoked (free text, for people).';
comment on constraint refresh_tokens_hash_check on rls_kit.refresh_tokens is 'A SHA-256 digest is 32 bytes.';
comment on index rls_kit.refresh_tokens_family_idx is 'Ends a family (end_refresh_families, revoke_session).';
comment on index rls_kit.refresh_tokens_sub_idx is 'Ends every family of a user (revoke_subject).';
comment on column rls_kit.refresh_tokens.upstream_session is 'The session the family was exchanged from (a Supabase session_id), carried to every child; rls_kit.revoke_session(upstream) ends the family too. NULL for logins made by the kit itself.';
comment on index rls_kit.refresh_tokens_upstream_session_idx is 'Ends the families exchanged from one upstream session (end_refresh_families, revoke_session).';
comment on index rls_kit.refresh_tokens_live_idx is 'At most one live (unused, unrevoked) token per family: concurrent refreshes can never leave two live branches.';

-- ---------------------------------------------------------------------------
-- Hook: ending kit refresh families (replaces the revocation migration's no-op)
-- ---------------------------------------------------------------------------
-- Same signature and return type as the no-op. It only marks tokens revoked
-- and returns the families it ended: its callers (revoke_subjects,
-- revoke_session) record them in rls_kit.revoked_sessions with their reason.
-- It must never call revoke_session, which calls it.
create or replace function rls_kit.end_refresh_families(sub uuid, family uuid)
returns setof uuid
language sql
volatile
security definer
set search_path = ''
as $body$
  with ended as (
    update rls_kit.refresh_tokens t
       set revoked_at = pg_catalog.now(),
           reason = coalesce(t.reason, 'family ended')
     where t.revoked_at is null
       and ((end_refresh_families.family is not null
             and (t.family = end_refresh_families.family
                  or t.upstream_session = end_refresh_families.family)
             and (end_refresh_families.sub is null or t.sub = end_refresh_families.sub))
         or (end_refresh_families.family is null and t.sub = end_refresh_families.sub))
    returning t.family
  )
  select distinct e.family from ended e
$body$;

revoke all on function rls_kit.end_refresh_families(uuid, uuid)
  from public, anon, authenticated, service_role;

comment on function rls_kit.end_refresh_families(uuid, uuid) is
  'Hook: ends kit refresh families so they can no longer refresh — every family of sub when family is NULL, else that family and the families exchanged from it as an upstream session — by marking their tokens revoked, and returns the ids of the families it ended. revoke_subject(end_sessions => true) and revoke_session() call it and record the families in rls_kit.revoked_sessions, which ends their access tokens (sid claim). Installed by the refresh-token migration.';

-- ---------------------------------------------------------------------------
-- Housekeeping
-- ---------------------------------------------------------------------------
-- Whole families only, once past their absolute end (every row of a family
-- shares expires_at): dropping the used tokens of a live family would turn a
-- later replay of one into "unknown" instead of reuse, and spare the family.
create or replace function rls_kit.purge_refresh_tokens()
returns bigint
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  gone bigint;
begin
  delete from rls_kit.refresh_tokens t where t.expires_at <= pg_catalog.now();
  get diagnostics gone = row_count;
  return gone;
end
$$;

revoke all on function rls_kit.purge_refresh_tokens() from public, anon, authenticated, service_role;
grant execute on function rls_kit.purge_refresh_tokens() to service_role;

comment on function rls_kit.purge_refresh_tokens() is
  'Deletes the refresh tokens of families past their absolute lifetime (expires_at), which can no longer refresh; returns how many rows went. Live families keep their used tokens, so a replay is still detected as reuse. Run it periodically (pg_cron). service_role and the server only.';

