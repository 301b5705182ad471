/**
 * Which enclave images wrote an audit chain, and what `audit verify` must say
 * about them when no signed PCR manifest was given.
 *
 * Without --manifest a hand-over's attestation is checked only against the
 * root: any genuine Nitro enclave's audit key is accepted, whatever image it
 * runs. A host can run an image of its own on real Nitro hardware, cut the real
 * chain and continue it with that enclave's hand-over, and the chain verifies.
 * The exit status of that invocation is a contract and stays 0, so the report
 * names the image (PCR0/1/2) of every enclave life, and these warnings say
 * loudly what was not checked — above all an image change that nothing vouched
 * for.
 *
 * It also writes the PCR lines of the text reports (audit verify, receipt
 * verify, audit checkpoint), so the three name an enclave's image alike.
 */
import { REPORTED_PCRS } from '../attestation/audit/binding-check.js';
import type { AuditEnclaveReport, AuditVerifyReport } from '../attestation/audit/verify.js';

/** The PCRs that name an image: 0 (the whole image), 1 (kernel and boot ramdisk), 2 (the application). */
export const IMAGE_PCRS = ['0', '1', '2'] as const;

/**
 * One text line per reported PCR the enclave showed: `indent`, the label `PCRn` padded to `width`,
 * the hex value. The image a document showed: without a manifest, the only way to tell whose it is.
 */
export function pcrLines(pcrs: Readonly<Record<string, string>>, indent: string, width: number): string[] {
  return REPORTED_PCRS.map(String)
    .filter((i) => pcrs[i] !== undefined)
    .map((i) => `${indent}${`PCR${i}`.padEnd(width)}${pcrs[i]}`);
}

export type ImagePcrs = Record<(typeof IMAGE_PCRS)[number], string | null>;

export interface ImageChange {
  /** The seq of the hand-over to an enclave of another image. */
  seq: number;
  /** The audit key that hand-over introduces. */
  auditKey: string;
  from: ImagePcrs;
  to: ImagePcrs;
  /** Which of PCR0/1/2 differ. */
  differ: string[];
}

export function imageOf(e: Pick<AuditEnclaveReport, 'pcrs'>): ImagePcrs {
  return { '0': e.pcrs['0'] ?? null, '1': e.pcrs['1'] ?? null, '2': e.pcrs['2'] ?? null };
}

/** Each hand-over whose enclave shows other PCR0/1/2 than the enclave before it, in chain order. */
export function imageChanges(enclaves: readonly AuditEnclaveReport[]): ImageChange[] {
  const out: ImageChange[] = [];
  for (let i = 1; i < enclaves.length; i++) {
    const from = imageOf(enclaves[i - 1]!);
    const to = imageOf(enclaves[i]!);
    const differ = IMAGE_PCRS.filter((k) => from[k] !== to[k]).map((k) => `PCR${k}`);
    if (differ.length > 0) out.push({ seq: enclaves[i]!.handoverSeq, auditKey: enclaves[i]!.auditKey, from, to, differ });
  }
  return out;
}

const short = (h: string | null): string => (h === null ? 'absent' : `${h.slice(0, 16)}…`);

/** The warnings for a verified (or not) chain; empty when a manifest vouched for every enclave. */
export function imageWarnings(report: AuditVerifyReport, changes: readonly ImageChange[], manifestGiven: boolean): string[] {
  if (manifestGiven) return [];
  const roots = [...new Set(report.enclaves.map((e) => e.root))];
  const root = roots.length > 0 ? roots.join(', ') : 'the attestation root';
  const distinct = new Set(report.enclaves.map((e) => JSON.stringify(imageOf(e)))).size;
  const out = [
    `NO MANIFEST: the audit keys were checked only against the attestation root (${root}), not against a signed PCR manifest, so an audit key from ANY Nitro enclave image was accepted — including an image the host built and ran itself. ` +
      `Compare the PCR0/1/2 listed for each enclave with the image you expect, or pass --manifest signed.json --manifest-key release.pub.pem.`,
  ];
  if (changes.length > 0) {
    const where = changes.map(
      (c) => `at seq ${c.seq}, the hand-over to audit key ${c.auditKey.slice(0, 16)}…, ${c.differ.join('/')} change: PCR0 ${short(c.from['0'])} → ${short(c.to['0'])}, PCR2 ${short(c.from['2'])} → ${short(c.to['2'])}`,
    );
    out.push(
      `IMAGE CHANGE THAT NOTHING VOUCHED FOR: this chain was written by enclaves of ${distinct} different images (PCR0/1/2), and no signed manifest says any of them is yours (${where.join('; ')}). ` +
        `A host that runs its own image on Nitro hardware can cut the chain and continue it with its own enclave's hand-over; only --manifest proves each image.`,
    );
  }
  return out;
}
