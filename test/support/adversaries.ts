/**
 * Adversarial miners for the validator's harness (test code, never options of the shipped
 * miner). Each computes the honest result with the real model on a compute thread, then
 * cheats in one way: random, zeroed or NaN outputs, the input copied to the output, an 8-bit
 * round trip of the output, the previous item's output replayed, weights that stay at epoch 0,
 * a skipped block, (at the tail) a flattering loss, honest work with a zero gradient
 * uploaded (a free-rider, caught only by replaying its whole upload) or an inflated one (four
 * times the sum, claiming the weight of four times its samples), or honest work and a
 * merge whose uploaded partitions it nudged (caught by the dispute with its co-merger and by
 * the spot checks of merged partitions).
 */
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { stageSpecs, type ModelConfig } from '../../src/config/model.js';
import type { RunConfig } from '../../src/config/run.js';
import { Compute } from '../../src/compute/compute.js';
import { fetchInputs } from '../../src/compute/inputs.js';
import { encodeActivation } from '../../src/compute/tensors.js';
import { loadStageWeights } from '../../src/merge/weights.js';
import { MergeWorker } from '../../src/merge/worker.js';
import type { Reduction } from '../../src/merge/reduce.js';
import type { Identity } from '../../src/protocol/keys.js';
import { blockPrefix, stageLayout } from '../../src/model/params.js';
import type { WorkItemMessage, WorkReply } from '../../src/protocol/swarm-messages.js';
import { dequantizeRows8, quantizeRows8 } from '../../src/tensor-io/codecs.js';
import { SimMiner } from './sim-miner.js';

export const ADVERSARIES = [
  'random',
  'zeroed',
  'nan',
  'copy_input',
  'int8_roundtrip',
  'replay',
  'stale_weights',
  'skipped_block',
  'lying_loss',
  'free_rider',
  'inflated_claims',
  'tampered_merge',
] as const;
export type AdversaryKind = (typeof ADVERSARIES)[number];
/** Kinds outside the validator's harness: honest work, and a cheat in step 1 of the merge. */
export type OtherKind = 'forged_norms';
/**
 * Adversaries whose work items are honest: they cheat in their gradient upload or their merge
 * only, so items they reported after their quarantine pass, and `probation_passes` of them
 * release it (its failed verdicts still cost it the penalty).
 */
export const HONEST_ITEMS: readonly AdversaryKind[] = [
  'free_rider',
  'inflated_claims',
  'tampered_merge',
];

// From the repository root (jest and the benches run there; the bench's build lives elsewhere).
const WORKER = pathToFileURL(resolve('dist/compute/compute-worker.js'));

export class Adversary extends SimMiner {
  private compute = new Compute(WORKER);
  private manifestKey = '';
  private previous = new Map<string, Float32Array>();
  private losses: number[] = [];
  private merger!: MergeWorker;
  /** samples of accepted work, by `stage/kind` (the harness's own count) */
  readonly worked = new Map<string, number>();

  constructor(
    url: string,
    runName: string,
    readonly kind: AdversaryKind | OtherKind,
    readonly stage: number,
    private readonly model: ModelConfig,
    private readonly run: RunConfig,
    o: { identity?: Identity; reduction?: (r: Reduction) => Reduction } = {},
  ) {
    super(url, runName, o.identity);
    this.reduction = o.reduction;
  }
  /** step 1 of its merges, as it reports them (forged_norms) */
  private readonly reduction?: (r: Reduction) => Reduction;

  async start(configHash: string): Promise<void> {
    await this.register(this.kind);
    this.client.runHash = configHash;
    const joined = await this.join(this.stage);
    const layout = stageLayout(this.model, stageSpecs(this.model)[this.stage]);
    await this.compute.init(this.model, this.stage, await this.weightsFor(joined.manifest), 'auto');
    this.manifestKey = joined.manifest.key;
    const o = this.run.optimizer;
    // The tampered merger scales its new weights by 1.001: small, but not the agreed bytes.
    const tamper =
      this.kind === 'tampered_merge'
        ? {
            update: (u: { w: Float32Array; m: Float32Array; v: Float32Array }) => ({
              ...u,
              w: u.w.map((x) => x * 1.001),
            }),
          }
        : undefined;
    this.merger = new MergeWorker({
      client: this.client,
      layout: () => layout.params,
      adamw: { beta1: o.beta1, beta2: o.beta2, eps: o.eps, weightDecay: o.weight_decay },
      tamper: { ...tamper, ...(this.reduction ? { reduction: this.reduction } : {}) },
    });
    this.outputFor = (it) => this.cheat(it);
    // The gradient sum it uploads is what it computed. A free-rider uploads zeros instead; an
    // inflated claim, four times the sum (the weight of four times the samples it did: the
    // sample count itself comes from the ledger, so a miner cannot claim it).
    this.makeGradient = async (params) => {
      if (this.kind === 'free_rider') return new Float32Array(params);
      const g = await this.compute.gradientSum();
      return this.kind === 'inflated_claims' ? g.map((x) => 4 * x) : g;
    };
    this.lossesFor = () =>
      this.kind === 'lying_loss' ? this.losses.map((l) => l * 0.8) : this.losses;
  }

  private async weightsFor(ref: WorkReply['manifest']): Promise<Float32Array> {
    const { weights } = await loadStageWeights(this.client, ref);
    if (this.kind !== 'skipped_block') return weights;
    // Skipping the stage's first block: zero its weights, so the block adds nothing to its residual.
    for (const p of stageLayout(this.model, stageSpecs(this.model)[this.stage]).params)
      if (p.name.startsWith(blockPrefix(0))) weights.fill(0, p.offset, p.offset + p.size);
    return weights;
  }

  /** One round: work (and merge jobs, and the upload duty); the stale adversary never reloads. */
  async play(): Promise<number> {
    const w = await this.work(1);
    if (w.manifest.key !== this.manifestKey) {
      if (this.kind !== 'stale_weights')
        await this.compute.setWeights(await this.weightsFor(w.manifest));
      await this.compute.reset(); // a new epoch: a new gradient sum
      this.manifestKey = w.manifest.key;
    }
    let did = 0;
    for (const it of w.items) {
      // An item's gradient joins the sum once the report is acknowledged, as a miner's does.
      const r = await this.complete(it, { skipInputs: true }).catch(() => undefined);
      if (r)
        this.worked.set(
          `${it.stage}/${it.kind}`,
          (this.worked.get(`${it.stage}/${it.kind}`) ?? 0) + it.samples.length,
        );
      if (it.kind !== 'fwd')
        await (r && r.credited > 0
          ? this.compute.commit(it.lease)
          : this.compute.discard(it.lease));
      did++;
    }
    if (w.duty)
      await this.uploadGradient(w.duty.epoch, w.duty.stage, w.duty.key, w.duty.samples).catch(
        () => undefined,
      );
    if (w.phase === 'merging') did += await this.merger.runOnce().catch(() => 0);
    return did;
  }

  private async honest(it: WorkItemMessage): Promise<{
    out: Float32Array;
    x?: Float32Array;
    dy?: Float32Array;
    shape: [number, number, number];
  }> {
    const inputs = await fetchInputs(it, this.model);
    const x = 'x' in inputs.input ? inputs.input.x : undefined;
    if (it.kind === 'fwd')
      return { out: (await this.compute.forward(inputs.input)).y, x, shape: inputs.shape };
    if (it.kind === 'tail') {
      const r = await this.compute.tail(it.lease, inputs.input, inputs.targets!);
      this.losses = Array.from(r.losses);
      return { out: r.dx!, x, shape: inputs.shape };
    }
    const r = await this.compute.backward(it.lease, inputs.input, inputs.dy!, inputs.shape);
    return { out: r.dx!, x, dy: inputs.dy, shape: inputs.shape };
  }

  private async cheat(it: WorkItemMessage): Promise<Uint8Array> {
    const h = await this.honest(it);
    const codec = it.kind === 'fwd' ? this.run.activation_codec : 'f32';
    const send = (d: Float32Array) => encodeActivation(d, h.shape, codec);
    const n = h.out.length;
    switch (this.kind) {
      case 'random':
        return send(new Float32Array(n).map(() => Math.random() - 0.5));
      case 'zeroed':
        return send(new Float32Array(n));
      case 'nan': // the exact size of a good output (the orchestrator takes no other), NaN inside
        return send(new Float32Array(n).fill(Number.NaN));
      case 'copy_input':
        return send(it.kind === 'bwd' ? h.dy! : (h.x ?? h.out));
      case 'int8_roundtrip': {
        const rows = h.shape[0] * h.shape[1];
        return send(dequantizeRows8(quantizeRows8(h.out, rows, h.shape[2]), rows, h.shape[2]));
      }
      case 'replay': {
        const before = this.previous.get(it.kind);
        this.previous.set(it.kind, h.out);
        return send(before && before.length === n ? before : h.out);
      }
      default: // stale_weights, skipped_block, lying_loss, free_rider, inflated_claims, tampered_merge: honest arithmetic on what they chose
        return send(h.out);
    }
  }

  override async close(): Promise<void> {
    await this.compute.close();
    await super.close();
  }
}
