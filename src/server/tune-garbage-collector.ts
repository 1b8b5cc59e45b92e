import { setFlagsFromString } from 'node:v8';

let tuned = false;

/**
 * Turns off V8's allocation-site pretenuring for the rest of this process —
 * what `rls-kit start` does before it starts the token service (opt out
 * with `--no-gc-tuning`). Call it once, in a process whose main job is
 * serving requests, before `startTokenService` and any load: it does not
 * undo what V8 has already decided for a literal. It changes only where V8
 * first places new objects, never what a program computes.
 *
 * Why: V8 watches each object or array literal, and once most objects from
 * one survive a young-generation collection it allocates that literal's
 * objects in the old generation from then on. Under steady request load a
 * literal that lives one request can be judged long-lived (measured here on
 * node-postgres's result arrays and the kit's query path); each such dead
 * old object then keeps the young objects it points to — a response's rows,
 * their strings and dates — alive through every scavenge until the next full
 * collection, so the scavenger copies and promotes garbage. On the token
 * service this cost ~25–30 µs of collection per request (scavenges of
 * ~3.5 ms instead of ~0.6 ms) and ~20% of its throughput; with pretenuring
 * off, objects are born young and those that die young are never copied.
 * The same switch as `node --no-allocation-site-pretenuring` (which
 * `NODE_OPTIONS` does not accept).
 *
 * Returns true when it changed the setting, false when it had already run.
 *
 * @example
 * ```ts
 * import { startTokenService, tuneGarbageCollector } from 'supabase-rls-kit/server';
 * tuneGarbageCollector();
 * await startTokenService({ port: 8787 });
 * ```
 */
export function tuneGarbageCollector(): boolean {
  if (tuned) return false;
  setFlagsFromString('--no-allocation-site-pretenuring');
  tuned = true;
  return true;
}
