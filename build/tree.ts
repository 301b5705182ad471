/**
 * Turns a staged directory into cpio entries. Only what the build decided
 * survives: names, contents, the executable bit, symlink targets. Owners,
 * times and other permission bits are dropped (writeCpio fixes them), so the
 * machine, umask and checkout time of a build cannot reach the image.
 */
import { lstatSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { EifError } from '../attestation/eif/errors.js';
import type { CpioEntry } from './cpio.js';

export function treeEntries(root: string, prefix = ''): CpioEntry[] {
  const out: CpioEntry[] = [];
  const walk = (dir: string, rel: string): void => {
    for (const name of readdirSync(dir).sort()) {
      const abs = join(dir, name);
      const path = rel === '' ? name : `${rel}/${name}`;
      const st = lstatSync(abs);
      if (st.isSymbolicLink()) out.push({ path, type: 'symlink', target: readlinkSync(abs) });
      else if (st.isDirectory()) {
        out.push({ path, type: 'dir' });
        walk(abs, path);
      } else if (st.isFile()) out.push({ path, type: 'file', data: new Uint8Array(readFileSync(abs)), executable: (st.mode & 0o111) !== 0 });
      else throw new EifError('EIF_INPUT', `${abs} is neither a file, a directory nor a symlink; a ramdisk cannot hold it`);
    }
  };
  walk(root, prefix.replace(/\/+$/, ''));
  if (prefix !== '') out.push({ path: prefix.replace(/\/+$/, ''), type: 'dir' });
  return out;
}
