/** One orchestrator per state folder: a live holder refuses a second, a dead one is taken over. */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { lockStateDir } from '../../../src/orchestrator/state/lock.js';

describe('lockStateDir', () => {
  it('refuses a folder another live process serves, and changes nothing', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'iota-lock-'));
    const other = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)']);
    try {
      writeFileSync(join(dir, 'orchestrator.pid'), `${other.pid}\n`);
      expect(() => lockStateDir(dir)).toThrow(expect.objectContaining({ code: 'E_STATE_IN_USE' }));
      expect(readFileSync(join(dir, 'orchestrator.pid'), 'utf8')).toBe(`${other.pid}\n`);
    } finally {
      other.kill('SIGKILL');
      await new Promise((r) => other.once('exit', r));
    }
    // Its holder died: the folder is taken over, and released again.
    const release = lockStateDir(dir);
    expect(readFileSync(join(dir, 'orchestrator.pid'), 'utf8')).toBe(`${process.pid}\n`);
    release();
    expect(existsSync(join(dir, 'orchestrator.pid'))).toBe(false);
  });
});
