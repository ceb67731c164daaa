/** `iota keys`: Ed25519 identities for miners, validators and admins. */
import type { Command } from 'commander';
import { newIdentity, readKeyFile, writeKeyFile } from '../protocol/keys.js';
import { printJson } from './output.js';

export function registerKeys(program: Command): void {
  const keys = program
    .command('keys')
    .description('create and show Ed25519 keys (a key id is what allow-lists and configs name)');

  keys
    .command('new')
    .description('create a key file (mode 0600) and print its key id')
    .requiredOption('--out <file>', 'where to write the key; an existing file is never overwritten')
    .option('--json', 'print one JSON object')
    .action((o: { out: string; json?: boolean }) => {
      const id = newIdentity();
      writeKeyFile(o.out, id);
      if (o.json) printJson({ id: id.id, file: o.out });
      else console.log(id.id);
    });

  keys
    .command('show')
    .description('print the key id of a key file')
    .argument('<file>', 'key file')
    .option('--json', 'print one JSON object')
    .action((file: string, o: { json?: boolean }) => {
      const id = readKeyFile(file);
      if (o.json) printJson({ id: id.id, file });
      else console.log(id.id);
    });
}
