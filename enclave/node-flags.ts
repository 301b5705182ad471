/**
 * The V8 options the enclave's Node.js runs with: the image's cmd (build-eif.sh,
 * Dockerfile.enclave) puts them between /bin/node and /app/enclave.mjs, and the
 * dev stack starts its enclave with them too (build/dockerfile.test.ts holds the
 * three together). They can only be given on the command line: V8 sizes each
 * heap when the isolate is created, and NODE_OPTIONS does not accept them.
 *
 * --min-semi-space-size=16 (MB): V8 shrinks the young generation whenever
 * allocation slows down (an idle moment between bursts of requests) and grows it
 * back only as objects survive, which the request path now rarely does
 * (common/churn-map.ts). So after every idle moment the enclave ran a burst with
 * a 1 MB young generation: three times the scavenges, each with the same
 * survivors to copy. A floor of 16 MB (the size it grows to under load here:
 * ~13.5 MB allocated between scavenges) keeps it sized for load; it applies to
 * the signing workers too. Measured on two vCPUs, 64 IPC clients, 3.5 s bursts alternated with other stacks' bursts
 * (docs/performance.md, "Session 12"): the longer the idle gap before a burst,
 * the larger the gain — ~7–10 s gaps: +3.6 to +7.5 % signatures/s and the main
 * thread's CPU per signature −9 to −11 %, every round; ~3.5 s gaps: +0.9 %
 * (main thread −4 %). A 4 MB floor gained about half as much. The cost is
 * memory: the enclave's resident size after a burst was 227 MB against 211 MB
 * (up to 2 × 16 MB per thread can be touched; docs/enclave.md).
 */
export const ENCLAVE_NODE_FLAGS: readonly string[] = ['--min-semi-space-size=16'];
