/**
 * SOURCE_DATE_EPOCH (https://reproducible-builds.org/specs/source-date-epoch/):
 * the one clock a reproducible build may read. Unset means 0.
 */
import { EifError } from '../attestation/eif/errors.js';

export function sourceDateEpoch(env: Record<string, string | undefined> = process.env): number {
  const v = env.SOURCE_DATE_EPOCH;
  if (v === undefined || v === '') return 0;
  if (!/^\d{1,12}$/.test(v)) throw new EifError('EIF_INPUT', `SOURCE_DATE_EPOCH must be whole seconds since 1970, got ${JSON.stringify(v.slice(0, 40))}`);
  return Number(v);
}
