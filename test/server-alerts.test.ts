import { Writable } from 'node:stream';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { isRlsKitError } from '../src/errors.js';
import {
  type AlertDetectorOptions,
  alertEventOf,
  createAlertDetector,
  DEFAULT_ALERT_THRESHOLDS,
  type TokenAlert,
} from '../src/server/alerts.js';
import { fakeClock } from './helpers/tokens.js';

/** A real pino logger writing JSON lines into memory. */
function capturedLogger() {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk, _enc, done) {
      for (const line of String(chunk).split('\n')) if (line.trim()) lines.push(JSON.parse(line));
      done();
    },
  });
  const logger = pino({ level: 'info' }, stream);
  return { logger, lines, alerts: () => lines.filter((l) => l.alert !== undefined) };
}

/** A detector on a fake clock; `warm` (default) moves past the warm-up with nothing recorded (a quiet service). */
function setup(extra: Partial<AlertDetectorOptions> = {}, warm = true) {
  const clock = fakeClock(Date.UTC(2026, 0, 1));
  const log = capturedLogger();
  const detector = createAlertDetector({ logger: log.logger, clock: clock.now, ...extra });
  if (warm) clock.advance(DEFAULT_ALERT_THRESHOLDS.warmupSeconds * 1000);
  return { clock, log, detector };
}

/** `count` events of `event` spread evenly over `seconds`. */
function steady(
  s: ReturnType<typeof setup>,
  event: Parameters<ReturnType<typeof setup>['detector']['record']>[0],
  perSecond: number,
  seconds: number,
) {
  const stepMs = 1000 / perSecond;
  const n = Math.round(perSecond * seconds);
  for (let i = 0; i < n; i++) {
    s.clock.advance(stepMs);
    s.detector.record(event);
  }
}

describe('alert detector', () => {
  it('stays quiet at a steady rate and logs one structured warn when the rate jumps above the baseline', () => {
    const s = setup();
    steady(s, 'expired', 0.1, 1800); // 30 min at 6/min: the baseline
    expect(s.log.alerts()).toEqual([]);
    const before = s.detector.state().find((e) => e.event === 'expired')!;
    expect(before.baseline).toBeGreaterThan(0.06);
    expect(before.baseline).toBeLessThan(0.12);

    steady(s, 'expired', 5, 20); // a burst: 100 in 20 s
    const alerts = s.log.alerts();
    expect(alerts).toHaveLength(1);
    const a = alerts[0]!;
    expect(a.level).toBe(40); // pino warn
    expect(a.alert).toBe('token_event_rate');
    expect(a.event).toBe('expired');
    expect(a.windowSeconds).toBe(60);
    expect(a.rate as number).toBeGreaterThan(a.threshold as number);
    expect(a.threshold as number).toBeCloseTo(4 * (a.baseline as number), 2);
    expect(a.baseline as number).toBeGreaterThan(0.06);
    expect(a.count as number).toBeGreaterThanOrEqual(20);
    expect(typeof a.msg).toBe('string');
    expect(a.msg as string).toContain('expired');
  });

  it('compares with the baseline, not an absolute number: a busy service does not alert at its usual rate', () => {
    const s = setup({}, false);
    steady(s, 'revoked', 2, 3600); // 2/s for an hour
    expect(s.log.alerts()).toEqual([]);
    steady(s, 'revoked', 4, 120); // 2× the baseline: below the 4× multiplier
    expect(s.log.alerts()).toEqual([]);
    steady(s, 'revoked', 15, 60); // 7.5× the baseline
    expect(s.log.alerts().map((a) => a.event)).toEqual(['revoked']);
  });

  it('learns during the warm-up: a busy service restarting does not alert, a spike after it does', () => {
    const s = setup({}, false);
    steady(s, 'expired', 3, 600); // 3/s from the first second on
    expect(s.log.alerts()).toEqual([]);
    const state = s.detector.state().find((e) => e.event === 'expired')!;
    expect(state.baseline).toBeGreaterThan(2.7); // the mean so far, not an EWMA still near 0
    expect(state.baseline).toBeLessThan(3.3);
    steady(s, 'expired', 60, 15); // 1035 in the last minute: 17/s against 4 × 3/s
    expect(s.log.alerts().map((a) => a.event)).toEqual(['expired']);
  });

  it('needs the minimum count: 19 events on a quiet service say nothing, the 20th alerts', () => {
    const s = setup();
    for (let i = 0; i < 19; i++) s.detector.record('bad_signature');
    expect(s.log.alerts()).toEqual([]);
    s.detector.record('bad_signature');
    expect(s.log.alerts().map((a) => [a.event, a.count])).toEqual([['bad_signature', 20]]);
  });

  it('keeps quiet during the cooldown and alerts again after it while the rate stays high', () => {
    const s = setup({ thresholds: { cooldownSeconds: 120 } }, false);
    steady(s, 'unknown_issuer', 0.1, 1800);
    steady(s, 'unknown_issuer', 6, 119); // alerts within seconds, then the cooldown covers the rest
    expect(s.log.alerts()).toHaveLength(1);
    steady(s, 'unknown_issuer', 6, 10);
    expect(s.log.alerts()).toHaveLength(2);
  });

  it('tracks each event on its own, and refresh-token reuse alerts after 5 events', () => {
    const s = setup();
    for (let i = 0; i < 4; i++) s.detector.record('refresh_reuse');
    for (let i = 0; i < 19; i++) s.detector.record('expired');
    expect(s.log.alerts()).toEqual([]);
    s.detector.record('refresh_reuse');
    expect(s.log.alerts().map((a) => a.event)).toEqual(['refresh_reuse']);
    expect(s.detector.thresholds('refresh_reuse').minCount).toBe(5);
    expect(s.detector.thresholds('expired').minCount).toBe(DEFAULT_ALERT_THRESHOLDS.minCount);
  });

  it('lets old events leave the window: the same 20 events spread over 10 minutes never alert', () => {
    const s = setup();
    for (let i = 0; i < 20; i++) {
      s.clock.advance(30_000);
      s.detector.record('expired');
    }
    expect(s.log.alerts()).toEqual([]);
    expect(s.detector.state().find((e) => e.event === 'expired')!.count).toBe(2);
  });

  it('lets the baseline decay over a long silence, so the old busy level no longer hides a burst', () => {
    const s = setup({}, false);
    steady(s, 'expired', 2, 3600);
    const busy = s.detector.state().find((e) => e.event === 'expired')!.baseline;
    expect(busy).toBeGreaterThan(1.5);
    s.clock.advance(10 * 3600_000);
    const quiet = s.detector.state().find((e) => e.event === 'expired')!;
    expect(quiet.baseline).toBeLessThan(0.01);
    expect(quiet.count).toBe(0);
    steady(s, 'expired', 1, 40); // half the old rate, but far above the decayed baseline
    expect(s.log.alerts()).toHaveLength(1);
  });

  it('maps outcome codes to events and ignores the rest', () => {
    expect(alertEventOf('ERR_TOKEN_EXPIRED')).toBe('expired');
    expect(alertEventOf('ERR_TOKEN_ISSUER')).toBe('unknown_issuer');
    expect(alertEventOf('ERR_KEY_UNKNOWN')).toBe('unknown_issuer');
    expect(alertEventOf('ERR_TOKEN_SIGNATURE')).toBe('bad_signature');
    expect(alertEventOf('ERR_TOKEN_ALG')).toBe('bad_signature');
    expect(alertEventOf('ERR_TOKEN_REVOKED')).toBe('revoked');
    expect(alertEventOf('ERR_REFRESH_REUSED')).toBe('refresh_reuse');
    expect(alertEventOf('ok')).toBeUndefined();
    expect(alertEventOf('ERR_TOKEN_MALFORMED')).toBeUndefined();
    expect(alertEventOf('toString')).toBeUndefined();

    const s = setup();
    for (let i = 0; i < 50; i++) {
      s.detector.recordOutcome('ok');
      s.detector.recordOutcome('ERR_TOKEN_MALFORMED');
    }
    expect(s.log.alerts()).toEqual([]);
    for (let i = 0; i < 20; i++) s.detector.recordOutcome('ERR_TOKEN_SIGNATURE');
    expect(s.log.alerts().map((a) => a.event)).toEqual(['bad_signature']);
  });

  it('tells subscribers about each alert; a throwing subscriber does not break recording', () => {
    const s = setup();
    const seen: TokenAlert[] = [];
    s.detector.subscribe(() => {
      throw new Error('boom');
    });
    const off = s.detector.subscribe((a) => seen.push(a));
    for (let i = 0; i < 20; i++) s.detector.record('revoked');
    expect(seen.map((a) => a.event)).toEqual(['revoked']);
    off();
    s.clock.advance(3600_000);
    for (let i = 0; i < 20; i++) s.detector.record('revoked');
    expect(seen).toHaveLength(1);
    expect(s.log.alerts()).toHaveLength(2);
  });

  it('takes configurable thresholds, per event too, and refuses nonsense with ERR_CONFIG', () => {
    const s = setup({
      thresholds: { minCount: 3, multiplier: 2, minBaselineRate: 0.01 },
      events: { expired: { minCount: 100 } },
    });
    for (let i = 0; i < 3; i++) s.detector.record('revoked');
    for (let i = 0; i < 99; i++) s.detector.record('expired');
    expect(s.log.alerts().map((a) => a.event)).toEqual(['revoked']);
    s.detector.record('expired');
    expect(s.log.alerts().map((a) => a.event)).toEqual(['revoked', 'expired']);

    const { logger } = capturedLogger();
    for (const thresholds of [
      { windowSeconds: 0 },
      { windowSeconds: 65 },
      { multiplier: -1 },
      { baselineSeconds: 30 },
      { minCount: Number.NaN },
    ]) {
      let error: unknown;
      try {
        createAlertDetector({ logger, thresholds });
      } catch (err) {
        error = err;
      }
      expect(isRlsKitError(error, 'ERR_CONFIG'), JSON.stringify(thresholds)).toBe(true);
    }
  });
});
