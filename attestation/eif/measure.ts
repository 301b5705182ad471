/**
 * PCRs of an EIF, as the Nitro hypervisor will report them and as
 * `nitro-cli describe-eif` computes them (EifReader + get_pcrs). With
 * H = SHA-384 and Z = 48 zero bytes, over section *data* only:
 *
 *   PCR0 = H(Z ‖ H(kernel ‖ cmdline ‖ ramdisk0 ‖ ramdisk1 ‖ …))
 *   PCR1 = H(Z ‖ H(kernel ‖ cmdline ‖ ramdisk0))
 *   PCR2 = H(Z ‖ H(ramdisk1 ‖ …))
 *   PCR8 = H(Z ‖ H(DER of the signing certificate))   (signed images only)
 *
 * The metadata and signature sections never enter PCR0/1/2. The cmdline is
 * hashed exactly as stored: nitro-cli trims whitespace when it *builds*
 * (`cmdline.trim()` in build_from_docker), never when it measures.
 * Sections are taken in file order, as nitro-cli's reader takes them.
 */
import { createHash, type Hash } from 'node:crypto';
import { toHex } from '../../common/bytes.js';
import type { ParsedEif } from './parse.js';
import { decodeSignatureSection, verifyPcr0Signature, type EifPcrSignature, type VerifyPcr0Options } from './signature.js';

/** What sha2 0.9's Debug prints for Sha384, and so what nitro-cli prints. */
export const NITRO_HASH_ALGORITHM = 'Sha384 { ... }';
const ZERO48 = new Uint8Array(48);

export interface EifMeasurements {
  HashAlgorithm: typeof NITRO_HASH_ALGORITHM;
  PCR0: string;
  PCR1: string;
  PCR2: string;
  /** Only for signed images. */
  PCR8?: string;
}

export interface MeasureOptions extends VerifyPcr0Options {
  /**
   * Check the signature section's COSE signature and that it signs this
   * image's PCR0 (default true). A signed image whose signature fails is not
   * one nitro-cli will run, so its PCR8 means nothing.
   */
  verifySignature?: boolean;
}

/** H(Z ‖ digest): a PCR extended once from zero, as the Nitro hypervisor does. */
export function extendFromZero(digest: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha384').update(ZERO48).update(digest).digest());
}

function finish(h: Hash): Uint8Array {
  return extendFromZero(new Uint8Array(h.digest()));
}

export interface MeasuredEif {
  measurements: EifMeasurements;
  pcr0: Uint8Array;
  signature: EifPcrSignature | undefined;
}

/** Measurements plus the decoded signature (describeEif needs both). */
export function measureEifDetailed(parsed: ParsedEif, opts: MeasureOptions = {}): MeasuredEif {
  const image = createHash('sha384');
  const boot = createHash('sha384');
  const app = createHash('sha384');
  let ramdiskIndex = 0;
  for (const s of parsed.sections) {
    switch (s.typeName) {
      case 'kernel':
      case 'cmdline':
        image.update(s.data);
        boot.update(s.data);
        break;
      case 'ramdisk':
        image.update(s.data);
        (ramdiskIndex++ === 0 ? boot : app).update(s.data);
        break;
      case 'metadata':
      case 'signature':
        break;
    }
  }
  const pcr0 = finish(image);
  const measurements: EifMeasurements = { HashAlgorithm: NITRO_HASH_ALGORITHM, PCR0: toHex(pcr0), PCR1: toHex(finish(boot)), PCR2: toHex(finish(app)) };
  let signature: EifPcrSignature | undefined;
  if (parsed.signature !== undefined) {
    signature = decodeSignatureSection(parsed.signature);
    if (opts.verifySignature !== false) verifyPcr0Signature(signature, pcr0, opts);
    measurements.PCR8 = toHex(extendFromZero(new Uint8Array(createHash('sha384').update(signature.certificate.der).digest())));
  }
  return { measurements, pcr0, signature };
}

export function measureEif(parsed: ParsedEif, opts: MeasureOptions = {}): EifMeasurements {
  return measureEifDetailed(parsed, opts).measurements;
}
