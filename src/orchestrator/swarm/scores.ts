/**
 * What validation's records add up to, read-only: each miner's verdicts, and the scores that
 * turn verified work into incentive weights (DESIGN.md section 5).
 */
import type { ModelConfig } from '../../config/model.js';
import type { RunConfig } from '../../config/run.js';
import type { ValidationState } from '../state/validation.js';
import { UNITS } from './scheduler.js';

export interface Score {
  miner: string;
  work_flops: number;
  failures: number;
  penalty_flops: number;
  score: number;
  weight: number;
  probation: boolean;
}

export interface Scores {
  epoch_from: number;
  scores: Score[];
  burn?: { owner: string; weight: number };
}

export interface Verdict {
  id: number;
  epoch: number;
  stage: number;
  item: number;
  kind: string;
  reason: string;
  passed: boolean;
  by: string;
  rel_err: number | null;
  detail: string;
  at: number;
}

/** A miner's verdicts, oldest first: what was checked, by whom, and the numbers. */
export function minerVerdicts(state: ValidationState, miner: string, limit: number): Verdict[] {
  return state.decidedFor(miner, limit).map((r) => ({
    id: r.id,
    epoch: r.epoch,
    stage: r.stage,
    item: r.item,
    kind: r.kind,
    reason: r.reason,
    passed: r.state === 'passed',
    by: r.validator === 'orchestrator' ? 'orchestrator' : 'validator',
    rel_err: r.rel_err,
    detail: r.detail ?? '',
    at: r.done_at ?? r.created_at,
  }));
}

/**
 * Scores over the last `window_epochs` epochs up to `head`: work in FLOPs (from the config's
 * shapes, so costly stages pay more: 2 per parameter per token forward, in units of the work
 * kind) minus `penalty_items` items' worth per failed verdict, clamped at zero (a quarantined
 * miner scores zero until released); weights are the normalised scores, with `burn_fraction`
 * to the owner.
 */
export function minerScores(
  state: ValidationState,
  head: number,
  cfg: { run: RunConfig; model: ModelConfig; params: number[] },
): Scores {
  const v = cfg.run.validation;
  const flops = (stage: number, kind: string) =>
    2 * cfg.params[stage] * cfg.model.seq * (UNITS[kind as keyof typeof UNITS] ?? 1);
  const from = Math.max(0, head - v.window_epochs + 1);
  const work = new Map<string, number>();
  const perItem = new Map<string, number>();
  for (const w of state.work(from)) {
    work.set(w.miner, (work.get(w.miner) ?? 0) + w.samples * flops(w.stage, w.kind));
    perItem.set(
      w.miner,
      Math.max(perItem.get(w.miner) ?? 0, cfg.run.batch * flops(w.stage, w.kind)),
    );
  }
  const failures = state.failures(from);
  const standing = new Map(state.standings().map((s) => [s.miner, s]));
  const miners = [...new Set([...work.keys(), ...failures.keys()])].sort();
  const rows = miners.map((miner) => {
    const f = failures.get(miner) ?? 0;
    const penalty = f * v.penalty_items * (perItem.get(miner) ?? 0);
    const w = work.get(miner) ?? 0;
    const st = standing.get(miner);
    const quarantined = st?.probation === 1 && st.quarantined_at !== null;
    return {
      miner,
      work_flops: w,
      failures: f,
      penalty_flops: penalty,
      score: quarantined ? 0 : Math.max(0, w - penalty),
      weight: 0,
      probation: st?.probation === 1,
    };
  });
  const total = rows.reduce((a, r) => a + r.score, 0);
  const burn = v.owner ? v.burn_fraction : 0;
  for (const r of rows) r.weight = total > 0 ? ((1 - burn) * r.score) / total : 0;
  return {
    epoch_from: from,
    scores: rows,
    ...(v.owner ? { burn: { owner: v.owner, weight: total > 0 ? burn : 1 } } : {}),
  };
}
