/**
 * `iota status --miner ID`: where one miner stands and why it is or isn't earning, in plain
 * words, from the public routes (the swarm's status, scores, the miner's verdicts and history).
 */
import type { HistoryReply } from '../protocol/history-messages.js';
import type { ScoresReply, SwarmStatus, VerdictsReply } from '../protocol/swarm-messages.js';
import { getPublic } from './common.js';

export interface MinerStanding {
  miner: string;
  stage?: number;
  state: string;
  rate?: number;
  samples?: number;
  idle?: { reason: string; message: string };
  probation?: boolean;
  passes?: number;
  passes_to_release?: number;
  failures?: number;
  quarantined_at?: number | null;
  credited_this_epoch: number;
  late_upload_samples: number;
  verdicts: { passed: number; failed: number };
  last_failed?: { epoch: number; kind: string; detail: string };
  score_share: number;
  work_gflop: number;
  /** the standing in sentences */
  why: string[];
}

export async function minerStanding(base: string, miner: string): Promise<MinerStanding> {
  const q = encodeURIComponent(miner);
  const [st, scores, verdicts, history] = await Promise.all([
    getPublic<SwarmStatus>(base, '/v1/swarm'),
    getPublic<ScoresReply>(base, '/v1/scores'),
    getPublic<VerdictsReply>(base, `/v1/verdicts?miner=${q}&limit=1000`),
    getPublic<HistoryReply>(base, `/v1/history?miner=${q}`),
  ]);
  return describeStanding(miner, st, scores, verdicts, history);
}

/** The standing of `miner` from the routes' replies (pure: tested on its own). */
export function describeStanding(
  miner: string,
  st: SwarmStatus,
  scores: ScoresReply,
  verdicts: VerdictsReply,
  history: HistoryReply,
): MinerStanding {
  const stage = st.stages.find((s) => s.miners.some((m) => m.id === miner));
  const m = stage?.miners.find((x) => x.id === miner);
  const sc = scores.scores.find((s) => s.miner === miner);
  const failed = verdicts.verdicts.filter((v) => !v.passed);
  const last = failed[failed.length - 1];
  const rows = history.miner ?? [];
  const sum = (test: (r: (typeof rows)[number]) => boolean) =>
    rows.filter(test).reduce((a, r) => a + r.samples, 0);
  const credited = sum((r) => r.epoch === stage?.epoch && r.state === 'credited');
  const late = sum((r) => r.state === 'dropped:upload_late');
  const s = history.standing;
  const why: string[] = [];
  if (!m) why.push('Not in the swarm now: it has not joined, or it left; only members earn.');
  else if (m.state === 'silent')
    why.push(
      `Not earning: silent for ${Math.round((st.server_time - m.last_seen) / 1000)} s (no ` +
        'heartbeat); its leases lapse and its work goes to others.',
    );
  else if (m.idle) why.push(`Idle: ${m.idle.message} (${m.idle.reason}).`);
  if (s?.probation && s.quarantined_at !== null)
    why.push(
      `Quarantined since ${new Date(s.quarantined_at).toISOString()} after a failed check` +
        (last ? ` (${last.kind} of epoch ${last.epoch}: ${last.detail})` : '') +
        `; all its work is checked until it passes ${s.passes_to_release - s.passes} more ` +
        `(${s.passes} of ${s.passes_to_release}).`,
    );
  else if (s?.probation)
    why.push(
      `On probation (new): all its work is checked until it passes ${s.passes_to_release} ` +
        `checks (${s.passes} so far).`,
    );
  if (late) why.push(`${late} of its samples were dropped: its gradient upload came too late.`);
  if (m && stage) why.push(`This epoch: ${credited} samples credited at stage ${stage.stage}.`);
  why.push(
    sc && sc.weight > 0
      ? `Earning ${(100 * sc.weight).toFixed(1)}% of the incentive for ` +
          `${(sc.work_flops / 1e9).toFixed(1)} GFLOP of verified work` +
          (failed.length
            ? `, less penalties for ${failed.length} failed check${failed.length === 1 ? '' : 's'}.`
            : '.')
      : 'Not earning yet: no verified work.',
  );
  return {
    miner,
    ...(stage ? { stage: stage.stage } : {}),
    state: m?.state ?? 'absent',
    ...(m?.rate !== undefined ? { rate: m.rate } : {}),
    ...(m ? { samples: m.done } : {}),
    ...(m?.idle ? { idle: m.idle } : {}),
    ...(s ? { ...s } : {}),
    credited_this_epoch: credited,
    late_upload_samples: late,
    verdicts: { passed: verdicts.verdicts.length - failed.length, failed: failed.length },
    ...(last ? { last_failed: { epoch: last.epoch, kind: last.kind, detail: last.detail } } : {}),
    score_share: sc?.weight ?? 0,
    work_gflop: (sc?.work_flops ?? 0) / 1e9,
    why,
  };
}
