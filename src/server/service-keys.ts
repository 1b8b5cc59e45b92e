import { chmod, lstat, mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Logger } from 'pino';
import {
  createKeyring,
  generateKey,
  type Keyring,
  readKeyringFile,
  rotate,
  toVerificationKeys,
  writeKeyringFile,
} from '../keys/index.js';
import {
  createMinter,
  createVerifier,
  exampleClaimSchema,
  type Minter,
  type Verifier,
} from '../tokens/index.js';
import type { OutcomeCounter } from '../tokens/metrics.js';
import type { RevocationCheck } from '../tokens/revocation-check.js';
import type { VerifiedClaims } from '../tokens/verified-claims.js';

/** The minter of the service: the example's claims (`org_id`, `user_role`). */
export type ServiceMinter = Minter<ExampleClaimDefinitions>;

/** The example claim schema's definitions (`org_id`, `user_role`). */
export type ExampleClaimDefinitions = typeof exampleClaimSchema.definitions;

/**
 * The service's keys: the keyring, a minter on its active key and a
 * verifier of every published key. `replace` swaps all three at once (key
 * rotation); the {@link ServiceKeys.verifier} facade always uses the
 * current ones, so handlers built once keep working across rotations.
 */
export interface ServiceKeys {
  readonly file: string;
  keyring(): Keyring;
  minter(): ServiceMinter;
  /** A stable verifier that delegates to the current keyring's. */
  readonly verifier: Verifier;
  /** Installs a new keyring (already written to `file` by the caller, or by `save`). */
  replace(keyring: Keyring, options?: { save?: boolean }): Promise<void>;
}

/** What the keys need from the rest of the service. */
export interface ServiceKeysOptions {
  file: string;
  issuer: string;
  audience: string;
  accessTokenTtl: number;
  revocation: RevocationCheck;
  metricsParent: OutcomeCounter;
  logger: Logger;
}

/**
 * Loads the keyring file, or creates it (mode 0600, in a 0700 folder) with
 * an active ES256 key and a published standby key, so the first rotation
 * has a key every verifier already cached. A file readable by others is
 * tightened to 0600 (and said so). Key material is never logged: only kids.
 *
 * @example
 * ```ts
 * const keys = await loadServiceKeys({ file: '.rls-kit/keys.json', issuer, audience, accessTokenTtl: 600, revocation, metricsParent, logger });
 * const token = await keys.minter().mint({ sub });
 * ```
 */
export async function loadServiceKeys(options: ServiceKeysOptions): Promise<ServiceKeys> {
  const { file, logger } = options;
  let keyring: Keyring;
  if (await exists(file)) {
    const loaded = await readKeyringFile(file);
    keyring = loaded.keyring;
    if (loaded.exposed) {
      await chmod(file, 0o600);
      logger.warn({ keysFile: file }, 'keyring file was readable by others: mode set to 0600');
    }
  } else {
    await mkdir(dirname(file), { recursive: true, mode: 0o700 });
    const active = await generateKey({ alg: 'ES256' });
    keyring = (await rotate(createKeyring([active]))).keyring; // adds the standby key
    await writeKeyringFile(file, keyring);
    logger.info(
      { keysFile: file, kids: keyring.keys.map((k) => k.kid) },
      'created a new keyring (ES256 active + standby), mode 0600',
    );
  }

  const build = async (ring: Keyring) => {
    const minter = await createMinter({
      keyring: ring,
      issuer: options.issuer,
      audience: options.audience,
      claimSchema: exampleClaimSchema,
      ttl: options.accessTokenTtl,
    });
    const verifier = createVerifier({
      issuer: options.issuer,
      audience: options.audience,
      keys: { keys: await toVerificationKeys(ring) },
      revocation: options.revocation,
      metricsParent: options.metricsParent,
    });
    return { keyring: ring, minter, verifier };
  };
  let current = await build(keyring);

  const verifier: Verifier = {
    verify: (token: string): Promise<VerifiedClaims> => current.verifier.verify(token),
    verifyCached: (token: string) => current.verifier.verifyCached(token),
    metrics: () => current.verifier.metrics(),
    ready: () => current.verifier.ready(),
  };

  return {
    file,
    keyring: () => current.keyring,
    minter: () => current.minter,
    verifier,
    async replace(next, { save = false } = {}) {
      const built = await build(next);
      if (save) await writeKeyringFile(file, next);
      current = built;
      logger.info(
        {
          active: built.minter.kid,
          kids: next.keys.map((k) => `${k.kid}:${k.rls_kit_state}`),
        },
        'keyring installed',
      );
    },
  };
}

async function exists(file: string): Promise<boolean> {
  try {
    await lstat(file);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}
