import type { RlsKitErrorCode } from '../errors.js';

/**
 * What one verification ended in: `ok`, or the code of the error it threw.
 *
 * @example
 * ```ts
 * const outcome: VerificationOutcome = 'ERR_TOKEN_EXPIRED';
 * ```
 */
export type VerificationOutcome = 'ok' | RlsKitErrorCode;

/**
 * Counts by outcome; `ok` is always present, error codes once they occurred.
 *
 * @example
 * ```ts
 * const counts: OutcomeCounts = { ok: 41, ERR_TOKEN_EXPIRED: 2 };
 * ```
 */
export type OutcomeCounts = { ok: number } & Partial<Record<RlsKitErrorCode, number>>;

/**
 * Counts verification outcomes by code. Every verifier has its own counter
 * and also adds to a parent (by default the process-wide
 * {@link verificationOutcomes}), so a metrics endpoint can read the totals
 * without knowing every verifier.
 *
 * @example
 * ```ts
 * const counter: OutcomeCounter = createOutcomeCounter();
 * counter.record('ok');
 * ```
 */
export interface OutcomeCounter {
  /** Adds one to `outcome` (and to the parent's). */
  record(outcome: VerificationOutcome): void;
  /** A copy of the counts, safe to serialise. */
  snapshot(): OutcomeCounts;
}

class Counter implements OutcomeCounter {
  // `ok` is by far the most frequent outcome: a plain field keeps the hot path to one increment.
  private ok = 0;
  private readonly errors = new Map<RlsKitErrorCode, number>();

  constructor(private readonly parent: OutcomeCounter | undefined) {}

  record(outcome: VerificationOutcome): void {
    if (outcome === 'ok') this.ok++;
    else this.errors.set(outcome, (this.errors.get(outcome) ?? 0) + 1);
    this.parent?.record(outcome);
  }

  snapshot(): OutcomeCounts {
    const counts: OutcomeCounts = { ok: this.ok };
    for (const [code, n] of this.errors) counts[code] = n;
    return counts;
  }
}

/**
 * Process-wide totals of every verifier's outcomes, for the service's metrics.
 *
 * @example
 * ```ts
 * const { ok, ERR_TOKEN_EXPIRED = 0 } = verificationOutcomes.snapshot();
 * ```
 */
export const verificationOutcomes: OutcomeCounter = new Counter(undefined);

/**
 * A new outcome counter that also adds to `parent` (default: the
 * process-wide {@link verificationOutcomes}; pass `null` for none).
 *
 * @example
 * ```ts
 * const counter = createOutcomeCounter();
 * counter.record('ERR_TOKEN_EXPIRED');
 * counter.snapshot(); // { ok: 0, ERR_TOKEN_EXPIRED: 1 }
 * ```
 */
export function createOutcomeCounter(
  parent: OutcomeCounter | null = verificationOutcomes,
): OutcomeCounter {
  return new Counter(parent ?? undefined);
}
