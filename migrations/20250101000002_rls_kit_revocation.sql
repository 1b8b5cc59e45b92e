-- supabase-rls-kit: token revocation, enforced by row level security
--
-- What: takes back access tokens before they expire, in the database itself.
--   * rls_kit.revoked_tokens       one token by its jti, until it would expire anyway
--   * rls_kit.subject_revocations  a user's cut-off: every token of `sub` whose
--                                  iat <= not_before is dead
--   * rls_kit.revoked_sessions     ended sessions: a Supabase session (the
--                                  session_id claim) or a kit refresh family (the
--                                  sid claim); every token bound to one is dead
--   * rls_kit.revoke_token / revoke_subject / revoke_subjects / revoke_session
--                                  write them (service_role and the server only)
--   * rls_kit.is_token_active()    the guard policies call: is the current
--                                  request's token (auth.jwt()) still live?
--   * rls_kit.token_status(claims) the same verdict with its reason, for any
--                                  claims (service_role and the server only)
--   * rls_kit.protect(tbl)         adds the RESTRICTIVE policy rls_kit_token_active
--   * rls_kit.pre_request()        PostgREST db_pre_request hook: answers 401
--   * rls_kit.purge_expired()      drops entries that can no longer matter
--   * NOTIFY rls_kit_revocations   every change of the three tables, as compact
--                                  JSON (format below), for in-process caches
--   * triggers on auth.users       a changed password, a ban, a soft or hard
--                                  delete revoke the user (tokens and sessions)
--   * trigger on auth.sessions     a deleted session (Supabase Auth's sign-out)
--                                  ends its access tokens and kit logins
--
-- Trust: the SQL trusts request.jwt.claims because only trusted servers set it
-- (PostgREST's authenticator, the kit's as-user API), after verifying the
-- token. Nothing here keys a decision on request.headers, request.path,
-- request.cookies or on arguments API roles pass. API roles (anon,
-- authenticated) may execute is_token_active() and pre_request() and nothing
-- else here; they have no privilege at all on the tables (permission denied,
-- not an empty result), so they cannot learn whether any other token is
-- revoked.
--
-- Cost: see the comment on rls_kit.is_token_active() and docs/sql.md
-- ("Revocation"): one plan-cached lookup per statement, as an InitPlan.
--
-- NOTIFY payloads (channel rls_kit_revocations), each < 8000 bytes; a
-- statement touching many rows sends several:
--   {"t":"jti","op":"+","v":[["<jti>",<expires epoch s>],...]}
--   {"t":"sub","op":"+","v":[["<sub uuid>",<not_before epoch s>],...]}
--   {"t":"sid","op":"+","v":[["<session uuid>",<expires epoch s>],...]}
--   {"t":"jti"|"sub"|"sid","op":"-","v":["<key>",...]}   rows deleted (purge)
--   {"t":"jti"|"sub"|"sid","op":"*"}                     table truncated: reload it
-- Expiries are rounded up, cut-offs down, to whole seconds (both err on the
-- side of "revoked"). "+" carries inserts and updates alike (an upsert).
--
-- Kit refresh families: revoke_subject(..., end_sessions => true) and
-- revoke_session() call the hook rls_kit.end_refresh_families(sub, family).
-- This file creates it as a no-op when it is missing; the refresh-token
-- migration replaces it with the real one. It is never replaced here, so
-- applying this file again cannot undo that.
--
-- Idempotent: tables, indexes and hooks are created only when missing;
-- functions, triggers, grants and comments are (re)stated with identical
-- definitions, so applying the file again, also under another version number,
-- leaves the catalog unchanged.

-- ---------------------------------------------------------------------------
-- Schema access: API roles may call the two functions granted to them below
-- (is_token_active, pre_request) and nothing else; service_role calls the
-- revoking functions. USAGE alone gives access to no object.
-- ---------------------------------------------------------------------------
grant usage on schema rls_kit to anon, authenticated, service_role;

-- ---------------------------------------------------------------------------
-- Tables
-- ---------------------------------------------------------------------------
do $tables$
begin
  if pg_catalog.to_regclass('rls_kit.revoked_tokens') is null then
    create table rls_kit.revoked_tokens (
      jti text collate "C" primary key
        constraint revoked_tokens_jti_check check (pg_catalog.char_length(jti) between 1 and 255),
      sub uuid,
      expires_at timestamptz not null,
      revoked_at timestamptz not null default pg_catalog.now(),
      reason text
    );
    create index revoked_tokens_expires_at_idx on rls_kit.revoked_tokens (expires_at);
    create index revoked_tokens_sub_idx on rls_kit.revoked_tokens (sub) where sub is not null;
  end if;

  if pg_catalog.to_regclass('rls_kit.subject_revocations') is null then
    create table rls_kit.subject_revocations (
      sub uuid primary key,
      not_before timestamptz not null,
      reason text
    );
  end if;

  if pg_catalog.to_regclass('rls_kit.revoked_sessions') is null then
    create table rls_kit.revoked_sessions (
      session_id uuid primary key,
      sub uuid,
      revoked_at timestamptz not null default pg_catalog.now(),
      expires_at timestamptz not null,
      reason text
    );
    create index revoked_sessions_expires_at_idx on rls_kit.revoked_sessions (expires_at);
    create index revoked_sessions_sub_idx on rls_kit.revoked_sessions (sub) where sub is not null;
  end if;
end
$tables$;

-- No privilege for anyone but the owner, except reading for service_role (the
-- server's revocation list loads them). Writes go through the functions below.
revoke all on table rls_kit.revoked_tokens, rls_kit.subject_revocations, rls_kit.revoked_sessions
  from public, anon, authenticated, service_role;
grant select on table rls_kit.revoked_tokens, rls_kit.subject_revocations, rls_kit.revoked_sessions
  to service_role;

comment on table rls_kit.revoked_tokens is
  'Revoked access tokens by jti, kept until the token would have expired anyway (purge_expired removes them). Write with rls_kit.revoke_token().';
comment on column rls_kit.revoked_tokens.jti is 'The token''s jti claim (1 to 255 characters), compared byte for byte (collation "C"): an opaque identifier, and the cheapest comparison for the guard''s lookup.';
comment on column rls_kit.revoked_tokens.sub is 'The token''s subject, when the revoker knew it (listing and auditing only).';
comment on column rls_kit.revoked_tokens.expires_at is 'The token''s exp: after it the token is dead anyway and the row can go.';
comment on column rls_kit.revoked_tokens.revoked_at is 'When the token was revoked.';
comment on column rls_kit.revoked_tokens.reason is 'Why (free text, for people).';
comment on constraint revoked_tokens_jti_check on rls_kit.revoked_tokens is
  'A jti is 1 to 255 characters: longer ones are not tokens this kit verifies, and bound the NOTIFY payload size.';
comment on index rls_kit.revoked_tokens_expires_at_idx is 'Serves purge_expired().';
comment on index rls_kit.revoked_tokens_sub_idx is 'Lists a user''s revoked tokens.';

comment on table rls_kit.subject_revocations is
  'Per-user cut-offs: every token of sub with iat <= not_before (whole seconds) is dead. One row per user, kept. Write with rls_kit.revoke_subject().';
comment on column rls_kit.subject_revocations.sub is 'The user (the sub claim).';
comment on column rls_kit.subject_revocations.not_before is 'The cut-off, in whole seconds: tokens issued at or before it are dead; tokens issued in a later second live.';
comment on column rls_kit.subject_revocations.reason is 'Why the latest cut-off was set (within one second, the first reason given stays).';

comment on table rls_kit.revoked_sessions is
  'Ended sessions: a Supabase session (session_id claim) or a kit refresh family (sid claim). Every access token bound to one is dead. Write with rls_kit.revoke_session() or revoke_subject(end_sessions => true).';
comment on column rls_kit.revoked_sessions.session_id is 'The session_id (Supabase) or sid (kit refresh family) claim.';
comment on column rls_kit.revoked_sessions.sub is 'The session''s user, when known.';
comment on column rls_kit.revoked_sessions.revoked_at is 'When the session was ended.';
comment on column rls_kit.revoked_sessions.expires_at is
  'When the row can go: one week after it was ended, past the longest access-token lifetime Supabase Auth allows (jwt_expiry <= 604800 s) and the kit''s minter default (1 h). No token minted after the end can name the session, since it can no longer refresh.';
comment on column rls_kit.revoked_sessions.reason is 'Why (free text, for people).';
comment on index rls_kit.revoked_sessions_expires_at_idx is 'Serves purge_expired().';
comment on index rls_kit.revoked_sessions_sub_idx is 'Lists a user''s ended sessions.';

-- ---------------------------------------------------------------------------
-- Hook: ending kit refresh families (replaced by the refresh-token migration)
-- ---------------------------------------------------------------------------
do $hook$
begin
  if pg_catalog.to_regprocedure('rls_kit.end_refresh_families(uuid, uuid)') is null then
    create function rls_kit.end_refresh_families(sub uuid, family uuid)
    returns setof uuid
    language sql
    volatile
    set search_path = ''
    as $body$
      select null::uuid where false
    $body$;
    revoke all on function rls_kit.end_refresh_families(uuid, uuid) from public;
    comment on function rls_kit.end_refresh_families(uuid, uuid) is
      'Hook: ends kit refresh families so they can no longer refresh — every family of sub when family is NULL, else that one family — and returns the ids of the families it ended. A no-op until the refresh-token migration replaces it; revoke_subject(end_sessions => true) and revoke_session() call it.';
  end if;
end
$hook$;

-- ---------------------------------------------------------------------------
-- Revoking (service_role and the server)
-- ---------------------------------------------------------------------------
create or replace function rls_kit.revoke_token(
  jti text,
  expires_at timestamptz,
  reason text default null,
  sub uuid default null
)
returns void
language plpgsql
volatile
security definer
set search_path = ''
as $$
begin
  if jti is null or jti = '' then
    raise exception using
      errcode = '22023',
      message = 'rls_kit.revoke_token: jti must be a non-empty string',
      hint = 'Pass the jti claim of the token to revoke.';
  end if;
  if pg_catalog.char_length(jti) > 255 then
    raise exception using
      errcode = '22023',
      message = pg_catalog.format('rls_kit.revoke_token: jti is %s characters long; at most 255 are accepted',
                                  pg_catalog.char_length(jti));
  end if;
  if expires_at is null then
    raise exception using
      errcode = '22023',
      message = 'rls_kit.revoke_token: expires_at must be given',
      hint = 'Pass the token''s exp claim, e.g. to_timestamp(exp): the revocation is kept until then.';
  end if;
  if expires_at <= pg_catalog.now() then
    raise exception using
      errcode = '22023',
      message = pg_catalog.format('rls_kit.revoke_token: expires_at %s is not in the future', expires_at),
      hint = 'An expired token is already refused: there is nothing to revoke.';
  end if;

  insert into rls_kit.revoked_tokens as t (jti, sub, expires_at, reason)
  values (revoke_token.jti, revoke_token.sub, revoke_token.expires_at, revoke_token.reason)
  on conflict on constraint revoked_tokens_pkey do update
    set expires_at = greatest(t.expires_at, excluded.expires_at),
        sub = coalesce(t.sub, excluded.sub),
        reason = coalesce(t.reason, excluded.reason)
    where t.expires_at < excluded.expires_at
       or (t.sub is null and excluded.sub is not null)
       or (t.reason is null and excluded.reason is not null);
end
$$;

comment on function rls_kit.revoke_token(text, timestamptz, text, uuid) is
  'Revokes one access token by its jti until expires_at (its exp), when it would die anyway. Idempotent: revoking again keeps the later expiry. Errors (22023) on a missing or over-long jti and on an expiry that is not in the future. service_role and the server only.';

create or replace function rls_kit.revoke_subjects(
  subs uuid[],
  reason text default null,
  end_sessions boolean default true
)
returns timestamptz
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  -- The transaction's time in whole seconds: tokens carry iat in whole
  -- seconds, so a token issued in this second counts as issued before the
  -- revocation; one issued in a later second lives.
  cutoff constant timestamptz := pg_catalog.date_trunc('second', pg_catalog.now());
  -- Rows in revoked_sessions outlive any access token minted before them.
  session_expiry constant timestamptz := pg_catalog.now() + interval '7 days';
begin
  if subs is null or pg_catalog.array_position(subs, null) is not null then
    raise exception using
      errcode = '22023',
      message = 'rls_kit.revoke_subjects: every sub must be a uuid, not NULL';
  end if;
  if end_sessions is null then
    raise exception using
      errcode = '22023',
      message = 'rls_kit.revoke_subjects: end_sessions must be true or false, not NULL';
  end if;

  insert into rls_kit.subject_revocations as r (sub, not_before, reason)
  select distinct s, cutoff, revoke_subjects.reason
  from pg_catalog.unnest(subs) as s
  on conflict on constraint subject_revocations_pkey do update
    set not_before = greatest(r.not_before, excluded.not_before),
        reason = case when excluded.not_before > r.not_before then excluded.reason
                      else coalesce(r.reason, excluded.reason) end
    where r.not_before < excluded.not_before
       or (r.reason is null and excluded.reason is not null);

  if end_sessions then
    -- Supabase ends a session by deleting its auth.sessions row (GoTrue's own
    -- logout does exactly this; auth.refresh_tokens and auth.mfa_amr_claims
    -- rows follow by ON DELETE CASCADE on Supabase; the plain-Postgres compat
    -- schema has no refresh tokens). The ended sessions are also recorded, so
    -- a token a concurrent refresh minted for one of them after the cut-off
    -- is dead too. Kit refresh families end through the hook.
    with ended as (
      delete from auth.sessions s
      where s.user_id = any (subs)
      returning s.id, s.user_id
    ), families as (
      select f.family as id, u.sub
      from (select distinct x as sub from pg_catalog.unnest(subs) as x) u
      cross join lateral rls_kit.end_refresh_families(u.sub, null) as f(family)
    )
    insert into rls_kit.revoked_sessions (session_id, sub, expires_at, reason)
    select e.id, e.sub, session_expiry, revoke_subjects.reason
    from (select id, user_id as sub from ended union all select id, sub from families) e
    where e.id is not null
    on conflict on constraint revoked_sessions_pkey do nothing;
  end if;

  return cutoff;
end
$$;

comment on function rls_kit.revoke_subjects(uuid[], text, boolean) is
  'revoke_subject for many users in one statement (one NOTIFY batch): used by triggers that revoke whole sets, e.g. every member of a deleted organization. Returns the cut-off. service_role and the server only.';

create or replace function rls_kit.revoke_subject(
  sub uuid,
  reason text default null,
  end_sessions boolean default true
)
returns timestamptz
language plpgsql
volatile
security definer
set search_path = ''
as $$
begin
  if sub is null then
    raise exception using
      errcode = '22023',
      message = 'rls_kit.revoke_subject: sub must be a uuid, not NULL';
  end if;
  return rls_kit.revoke_subjects(array[sub], reason, end_sessions);
end
$$;

comment on function rls_kit.revoke_subject(uuid, text, boolean) is
  'Revokes every token of sub issued up to now: the cut-off is the transaction''s time in whole seconds, and a token is dead when iat <= cut-off (one minted in a later second lives). With end_sessions (default) the user''s Supabase sessions (auth.sessions rows) and kit refresh families end too, so nothing refreshes into new tokens; without, the user refreshes into tokens with fresh claims. Returns the cut-off. service_role and the server only.';

-- Ending sessions also ends what was built on them: the kit refresh families
-- with these ids (a kit login is its own session) or exchanged from them
-- (refresh_tokens.upstream_session), recorded with their subjects so the
-- access tokens bound to them (their sid) die too. The refresh-token
-- migration's table is named at run time (dynamic SQL), so this file still
-- applies, and works, without it.
create or replace function rls_kit.end_exchanged_families(sessions uuid[], reason text)
returns void
language plpgsql
volatile
security definer
set search_path = ''
as $$
begin
  if pg_catalog.to_regclass('rls_kit.refresh_tokens') is null then
    perform from pg_catalog.unnest(sessions) as e(id)
      cross join lateral rls_kit.end_refresh_families(null, e.id);
    return;
  end if;
  execute 'insert into rls_kit.revoked_sessions (session_id, sub, expires_at, reason)
           select f.family,
                  (select t.sub from rls_kit.refresh_tokens t where t.family = f.family limit 1),
                  pg_catalog.now() + interval ''7 days'', $2
             from pg_catalog.unnest($1) as e(id)
             cross join lateral rls_kit.end_refresh_families(null, e.id) as f(family)
            where f.family <> e.id
           on conflict on constraint revoked_sessions_pkey do nothing'
    using sessions, reason;
end
$$;

revoke all on function rls_kit.end_exchanged_families(uuid[], text) from public;

comment on function rls_kit.end_exchanged_families(uuid[], text) is
  'Ends the kit refresh families that are these sessions or were exchanged from them, recording the exchanged ones in revoked_sessions with their subjects. Used by revoke_session and the auth.sessions trigger; the server only.';

create or replace function rls_kit.revoke_session(session_id uuid, reason text default null)
returns void
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  owner_sub uuid;
begin
  if session_id is null then
    raise exception using
      errcode = '22023',
      message = 'rls_kit.revoke_session: session_id must be a uuid, not NULL';
  end if;

  select s.user_id into owner_sub from auth.sessions s where s.id = revoke_session.session_id;
  -- The family itself, and kit families exchanged from this (Supabase) session.
  perform rls_kit.end_exchanged_families(array[revoke_session.session_id], revoke_session.reason);
  -- A kit refresh family: its subject (the table is named at run time, see above).
  if owner_sub is null and pg_catalog.to_regclass('rls_kit.refresh_tokens') is not null then
    execute 'select t.sub from rls_kit.refresh_tokens t where t.family = $1 limit 1'
      into owner_sub using revoke_session.session_id;
  end if;

  insert into rls_kit.revoked_sessions (session_id, sub, expires_at, reason)
  values (revoke_session.session_id, owner_sub, pg_catalog.now() + interval '7 days', revoke_session.reason)
  on conflict on constraint revoked_sessions_pkey do nothing;
  -- Recorded first, so the auth.sessions trigger finds it there and the
  -- caller's reason is the one kept.
  delete from auth.sessions s where s.id = revoke_session.session_id;
end
$$;

comment on function rls_kit.revoke_session(uuid, text) is
  'Ends one session — a Supabase session (its auth.sessions row is deleted, and the kit refresh families exchanged from it end too) or a kit refresh family (through end_refresh_families) — and every access token bound to it (session_id or sid claim). Idempotent. service_role and the server only.';

-- ---------------------------------------------------------------------------
-- The verdict
-- ---------------------------------------------------------------------------
create or replace function rls_kit.token_status(claims jsonb)
returns jsonb
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  uuid_re constant text := '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$';
  reason text;
begin
  reason := case
    when claims is null or pg_catalog.jsonb_typeof(claims) <> 'object' then 'no_claims'
    when pg_catalog.jsonb_typeof(claims -> 'sub') is distinct from 'string' then 'missing_sub'
    when (claims ->> 'sub') !~ uuid_re then 'malformed_sub'
    when pg_catalog.jsonb_typeof(claims -> 'iat') is distinct from 'number' then 'missing_iat'
    when (claims -> 'iat')::numeric not between 0 and 253402300799 then 'malformed_iat'
    when claims ? 'session_id' and (pg_catalog.jsonb_typeof(claims -> 'session_id') <> 'string'
                                   or (claims ->> 'session_id') !~ uuid_re) then 'malformed_session_id'
    when claims ? 'sid' and (pg_catalog.jsonb_typeof(claims -> 'sid') <> 'string'
                            or (claims ->> 'sid') !~ uuid_re) then 'malformed_sid'
  end;
  if reason is null then
    -- One query; the CASE runs the probes in order and stops at the first hit.
    select case
      when exists (select from rls_kit.revoked_tokens t where t.jti = claims ->> 'jti') then 'token_revoked'
      when exists (select from rls_kit.subject_revocations r
                   where r.sub = (claims ->> 'sub')::uuid
                     and r.not_before >= pg_catalog.to_timestamp(
                           pg_catalog.floor((claims ->> 'iat')::numeric)::double precision)) then 'subject_revoked'
      when exists (select from rls_kit.revoked_sessions s where s.session_id = (claims ->> 'session_id')::uuid)
        or exists (select from rls_kit.revoked_sessions s where s.session_id = (claims ->> 'sid')::uuid)
        then 'session_revoked'
    end into reason;
  end if;
  return pg_catalog.jsonb_build_object('active', reason is null, 'reason', reason);
end
$$;

comment on function rls_kit.token_status(jsonb) is
  'Whether tokens with these claims are live, and why not: {"active": bool, "reason": null | no_claims | missing_sub | malformed_sub | missing_iat | malformed_iat | malformed_session_id | malformed_sid | token_revoked | subject_revoked | session_revoked}. Same rules as is_token_active(). service_role and the server only: API roles cannot probe other tokens.';

-- The guard. Cost matters more than anywhere else in the kit: policies of
-- protected tables call it once per statement (an InitPlan, through
-- `(select rls_kit.is_token_active())`). Measured choices (docs/sql.md):
--   * PL/pgSQL, not SQL: a non-inlinable SQL function (any SET clause or
--     table access prevents inlining) is parsed and planned again for every
--     outer statement before PostgreSQL 18; PL/pgSQL keeps its plan for the
--     session, so a pooled connection plans once.
--   * one query, one executor run: the probes are one EXISTS over UNION ALL,
--     evaluated together with the claim checks.
--   * one equality per probe: session_id and sid are two branches, not
--     `= any (array[...])` — an array key makes the index scan sort and
--     deduplicate its keys at run time, which measured 6 of the guard's
--     21 us per call here (15 us now, of which ~5 us are parsing the
--     claims and ~2 us the SECURITY DEFINER call with its search_path).
--   * the claims are read from the settings directly, with auth.jwt()'s
--     exact rule (legacy request.jwt.claim first), because auth.jwt() is
--     itself an SQL function with its own per-call planning.
--   * no regular expressions: sub, session_id and sid are cast to uuid, so
--     a malformed one raises 22P02 (fail closed, loudly — as auth.uid() does);
--     token_status() reports it as a reason instead.
--   * plan_cache_mode = force_generic_plan: the probe query is planned once
--     per session and its plan reused. Left to choose, the plan cache keeps
--     custom plans: with the claims known, a missing session_id or sid folds
--     its probe away, so every custom plan looks cheaper than the generic one
--     — and is planned anew on every call. Measured on whole requests whose
--     pooled connection alternates roles (as an API's does): the guard's
--     median cost fell from ~130-220 us to ~60-70 us on a loaded machine.
--   * no session probes for a token without session_id and sid: they could
--     only compare with NULL, and measured on whole requests over pooled
--     connections that alternate roles they made most calls several times
--     slower (a slow mode whose cause is not pinned down; tokens that do
--     carry a session claim still pay it now and then).
--   * STABLE: the probes use the outer statement's snapshot, so a revocation
--     committed before a statement starts is seen by that statement.
--   * the per-request memo of pre_request(): see there. Without it (the
--     kit's as-user API, Realtime, Storage) every statement runs the full
--     check.
create or replace function rls_kit.is_token_active()
returns boolean
language plpgsql
stable
parallel safe
security definer
set search_path = ''
set plan_cache_mode = force_generic_plan
as $$
declare
  raw constant text := coalesce(
    nullif(pg_catalog.current_setting('request.jwt.claim', true), ''),
    nullif(pg_catalog.current_setting('request.jwt.claims', true), '')
  );
  memo constant text := pg_catalog.current_setting('rls_kit.pre_request_active', true);
  c jsonb;
begin
  if raw is null then
    return false;
  end if;
  if memo is not null and memo = pg_catalog.now()::text || ' ' || raw then
    return true; -- pre_request() found this very token live in this transaction
  end if;
  c := raw::jsonb;
  if pg_catalog.jsonb_typeof(c -> 'sub') is distinct from 'string'
     or pg_catalog.jsonb_typeof(c -> 'iat') is distinct from 'number' then
    return false;
  end if;
  if c ? 'session_id' or c ? 'sid' then
    return not exists (
      select from rls_kit.revoked_tokens t
      where t.jti = c ->> 'jti'
      union all
      select from rls_kit.subject_revocations r
      where r.sub = (c ->> 'sub')::uuid
        and r.not_before >= pg_catalog.to_timestamp(pg_catalog.floor((c ->> 'iat')::numeric)::double precision)
      union all
      select from rls_kit.revoked_sessions s where s.session_id = (c ->> 'session_id')::uuid
      union all
      select from rls_kit.revoked_sessions s where s.session_id = (c ->> 'sid')::uuid
    );
  end if;
  -- No session claim: the session probes could only compare with NULL.
  return not exists (
    select from rls_kit.revoked_tokens t
    where t.jti = c ->> 'jti'
    union all
    select from rls_kit.subject_revocations r
    where r.sub = (c ->> 'sub')::uuid
      and r.not_before >= pg_catalog.to_timestamp(pg_catalog.floor((c ->> 'iat')::numeric)::double precision)
  );
end
$$;

comment on function rls_kit.is_token_active() is
  'The revocation guard for policies: true when the current request''s token (auth.jwt()) is live; false when its jti is revoked, its iat (whole seconds) <= its subject''s cut-off, its session_id or sid session has ended, or sub (string) or iat (number) is missing. A sub, session_id or sid that is not a uuid raises 22P02 (fail closed, as auth.uid() does). Use it as (select rls_kit.is_token_active()) so it runs once per statement; rls_kit.protect() adds that policy. Callable by the API roles; reveals nothing about any other token.';

-- ---------------------------------------------------------------------------
-- Protecting tables
-- ---------------------------------------------------------------------------
create or replace function rls_kit.protect(tbl regclass)
returns void
language plpgsql
volatile
set search_path = ''
as $$
declare
  expected_qual constant text := '( SELECT rls_kit.is_token_active() AS is_token_active)';
  existing record;
begin
  if tbl is null then
    raise exception using errcode = '22023', message = 'rls_kit.protect: tbl must name a table, not NULL';
  end if;
  if not exists (select from pg_catalog.pg_class c where c.oid = tbl and c.relkind in ('r', 'p')) then
    raise exception using
      errcode = '42809',
      message = pg_catalog.format('rls_kit.protect: %s is not a table', tbl);
  end if;
  if not exists (select from pg_catalog.pg_class c where c.oid = tbl and c.relrowsecurity) then
    raise exception using
      errcode = '55000',
      message = pg_catalog.format('rls_kit.protect: row level security is not enabled on %s', tbl),
      hint = pg_catalog.format('Run "alter table %s enable row level security" and give it its permissive policies first: the guard only restricts what they allow.', tbl);
  end if;

  select p.polcmd, p.polpermissive, p.polroles, pg_catalog.pg_get_expr(p.polqual, p.polrelid) as qual,
         p.polwithcheck is not null as has_check
    into existing
  from pg_catalog.pg_policy p
  where p.polrelid = tbl and p.polname = 'rls_kit_token_active';

  if found then
    if existing.polcmd = '*' and not existing.polpermissive
       and existing.polroles = array['authenticated'::regrole::oid]
       and existing.qual = expected_qual and not existing.has_check then
      return; -- already there, exactly as it should be
    end if;
    execute pg_catalog.format('drop policy rls_kit_token_active on %s', tbl);
  end if;

  execute pg_catalog.format(
    'create policy rls_kit_token_active on %s as restrictive for all to authenticated using ((select rls_kit.is_token_active()))',
    tbl);
  execute pg_catalog.format(
    'comment on policy rls_kit_token_active on %s is %L', tbl,
    'supabase-rls-kit revocation guard (RESTRICTIVE): requests whose token is revoked (jti, subject cut-off or ended session) get no rows and may write none. Added by rls_kit.protect().');
end
$$;

comment on function rls_kit.protect(regclass) is
  'Adds the RESTRICTIVE policy rls_kit_token_active (FOR ALL TO authenticated USING ((select rls_kit.is_token_active()))) to a table with row level security enabled; with no WITH CHECK, the USING expression also checks inserted and updated rows. Idempotent: an identical policy is left alone, a different one of that name is replaced. Run it as the table''s owner (in a migration).';

-- ---------------------------------------------------------------------------
-- PostgREST: db_pre_request
-- ---------------------------------------------------------------------------
-- Checks once per request and answers 401, where PostgREST runs it before the
-- request's statement, in the same transaction. A live verdict is kept for the
-- rest of that transaction in the setting rls_kit.pre_request_active, keyed
-- on the transaction's start time and the exact claims text, so the guard in
-- the request's statement costs a string comparison instead of the lookup.
-- Trust: the memo can only say "live" for the very claims it was computed
-- for; whoever could forge it (run set_config in the request's transaction)
-- could as well set request.jwt.claims to any token of their choice, which
-- the whole model already rules out (only trusted servers run SQL there). It
-- dies with the transaction (set_config(..., true)), and a memo left at
-- session level by mistake never matches a later transaction's start time.
create or replace function rls_kit.pre_request()
returns void
language plpgsql
volatile
set search_path = ''
as $$
declare
  raw constant text := coalesce(
    nullif(pg_catalog.current_setting('request.jwt.claim', true), ''),
    nullif(pg_catalog.current_setting('request.jwt.claims', true), '')
  );
  c constant jsonb := raw::jsonb;
begin
  -- Requests without a token, and API keys (anon and service_role tokens
  -- without a subject), are not user tokens: nothing to revoke.
  if c is null or (not (c ? 'sub') and coalesce(c ->> 'role', '') <> 'authenticated') then
    return;
  end if;
  if rls_kit.is_token_active() then
    perform pg_catalog.set_config('rls_kit.pre_request_active', pg_catalog.now()::text || ' ' || raw, true);
    return;
  end if;
  raise sqlstate 'PGRST' using
    message = pg_catalog.json_build_object(
      'code', 'PGRST301',
      'message', 'JWT revoked',
      'details', 'The access token was revoked, or its session has ended.',
      'hint', 'Sign in again, or refresh the session if it is still open.')::text,
    detail = pg_catalog.json_build_object(
      'status', 401,
      'headers', pg_catalog.json_build_object(
        'WWW-Authenticate', 'Bearer error="invalid_token", error_description="JWT revoked"'))::text;
end
$$;

comment on function rls_kit.pre_request() is
  'PostgREST db_pre_request hook (ALTER ROLE authenticator SET pgrst.db_pre_request = ''rls_kit.pre_request''): answers 401 with WWW-Authenticate: Bearer error="invalid_token" when the request''s user token is revoked, instead of letting RLS return empty results; a live verdict is remembered for the rest of the request''s transaction (setting rls_kit.pre_request_active, keyed on the transaction start and the exact claims), so protected tables then skip the lookup. Tokens without sub whose role is anon or service_role (API keys) pass. Protected tables keep their policy: other paths (the kit''s as-user API, Realtime, Storage) run the full check.';

-- ---------------------------------------------------------------------------
-- Housekeeping
-- ---------------------------------------------------------------------------
create or replace function rls_kit.purge_expired()
returns bigint
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  tokens bigint;
  sessions bigint;
begin
  delete from rls_kit.revoked_tokens t where t.expires_at <= pg_catalog.now();
  get diagnostics tokens = row_count;
  delete from rls_kit.revoked_sessions s where s.expires_at <= pg_catalog.now();
  get diagnostics sessions = row_count;
  return tokens + sessions;
end
$$;

comment on function rls_kit.purge_expired() is
  'Deletes revoked tokens past their expiry and ended sessions past their retention; returns how many rows went. Subject cut-offs stay (one row per user). Run it periodically (pg_cron, or rls-kit revocations purge). service_role and the server only.';

-- ---------------------------------------------------------------------------
-- NOTIFY rls_kit_revocations (statement-level, batched below 8000 bytes)
-- ---------------------------------------------------------------------------
create or replace function rls_kit.notify_revocations()
returns trigger
language plpgsql
volatile
set search_path = ''
as $$
declare
  kind constant text := case TG_TABLE_NAME
    when 'revoked_tokens' then 'jti'
    when 'subject_revocations' then 'sub'
    when 'revoked_sessions' then 'sid'
  end;
  op constant text := case TG_OP when 'DELETE' then '-' when 'TRUNCATE' then '*' else '+' end;
  head constant text := '{"t":"' || kind || '","op":"' || op || '"';
  -- Every payload stays below 8000 bytes (PostgreSQL's limit for NOTIFY):
  -- head + ',"v":[' + elements and their commas + ']}'.
  budget constant integer := 7999 - pg_catalog.octet_length(head) - 8;
  elems text[];
  batch text[] := '{}';
  used integer := 0;
  elem text;
  len integer;
begin
  if kind is null then
    raise exception 'rls_kit.notify_revocations: unexpected table %', TG_TABLE_NAME;
  end if;
  if TG_OP = 'TRUNCATE' then
    perform pg_catalog.pg_notify('rls_kit_revocations', head || '}');
    return null;
  end if;

  -- One element per row. Keys are JSON strings; times are epoch seconds,
  -- expiries rounded up and cut-offs down (both err towards "revoked").
  -- The transition table is named "changed" in every trigger below; each
  -- branch is planned only for the table it belongs to.
  if kind = 'jti' then
    select pg_catalog.array_agg(case when op = '-' then pg_catalog.to_json(c.jti)::text
             else '[' || pg_catalog.to_json(c.jti)::text || ','
                  || pg_catalog.ceil(extract(epoch from c.expires_at))::bigint::text || ']' end)
      into elems from changed c;
  elsif kind = 'sub' then
    select pg_catalog.array_agg(case when op = '-' then '"' || c.sub::text || '"'
             else '["' || c.sub::text || '",'
                  || pg_catalog.floor(extract(epoch from c.not_before))::bigint::text || ']' end)
      into elems from changed c;
  else
    select pg_catalog.array_agg(case when op = '-' then '"' || c.session_id::text || '"'
             else '["' || c.session_id::text || '",'
                  || pg_catalog.ceil(extract(epoch from c.expires_at))::bigint::text || ']' end)
      into elems from changed c;
  end if;
  if elems is null then
    return null; -- the statement changed no row
  end if;

  foreach elem in array elems loop
    len := pg_catalog.octet_length(elem) + 1;
    if used + len > budget and used > 0 then
      perform pg_catalog.pg_notify('rls_kit_revocations',
        head || ',"v":[' || pg_catalog.array_to_string(batch, ',') || ']}');
      batch := '{}';
      used := 0;
    end if;
    batch := batch || elem;
    used := used + len;
  end loop;
  perform pg_catalog.pg_notify('rls_kit_revocations',
    head || ',"v":[' || pg_catalog.array_to_string(batch, ',') || ']}');
  return null;
end
$$;

revoke all on function rls_kit.notify_revocations() from public;

comment on function rls_kit.notify_revocations() is
  'Statement-level trigger of the revocation tables: announces the changed rows on channel rls_kit_revocations as compact JSON, split into payloads below 8000 bytes ({"t":"jti"|"sub"|"sid","op":"+"|"-"|"*","v":[...]}, see docs/sql.md).';

do $notify_triggers$
declare
  tbl text;
begin
  foreach tbl in array array['revoked_tokens', 'subject_revocations', 'revoked_sessions'] loop
    -- Transition tables allow one event per trigger: three triggers, one
    -- function; TRUNCATE has no rows, only the fact.
    execute pg_catalog.format(
      'create or replace trigger rls_kit_notify_insert after insert on rls_kit.%I
         referencing new table as changed for each statement execute function rls_kit.notify_revocations()', tbl);
    execute pg_catalog.format(
      'create or replace trigger rls_kit_notify_update after update on rls_kit.%I
         referencing new table as changed for each statement execute function rls_kit.notify_revocations()', tbl);
    execute pg_catalog.format(
      'create or replace trigger rls_kit_notify_delete after delete on rls_kit.%I
         referencing old table as changed for each statement execute function rls_kit.notify_revocations()', tbl);
    execute pg_catalog.format(
      'create or replace trigger rls_kit_notify_truncate after truncate on rls_kit.%I
         for each statement execute function rls_kit.notify_revocations()', tbl);
    execute pg_catalog.format(
      'comment on trigger rls_kit_notify_insert on rls_kit.%I is %L', tbl,
      'Announces inserted revocations on channel rls_kit_revocations (op "+").');
    execute pg_catalog.format(
      'comment on trigger rls_kit_notify_update on rls_kit.%I is %L', tbl,
      'Announces updated revocations on channel rls_kit_revocations (op "+", as an upsert).');
    execute pg_catalog.format(
      'comment on trigger rls_kit_notify_delete on rls_kit.%I is %L', tbl,
      'Announces deleted revocations (purge) on channel rls_kit_revocations (op "-").');
    execute pg_catalog.format(
      'comment on trigger rls_kit_notify_truncate on rls_kit.%I is %L', tbl,
      'Announces a truncation on channel rls_kit_revocations (op "*": reload the table).');
  end loop;
end
$notify_triggers$;

-- ---------------------------------------------------------------------------
-- auth.users: credentials changed, banned, deleted -> revoke the user
-- ---------------------------------------------------------------------------
-- SECURITY DEFINER, so it works whoever changes auth.users — on Supabase that
-- is Supabase Auth as supabase_auth_admin, which needs no privilege on
-- rls_kit: a trigger's function is not privilege-checked when it fires.
create or replace function rls_kit.revoke_on_user_change()
returns trigger
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  subs uuid[];
begin
  if TG_OP = 'UPDATE' then
    perform rls_kit.revoke_subject(
      new.id,
      case
        when new.deleted_at is not null and old.deleted_at is null then 'auth.users: soft-deleted'
        when new.banned_until > pg_catalog.now()
             and new.banned_until is distinct from old.banned_until then 'auth.users: banned'
        else 'auth.users: password changed'
      end,
      true);
    return null;
  end if;
  -- DELETE, statement level: one batch for the whole statement.
  select pg_catalog.array_agg(d.id) into subs from deleted_users d;
  if subs is not null then
    perform rls_kit.revoke_subjects(subs, 'auth.users: deleted', true);
  end if;
  return null;
end
$$;

revoke all on function rls_kit.revoke_on_user_change() from public;

comment on function rls_kit.revoke_on_user_change() is
  'Trigger of auth.users: revokes the user (tokens, sessions, kit refresh families) when encrypted_password changes, banned_until is set in the future, deleted_at is set, or the row is deleted. Runs as its owner, so Supabase Auth (supabase_auth_admin) needs no privilege on rls_kit.';

create or replace trigger rls_kit_revoke_on_user_update
  after update of encrypted_password, banned_until, deleted_at on auth.users
  for each row
  when (
    new.encrypted_password is distinct from old.encrypted_password
    or (new.banned_until > pg_catalog.now() and new.banned_until is distinct from old.banned_until)
    or (new.deleted_at is not null and old.deleted_at is null)
  )
  execute function rls_kit.revoke_on_user_change();

comment on trigger rls_kit_revoke_on_user_update on auth.users is
  'supabase-rls-kit: a changed password, a ban into the future or a soft delete revokes the user''s tokens and ends their sessions.';

create or replace trigger rls_kit_revoke_on_user_delete
  after delete on auth.users
  referencing old table as deleted_users
  for each statement
  execute function rls_kit.revoke_on_user_change();

comment on trigger rls_kit_revoke_on_user_delete on auth.users is
  'supabase-rls-kit: deleting users revokes their tokens (the cut-off outlives the row) and ends their sessions.';

-- ---------------------------------------------------------------------------
-- auth.sessions: a deleted session is an ended session
-- ---------------------------------------------------------------------------
-- Supabase Auth signs a user out by deleting auth.sessions rows (one for a
-- local sign-out, all of the user's for a global one), and so do admin tools
-- and its own cleanup. Without this trigger the access tokens of such a
-- session (session_id claim) would stay live until they expire, and kit
-- logins exchanged from it could still refresh. Statement level: a global
-- sign-out or a cleanup is one batch (one NOTIFY). Recording a session twice
-- is harmless (on conflict do nothing), so revoke_session and revoke_subject,
-- which delete sessions themselves, keep their own reasons.
create or replace function rls_kit.revoke_on_session_delete()
returns trigger
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  ids uuid[];
begin
  select pg_catalog.array_agg(e.id) into ids from ended_sessions e;
  if ids is null then
    return null;
  end if;
  insert into rls_kit.revoked_sessions (session_id, sub, expires_at, reason)
  select e.id, e.user_id, pg_catalog.now() + interval '7 days', 'auth.sessions: deleted'
  from ended_sessions e
  on conflict on constraint revoked_sessions_pkey do nothing;
  -- Kit refresh families exchanged from these sessions end too, with the
  -- access tokens bound to them (their sid), as in revoke_session.
  perform rls_kit.end_exchanged_families(ids, 'auth.sessions: deleted');
  return null;
end
$$;

revoke all on function rls_kit.revoke_on_session_delete() from public;

comment on function rls_kit.revoke_on_session_delete() is
  'Trigger of auth.sessions: a deleted session (a Supabase Auth sign-out, an admin or a cleanup deleting the row) is recorded in revoked_sessions, so its access tokens (session_id claim) die at once, and the kit refresh families exchanged from it end. Runs as its owner, so Supabase Auth needs no privilege on rls_kit.';

create or replace trigger rls_kit_revoke_on_session_delete
  after delete on auth.sessions
  referencing old table as ended_sessions
  for each statement
  execute function rls_kit.revoke_on_session_delete();

comment on trigger rls_kit_revoke_on_session_delete on auth.sessions is
  'supabase-rls-kit: deleting sessions (a sign-out) ends their access tokens and the kit logins exchanged from them.';

-- ---------------------------------------------------------------------------
-- Privileges: PUBLIC gets nothing (functions are executable by PUBLIC unless
-- revoked); API roles get only the guard and the PostgREST hook.
-- ---------------------------------------------------------------------------
revoke all on function
  rls_kit.revoke_token(text, timestamptz, text, uuid),
  rls_kit.revoke_subjects(uuid[], text, boolean),
  rls_kit.revoke_subject(uuid, text, boolean),
  rls_kit.revoke_session(uuid, text),
  rls_kit.end_exchanged_families(uuid[], text),
  rls_kit.revoke_on_session_delete(),
  rls_kit.token_status(jsonb),
  rls_kit.is_token_active(),
  rls_kit.protect(regclass),
  rls_kit.pre_request(),
  rls_kit.purge_expired()
from public, anon, authenticated, service_role;

grant execute on function
  rls_kit.revoke_token(text, timestamptz, text, uuid),
  rls_kit.revoke_subjects(uuid[], text, boolean),
  rls_kit.revoke_subject(uuid, text, boolean),
  rls_kit.revoke_session(uuid, text),
  rls_kit.token_status(jsonb),
  rls_kit.purge_expired()
to service_role;

grant execute on function rls_kit.is_token_active(), rls_kit.pre_request()
  to anon, authenticated, service_role;
