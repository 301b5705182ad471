/** `enclave-signer attest …`: verify and inspect attestation documents. */
import { attestShow } from './attest-show.js';
import { attestVerify } from './attest-verify.js';
import { group, type Command } from './command.js';

export const attestCommand: Command = group('attest', 'Verify and inspect Nitro attestation documents.', [
  { name: 'verify', summary: 'verify a document (chain, signature, time, PCRs, manifest)', run: attestVerify },
  { name: 'show', summary: 'decode a document WITHOUT verifying it', run: attestShow },
]);

/** `attest` as a plain command function (the lazy-command convention). */
export const attest = attestCommand.run;
