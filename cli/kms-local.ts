/** `enclave-signer kms-local`: the development KMS emulator (dev/kms-emulator). */
import { runKmsLocal } from '../dev/kms-emulator/index.js';
import type { Io } from './io.js';

export function kmsLocal(argv: string[], io: Io): Promise<number> {
  return runKmsLocal(argv, io);
}
