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

/**
 * The enclave's malloc: tcmalloc (gperftools, Debian's libtcmalloc-minimal4, pinned in
 * build/debs.lock), preloaded by the image's env (`LD_PRELOAD`, in build-eif.sh's env file
 * and Dockerfile.enclave's ENV; build/dockerfile.test.ts holds both to this value).
 *
 * Why: the signing primitive is BigInt arithmetic, and V8 allocates the scratch digits of
 * BigInt multiplications and divisions with `operator new`, i.e. malloc: ~2,100 mallocs per
 * @noble/secp256k1 signature on Node 22 (counted with a counting preload), on every thread
 * that signs. glibc serves them through arena locks and, on the main thread, its slow path
 * (docs/performance.md, "Session 14"); tcmalloc from a per-thread cache. Measured on the
 * two-vCPU box (docs/performance.md, "Session 21"; bench/allocators.ts): the raw sign loop
 * takes 9.5 % less CPU (mimalloc 7.3 %, jemalloc 7.2 %); the whole enclave at 64 IPC clients,
 * against glibc in the same hour, 6–8 % less CPU per signature and 3–6 % more
 * signatures/s, and 2.7 % less CPU than mimalloc (alternated, 8 of 8 rounds).
 *
 * The env is part of the measured image (PCR2), so the host cannot change it. The dev stack
 * runs its enclave on the same library with `enclave-signer dev --enclave-allocator PATH`,
 * which the benchmarks pass (build/pinned-runtime.ts pinnedAllocator). What it costs
 * (heap hardening, memory): docs/enclave.md, "The allocator".
 */
export const ENCLAVE_ALLOCATOR = {
  /** The Debian package build/debs.lock pins. */
  debPackage: 'libtcmalloc-minimal4',
  /** Its library's soname, and where the image holds it. */
  soname: 'libtcmalloc_minimal.so.4',
  imagePath: '/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4',
} as const;

/** The image's env entry that preloads it. */
export const ENCLAVE_ALLOCATOR_ENV = `LD_PRELOAD=${ENCLAVE_ALLOCATOR.imagePath}`;
