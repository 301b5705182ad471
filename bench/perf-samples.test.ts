import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { OTHER, categorize, parsePerfScript, tally, threadRoles } from './perf-samples.js';

// Eleven samples cut from real `perf script -F pid,tid,period,ip,sym,dso` output of the appliance
// under load (the enclave, pid 6453, with two signing workers; the parent, pid 8170), with node's
// --perf-basic-prof naming the JavaScript frames.
const excerpt = readFileSync(join(import.meta.dirname, 'fixtures', 'perf-script-excerpt.txt'), 'utf8');

describe('perf script samples', () => {
  const samples = parsePerfScript(excerpt);

  it('parses every sample: pid, tid, period and its frames, innermost first', () => {
    expect(samples).toHaveLength(11);
    expect(samples[0]).toMatchObject({ pid: 6453, tid: 6465, period: 500_000 });
    expect(samples[0]!.frames[0]).toEqual({ sym: 'v8::bigint::ProcessorImpl::DivideSchoolbook', dso: '/usr/bin/node' });
    expect(samples[8]).toMatchObject({ pid: 8170, tid: 8170, period: 1_001_001 });
    // A JavaScript frame keeps its whole name, spaces and all; the map file is the dso.
    expect(samples[1]!.frames.some((f) => f.sym === 'JS:*#write file:///work/main/dist/enclave/audit/log.js:109:11' && f.dso.startsWith('/tmp/perf-'))).toBe(true);
  });

  it('refuses a line that is neither a header nor a frame, and says which', () => {
    expect(() => parsePerfScript(' 1/1 500000\n\tnot a frame\n')).toThrow(/line 2: expected a sample header/);
    expect(() => parsePerfScript('\tffff sym (dso)\n')).toThrow(/line 1/); // a frame before any header
    expect(parsePerfScript('')).toEqual([]);
  });

  it('gives each sample the category of its innermost claimed frame', () => {
    expect(samples.map((s) => categorize(s.frames))).toEqual([
      'signing primitive (@noble/secp256k1)', // a BigInt division inside noble's point addition
      'audit: record signature (Ed25519)', // OpenSSL's fe_mul inside ossl_ed25519_sign, called from the audit log
      'native memory (malloc/free)', // glibc: no frame pointer, so no caller
      'kernel: sleeping and waking threads', // epoll_pwait
      'key cache and AES-GCM unwrap',
      'garbage collection',
      'kernel: page faults',
      'thread messages (structured clone, postMessage)',
      'kernel: fsync (the audit COMMIT)', // the parent's COMMIT, under better-sqlite3 under keystore-sqlite's transaction
      'audit: records built, encoded, parsed and hashed', // the parent parsing a record before it stores it
      'kernel: socket reads and writes',
    ]);
  });

  it('names what no rule claims, and a system call it does not know', () => {
    expect(categorize([])).toBe(OTHER);
    expect(categorize([{ sym: 'Builtins_LoadIC', dso: '/usr/bin/node' }])).toBe(OTHER);
    expect(categorize([{ sym: 'do_mmap', dso: '[kernel.kallsyms]' }, { sym: '__x64_sys_mmap', dso: '[kernel.kallsyms]' }])).toBe('kernel: other system calls');
    expect(categorize([{ sym: 'x', dso: '[kernel.kallsyms]' }, { sym: '__x64_sys_fdatasync', dso: '[kernel.kallsyms]' }])).toBe('kernel: fsync (the audit COMMIT)');
    // Innermost wins: a policy frame inside the enclave service is policy, not the service.
    expect(
      categorize([
        { sym: 'JS:*evaluate file:///r/dist/enclave/policy/engine.js:1:1', dso: '/tmp/perf-1.map' },
        { sym: 'JS:*signDecided file:///r/dist/enclave/service.js:438:31', dso: '/tmp/perf-1.map' },
      ]),
    ).toBe('policy');
  });

  it('tells the main thread, worker threads and runtime helpers apart', () => {
    const roles = threadRoles(samples);
    expect(roles.get(6453)).toBe('main');
    expect(roles.get(6465)).toBe('worker');
    expect(roles.get(6464)).toBe('worker');
    expect(roles.get(8170)).toBe('main');
    const helper = parsePerfScript(' 6453/6455      500000 \n\t    1437e7a v8::internal::ScavengerCollector::JobTask::Run (/usr/bin/node)\n\n');
    expect(threadRoles(helper).get(6455)).toBe('helper');
  });

  it('tallies on-CPU time by category for the samples asked for', () => {
    const roles = threadRoles(samples);
    const workers = tally(samples, (s) => roles.get(s.tid) === 'worker');
    expect([...workers.values()].reduce((a, b) => a + b, 0)).toBe(4 * 500_000);
    expect(workers.get('signing primitive (@noble/secp256k1)')).toBe(500_000);
    const parent = tally(samples, (s) => s.pid === 8170);
    expect(parent.get('kernel: fsync (the audit COMMIT)')).toBe(1_001_001);
  });
});
