import type { Command } from '../command.js';

/**
 * Every `rls-kit` command. Each lives in its own file under this folder;
 * add new ones here.
 */
export const commands: readonly Command[] = [];
