import { type Keyring, readKeyringFile } from '../../keys/index.js';
import type { CliIO } from '../command.js';

/**
 * Internal to the `keys`/`mint` commands: reads `--keys FILE` and warns on
 * stderr when others may read it (it holds private keys).
 */
export async function loadKeyringForCli(path: string, io: CliIO): Promise<Keyring> {
  const { keyring, exposed } = await readKeyringFile(path);
  if (exposed) {
    io.stderr.write(
      `rls-kit: warning: ${path} holds private keys but others may read it; run chmod 600 ${path}\n`,
    );
  }
  return keyring;
}
