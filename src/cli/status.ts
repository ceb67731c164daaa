/** `iota status`: the run at a glance, from the orchestrator's public status route. */
import type { Command } from 'commander';
import chalk from 'chalk';
import type { SwarmStatus } from '../protocol/swarm-messages.js';
import { printJson } from './output.js';
import { getPublic, orchestratorBase } from './common.js';
import { minerStanding } from './standing.js';

export function registerStatus(program: Command): void {
  program
    .command('status')
    .description(
      'show a run: epoch, each stage’s phase and deadline, miners, throughput, ledger, recent losses',
    )
    .option(
      '--orchestrator <url>',
      'orchestrator URL (default: orchestrator_url of the node config, else http://127.0.0.1:<port>)',
    )
    .option('--node <file>', 'node config to take the URL from')
    .option('--json', 'print the status object as JSON')
    .option('--miner <id>', 'one miner instead: its standing and why it is or isn’t earning')
    .action(async (o: { orchestrator?: string; node?: string; json?: boolean; miner?: string }) => {
      const base = orchestratorBase(o.orchestrator, o.node);
      if (o.miner) {
        const m = await minerStanding(base, o.miner);
        if (o.json) printJson(m);
        else
          console.log(
            `${chalk.bold(`miner ${m.miner}`)}: ${m.state}` +
              (m.stage !== undefined ? ` at stage ${m.stage}` : '') +
              `, ${m.verdicts.passed} checks passed, ${m.verdicts.failed} failed\n` +
              m.why.map((w) => `  ${w}`).join('\n'),
          );
        return;
      }
      const s = await getPublic<SwarmStatus>(base, '/v1/swarm');
      if (o.json) printJson(s);
      else console.log(render(s));
    });
}

/** A number as text, or '-' where the status has none (a reader never crashes on a gap). */
const num = (x: unknown, digits: number) =>
  typeof x === 'number' && Number.isFinite(x) ? x.toFixed(digits) : '-';
const ago = (now: number, t: number) => `${Math.max(0, Math.round((now - t) / 1000))}s ago`;
const inS = (now: number, t: number) =>
  t >= now ? `in ${Math.round((t - now) / 1000)}s` : `${Math.round((now - t) / 1000)}s overdue`;

export function render(s: SwarmStatus): string {
  const now = s.server_time;
  const out: string[] = [];
  const a = s.allocation;
  out.push(
    chalk.bold(
      `run ${s.run}: epoch ${s.epoch}, ${a.allocated}/${s.target} samples allocated` +
        (a.drain_deadline ? `, draining until ${inS(now, a.drain_deadline)}` : ''),
    ),
  );
  out.push(
    `throughput ${num(s.throughput, 2)} samples/s (last minute)` +
      (s.merge_share !== undefined
        ? `, ${num(100 * s.merge_share, 0)}% of recent epoch time spent uploading and merging`
        : '') +
      `, ${s.lease_expiries} lease expiries`,
  );
  for (const st of s.stages) {
    const phase = `${st.phase.toUpperCase()}(${st.epoch})${st.deadline ? `, deadline ${inS(now, st.deadline)}` : ''}`;
    out.push('');
    out.push(
      `${chalk.bold(`stage ${st.stage}`)}  ${phase}  capacity ${num(st.capacity, 2)} ` +
        `samples/s  queue ${st.queue.ready} ready, ${st.queue.leased} leased, ` +
        `${st.queue.held} held  weights of epoch ${st.manifest.epoch} (step ${st.manifest.step})`,
    );
    if (st.note) out.push(chalk.yellow(`  ${st.note}`));
    if (st.miners.length === 0) out.push(chalk.red('  no miners'));
    for (const m of st.miners) {
      const colour =
        m.state === 'silent' ? chalk.red : m.state === 'working' ? chalk.green : chalk.dim;
      out.push(
        `  ${m.id.slice(0, 12)}${m.name ? ` (${m.name})` : ''}  ${colour(m.state.padEnd(7))}  ` +
          `${m.rate !== undefined ? `${num(m.rate, 1)} units/s` : 'no rate yet'}  ` +
          `${m.done} samples  seen ${ago(now, m.last_seen)}` +
          (m.next_stage !== undefined ? `  moving to stage ${m.next_stage}` : ''),
      );
    }
  }
  const epochs = [...new Set(s.ledger.map((l) => l.epoch))];
  if (epochs.length) out.push('', chalk.bold('ledger (samples by state, per epoch and stage)'));
  for (const e of epochs) {
    for (const stage of [...new Set(s.ledger.filter((l) => l.epoch === e).map((l) => l.stage))]) {
      const rows = s.ledger.filter((l) => l.epoch === e && l.stage === stage);
      out.push(`  e${e} stage ${stage}: ${rows.map((r) => `${r.state} ${r.samples}`).join(', ')}`);
    }
  }
  if (s.losses.length)
    out.push(
      '',
      `recent losses: ${s.losses
        .slice(0, 10)
        .map((l) => num(l.loss, 3))
        .join(' ')}`,
    );
  if (s.evals.length)
    out.push(
      `held-out loss: ${s.evals
        .slice(0, 5)
        .map((e) => `e${e.epoch} ${num(e.loss, 3)}`)
        .join(', ')}`,
    );
  return out.join('\n');
}
