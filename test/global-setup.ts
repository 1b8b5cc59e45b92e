import type { TestProject } from 'vitest/node';
import { openDatabase } from '../src/db/database.js';
import { prepareTemplates } from './helpers/templates.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Superuser connection string of the server the tests use. */
    databaseUrl: string;
    /** Template database names by kind (see test/helpers/templates.ts). */
    templates: Record<'blank' | 'kit' | 'example', string>;
    /** True when the server is the embedded default rather than DATABASE_URL. */
    embedded: boolean;
  }
}

/**
 * Opens the database once for the whole run — `DATABASE_URL` when set (CI:
 * this machine's PostgreSQL 15), otherwise the embedded default — and builds
 * the template databases every test file clones from.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const db = await openDatabase();
  const templates = await prepareTemplates(db.url);
  project.provide('databaseUrl', db.url);
  project.provide('templates', templates);
  project.provide('embedded', db.embedded);
  process.stderr.write(`tests use ${db.embedded ? 'the embedded Postgres' : 'DATABASE_URL'}\n`);
  return async () => {
    await db.close();
  };
}
