import { describe, expect, it } from 'vitest';
import { type BreakdownPoint, markdown, report } from './e2e-breakdown.js';
import { PRIMITIVE } from './perf-samples.js';

const group = (cpuMs: number, categories: Record<string, number>) => ({ cpuMs, categories });

// Two points shaped like a real run (ms per signature), small enough to add up by hand.
const points: BreakdownPoint[] = [
  {
    clients: 64,
    appliance: {
      signaturesPerSec: 2900,
      p50Ms: 21,
      errors: 0,
      clientCpuMs: 0.02,
      samples: 8000,
      threads: {
        'parent: main thread': group(0.11, { 'bridge frames and CBOR': 0.06, 'kernel: fsync (the audit COMMIT)': 0.05 }),
        'parent: runtime helper threads': group(0.01, { 'garbage collection': 0.01 }),
        'enclave: main thread': group(0.15, { 'audit: record signature (Ed25519)': 0.03, 'bridge frames and CBOR': 0.12 }),
        'enclave: signing workers': group(0.32, { [PRIMITIVE]: 0.22, 'thread messages (structured clone, postMessage)': 0.1 }),
        'enclave: runtime helper threads': group(0.02, { 'garbage collection': 0.02 }),
      },
    },
    hotWallet: {
      signaturesPerSec: 3600,
      p50Ms: 17,
      errors: 0,
      clientCpuMs: 0.025,
      samples: 4000,
      threads: { 'hot wallet: main thread': group(0.25, { [PRIMITIVE]: 0.2, 'kernel: socket reads and writes': 0.05 }) },
    },
  },
  {
    clients: 1,
    appliance: {
      signaturesPerSec: 800,
      p50Ms: 1.2,
      errors: 0,
      clientCpuMs: 0.05,
      samples: 3000,
      threads: {
        'parent: main thread': group(0.45, { 'kernel: fsync (the audit COMMIT)': 0.45 }),
        'enclave: main thread': group(0.6, { [PRIMITIVE]: 0.25, 'bridge frames and CBOR': 0.35 }),
      },
    },
    hotWallet: { signaturesPerSec: 2800, p50Ms: 0.35, errors: 0, clientCpuMs: 0.05, samples: 1000, threads: { 'hot wallet: main thread': group(0.3, { [PRIMITIVE]: 0.3 }) } },
  },
];

describe('the CPU breakdown against the targets', () => {
  const r = report(points, 0.2, 2) as Record<string, Record<string, unknown>>;

  it('enclave: every enclave thread, the primitive apart, against 1.15 × the raw sign', () => {
    expect(r.enclaveCpuAgainstRaw).toMatchObject({ rawMs: 0.2, allowedMs: 0.23, enclaveMs: 0.49, ratio: 2.45, primitiveInEnclaveMs: 0.22, everythingElseMs: 0.27 });
    expect(r.enclaveCpuAgainstRaw!.everythingElse).toEqual({
      'bridge frames and CBOR': 0.12,
      'thread messages (structured clone, postMessage)': 0.1,
      'audit: record signature (Ed25519)': 0.03,
      'garbage collection': 0.02,
    });
  });

  it('parent: its threads only, against 0.1 ms', () => {
    expect(r.parentCpuPerRequest).toMatchObject({ parentMs: 0.12, categories: { 'bridge frames and CBOR': 0.06, 'kernel: fsync (the audit COMMIT)': 0.05, 'garbage collection': 0.01 } });
  });

  it('throughput: every process of the appliance (client included) over the vCPUs, against one hot-wallet thread', () => {
    expect(r.throughputAgainstHotWallet).toMatchObject({
      ratio: 0.806,
      cpuMsPerSignature: { appliance: 0.63, enclave: 0.49, parent: 0.12, client: 0.02, hotWallet: 0.25 },
      ceilingSignaturesPerSec: { appliance: 3175, hotWallet: 4000 },
    });
  });

  it('one client: the whole path in series against the hot wallet', () => {
    expect(r.oneClient).toMatchObject({ addedP50Ms: 0.85, cpuMsPerRequest: { appliance: 1.1, hotWallet: 0.35 } });
    expect(Object.keys(r.oneClient!.applianceCategories as object)[0]).toBe('kernel: fsync (the audit COMMIT)');
  });

  it('prints one table per point, categories by thread, in µs', () => {
    const md = markdown({ points });
    expect(md).toContain('| category | parent: main thread | parent: runtime helper threads | enclave: main thread | enclave: signing workers | enclave: runtime helper threads | hot wallet: main thread |');
    expect(md).toContain(`| ${PRIMITIVE} | 0 | 0 | 0 | 220 | 0 | 200 |`);
    expect(md).toContain('| **total** | **110** | **10** | **150** | **320** | **20** | **250** |');
  });
});
