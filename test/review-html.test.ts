import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderHtml } from '../src/review/render-html.js';
import { reviewDatabase } from '../src/review/review-database.js';
import type { ReviewReport } from '../src/review/types.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';
import { systemTool } from './helpers/system-tool.js';

/** Debian's chromium (installed by .ci/run); playwright-core never downloads a browser. */
const CHROMIUM = process.env.RLS_KIT_CHROMIUM ?? '/usr/bin/chromium';
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const OUT_DIR = path.join(ROOT, '.rls-kit');
const HTML_FILE = path.join(OUT_DIR, 'review-example.html');
const SCREENSHOT = path.join(OUT_DIR, 'review-screenshot.png');

const available = systemTool({
  test: 'review-html',
  program: CHROMIUM,
  present: existsSync(CHROMIUM),
  pkg: 'chromium',
  env: 'RLS_KIT_CHROMIUM',
});

describe.skipIf(!available)('HTML report in headless Chromium', () => {
  let db: TestDatabase;
  let report: ReviewReport;
  let userDataDir: string;

  beforeAll(async () => {
    db = await createTestDatabase({ template: 'example' });
    report = await reviewDatabase({ url: db.url });
    mkdirSync(OUT_DIR, { recursive: true });
    writeFileSync(HTML_FILE, renderHtml(report));
    userDataDir = mkdtempSync(path.join(os.tmpdir(), 'rls-kit-chromium-'));
  });

  afterAll(async () => {
    await db?.drop();
    if (userDataDir) rmSync(userDataDir, { recursive: true, force: true });
  });

  it('is self-contained: no scripts, no remote resources', () => {
    const html = renderHtml(report);
    expect(html).not.toMatch(/<script/i);
    expect(html).not.toMatch(/(src|href)="(https?:)?\/\//i);
    expect(html).not.toMatch(/url\(/i);
    expect(html).toContain('<style>');
  });

  it('renders the matrix as a coloured grid and takes a screenshot', async () => {
    const context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
      viewport: { width: 1400, height: 900 },
    });
    try {
      const page = context.pages()[0] ?? (await context.newPage());
      const requested: string[] = [];
      page.on('request', (r) => requested.push(r.url()));
      await page.goto(pathToFileURL(HTML_FILE).href);

      // One cell per table × persona × command, each with a background colour.
      const cells = page.locator('#access-matrix td.cell');
      const expected = report.tables.length * report.personas.length * 4;
      expect(expected).toBeGreaterThan(0);
      await expect.poll(() => cells.count()).toBe(expected);
      const styles = await cells.evaluateAll((tds) => {
        // Runs in the page; the test's TypeScript has no DOM lib.
        const view = globalThis as unknown as {
          getComputedStyle(element: unknown): { backgroundColor: string };
        };
        return tds.map((td) => ({
          outcome: td.getAttribute('data-outcome'),
          tone: [...td.classList].find((c) => c.startsWith('tone-')),
          background: view.getComputedStyle(td).backgroundColor,
          visible: td.getBoundingClientRect().width > 0 && td.getBoundingClientRect().height > 0,
        }));
      });
      for (const s of styles) {
        expect(s.visible).toBe(true);
        expect(s.background).not.toBe('rgba(0, 0, 0, 0)');
      }
      const colour = (tone: string) => styles.find((s) => s.tone === tone)?.background;
      // Allowed and denied cells look different.
      expect(colour('tone-open')).toBeDefined();
      expect(colour('tone-closed')).toBeDefined();
      expect(colour('tone-open')).not.toBe(colour('tone-closed'));

      // The owner's SELECT on documents shows its row count.
      const ownerDocs = page.locator(
        '#access-matrix td[data-table="public.documents"][data-persona="owner"][data-command="select"]',
      );
      await expect.poll(() => ownerDocs.textContent()).toBe('36');
      expect(await page.locator('.card').count()).toBe(report.tables.length);
      expect(await page.locator('#summary .stat').count()).toBeGreaterThanOrEqual(7);

      await page.screenshot({ path: SCREENSHOT, fullPage: true });
      expect(statSync(SCREENSHOT).size).toBeGreaterThan(10_000);
      // Nothing but the file itself was loaded.
      expect(requested.filter((u) => !u.startsWith('file:'))).toEqual([]);
    } finally {
      await context.close();
    }
  }, 60_000);
});
