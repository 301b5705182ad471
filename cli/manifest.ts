/** `enclave-signer manifest …`: create, sign and verify PCR manifests. */
import { group, type Command } from './command.js';
import { manifestCreate } from './manifest-create.js';
import { manifestKeygen } from './manifest-keygen.js';
import { manifestSign } from './manifest-sign.js';
import { manifestVerify } from './manifest-verify.js';

export const manifestCommand: Command = group('manifest', 'Create, sign and verify PCR manifests (docs/manifest.md).', [
  { name: 'create', summary: 'write an unsigned manifest from PCRs and build facts', run: manifestCreate },
  { name: 'sign', summary: 'sign a manifest with an ES384 or Ed25519 key', run: manifestSign },
  { name: 'verify', summary: 'verify a signed manifest against a trusted key', run: manifestVerify },
  { name: 'keygen', summary: 'generate a manifest signing key pair', run: manifestKeygen },
]);
