import { SigningError } from './errors.js';

/**
 * Where randomness comes from. Inside the enclave this is the NSM's GetRandom (or
 * node:crypto seeded from it); tests pass a deterministic one. Must return exactly `length`
 * fresh bytes; the signer wipes them after use.
 */
export type EntropySource = (length: number) => Uint8Array;

/** Calls the source and checks what came back; a bad source is an operator problem, not a bad request. */
export function drawEntropy(source: EntropySource, length: number): Uint8Array {
  if (typeof source !== 'function') throw new SigningError('SIGN_ENTROPY', 'no entropy source given');
  let out: unknown;
  try {
    out = source(length);
  } catch (e) {
    throw new SigningError('SIGN_ENTROPY', 'entropy source failed', { cause: e });
  }
  if (!(out instanceof Uint8Array) || out.length !== length) {
    throw new SigningError('SIGN_ENTROPY', `entropy source must return ${length} bytes`);
  }
  return out;
}
