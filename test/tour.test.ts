import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli } from '../src/cli/main.js';
import { runTour } from '../src/cli/tour.js';
import { memoryIO } from './helpers/cli.js';
import { dropDatabase, serverUrl } from './helpers/db.js';

const database = `rls_kit_t_tour_${process.pid}`;

afterAll(async () => {
  for (const name of [database, 'rls_kit_tour']) await dropDatabase(serverUrl(), name);
});

describe('rls-kit tour', () => {
  it('migrates and seeds a fresh database, then shows each persona only its organization', async () => {
    const io = memoryIO();
    const views = await runTour(io, { url: serverUrl(), database });
    // every seeded membership is a persona; all four roles appear
    expect(views.length).toBeGreaterThanOrEqual(8);
    expect(new Set(views.map((v) => v.userRole))).toEqual(
      new Set(['owner', 'admin', 'member', 'viewer']),
    );
    for (const v of views) {
      expect(v.visible, v.email).toBeGreaterThan(0);
      expect(v.otherOrgVisible, v.email).toBe(0);
      expect(v.otherOrgWritable, v.email).toBe(0);
      expect(v.canInsert, v.email).toBe(v.userRole !== 'viewer');
      expect(v.canDeleteOthers, v.email).toBe(v.userRole === 'owner' || v.userRole === 'admin');
    }
    expect(io.out()).toContain('alice@acme.test');
    expect(io.err()).toContain('No persona sees or can change a row of another organization.');
    // the tour's probes rolled back: the seed is intact
    const check = new pg.Client({ connectionString: serverUrl(database) });
    await check.connect();
    const { rows } = await check.query<{ n: string }>(
      "select count(*) as n from public.documents where title = 'tour probe'",
    );
    await check.end();
    expect(Number(rows[0]?.n)).toBe(0);
  });

  it('is its own command (npm start runs the token service now), on rls_kit_tour', async () => {
    const io = memoryIO();
    expect(await runCli(['tour', '--db-url', serverUrl()], io)).toBe(0);
    expect(io.out()).toContain('carol@acme.test');
    expect(io.err()).toContain('database rls_kit_tour is left for you to explore');

    const help = memoryIO();
    expect(await runCli(['--help'], help)).toBe(0);
    expect(help.out()).toMatch(/^\s+tour\s+show what each seeded persona/m);
    expect(help.out()).toMatch(/^\s+start\s+run the token service/m);
  });
});
