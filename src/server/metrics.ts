import { Counter, collectDefaultMetrics, Gauge, Registry } from 'prom-client';
import { RlsKitError } from '../errors.js';
import {
  type OutcomeCounter,
  type OutcomeCounts,
  type VerificationOutcome,
  verificationOutcomes,
} from '../tokens/metrics.js';
import type { Verifier } from '../tokens/verify.js';
import { ALERT_EVENTS, type AlertDetector, alertEventOf } from './alerts.js';

/** How a token was issued (the `grant` label of `rls_kit_tokens_issued_total`). */
export type IssueGrant = 'token_exchange' | 'refresh_token' | 'demo_login';

const GRANTS: readonly IssueGrant[] = ['token_exchange', 'refresh_token', 'demo_login'];

/**
 * Outcome labels every scrape shows from the start (at 0), so `rate()` and
 * alert rules work before the first failure. Other `ERR_*` codes get their
 * own label once seen, up to {@link MAX_OUTCOME_LABELS}; anything beyond
 * that, or not shaped like a code, is counted as `other`.
 */
const PRESET_OUTCOMES = [
  'ok',
  'ERR_TOKEN_EXPIRED',
  'ERR_TOKEN_SIGNATURE',
  'ERR_TOKEN_ISSUER',
  'ERR_TOKEN_AUDIENCE',
  'ERR_KEY_UNKNOWN',
  'ERR_TOKEN_REVOKED',
  'ERR_TOKEN_MALFORMED',
  'ERR_REVOCATION_UNAVAILABLE',
] as const;
const MAX_OUTCOME_LABELS = 48;
const CODE = /^ERR_[A-Z][A-Z0-9_]{0,47}$/;

/**
 * The token service's Prometheus metrics; see {@link createServiceMetrics}.
 *
 * @example
 * ```ts
 * metrics.verification('ERR_TOKEN_EXPIRED');
 * metrics.issued('demo_login');
 * const { contentType, body } = await metrics.render();
 * ```
 */
export interface ServiceMetrics {
  /** This service's own registry (never prom-client's global one). */
  readonly registry: Registry;
  /**
   * An {@link OutcomeCounter} to pass as a verifier's `metricsParent`: every
   * verification of that verifier (cache hits and the edge handler's
   * included) is counted here, fed to the alert detector, and still added
   * to the process-wide `verificationOutcomes`.
   */
  readonly verifierOutcomes: OutcomeCounter;
  /** One verification ended in `outcome`: `ok` or an `ERR_*` code (from `RlsKitError.code`). */
  verification(outcome: string): void;
  /** A token was issued through `grant`. */
  issued(grant: IssueGrant): void;
  /** A refresh token was rotated (a successful `grant_type=refresh_token`). */
  refreshed(): void;
  /** A refresh token was replayed: its family was ended. */
  reuseDetected(): void;
  /** The JWKS was served or fetched, successfully or not. */
  jwksFetch(outcome: 'ok' | 'error'): void;
  /**
   * How far (seconds) the revocation list is out of sync; `read` is called
   * at scrape time (a throwing `read` is reported as `+Inf`).
   */
  revocationLag(read: () => number): void;
  /**
   * Counts a verifier that was created without `metricsParent:
   * metrics.verifierOutcomes` (e.g. inside a handler you do not
   * construct): its `metrics()` snapshot is read at every scrape and every
   * `pollMs` (default 5000; `0`: at scrapes only) and the increase is added.
   * Returns a function that stops observing.
   */
  observeVerifier(verifier: Pick<Verifier, 'metrics'>, options?: { pollMs?: number }): () => void;
  /** The exposition: `{ contentType, body }` for a `GET /metrics` response. */
  render(): Promise<{ contentType: string; body: string }>;
  /** Stops the pollers of {@link observeVerifier}. */
  close(): void;
}

/**
 * Options of {@link createServiceMetrics}.
 *
 * @example
 * ```ts
 * const options: ServiceMetricsOptions = { alerts: createAlertDetector({ logger }), processMetrics: false };
 * ```
 */
export interface ServiceMetricsOptions {
  /** Fed every verification outcome and reuse detection; its alerts are counted in `rls_kit_alerts_total`. */
  alerts?: AlertDetector | false;
  /** Metric name prefix (default `rls_kit_`). */
  prefix?: string;
  /** prom-client's default process and Node.js metrics (`process_*`, `nodejs_*`) in the registry (default true). */
  processMetrics?: boolean;
}

/**
 * Creates the token service's metrics on a registry of its own:
 *
 * | metric | type | labels |
 * |---|---|---|
 * | `rls_kit_token_verifications_total` | counter | `outcome`: `ok` or an `ERR_*` code (bounded; `other` beyond) |
 * | `rls_kit_tokens_issued_total` | counter | `grant`: `token_exchange`, `refresh_token`, `demo_login` |
 * | `rls_kit_token_refreshes_total` | counter | |
 * | `rls_kit_refresh_reuse_detected_total` | counter | |
 * | `rls_kit_jwks_fetches_total` | counter | `outcome`: `ok`, `error` |
 * | `rls_kit_revocation_lag_seconds` | gauge | (read at scrape time) |
 * | `rls_kit_alerts_total` | counter | `event`: the detector's events |
 * | `rls_kit_token_event_rate`, `rls_kit_token_event_baseline` | gauge | `event` (with a detector only) |
 *
 * plus prom-client's default `process_*` / `nodejs_*` metrics unless
 * `processMetrics: false`. Labels never carry a token, subject, kid or
 * path: only the closed sets above.
 *
 * @example
 * ```ts
 * const metrics = createServiceMetrics({ alerts: createAlertDetector({ logger }) });
 * const verifier = createVerifier({ ...options, metricsParent: metrics.verifierOutcomes });
 * app.get('/metrics', async (c) => {
 *   const { contentType, body } = await metrics.render();
 *   return c.body(body, 200, { 'content-type': contentType });
 * });
 * ```
 */
export function createServiceMetrics(options: ServiceMetricsOptions = {}): ServiceMetrics {
  const prefix = options.prefix ?? 'rls_kit_';
  if (!/^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(prefix)) {
    throw new RlsKitError('ERR_CONFIG', 'the metrics prefix must be a valid Prometheus name start');
  }
  const alerts = options.alerts || undefined;
  const registry = new Registry();
  const registers = [registry];

  const verifications = new Counter({
    name: `${prefix}token_verifications_total`,
    help: 'Token verifications by outcome: ok or the error code',
    labelNames: ['outcome'],
    registers,
  });
  const issuedTotal = new Counter({
    name: `${prefix}tokens_issued_total`,
    help: 'Access tokens issued, by grant',
    labelNames: ['grant'],
    registers,
  });
  const refreshes = new Counter({
    name: `${prefix}token_refreshes_total`,
    help: 'Refresh tokens rotated (successful refresh_token grants)',
    registers,
  });
  const reuse = new Counter({
    name: `${prefix}refresh_reuse_detected_total`,
    help: 'Refresh tokens replayed after rotation (the family was ended)',
    registers,
  });
  const jwks = new Counter({
    name: `${prefix}jwks_fetches_total`,
    help: 'JWKS fetches, by outcome',
    labelNames: ['outcome'],
    registers,
  });
  let lagReader: (() => number) | undefined;
  new Gauge({
    name: `${prefix}revocation_lag_seconds`,
    help: 'How long the revocation list has been out of sync with the database (0 while in sync)',
    registers,
    collect() {
      if (!lagReader) return;
      let value: number;
      try {
        value = lagReader();
      } catch {
        // Unknown is not "in sync": +Inf trips any lag alert rule, where NaN would compare false.
        value = Number.POSITIVE_INFINITY;
      }
      this.set(value);
    },
  });
  const alertsTotal = new Counter({
    name: `${prefix}alerts_total`,
    help: 'Alerts logged by the token-pattern detector, by event',
    labelNames: ['event'],
    registers,
  });

  for (const o of PRESET_OUTCOMES) verifications.inc({ outcome: o }, 0);
  for (const g of GRANTS) issuedTotal.inc({ grant: g }, 0);
  jwks.inc({ outcome: 'ok' }, 0);
  jwks.inc({ outcome: 'error' }, 0);
  for (const e of ALERT_EVENTS) alertsTotal.inc({ event: e }, 0);
  if (alerts) {
    alerts.subscribe((a) => alertsTotal.inc({ event: a.event }));
    // What the detector compares, for dashboards: the window's rate against the baseline.
    const read = (pick: 'rate' | 'baseline') =>
      function (this: Gauge<'event'>) {
        for (const s of alerts.state()) this.set({ event: s.event }, s[pick]);
      };
    new Gauge({
      name: `${prefix}token_event_rate`,
      help: 'Alert detector: events per second over its short window, by event',
      labelNames: ['event'],
      registers,
      collect: read('rate'),
    });
    new Gauge({
      name: `${prefix}token_event_baseline`,
      help: 'Alert detector: the baseline rate (events per second) the window is compared with',
      labelNames: ['event'],
      registers,
      collect: read('baseline'),
    });
  }
  if (options.processMetrics ?? true) collectDefaultMetrics({ register: registry });

  const labels = new Set<string>(PRESET_OUTCOMES);
  const outcomeLabel = (outcome: string): string => {
    if (labels.has(outcome)) return outcome;
    if (typeof outcome === 'string' && CODE.test(outcome) && labels.size < MAX_OUTCOME_LABELS) {
      labels.add(outcome);
      return outcome;
    }
    return 'other';
  };

  const verification = (outcome: string, n = 1, alert = true): void => {
    verifications.inc({ outcome: outcomeLabel(outcome) }, n);
    if (alerts && alert && outcome !== 'ok') {
      const event = alertEventOf(outcome);
      if (event) alerts.record(event, n);
    }
  };

  // The verifier's counter interface, forwarding to the process-wide totals as a default parent would.
  const own = new Map<string, number>();
  let ok = 0;
  const verifierOutcomes: OutcomeCounter = {
    record(outcome: VerificationOutcome) {
      if (outcome === 'ok') ok++;
      else own.set(outcome, (own.get(outcome) ?? 0) + 1);
      verification(outcome);
      verificationOutcomes.record(outcome);
    },
    snapshot() {
      const counts: OutcomeCounts = { ok };
      for (const [code, n] of own) (counts as Record<string, number>)[code] = n;
      return counts;
    },
  };

  const observers = new Set<() => void>();
  const timers = new Set<ReturnType<typeof setInterval>>();

  return {
    registry,
    verifierOutcomes,
    verification: (outcome) => verification(outcome),
    issued(grant) {
      issuedTotal.inc({ grant: GRANTS.includes(grant) ? grant : 'other' });
    },
    refreshed: () => refreshes.inc(),
    reuseDetected() {
      reuse.inc();
      alerts?.record('refresh_reuse');
    },
    jwksFetch(outcome) {
      jwks.inc({ outcome: outcome === 'ok' ? 'ok' : 'error' });
    },
    revocationLag(read) {
      lagReader = read;
    },
    observeVerifier(verifier, { pollMs = 5000 } = {}) {
      const seen = new Map<string, number>();
      const sample = (alert = true) => {
        let snap: OutcomeCounts;
        try {
          snap = verifier.metrics();
        } catch {
          return;
        }
        for (const [outcome, total] of Object.entries(snap)) {
          if (typeof total !== 'number') continue;
          const delta = total - (seen.get(outcome) ?? 0);
          if (delta > 0) verification(outcome, delta, alert);
          seen.set(outcome, total);
        }
      };
      // Counts from before observing are totals, not a spike happening now: counted, not alerted on.
      sample(false);
      const poll = () => sample();
      observers.add(poll);
      let timer: ReturnType<typeof setInterval> | undefined;
      if (pollMs > 0) {
        timer = setInterval(poll, pollMs);
        timer.unref();
        timers.add(timer);
      }
      return () => {
        sample();
        observers.delete(poll);
        if (timer) {
          clearInterval(timer);
          timers.delete(timer);
        }
      };
    },
    async render() {
      for (const sample of observers) sample();
      return { contentType: registry.contentType, body: await registry.metrics() };
    },
    close() {
      for (const t of timers) clearInterval(t);
      timers.clear();
      observers.clear();
    },
  };
}
