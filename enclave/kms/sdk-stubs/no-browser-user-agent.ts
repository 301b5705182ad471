/**
 * Stands in for `bowser` (a browser user-agent string parser, 68 KB) in the
 * enclave image only (an esbuild `--alias` in build-eif.sh). @aws-sdk/core
 * loads it for its browser user-agent provider; on Node the SDK uses its Node
 * provider, and the enclave has no browser. Parsing yields nothing, so the
 * browser provider (if ever called) reports "other"/"unknown" as it does when
 * there is no navigator.
 */
export function parse(_userAgent: string): Record<string, never> {
  return {};
}

export default { parse };
