import type { Command } from '../command.js';
import { initCommand } from './init.js';
import { inspectCommand } from './inspect.js';
import { keysGenerateCommand } from './keys-generate.js';
import { keysPublicCommand } from './keys-public.js';
import { keysRotateCommand } from './keys-rotate.js';
import { migrateCommand } from './migrate.js';
import { mintCommand } from './mint.js';
import { reviewCommand } from './review.js';
import { revocationsListCommand, revocationsPurgeCommand } from './revocations.js';
import { revokeCommand } from './revoke.js';
import { startCommand } from './start.js';
import { tourCommand } from './tour.js';
import { verifyCommand } from './verify.js';

/**
 * Every `rls-kit` command. Each lives in its own file under this folder;
 * add new ones here.
 */
export const commands: readonly Command[] = [
  migrateCommand,
  initCommand,
  keysGenerateCommand,
  keysPublicCommand,
  keysRotateCommand,
  mintCommand,
  verifyCommand,
  inspectCommand,
  revokeCommand,
  revocationsListCommand,
  revocationsPurgeCommand,
  reviewCommand,
  startCommand,
  tourCommand,
];
