/**
 * The live view of `iota local`: on a terminal, a block redrawn in place (per stage its phase
 * and deadline, miners, samples/s and queue; for the run its epoch, losses, tokens/s, merges,
 * verdicts and the last notable events); elsewhere, a plain line per epoch and one per notable
 * event; with --json, one JSON line per event.
 */
import chalk from 'chalk';
import type { SwarmStatus } from '../protocol/swarm-messages.js';
import type { SwarmListener } from './swarm.js';

const RECENT = 5;

const fixed = (x: number | undefined, d: number) =>
  x === undefined || !Number.isFinite(x) ? '-' : x.toFixed(d);

export class LiveView implements SwarmListener {
  private last?: SwarmStatus;
  private recent: string[] = [];
  private drawn = 0;
  private passed = 0;
  private failed = 0;
  private printedEpoch = -1;
  private readonly tty: boolean;
  private first?: { epoch: number; at: number };

  constructor(
    private readonly o: {
      json: boolean;
      seq: number;
      logs: string;
      out?: NodeJS.WriteStream;
      now?: () => number;
      /** a miner's display name from its key id (iota local names its keys) */
      name?: (id: string) => string | undefined;
    },
  ) {
    this.tty = !o.json && Boolean((o.out ?? process.stdout).isTTY);
  }

  private get out(): NodeJS.WriteStream {
    return this.o.out ?? process.stdout;
  }

  get verdicts(): { passed: number; failed: number } {
    return { passed: this.passed, failed: this.failed };
  }

  verdict(passed: boolean | null): void {
    if (passed === true) this.passed++;
    else if (passed === false) this.failed++;
  }

  notable(text: string, level: 'info' | 'warn' = 'info'): void {
    if (this.o.json) {
      this.out.write(`${JSON.stringify({ event: 'notable', level, text })}\n`);
      return;
    }
    const first = text.split('\n')[0];
    this.recent = [...this.recent, level === 'warn' ? chalk.yellow(first) : first].slice(-RECENT);
    if (this.tty) {
      // Multi-line news (a crashed child's log) stays above the redrawn block.
      if (text.includes('\n') || level === 'warn')
        this.print(level === 'warn' ? chalk.yellow(text) : text);
      else this.redraw();
    } else this.out.write(`${text}\n`);
  }

  status(s: SwarmStatus): void {
    this.last = s;
    if (this.o.json) {
      if (s.epoch !== this.printedEpoch) {
        this.printedEpoch = s.epoch;
        this.out.write(`${JSON.stringify({ event: 'epoch', ...this.figures(s) })}\n`);
      }
    } else if (this.tty) this.redraw();
    else if (s.epoch !== this.printedEpoch) {
      this.printedEpoch = s.epoch;
      const f = this.figures(s);
      this.out.write(
        `epoch ${f.epoch}: loss ${fixed(f.loss, 4)}, held-out ${fixed(f.eval_loss, 4)}, ` +
          `${fixed(f.tokens_per_s, 0)} tokens/s, weights of epochs ${f.stage_epochs.join('/')}, ` +
          `verdicts ${f.verdicts} (${f.failed_verdicts} failed)\n`,
      );
    }
  }

  private figures(s: SwarmStatus) {
    return {
      epoch: s.epoch,
      loss: s.losses[0]?.loss,
      eval_loss: s.evals[0]?.loss,
      // samples per epoch over the time the epochs this view saw took (none yet: no figure)
      tokens_per_s: this.tokensPerS(s),
      stage_epochs: s.stages.map((st) => st.manifest.epoch),
      verdicts: this.passed + this.failed,
      failed_verdicts: this.failed,
    };
  }

  private tokensPerS(s: SwarmStatus): number | undefined {
    const now = (this.o.now ?? Date.now)();
    this.first ??= { epoch: s.epoch, at: now };
    const seconds = (now - this.first.at) / 1000;
    if (s.epoch <= this.first.epoch || seconds <= 0) return undefined;
    return ((s.epoch - this.first.epoch) * s.target * this.o.seq) / seconds;
  }

  /** Clears the block, writes `text` for good, and draws the block again below it. */
  print(text: string): void {
    this.clear();
    this.out.write(`${text}\n`);
    this.redraw();
  }

  private clear(): void {
    if (this.drawn > 0) this.out.write(`\x1b[${this.drawn}F\x1b[J`);
    this.drawn = 0;
  }

  private redraw(): void {
    if (!this.tty) return;
    const lines = this.last ? this.render(this.last) : ['starting…'];
    const width = Math.max(40, (this.out.columns ?? 100) - 1);
    this.clear();
    // Lines never wrap, so the block's height is known and the redraw stays in place.
    this.out.write(`${lines.map((l) => truncate(l, width)).join('\n')}\n`);
    this.drawn = lines.length;
  }

  render(s: SwarmStatus): string[] {
    const now = s.server_time;
    const f = this.figures(s);
    const out = [
      chalk.bold(
        `run ${s.run}  epoch ${s.epoch}  loss ${fixed(f.loss, 4)}  held-out ${fixed(f.eval_loss, 4)}  ` +
          `${fixed(f.tokens_per_s, 0)} tokens/s`,
      ),
      `weights of epochs ${f.stage_epochs.join('/')}  verdicts ${this.passed} passed, ` +
        `${this.failed} failed  samples ${s.allocation.allocated}/${s.target} allocated`,
    ];
    for (const st of s.stages) {
      const count = (state: string) => st.miners.filter((m) => m.state === state).length;
      const deadline = st.deadline
        ? ` (${Math.max(0, Math.round((st.deadline - now) / 1000))}s left)`
        : '';
      out.push(
        `  stage ${st.stage}  ${st.phase.toUpperCase().padEnd(9)}${deadline.padEnd(12)} ` +
          `miners ${count('working')} working ${count('idle')} idle ${count('silent')} silent  ` +
          `${fixed(st.capacity, 1)} samples/s  queue ${st.queue.ready}/${st.queue.leased}/${st.queue.held}`,
      );
      if (st.miners.length)
        out.push(
          chalk.dim(
            `    ${st.miners
              .map(
                (m) => `${this.o.name?.(m.id) ?? m.name ?? m.id.slice(0, 8)} ${fixed(m.rate, 1)}/s`,
              )
              .join('  ')}`,
          ),
        );
    }
    out.push(chalk.dim(`logs: ${this.o.logs}   Ctrl-C stops (twice: at once)`));
    for (const r of this.recent) out.push(chalk.dim(`  · ${r}`));
    return out;
  }
}

/** Cuts a line to `width` visible characters (colour codes do not count). */
function truncate(line: string, width: number): string {
  let visible = 0;
  let out = '';
  for (let i = 0; i < line.length; i++) {
    if (line[i] === '\x1b') {
      const end = line.indexOf('m', i);
      out += line.slice(i, end + 1);
      i = end;
      continue;
    }
    if (visible >= width) continue;
    out += line[i];
    visible++;
  }
  return out;
}
