/**
 * The end of `iota local`: what the run did, from its own database (read only), and a few
 * lines of text sampled from the final weights (stitched from the stages' manifests, every hash
 * checked, as `iota export` does).
 */
import { getTokenizer } from '../data/index.js';
import { RunDb } from '../export/run-db.js';
import { localRunSource } from '../export/sources.js';
import { stitchEpoch } from '../export/stitch.js';
import { generateTokens } from '../model/generate.js';
import { Model } from '../model/model.js';
import { Stage } from '../model/stage.js';
import { stageSpecs } from '../config/model.js';
import type { ScoresReply } from '../protocol/swarm-messages.js';

export interface RunRecord {
  /** epochs every stage has merged */
  epochs: number;
  stages: number;
  /** each stage's merged epochs (stage weights of that epoch are published) */
  stage_epochs: number[];
  /** samples merged in every stage times the sequence length */
  tokens: number;
  loss_first?: number;
  loss_last?: number;
  eval_loss?: number;
  /** stage merges published (the sum of stage_epochs) */
  merges: number;
  verdicts: number;
  failed_verdicts: number;
}

export function readRecord(stateDir: string): RunRecord {
  const db = RunDb.open(stateDir);
  try {
    const stageEpochs = db.stageEpochs();
    const merged = db.mergedSamples();
    const losses = db.epochLosses().filter((l) => l.epoch < Math.min(...stageEpochs));
    const evals = db.evals();
    const v = db.verdicts();
    return {
      epochs: Math.min(...stageEpochs),
      stages: stageEpochs.length,
      stage_epochs: stageEpochs,
      tokens: Math.min(...merged) * db.model.seq,
      ...(losses.length
        ? { loss_first: losses[0].loss, loss_last: losses[losses.length - 1].loss }
        : {}),
      ...(evals.length ? { eval_loss: evals[evals.length - 1].loss } : {}),
      merges: stageEpochs.reduce((a, e) => a + Math.max(0, e), 0),
      verdicts: v.passed + v.failed,
      failed_verdicts: v.failed,
    };
  } finally {
    db.close();
  }
}

/** Per miner: its score and share of the incentive, named by the key files of the state folder. */
export function minerScores(
  scores: ScoresReply,
  names: Map<string, string>,
): Array<{ miner: string; name?: string; score: number; weight: number; failures: number }> {
  return scores.scores.map((s) => ({
    miner: s.miner,
    ...(names.has(s.miner) ? { name: names.get(s.miner) } : {}),
    score: s.score,
    weight: s.weight,
    failures: s.failures,
  }));
}

/** `lines` continuations of short prompts, sampled from the newest weights every stage has. */
export async function sampleText(stateDir: string, lines = 3, tokens = 60): Promise<string[]> {
  const source = await localRunSource(stateDir);
  try {
    const stitched = await stitchEpoch(source);
    const config = source.model;
    const model = new Model(
      config,
      stitched.stages.map((s, i) => new Stage(config, stageSpecs(config)[i], s.weights)),
    );
    try {
      const tokenizer = await getTokenizer(config.tokenizer);
      const prompts = ['The ', 'It was ', 'In the '];
      const out: string[] = [];
      for (let i = 0; i < lines; i++) {
        const prompt = prompts[i % prompts.length];
        const ids = tokenizer.encode(prompt);
        const gen = [
          ...generateTokens(model, ids, { tokens, temperature: 0.8, topK: 40, seed: String(i) }),
        ];
        out.push(
          `${prompt}${tokenizer.decode(gen)}`
            .replace(/\s+/g, ' ')
            .replace(/[\p{Cc}\uFFFD]/gu, '')
            .trim(),
        );
      }
      return out;
    } finally {
      model.dispose();
    }
  } finally {
    await source.close();
  }
}
