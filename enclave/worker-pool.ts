/**
 * A fixed pool of signing workers (one per vCPU by default) so every vCPU of
 * the enclave signs. Jobs go to the worker with the fewest in flight; a
 * crashed worker is replaced and its jobs fail with WORKER_CRASHED.
 */
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { SignerError } from '../common/errors.js';
import type { JsonLike } from '../common/cbor-json.js';
import type { KeyKind, SignOp } from '../common/protocol/enclave-api.js';
import type { WorkerIn, WorkerOut } from './worker.js';

export class WorkerError extends SignerError {
  readonly field: string | undefined;
  constructor(code: string, message: string, field?: string) {
    super(code, message);
    this.field = field;
  }
  override toJSON() {
    const b = super.toJSON();
    return this.field === undefined ? b : { ...b, field: this.field };
  }
}

export interface SignJob {
  op: SignOp;
  keyId: string;
  kind: KeyKind;
  keyringId: string;
  blob: Uint8Array;
  request: Record<string, JsonLike>;
}

export interface WorkerPool {
  readonly size: number;
  setKeyring(keyringId: string, key: Uint8Array): void;
  lock(): void;
  run(job: SignJob): Promise<unknown>;
  close(): Promise<void>;
}

/**
 * The worker beside this module: worker.js in dist/, worker.mjs beside the
 * image bundle (/app/enclave.mjs); under vitest (TypeScript sources) the build
 * in dist/ is used.
 */
function workerPath(): string {
  const here = fileURLToPath(import.meta.url);
  if (here.endsWith('.mjs')) return join(dirname(here), 'worker.mjs');
  if (here.endsWith('.js')) return join(dirname(here), 'worker.js');
  const built = resolve(dirname(here), '..', 'dist', 'enclave', 'worker.js');
  if (!existsSync(built)) throw new SignerError('WORKER_MISSING', `signing worker not built: ${built}`, { hint: 'run npm run build' });
  return built;
}

interface Slot {
  worker: Worker;
  inflight: Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>;
}

export function createWorkerPool(size = availableParallelism()): WorkerPool {
  const path = workerPath();
  let nextId = 1;
  let closed = false;
  let keyringMsg: WorkerIn | undefined;
  const slots: Slot[] = [];

  function spawn(i: number): Slot {
    const worker = new Worker(path);
    const slot: Slot = { worker, inflight: new Map() };
    worker.on('message', (m: WorkerOut) => {
      const p = slot.inflight.get(m.id);
      if (!p) return;
      slot.inflight.delete(m.id);
      if (m.t === 'done') p.resolve(m.result);
      else p.reject(new WorkerError(m.error.code, m.error.message, m.error.field));
    });
    let dead = false;
    const onDeath = () => {
      if (dead) return;
      dead = true;
      for (const p of slot.inflight.values()) p.reject(new WorkerError('WORKER_CRASHED', 'the signing worker stopped; request not completed'));
      slot.inflight.clear();
      if (!closed) slots[i] = spawn(i);
    };
    worker.once('error', onDeath);
    worker.once('exit', onDeath);
    worker.unref();
    // A replacement worker needs the keyring too.
    if (keyringMsg) worker.postMessage(keyringMsg);
    return slot;
  }

  for (let i = 0; i < Math.max(1, size); i++) slots.push(spawn(i));

  return {
    size: slots.length,
    setKeyring(keyringId, key) {
      keyringMsg = { t: 'keyring', keyringId, key };
      // structured clone gives each worker its own copy
      for (const s of slots) s.worker.postMessage(keyringMsg);
    },
    lock() {
      keyringMsg = undefined;
      for (const s of slots) s.worker.postMessage({ t: 'lock' } satisfies WorkerIn);
    },
    run(job) {
      if (closed) return Promise.reject(new WorkerError('WORKER_CLOSED', 'the signing pool is shut down'));
      let best = slots[0]!;
      for (const s of slots) if (s.inflight.size < best.inflight.size) best = s;
      const id = nextId++;
      return new Promise((resolve, reject) => {
        best.inflight.set(id, { resolve, reject });
        best.worker.postMessage({ t: 'job', id, ...job } satisfies WorkerIn);
      });
    },
    async close() {
      closed = true;
      if (keyringMsg && keyringMsg.t === 'keyring') keyringMsg.key.fill(0);
      keyringMsg = undefined;
      await Promise.all(slots.map((s) => s.worker.terminate()));
    },
  };
}
