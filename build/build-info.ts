/**
 * The metadata section's BuildMetadata, computed the way nitro-cli's
 * generate_build_info does, but from SOURCE_DATE_EPOCH instead of the clock
 * so two builds of the same inputs write the same bytes.
 */
import type { EifBuildInfo } from '../attestation/eif/metadata.js';
import { rfc3339FromEpoch } from '../attestation/eif/metadata.js';

export const BUILD_TOOL = 'enclave-signer-eif';

/**
 * OS and kernel version from a kernel .config: nitro-cli reads its third line
 * ("# Linux/x86_64 4.14.177-104.253.amzn2.x86_64 Kernel Configuration"),
 * splits it on ' ', '/' and '-', and takes words 1 and 3 ("Linux", "4.14.177").
 */
export function kernelInfoFromConfig(configText: string): { os: string; kernel: string } {
  const line = configText.split('\n')[2] ?? '';
  const words = line.split(/[ /-]/);
  return { os: words[1] ?? 'Unknown', kernel: words[3] ?? 'Unknown' };
}

export function buildInfo(opts: { sourceDateEpoch: number; toolVersion: string; kernelConfig: string }): EifBuildInfo {
  const k = kernelInfoFromConfig(opts.kernelConfig);
  return {
    BuildTime: rfc3339FromEpoch(opts.sourceDateEpoch),
    BuildTool: BUILD_TOOL,
    BuildToolVersion: opts.toolVersion,
    OperatingSystem: k.os,
    KernelVersion: k.kernel,
  };
}
