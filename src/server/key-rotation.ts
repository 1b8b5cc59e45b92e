import { RlsKitError } from '../errors.js';
import { parseDuration } from '../keys/duration.js';
import {
  type RotateOptions,
  type RotateResult,
  type RotationChange,
  rotate,
} from '../keys/rotate.js';
import type { Keyring, SigningAlg } from '../keys/types.js';
import { rotateKeyringFile } from './rotate-keyring-file.js';

/**
 * Where a schedule keeps its keyring when it is not a file: read and
 * written whole. A file (`keysFile`) is the usual choice; it adds a lock and
 * atomic 0600 writes.
 *
 * @example
 * ```ts
 * let ring = createKeyring([await generateKey()]);
 * const store: KeyringStore = { read: async () => ring, write: async (next) => { ring = next; } };
 * ```
 */
export interface KeyringStore {
  read(): Promise<Keyring>;
  write(keyring: Keyring): Promise<void>;
}

/** The logger the schedule reports to (a pino logger fits). */
export interface KeyRotationLogger {
  info(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

/**
 * Options of {@link createKeyRotationSchedule}. Durations are seconds or
 * strings such as `10m`, `30d`.
 *
 * @example
 * ```ts
 * const options: KeyRotationScheduleOptions = {
 *   keysFile: '.rls-kit/keys.json', every: '30d', jwksCacheWindow: '10m', tokenLifetime: '10m',
 *   onChange: (keyring) => service.useKeyring(keyring),
 * };
 * ```
 */
export interface KeyRotationScheduleOptions {
  /** The keyring file (locked, rewritten atomically with mode 0600). Exactly one of `keysFile`, `store`. */
  keysFile?: string;
  /** Another place for the keyring. */
  store?: KeyringStore;
  /** How long each key signs (default `30d`); never less than `jwksCacheWindow`. */
  every?: string | number;
  /**
   * How long verifiers may cache the JWKS (default `10m`, the service's
   * `Cache-Control: max-age=600`): a new key is published at least this long
   * before it signs. Make it at least the largest cache TTL of any verifier.
   */
  jwksCacheWindow?: string | number;
  /** The longest access-token lifetime (default `10m`): a retired key keeps verifying this long. */
  tokenLifetime?: string | number;
  /** Verifiers' clock tolerance, added to retirement (default `30s`). */
  clockTolerance?: string | number;
  /** Algorithm of new keys (default: the active key's). */
  alg?: SigningAlg;
  /**
   * Longest pause between ticks (ms, default 60000): ticks run when the next
   * step is due and at least this often, to notice a keyring changed by
   * `rls-kit keys rotate` or another node.
   */
  maxCheckIntervalMs?: number;
  /** Milliseconds since the epoch (default `Date.now`); tests inject one and call `tick()`. */
  clock?: () => number;
  /**
   * Called with the new keyring after every change (made by this schedule
   * or found in the store), awaited before the next tick: swap the minter,
   * the verifier's keys and the served JWKS here. `changes` is empty when
   * the change came from elsewhere.
   */
  onChange?: (keyring: Keyring, changes: readonly RotationChange[]) => void | Promise<void>;
  /** Receives one line per change (`info`) and per failed tick (`error`); kids and times only. */
  logger?: KeyRotationLogger;
}

/**
 * A running key schedule; see {@link createKeyRotationSchedule}.
 *
 * @example
 * ```ts
 * const schedule = createKeyRotationSchedule({ keysFile, onChange });
 * await schedule.start();
 * // ... on shutdown:
 * schedule.stop();
 * ```
 */
export interface KeyRotationSchedule {
  /** Runs the first tick (so a standby key exists at once), then keeps ticking on timers. */
  start(): Promise<Keyring>;
  /** Stops the timers; a tick in progress finishes. */
  stop(): void;
  /** One step now: drop, promote, retire, add as due; resolves to what changed. Ticks never overlap. */
  tick(): Promise<readonly RotationChange[]>;
  /** The keyring as of the last tick (undefined before the first). */
  readonly keyring: Keyring | undefined;
  /** When the next step is due (epoch ms) as of the last tick, or undefined when none is known. */
  readonly nextDueAt: number | undefined;
}

/**
 * The signing-key schedule of the token service:
 *
 * 1. a new key is added as **standby**: published in the JWKS, not signing;
 * 2. after `max(every, jwksCacheWindow)` it becomes **active**, so every
 *    verifier that caches the JWKS for at most `jwksCacheWindow` has seen
 *    it before the first token it signs; the previous key is **retired**
 *    (still published, still verifying) until
 *    `now + tokenLifetime + clockTolerance`, when the last token it signed
 *    has expired;
 * 3. then the retired key is **dropped**, and a new standby key is added as
 *    soon as the previous one is promoted.
 *
 * Each step is `rotate` from the keys module, applied to the file by
 * {@link rotateKeyringFile} — the same code `rls-kit keys rotate` runs, so
 * the CLI (e.g. from cron) and a running service can share one file. The
 * state lives in the file (each key's `rls_kit_created_at`,
 * `rls_kit_not_after`), so a restart resumes the schedule where it was.
 *
 * Ticks are timed to the next due step (and at least every
 * `maxCheckIntervalMs`), on unref'd timers. Nothing but kids, algorithms
 * and times is ever logged.
 *
 * @example
 * ```ts
 * const schedule = createKeyRotationSchedule({
 *   keysFile: '.rls-kit/keys.json',
 *   every: '30d',
 *   jwksCacheWindow: '10m',
 *   tokenLifetime: '10m',
 *   onChange: async (keyring) => { minter = await createMinter({ keyring, issuer, audience }); },
 * });
 * await schedule.start();
 * ```
 */
export function createKeyRotationSchedule(
  options: KeyRotationScheduleOptions,
): KeyRotationSchedule {
  const { keysFile, store, onChange, logger } = options;
  if ((keysFile === undefined) === (store === undefined)) {
    throw new RlsKitError(
      'ERR_CONFIG',
      'the key rotation schedule needs exactly one of keysFile, store',
    );
  }
  const every = parseDuration(options.every ?? '30d', 'rotation period (every)');
  const window = parseDuration(options.jwksCacheWindow ?? '10m', 'JWKS cache window');
  const tokenLifetime = parseDuration(options.tokenLifetime ?? '10m', 'token lifetime');
  const tolerance = parseDuration(options.clockTolerance ?? '30s', 'clock tolerance');
  if (every === 0)
    throw new RlsKitError('ERR_CONFIG', 'the rotation period (every) must be above 0');
  const maxCheck = options.maxCheckIntervalMs ?? 60_000;
  if (!(maxCheck >= 10 && maxCheck <= 2 ** 31 - 1)) {
    throw new RlsKitError('ERR_CONFIG', 'maxCheckIntervalMs must be between 10 and 2147483647');
  }
  const clock = options.clock ?? Date.now;
  const wait = Math.max(every, window);

  let current: Keyring | undefined;
  let currentText: string | undefined;
  let nextDueAt: number | undefined;
  let running: Promise<readonly RotationChange[]> | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let started = false;

  const rotateOptions = (): RotateOptions => ({
    now: clock(),
    tokenTtl: tokenLifetime,
    jwksCacheTtl: window,
    rotateEvery: every,
    clockTolerance: tolerance,
    ...(options.alg === undefined ? {} : { alg: options.alg }),
  });

  const step = async (): Promise<RotateResult> => {
    if (keysFile !== undefined) return rotateKeyringFile(keysFile, rotateOptions());
    const result = await rotate(await store!.read(), rotateOptions());
    if (result.changes.length > 0) await store!.write(result.keyring);
    return result;
  };

  const tickOnce = async (): Promise<readonly RotationChange[]> => {
    const { keyring, changes } = await step();
    for (const c of changes) {
      logger?.info(
        { event: 'key_rotation', action: c.action, kid: c.kid, alg: c.alg, notAfter: c.notAfter },
        `signing key ${c.kid} ${c.action}`,
      );
    }
    const text = JSON.stringify(
      keyring.keys.map((k) => [k.kid, k.rls_kit_state, k.rls_kit_not_after]),
    );
    nextDueAt = dueAt(keyring, wait);
    // Remembered only once onChange took it: if it throws, the next tick offers the keyring again.
    if (text !== currentText && onChange) await onChange(keyring, changes);
    current = keyring;
    currentText = text;
    return changes;
  };

  const tick = (): Promise<readonly RotationChange[]> => {
    // Serialised: a timer firing during a manual tick joins it instead of racing it.
    running ??= tickOnce().finally(() => {
      running = undefined;
    });
    return running;
  };

  const arm = () => {
    if (!started) return;
    const now = clock();
    const until = nextDueAt === undefined ? maxCheck : Math.max(0, nextDueAt - now) + 5;
    timer = setTimeout(run, Math.min(maxCheck, until));
    timer.unref();
  };

  const run = () => {
    timer = undefined;
    tick().then(arm, (err: unknown) => {
      logger?.error(
        {
          event: 'key_rotation_failed',
          code: err instanceof RlsKitError ? err.code : 'unknown',
          err: err instanceof Error ? err.message : String(err),
        },
        'key rotation tick failed; retrying',
      );
      arm();
    });
  };

  return {
    async start() {
      if (started)
        throw new RlsKitError('ERR_CONFIG', 'the key rotation schedule is already started');
      await tick();
      started = true;
      arm();
      return current!;
    },
    stop() {
      started = false;
      if (timer) clearTimeout(timer);
      timer = undefined;
    },
    tick,
    get keyring() {
      return current;
    },
    get nextDueAt() {
      return nextDueAt;
    },
  };
}

/** The earliest instant `rotate` will do something with this keyring (its rules, read backwards). */
function dueAt(keyring: Keyring, waitSec: number): number | undefined {
  let due = Number.POSITIVE_INFINITY;
  const isPrivate = (k: Keyring['keys'][number]) => k.d !== undefined || k.k !== undefined;
  for (const k of keyring.keys) {
    if (k.rls_kit_state === 'retired' && k.rls_kit_not_after !== undefined) {
      due = Math.min(due, Date.parse(k.rls_kit_not_after));
    }
    if (k.rls_kit_state === 'standby' && isPrivate(k)) {
      due = Math.min(due, Date.parse(k.rls_kit_created_at) + waitSec * 1000);
    }
  }
  return Number.isFinite(due) ? due : undefined;
}
