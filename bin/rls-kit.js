#!/usr/bin/env node
// Installed from the registry the kit runs from its compiled `dist/`; in a
// checkout (no build yet) tsx, a runtime dependency, loads the sources.
import { existsSync } from 'node:fs';

const compiled = new URL('../dist/cli/main.js', import.meta.url);
if (existsSync(compiled)) {
  const { main } = await import(compiled.href);
  await main();
} else {
  const { register } = await import('tsx/esm/api');
  register();
  const { main } = await import('../src/cli/main.ts');
  await main();
}
