/**
 * Reading a policy file for the `policy` commands: size-capped, strict JSON, validated; a
 * policy that is not valid is reported (text or --json) with the path of the offending field.
 */
import { MAX_POLICY_BYTES, parsePolicy, type CompiledPolicy } from '../enclave/policy/document.js';
import { PolicyDocumentError } from '../enclave/policy/errors.js';
import { EXIT_FAILED } from './errors.js';
import { readInputFile, type Io } from './io.js';

export interface PolicyFailure {
  valid: false;
  error: { code: string; path: string; message: string; hint?: string };
}

export function policyFailure(e: PolicyDocumentError): PolicyFailure {
  return { valid: false, error: { code: e.code, path: e.path, message: e.message, ...(e.hint === undefined ? {} : { hint: e.hint }) } };
}

/** Loads and validates; on an invalid policy prints the failure and returns the exit status instead. */
export async function loadPolicy(path: string, io: Io, json: boolean): Promise<CompiledPolicy | number> {
  const bytes = await readInputFile(path, 'policy', MAX_POLICY_BYTES, io);
  try {
    return parsePolicy(bytes);
  } catch (e) {
    if (!(e instanceof PolicyDocumentError)) throw e;
    if (json) io.stdout(`${JSON.stringify(policyFailure(e), null, 2)}\n`);
    else {
      const lines = ['FAILED: policy is not valid', `  error   ${e.code}`];
      if (e.path !== '') lines.push(`  field   ${e.path}`);
      lines.push(`  reason  ${e.message}`);
      if (e.hint) lines.push(`  hint    ${e.hint}`);
      io.stderr(`${lines.join('\n')}\n`);
    }
    return EXIT_FAILED;
  }
}
