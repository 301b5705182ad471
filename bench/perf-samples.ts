/**
 * Reads `perf script` output (Linux perf, on-CPU samples with call stacks) and says what each
 * sample was doing, for the CPU breakdown of bench/e2e-breakdown.ts (issue 11 §4: "where a target
 * is missed, the CPU breakdown says exactly where the time goes").
 *
 * Why perf and not V8's `--cpu-prof` (bench/cpuprofile.ts): V8 samples a thread on wall time and
 * charges a thread that waits for a core, or sits in the kernel, to whatever frame it was in; on
 * two vCPUs shared by five busy threads that is a large error. perf's cpu-clock samples are taken
 * only while the thread is on a CPU, and they see the kernel (socket writes, fsync, wake-ups),
 * native code (OpenSSL's Ed25519, V8's BigInt and structured clone) and, with node's
 * `--perf-basic-prof`, JavaScript by function and file.
 *
 * Input: `perf script -F pid,tid,period,ip,sym,dso`: a header line `PID/TID PERIOD` per sample,
 * then one line per frame, `ADDR SYMBOL (DSO)`, innermost first, and a blank line.
 *
 * Attribution: a sample belongs to the category of the innermost frame that matches a rule
 * (`categorize`): a BigInt division inside noble is "signing primitive", the Ed25519 inside the
 * audit writer is "audit: record signature", a page fault inside either is "kernel: page
 * faults". So the categories say which code or mechanism burnt the CPU, and they add up to the
 * process's whole CPU time with nothing counted twice.
 */

export interface PerfFrame {
  sym: string;
  dso: string;
}

export interface PerfSample {
  pid: number;
  tid: number;
  /** On-CPU time the sample stands for, ns (cpu-clock's period). */
  period: number;
  /** Innermost first. */
  frames: PerfFrame[];
}

const HEADER = /^\s*(\d+)\/(\d+)\s+(\d+)\s*$/;
const FRAME = /^\s+[0-9a-f]+\s+(.*)\s+\(([^()]*)\)\s*$/;

/** Parses `perf script -F pid,tid,period,ip,sym,dso`; throws on a line it does not understand. */
export function parsePerfScript(text: string): PerfSample[] {
  const out: PerfSample[] = [];
  let cur: PerfSample | undefined;
  let n = 0;
  for (const line of text.split('\n')) {
    n++;
    if (line.trim() === '') {
      cur = undefined;
      continue;
    }
    const h = HEADER.exec(line);
    if (h) {
      cur = { pid: Number(h[1]), tid: Number(h[2]), period: Number(h[3]), frames: [] };
      out.push(cur);
      continue;
    }
    const f = FRAME.exec(line);
    if (!f || !cur) throw new Error(`perf script output, line ${n}: expected a sample header "PID/TID PERIOD" or a frame "ADDR SYMBOL (DSO)", got ${JSON.stringify(line.slice(0, 120))}`);
    cur.frames.push({ sym: f[1]!, dso: f[2]! });
  }
  return out;
}

/** A category and the frames it claims (tested against `SYMBOL (DSO)`). */
export interface Rule {
  name: string;
  match: RegExp;
}

export const OTHER = 'runtime: event loop, V8 builtins and the rest';
export const PRIMITIVE = 'signing primitive (@noble/secp256k1)';

/** Kernel time by the system call it was spent in (innermost first, so a page fault inside a write is a page fault). */
function syscallCategory(name: string): string {
  if (/^f(data)?sync$/.test(name)) return 'kernel: fsync (the audit COMMIT)';
  if (/^(pwrite64|pread64|lseek|fcntl|openat|close|fstat|newfstatat|statx)$/.test(name)) return 'kernel: file writes and locks (SQLite WAL)';
  if (/^(write|read|writev|readv|sendmsg|recvmsg|sendto|recvfrom)$/.test(name)) return 'kernel: socket reads and writes';
  if (/^(epoll_pwait|epoll_wait|epoll_ctl|futex|nanosleep|clock_nanosleep|sched_yield)$/.test(name)) return 'kernel: sleeping and waking threads';
  return 'kernel: other system calls';
}

/**
 * The rules, in order of precedence within one frame. File rules match the path in a JavaScript
 * frame's name (`JS:*fn file:///…/dist/enclave/audit/log.js:109:11`), so they hold for the dist
 * build and for the image's bundle names alike only where the path survives: the breakdown runs
 * the dist build.
 */
export const RULES: readonly Rule[] = [
  // Garbage collection proper (allocation itself stays with the code that allocates).
  { name: 'garbage collection', match: /v8::internal::(Scaveng|MarkCompact|MinorMarkSweep|ConcurrentMarking|IncrementalMarking|MarkingVisitor|MarkingBarrier|Sweeper|Evacuat|GCTracer|Heap::CollectGarbage|Heap::PerformGarbageCollection)/ },
  // glibc and OpenSSL's assembly keep no frame pointer, so perf cannot see who called them: their
  // time is named by what they are. malloc/free serve V8's ArrayBuffer backing stores (every
  // Uint8Array over 64 bytes), structured clone's buffers, OpenSSL's per-call contexts and V8's
  // BigInt scratch digits. The enclave image preloads tcmalloc (enclave/node-flags.ts): its
  // functions (tc_*, tcmalloc::*, and its operator new/delete) are the same category, and so
  // are mimalloc's and jemalloc's when a benchmark preloads them instead.
  { name: 'native memory (malloc/free)', match: /^(_int_malloc|_int_free|_int_realloc|malloc|malloc_consolidate|unlink_chunk[.\w]*|__libc_calloc|__libc_malloc|__libc_free|calloc|realloc|free|cfree|tcache_\w+|tc_\w+|_?mi_\w+|_?je_\w+|_Znwm\w*|_ZdlPv\w*|_Znam\w*|_ZdaPv\w*)(@[@\w.]+)? \(|^(\(anonymous namespace\)::)?(tcmalloc::|do_malloc|do_free|do_memalign|operator new|operator delete)/ },
  { name: 'kernel: page faults', match: /^(asm_)?exc_page_fault \(/ },
  { name: 'kernel: interrupts', match: /^asm_(common_interrupt|sysvec_\w+) \(/ },
  // Audit: the record's Ed25519 signature, then the rest of the record, then its persistence.
  { name: 'audit: record signature (Ed25519)', match: /\/common\/audit\/envelope\.js|^(ossl_ed25519_sign|ed25519_digest_sign) \(/ },
  // SHA-512 on the signing path is only Ed25519's own hash (records are hashed with SHA-256,
  // RFC 6979 uses HMAC-SHA-256); its assembly loses the caller, so it is named here.
  { name: 'audit: record signature (Ed25519)', match: /^sha512_block_data_order\w* \(/ },
  { name: 'audit: records built, encoded, parsed and hashed', match: /\/enclave\/audit\/|\/common\/audit\/(record|digest|result|checkpoint|binding)\.js/ },
  { name: 'audit: persisting records (SQLite rows, COMMIT, receipts)', match: /\/parent\/audit-(persist|methods)\.js|JS:\S*(insertAudit|changeWithRecords|auditRows|withAudit|appendAuditRecords|remember) \S*\/parent\/keystore\.js|JS:\S*transaction \S*\/parent\/keystore-sqlite\.js/ },
  { name: PRIMITIVE, match: /@noble\/secp256k1\/|\/enclave\/signers\/secp\.js/ },
  { name: 'policy', match: /\/enclave\/policy\// },
  { name: 'key cache and AES-GCM unwrap', match: /\/enclave\/(key-cache|kms\/)/ },
  { name: 'request parsing, key facts and result encoding', match: /\/enclave\/(operations|signers\/)/ },
  { name: 'thread messages (structured clone, postMessage)', match: /node::worker::(Message|MessagePort|MessagePortData)|v8::internal::Value(Serializer|Deserializer)|v8::Value(Serializer|Deserializer)|node:internal\/worker|node:internal\/per_context\/messageport/ },
  { name: 'bridge frames and CBOR', match: /\/common\/(cbor|cbor-json|bridge\/)|\/parent\/(enclave-link|gate|json-safe)\.js/ },
  { name: 'enclave service and worker pool', match: /\/enclave\// },
  { name: 'keystore and key rows', match: /\/parent\/(keystore[\w-]*|key-row-cache)\.js/ },
  { name: 'parent: JSON-RPC methods and transports', match: /\/parent\/|\/common\/(rpc|transport)\// },
  { name: 'hot wallet: its JSON-RPC handler', match: /\/bench\/hot-wallet\.js/ },
  { name: 'JSON parse and stringify', match: /Json(Parse|Stringif)|JsonParser|JsonStringifier/ },
  { name: 'node: sockets, streams, events and timers', match: /node:(net|stream|events|http|_http_\w+|internal\/(stream_base_commons|streams\/|timers|process\/task_queues|http))|node::(StreamBase|LibuvStreamWrap|PipeWrap|TCPWrap|StreamReq|WriteWrap|ShutdownWrap)/ },
];

const SYSCALL = /^(?:__x64_sys_|__do_sys_|__se_sys_|ksys_)(\w+) \(/;

/** The category of one sample: its innermost frame that a rule (or a system call entry) claims. */
export function categorize(frames: readonly PerfFrame[], rules: readonly Rule[] = RULES): string {
  for (const f of frames) {
    const text = `${f.sym} (${f.dso})`;
    for (const r of rules) if (r.match.test(text)) return r.name;
    const sc = SYSCALL.exec(text);
    if (sc) return syscallCategory(sc[1]!);
    if (text.startsWith('do_syscall_64 (')) return 'kernel: other system calls';
  }
  return OTHER;
}

export type ThreadRole = 'main' | 'worker' | 'helper';

/**
 * Each thread's role: the process's main thread (tid = pid), a worker thread (`new Worker`: some
 * sample of it runs under node::worker::Worker::Run), or one of the runtime's helpers (V8's
 * platform threads, libuv's pool).
 */
export function threadRoles(samples: readonly PerfSample[]): Map<number, ThreadRole> {
  const out = new Map<number, ThreadRole>();
  for (const s of samples) {
    if (s.tid === s.pid) out.set(s.tid, 'main');
    else if (s.frames.some((f) => f.sym.startsWith('node::worker::Worker::Run'))) out.set(s.tid, 'worker');
    else if (!out.has(s.tid)) out.set(s.tid, 'helper');
  }
  return out;
}

/** On-CPU ns by category for the samples `pick` keeps. */
export function tally(samples: readonly PerfSample[], pick: (s: PerfSample) => boolean, rules: readonly Rule[] = RULES): Map<string, number> {
  const out = new Map<string, number>();
  for (const s of samples) {
    if (!pick(s)) continue;
    const c = categorize(s.frames, rules);
    out.set(c, (out.get(c) ?? 0) + s.period);
  }
  return out;
}
