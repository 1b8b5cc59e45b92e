import { parseFlags } from '../args.js';
import type { Command } from '../command.js';
import { runTour } from '../tour.js';

/**
 * `rls-kit tour` — the RLS tour: on the embedded database (or `--db-url` /
 * `DATABASE_URL`'s server, in a separate `rls_kit_tour` database, recreated)
 * applies the kit and the example app with its seed, then shows what every
 * seeded persona can see and do when queries run as that user.
 *
 * @example
 * ```sh
 * rls-kit tour --db-url postgresql://postgres@127.0.0.1:5432/postgres
 * ```
 */
export const tourCommand: Command = {
  path: ['tour'],
  summary: 'show what each seeded persona of the example may see and do under RLS',
  usage:
    'rls-kit tour [--db-url URL]\n\n  recreates the rls_kit_tour database on that server (embedded by default)',
  async run(args, io) {
    const { values } = parseFlags(args, { 'db-url': { type: 'string' } }, 'tour');
    await runTour(io, { url: values['db-url'] });
    return 0;
  },
};
