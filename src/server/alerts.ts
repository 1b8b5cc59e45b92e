import { RlsKitError } from '../errors.js';

/**
 * The token events the detector watches. Each is a sign of trouble when its
 * rate jumps: `expired` (clients with broken refresh, or replayed captures),
 * `unknown_issuer` (tokens from another issuer or for a key this service
 * never published — forgeries or misconfigured clients), `bad_signature`
 * (tampered tokens, algorithm confusion attempts), `revoked` (a stolen token
 * being tried after revocation) and `refresh_reuse` (a refresh token
 * replayed: theft).
 *
 * @example
 * ```ts
 * const event: AlertEvent = 'bad_signature';
 * ```
 */
export type AlertEvent =
  | 'expired'
  | 'unknown_issuer'
  | 'bad_signature'
  | 'revoked'
  | 'refresh_reuse';

/** Every {@link AlertEvent}, in a stable order (for metrics and iteration). */
export const ALERT_EVENTS: readonly AlertEvent[] = [
  'expired',
  'unknown_issuer',
  'bad_signature',
  'revoked',
  'refresh_reuse',
];

/** Which error codes count as which event; other outcomes are not watched. */
const EVENT_OF_CODE: Readonly<Record<string, AlertEvent>> = {
  ERR_TOKEN_EXPIRED: 'expired',
  ERR_TOKEN_ISSUER: 'unknown_issuer',
  // A token naming a kid this service never published is, in practice, another issuer's token:
  // the key is looked up before jose ever compares `iss`.
  ERR_KEY_UNKNOWN: 'unknown_issuer',
  ERR_TOKEN_SIGNATURE: 'bad_signature',
  // An algorithm that is not the key's is a forgery attempt (alg confusion), not a client bug.
  ERR_TOKEN_ALG: 'bad_signature',
  ERR_TOKEN_REVOKED: 'revoked',
  ERR_REFRESH_REUSED: 'refresh_reuse',
};

/**
 * The event a verification or refresh outcome counts as, or `undefined`
 * when the detector does not watch it (`ok`, malformed input, ...).
 *
 * @example
 * ```ts
 * alertEventOf('ERR_TOKEN_EXPIRED'); // 'expired'
 * alertEventOf('ok'); // undefined
 * ```
 */
export function alertEventOf(outcome: string): AlertEvent | undefined {
  return Object.hasOwn(EVENT_OF_CODE, outcome) ? EVENT_OF_CODE[outcome] : undefined;
}

/**
 * When the detector alerts on one event. An alert fires when, over the last
 * `windowSeconds`, at least `minCount` events happened and their rate is
 * above `multiplier × max(baseline, minBaselineRate)`.
 *
 * @example
 * ```ts
 * const t: AlertThresholds = { ...DEFAULT_ALERT_THRESHOLDS, multiplier: 5 };
 * ```
 */
export interface AlertThresholds {
  /** The short window whose rate is compared with the baseline (seconds; a multiple of `bucketSeconds`). */
  windowSeconds: number;
  /** Time constant of the baseline's exponentially weighted moving average (seconds). */
  baselineSeconds: number;
  /** Resolution of the window and of baseline updates (seconds). */
  bucketSeconds: number;
  /** How many times the baseline the window's rate must exceed. */
  multiplier: number;
  /** At least this many events in the window before anything is said (no alerts on noise). */
  minCount: number;
  /** Floor of the baseline, events per second (a quiet service has a baseline near 0). */
  minBaselineRate: number;
  /** After an alert, the same event stays quiet this long (seconds), however high its rate. */
  cooldownSeconds: number;
  /**
   * No alerts this long after the detector starts (seconds): the baseline
   * is learned first, so a restart of a busy service does not look like a spike.
   */
  warmupSeconds: number;
}

/**
 * Defaults: a 1-minute window against a 30-minute baseline, 4× and at
 * least 20 events (so at least 4 × 0.05/s = 12/min), one alert per event
 * per 10 minutes. Refresh-token reuse is theft, so it needs only 5 events.
 */
export const DEFAULT_ALERT_THRESHOLDS: Readonly<AlertThresholds> = Object.freeze({
  windowSeconds: 60,
  baselineSeconds: 1800,
  bucketSeconds: 10,
  multiplier: 4,
  minCount: 20,
  minBaselineRate: 0.05,
  cooldownSeconds: 600,
  warmupSeconds: 120,
});

const EVENT_DEFAULTS: Readonly<Partial<Record<AlertEvent, Partial<AlertThresholds>>>> = {
  refresh_reuse: { minCount: 5, minBaselineRate: 0.01 },
};

/**
 * One alert, as logged (pino `warn`, this object as the log record's fields).
 *
 * @example
 * ```ts
 * const a: TokenAlert = { alert: 'token_event_rate', event: 'revoked', rate: 2.5, baseline: 0.01,
 *   threshold: 0.2, count: 150, windowSeconds: 60 };
 * ```
 */
export interface TokenAlert {
  /** Always `token_event_rate`: what kind of alert this is, for log queries. */
  readonly alert: 'token_event_rate';
  readonly event: AlertEvent;
  /** Events per second over the window. */
  readonly rate: number;
  /** The baseline rate (events per second) the window was compared with (before the floor). */
  readonly baseline: number;
  /** The rate above which this alert fired: `multiplier × max(baseline, minBaselineRate)`. */
  readonly threshold: number;
  /** Events in the window. */
  readonly count: number;
  readonly windowSeconds: number;
}

/** What one event looks like to the detector right now (for metrics and tests). */
export interface AlertEventState {
  readonly event: AlertEvent;
  readonly count: number;
  readonly rate: number;
  readonly baseline: number;
  readonly threshold: number;
}

/** The logger the detector writes to: a pino logger fits. */
export interface AlertLogger {
  warn(obj: object, msg: string): void;
}

/**
 * Options of {@link createAlertDetector}.
 *
 * @example
 * ```ts
 * const options: AlertDetectorOptions = { logger: pino(), thresholds: { multiplier: 5 } };
 * ```
 */
export interface AlertDetectorOptions {
  /** Receives each alert as `warn({ alert, event, rate, baseline, threshold, count, windowSeconds }, msg)`. */
  logger: AlertLogger;
  /** Overrides for every event. */
  thresholds?: Partial<AlertThresholds>;
  /** Overrides per event, applied after `thresholds`. */
  events?: Partial<Record<AlertEvent, Partial<AlertThresholds>>>;
  /** Milliseconds since the epoch; tests inject a fake clock (default `Date.now`). */
  clock?: () => number;
}

/**
 * Watches token events and logs one structured alert when an event's rate
 * rises above its baseline; see {@link createAlertDetector}.
 *
 * @example
 * ```ts
 * detector.recordOutcome(err.code); // after a failed verification
 * detector.record('refresh_reuse');
 * ```
 */
export interface AlertDetector {
  /** Counts `n` (default 1) occurrences of `event` now, and alerts if that crosses the threshold. */
  record(event: AlertEvent, n?: number): void;
  /** Counts an outcome code (`ERR_TOKEN_EXPIRED`, ...) if it maps to an event; ignores the rest. */
  recordOutcome(outcome: string): void;
  /** Calls `listener` with every alert (after it is logged); returns the unsubscribe function. */
  subscribe(listener: (alert: TokenAlert) => void): () => void;
  /** Each event's window count, rate, baseline and threshold now. */
  state(): AlertEventState[];
  /** The thresholds in force for `event`. */
  thresholds(event: AlertEvent): Readonly<AlertThresholds>;
}

/** Per-event sliding state: a ring of bucket counts plus the EWMA baseline. */
interface Track {
  readonly event: AlertEvent;
  readonly t: Readonly<AlertThresholds>;
  readonly bucketMs: number;
  readonly ring: number[];
  /** Sum of the ring (events in the window). */
  sum: number;
  /** Absolute index (clock / bucketMs) of the newest bucket. */
  bucket: number;
  /** The EWMA before bias correction (it starts at 0). */
  raw: number;
  /** Closed buckets so far (for the bias correction). */
  closed: number;
  baseline: number;
  /** Weight of the newest closed bucket in the EWMA. */
  readonly alpha: number;
  quietUntil: number;
}

/**
 * The built-in detector of unusual token patterns. Per event it keeps the
 * count of the last `windowSeconds` (in `bucketSeconds` buckets) and a
 * baseline: an exponentially weighted moving average of the per-bucket
 * rate with time constant `baselineSeconds`, fed each bucket as it closes
 * (so a sudden spike barely moves its own baseline), bias-corrected so
 * that it is the plain mean while the history is short. No alerts during
 * the first `warmupSeconds`. It works on `record`
 * only: no timers, nothing to stop, and with an injected clock every
 * decision is deterministic.
 *
 * One alert per event per `cooldownSeconds`, logged with `warn` as
 * `{ alert: 'token_event_rate', event, rate, baseline, threshold, count, windowSeconds }`.
 * Alerts carry counts and rates only — never a token, subject or address.
 *
 * @example
 * ```ts
 * import pino from 'pino';
 * const detector = createAlertDetector({ logger: pino(), thresholds: { multiplier: 5 } });
 * try { await verifier.verify(token); } catch (err) { detector.recordOutcome(err.code); throw err; }
 * ```
 */
export function createAlertDetector(options: AlertDetectorOptions): AlertDetector {
  const { logger } = options;
  if (typeof logger?.warn !== 'function') {
    throw new RlsKitError('ERR_CONFIG', 'createAlertDetector needs a logger with a warn method');
  }
  const clock = options.clock ?? Date.now;
  const startedAt = clock();
  const listeners = new Set<(alert: TokenAlert) => void>();
  const tracks = new Map<AlertEvent, Track>();
  for (const event of ALERT_EVENTS) {
    const t = checkThresholds(
      {
        ...DEFAULT_ALERT_THRESHOLDS,
        ...EVENT_DEFAULTS[event],
        ...options.thresholds,
        ...options.events?.[event],
      },
      event,
    );
    const bucketMs = t.bucketSeconds * 1000;
    tracks.set(event, {
      event,
      t,
      bucketMs,
      ring: new Array<number>(t.windowSeconds / t.bucketSeconds).fill(0),
      sum: 0,
      bucket: Math.floor(startedAt / bucketMs),
      raw: 0,
      closed: 0,
      baseline: 0,
      alpha: 1 - Math.exp(-t.bucketSeconds / t.baselineSeconds),
      quietUntil: Number.NEGATIVE_INFINITY,
    });
  }

  /** Moves the track to the bucket of `now`, closing (and learning from) the buckets passed. */
  const advance = (track: Track, now: number): void => {
    const target = Math.floor(now / track.bucketMs);
    const steps = target - track.bucket;
    if (steps <= 0) return; // same bucket, or the clock went back: keep counting in the newest
    const size = track.ring.length;
    const perBucket = 1 / track.t.bucketSeconds;
    // Close the newest bucket and up to one window's worth of (empty) buckets one by one...
    const walk = Math.min(steps, size);
    for (let i = 1; i <= walk; i++) {
      const closing = track.ring[(track.bucket + i - 1) % size]!;
      track.raw += track.alpha * (closing * perBucket - track.raw);
      const slot = (track.bucket + i) % size;
      track.sum -= track.ring[slot]!;
      track.ring[slot] = 0;
    }
    // ...and decay the baseline in closed form over a longer silence (every bucket in it was 0).
    if (steps > walk) track.raw *= (1 - track.alpha) ** (steps - walk);
    track.closed += steps;
    // Bias-corrected: an EWMA started at 0 underestimates until it has seen ~baselineSeconds;
    // dividing by the weight seen so far makes the early baseline the mean of the buckets so far.
    const seen = 1 - (1 - track.alpha) ** track.closed;
    track.baseline = seen > 0 ? track.raw / seen : 0;
    track.bucket = target;
  };

  const stateOf = (track: Track): AlertEventState => {
    const rate = track.sum / track.t.windowSeconds;
    const threshold = track.t.multiplier * Math.max(track.baseline, track.t.minBaselineRate);
    return { event: track.event, count: track.sum, rate, baseline: track.baseline, threshold };
  };

  const record = (event: AlertEvent, n = 1): void => {
    const track = tracks.get(event);
    if (!track || !(n > 0) || !Number.isFinite(n)) return;
    const now = clock();
    advance(track, now);
    track.ring[track.bucket % track.ring.length]! += n;
    track.sum += n;
    if (now < track.quietUntil || track.sum < track.t.minCount) return;
    if (now - startedAt < track.t.warmupSeconds * 1000) return;
    const s = stateOf(track);
    if (!(s.rate > s.threshold)) return;
    track.quietUntil = now + track.t.cooldownSeconds * 1000;
    const alert: TokenAlert = {
      alert: 'token_event_rate',
      event,
      rate: round(s.rate),
      baseline: round(s.baseline),
      threshold: round(s.threshold),
      count: s.count,
      windowSeconds: track.t.windowSeconds,
    };
    logger.warn(
      alert,
      `token ${event} events are ${(s.rate / s.threshold).toFixed(1)}× above the alert threshold`,
    );
    for (const l of listeners) {
      try {
        l(alert);
      } catch {
        // A failing listener (a metrics hook) must not break the request that recorded the event.
      }
    }
  };

  return {
    record,
    recordOutcome(outcome) {
      const event = alertEventOf(outcome);
      if (event) record(event);
    },
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    state() {
      const now = clock();
      return ALERT_EVENTS.map((e) => {
        const track = tracks.get(e)!;
        advance(track, now);
        return stateOf(track);
      });
    },
    thresholds: (event) => tracks.get(event)!.t,
  };
}

function checkThresholds(t: AlertThresholds, event: AlertEvent): Readonly<AlertThresholds> {
  const bad = (what: string): never => {
    throw new RlsKitError('ERR_CONFIG', `alert thresholds for ${event}: ${what}`);
  };
  const positive = (name: keyof AlertThresholds, allowZero = false) => {
    const v = t[name];
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || (!allowZero && v === 0)) {
      bad(`${name} must be a ${allowZero ? 'non-negative' : 'positive'} number`);
    }
  };
  positive('windowSeconds');
  positive('baselineSeconds');
  positive('bucketSeconds');
  positive('multiplier');
  positive('minCount', true);
  positive('minBaselineRate', true);
  positive('cooldownSeconds', true);
  positive('warmupSeconds', true);
  const buckets = t.windowSeconds / t.bucketSeconds;
  if (!Number.isInteger(buckets) || buckets < 1 || buckets > 3600) {
    bad('windowSeconds must be a whole multiple (1 to 3600) of bucketSeconds');
  }
  if (t.baselineSeconds < t.windowSeconds) bad('baselineSeconds must be at least windowSeconds');
  return Object.freeze({ ...t });
}

function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}
