import { parseFlags } from '../args.js';
import type { Command } from '../command.js';
import { runTour } from '../tour.js';

/**
 * `rls-kit start` — what `npm start` runs. Until the token service lands it
 * runs the example tour on the embedded database (or `--db-url` /
 * `DATABASE_URL`'s server, in a separate `rls_kit_demo` database).
 */
export const startCommand: Command = {
  path: ['start'],
  summary: 'run the example tour on the embedded database (the token service, once it lands)',
  usage: 'rls-kit start [--db-url URL]',
  async run(args, io) {
    const { values } = parseFlags(args, { 'db-url': { type: 'string' } }, 'start');
    await runTour(io, { url: values['db-url'] });
    return 0;
  },
};
