#!/usr/bin/env node
// Installed from the registry the kit runs from its compiled `dist/`. In a
// checkout (a `.git` beside `bin/`), or before the first build, tsx — a
// runtime dependency — loads the sources, so a `dist/` left from an earlier
// build never runs code older than the sources.
import { existsSync } from 'node:fs';

const root = new URL('../', import.meta.url);
const compiled = new URL('dist/cli/main.js', root);
if (!existsSync(new URL('.git', root)) && existsSync(compiled)) {
  const { main } = await import(compiled.href);
  await main();
} else {
  const { register } = await import('tsx/esm/api');
  register();
  const { main } = await import(new URL('src/cli/main.ts', root).href);
  await main();
}
