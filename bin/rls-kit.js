#!/usr/bin/env node
// The kit ships TypeScript sources; tsx (a runtime dependency) loads them.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../src/cli/main.ts');
await main();
