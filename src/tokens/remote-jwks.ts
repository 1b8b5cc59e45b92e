import { RlsKitError } from '../errors.js';
import type { SigningAlg } from '../keys/types.js';
import {
  describeKeySet,
  importDescriptor,
  type KeyEntry,
  type KeySet,
  type KeySource,
  keySet,
  selectKey,
  unknownKey,
} from './key-source.js';

/**
 * How a verifier keeps a remote JWKS (all durations in milliseconds).
 *
 * @example
 * ```ts
 * const keys: RemoteJwksOptions = { jwksUrl: 'https://api.example.com/.well-known/jwks.json', cacheTtl: 15 * 60_000 };
 * ```
 */
export interface RemoteJwksOptions {
  /** The JWKS URL: `https:`, or `http:` on a loopback host only. */
  jwksUrl: string;
  /** How long a fetched key set is used before it is fetched again; 5–60 min, default 10 min. */
  cacheTtl?: number;
  /** At most one fetch per cooldown, whatever triggers it (unknown `kid`, failures); default 30 s. */
  cooldown?: number;
  /** Fetch timeout, whole response included; default 5 s. */
  timeout?: number;
  /** How long past its TTL the last good set keeps serving while the endpoint fails; default 1 h. */
  staleFor?: number;
}

const MINUTE = 60_000;
const MAX_JWKS_BYTES = 512 * 1024;
const REDIRECTS = new Set([301, 302, 303, 307, 308]);

/** Checked, defaulted timings. */
interface Timings {
  readonly ttl: number;
  readonly cooldown: number;
  readonly timeout: number;
  readonly staleFor: number;
}

/**
 * Validates the remote JWKS options: the URL scheme and the production
 * bounds (a TTL under 5 minutes would hammer the issuer; over 60 minutes
 * delays key rotation and revocation of a compromised key). Tests shorten
 * time with the verifier's injected clock, not by lowering these floors.
 *
 * @example
 * ```ts
 * remoteJwksTimings({ jwksUrl: 'https://x.example/jwks.json' }).timings.ttl; // 600_000
 * ```
 */
export function remoteJwksTimings(options: RemoteJwksOptions): { url: URL; timings: Timings } {
  const url = checkJwksUrl(options.jwksUrl);
  const ttl = within('cacheTtl', options.cacheTtl ?? 10 * MINUTE, 5 * MINUTE, 60 * MINUTE);
  const cooldown = within('cooldown', options.cooldown ?? 30_000, 1_000, ttl);
  const timeout = within('timeout', options.timeout ?? 5_000, 1, 60_000);
  const staleFor = within('staleFor', options.staleFor ?? 60 * MINUTE, 0, 24 * 60 * MINUTE);
  return { url, timings: { ttl, cooldown, timeout, staleFor } };
}

function within(name: string, value: number, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max) {
    throw new RlsKitError(
      'ERR_CONFIG',
      `keys.${name} must be between ${min} and ${max} ms (got ${String(value)})`,
    );
  }
  return value;
}

/** Loopback hosts, where plain http cannot be intercepted on the network. */
function isLoopback(hostname: string): boolean {
  return (
    hostname === 'localhost' ||
    hostname === '[::1]' ||
    /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(hostname)
  );
}

function checkJwksUrl(raw: string): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch (err) {
    throw new RlsKitError('ERR_CONFIG', 'keys.jwksUrl is not a valid URL', { cause: err });
  }
  if (url.username || url.password) {
    throw new RlsKitError('ERR_CONFIG', 'keys.jwksUrl must not carry credentials');
  }
  if (!(url.protocol === 'https:' || (url.protocol === 'http:' && isLoopback(url.hostname)))) {
    throw new RlsKitError(
      'ERR_CONFIG',
      'keys.jwksUrl must use https (plain http only on a loopback host such as 127.0.0.1)',
    );
  }
  return url;
}

/** The URL without query or fragment, for messages. */
function describe(url: URL): string {
  return `${url.origin}${url.pathname}`;
}

/**
 * A remote JWKS as a {@link KeySource}: fetched on first use, kept for the
 * TTL, refetched at most once per cooldown (an unknown `kid` may trigger it,
 * so a flood of random kids costs the issuer one request per cooldown),
 * concurrent fetches coalesced into one, and the last good set served for
 * `staleFor` past its TTL while the endpoint fails. After that the keys are
 * dropped and verification fails closed with `ERR_JWKS_UNAVAILABLE`.
 *
 * @example
 * ```ts
 * const source = remoteJwksSource({ jwksUrl }, new Set(['ES256']));
 * const key = await source.resolve(kid, Date.now());
 * ```
 */
export function remoteJwksSource(
  options: RemoteJwksOptions,
  allowed: ReadonlySet<SigningAlg>,
): KeySource {
  const { url, timings } = remoteJwksTimings(options);
  const where = `the JWKS at ${describe(url)}`;
  let set: KeySet | undefined;
  let fetchedAt = Number.NEGATIVE_INFINITY;
  let lastAttempt = Number.NEGATIVE_INFINITY;
  let lastError: RlsKitError | undefined;
  let inflight: Promise<void> | undefined;
  const listeners: ((removed: readonly KeyEntry[]) => void)[] = [];

  const install = (entries: KeyEntry[]) => {
    const next = keySet(entries, 'ERR_JWKS_UNAVAILABLE', where);
    const kept = new Set(entries);
    const removed = set ? set.all.filter((e) => !kept.has(e)) : [];
    set = next;
    retire(removed);
  };

  const retire = (removed: readonly KeyEntry[]) => {
    if (removed.length === 0) return;
    for (const e of removed) e.live = false;
    for (const l of listeners) l(removed);
  };

  const fetchOnce = async (): Promise<void> => {
    try {
      const doc = await fetchJson(url, timings.timeout, where);
      const descriptors = describeKeySet(doc, { origin: 'remote', allowed, where });
      // Reuse entries whose key did not change, so their cached tokens stay cached.
      const previous = new Map((set?.all ?? []).map((e) => [e.fingerprint + (e.kid ?? ''), e]));
      const entries = await Promise.all(
        descriptors.map(async (d) => {
          const same = previous.get(d.fingerprint + (d.kid ?? ''));
          if (same && same.notAfter === d.notAfter) return same;
          try {
            return await importDescriptor(d);
          } catch (err) {
            throw new RlsKitError(
              'ERR_JWKS_UNAVAILABLE',
              `${where} holds a key that cannot be imported`,
              {
                cause: err,
              },
            );
          }
        }),
      );
      install(entries);
      fetchedAt = lastAttempt;
      lastError = undefined;
    } catch (err) {
      lastError =
        err instanceof RlsKitError && err.code === 'ERR_JWKS_UNAVAILABLE'
          ? err
          : new RlsKitError(
              'ERR_JWKS_UNAVAILABLE',
              `${where} is unusable: ${err instanceof Error ? err.message : String(err)}`,
              { cause: err },
            );
    }
  };

  /** Starts a fetch unless one is running (join it) or the cooldown forbids it. */
  const refresh = (now: number): Promise<void> => {
    if (inflight) return inflight;
    if (now - lastAttempt < timings.cooldown) return Promise.resolve();
    lastAttempt = now;
    inflight = fetchOnce().finally(() => {
      inflight = undefined;
    });
    return inflight;
  };

  /** The set if still within TTL + staleFor; past that, the keys are dropped (fail closed). */
  const usable = (now: number): KeySet | undefined => {
    if (set && now - fetchedAt >= timings.ttl + timings.staleFor) {
      const dropped = set.all;
      set = undefined;
      retire(dropped);
    }
    return set;
  };

  const unavailable = () =>
    lastError ??
    new RlsKitError('ERR_JWKS_UNAVAILABLE', `${where} has not answered with a usable key set yet`);

  return {
    peek(now) {
      return set && now - fetchedAt < timings.ttl ? set : undefined;
    },
    async resolve(kid, now) {
      if (!set || now - fetchedAt >= timings.ttl) await refresh(now);
      let current = usable(now);
      if (!current) throw unavailable();
      let entry = selectKey(current, kid);
      if (!entry && kid !== undefined && (inflight || now - lastAttempt >= timings.cooldown)) {
        // An unknown kid may be a key published after our last fetch: look once per cooldown
        // (or join the fetch already running, so concurrent tokens of a new key all pass).
        await refresh(now);
        current = usable(now);
        if (!current) throw unavailable();
        entry = selectKey(current, kid);
      }
      if (!entry) throw unknownKey(kid);
      return entry;
    },
    fresh(now) {
      if (!set) return false;
      const age = now - fetchedAt;
      if (age < timings.ttl) return true;
      // Past the TTL: cached tokens may still be served while a failed refresh is cooling down
      // and the stale bound holds; otherwise the caller takes the slow path, which refreshes.
      return (
        !inflight && now - lastAttempt < timings.cooldown && age < timings.ttl + timings.staleFor
      );
    },
    async load(now) {
      await refresh(now);
      if (!usable(now)) throw unavailable();
    },
    onRemoved(listener) {
      listeners.push(listener);
    },
  };
}

/**
 * GETs a JSON document: no redirects to another origin (an open redirect on
 * the issuer must not turn into keys from elsewhere), a size cap, one
 * timeout for the whole exchange, and one clear message per failure.
 */
async function fetchJson(url: URL, timeoutMs: number, where: string): Promise<unknown> {
  const signal = AbortSignal.timeout(timeoutMs);
  const fail = (what: string, cause?: unknown) =>
    new RlsKitError(
      'ERR_JWKS_UNAVAILABLE',
      `${where} ${what}`,
      cause === undefined ? undefined : { cause },
    );
  let target = url;
  for (let hop = 0; ; hop++) {
    let res: Response;
    try {
      res = await fetch(target, {
        redirect: 'manual',
        signal,
        headers: { accept: 'application/jwk-set+json, application/json' },
      });
    } catch (err) {
      if (signal.aborted) throw fail(`did not answer within ${timeoutMs} ms`, err);
      throw fail(`could not be reached (${networkReason(err)})`, err);
    }
    if (REDIRECTS.has(res.status)) {
      await res.body?.cancel().catch(() => undefined);
      const location = res.headers.get('location');
      if (!location || hop >= 3) throw fail('redirects too often or without a location');
      const next = new URL(location, target);
      const sameHost = next.host === url.host;
      const okScheme =
        next.protocol === 'https:' || (next.protocol === url.protocol && isLoopback(next.hostname));
      if (!sameHost || !okScheme)
        throw fail('redirects to another host or to plain http; refusing');
      target = next;
      continue;
    }
    if (res.status !== 200) {
      await res.body?.cancel().catch(() => undefined);
      throw fail(`answered HTTP ${res.status}`);
    }
    let text: string;
    try {
      text = await readCapped(res, MAX_JWKS_BYTES);
    } catch (err) {
      if (signal.aborted) throw fail(`did not answer within ${timeoutMs} ms`, err);
      throw fail(err instanceof Error ? err.message : 'sent an unreadable body', err);
    }
    const type = res.headers.get('content-type') ?? '';
    if (/html/i.test(type) || /^\s*</.test(text)) {
      throw fail('answered HTML, not a JWK Set (is the URL right?)');
    }
    try {
      return JSON.parse(text) as unknown;
    } catch (err) {
      throw fail('answered something that is not JSON', err);
    }
  }
}

async function readCapped(res: Response, max: number): Promise<string> {
  const declared = Number(res.headers.get('content-length') ?? Number.NaN);
  if (declared > max) {
    await res.body?.cancel().catch(() => undefined);
    throw new Error(`sent ${declared} bytes; a JWK Set over ${max} bytes is refused`);
  }
  if (!res.body) return '';
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > max) {
      await reader.cancel().catch(() => undefined);
      throw new Error(`sent over ${max} bytes; a JWK Set that large is refused`);
    }
    chunks.push(value);
  }
  const all = new Uint8Array(size);
  let offset = 0;
  for (const c of chunks) {
    all.set(c, offset);
    offset += c.byteLength;
  }
  return new TextDecoder().decode(all);
}

function networkReason(err: unknown): string {
  const cause = (err as { cause?: { code?: unknown } }).cause;
  if (cause && typeof cause.code === 'string') return cause.code;
  return err instanceof Error ? err.message.split('\n')[0]! : 'network error';
}
