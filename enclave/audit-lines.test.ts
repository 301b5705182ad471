import { describe, expect, it } from 'vitest';
import { batchedLines } from './audit-lines.js';

describe('batched audit lines', () => {
  it('lines of one turn go out in one write; flushed() resolves only after that write', async () => {
    const writes: string[] = [];
    const b = batchedLines((c) => writes.push(c));
    b.push('audit 1');
    b.push('audit 2');
    const f = b.flushed();
    expect(writes).toEqual([]); // not written yet: a signature waiting on f is not released
    await f;
    expect(writes).toEqual(['audit 1\naudit 2\n']);
    b.push('audit 3');
    await b.flushed();
    expect(writes).toEqual(['audit 1\naudit 2\n', 'audit 3\n']);
  });

  it('a failed write rejects flushed() for the lines of that batch (their signatures are withheld)', async () => {
    let fail = true;
    const b = batchedLines(() => {
      if (fail) throw new Error('EPIPE');
    });
    b.push('audit 1');
    await expect(b.flushed()).rejects.toThrow('EPIPE');
    fail = false;
    b.push('audit 2');
    await expect(b.flushed()).resolves.toBeUndefined();
  });
});
