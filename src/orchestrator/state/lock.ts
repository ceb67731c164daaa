/**
 * One orchestrator per state folder: `<state_dir>/orchestrator.pid` holds the pid of the one
 * serving it. A second start is refused while that process lives; a file left by a process that
 * died (SIGKILL, a crash) is taken over.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { IotaError } from '../../errors.js';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Takes the state folder for this process; returns the release (idempotent). */
export function lockStateDir(dir: string): () => void {
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'orchestrator.pid');
  let held: number | undefined;
  try {
    held = Number(readFileSync(file, 'utf8').trim());
  } catch {
    // no lock file: the folder is free
  }
  if (held && held !== process.pid && alive(held))
    throw new IotaError(
      'E_STATE_IN_USE',
      `the state folder ${dir} is served by another orchestrator (pid ${held})`,
      'stop that one first, or give this one another --state-dir',
    );
  writeFileSync(file, `${process.pid}\n`);
  let released = false;
  return () => {
    if (released) return;
    released = true;
    try {
      if (Number(readFileSync(file, 'utf8').trim()) === process.pid) rmSync(file);
    } catch {
      // already gone
    }
  };
}
