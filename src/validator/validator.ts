/**
 * The validator: takes replay tasks, recomputes the miner's work from the same inputs and
 * weights, and compares by relative error `||v - m|| / ||v||` against the run's threshold. A
 * forward's replay is passed through the same codec as the miner's output first, so honest
 * rounding does not count against anyone. An input the validator cannot use is not the miner's
 * fault: it abstains.
 */
import { randomInt } from 'node:crypto';
import { stageSpecs, type ModelConfig } from '../config/model.js';
import type { RunConfig } from '../config/run.js';
import { Compute, type StageInput } from '../compute/compute.js';
import { fetchActivation, fetchInputs, fetchWindows } from '../compute/inputs.js';
import { decodeActivation, encodeActivation, type Codec } from '../compute/tensors.js';
import { IotaError, isIotaError } from '../errors.js';
import { auditMerge, pickRuns, type RangeReader } from '../merge/audit.js';
import { parseManifest } from '../merge/manifest.js';
import { loadStageWeights } from '../merge/weights.js';
import { stageLayout } from '../model/params.js';
import { SignedClient } from '../protocol/client.js';
import type { Identity } from '../protocol/keys.js';
import type {
  EvalTaskReply,
  ValidationTaskMessage,
  ValidationTasksReply,
} from '../protocol/swarm-messages.js';
import { download, type TransferOptions } from '../store/index.js';
import { unreadableDetail, verdictOnUnreadable } from '../store/unreadable.js';
import { decodeSafetensors } from '../tensor-io/safetensors.js';

export interface ValidatorOptions {
  orchestrator: string;
  identity: Identity;
  backend: string;
  version: string;
  maxTasks?: number;
  onEvent: (e: { event: string; [k: string]: unknown }) => void;
  transfer?: TransferOptions;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** ||v - m|| / ||v|| (0 when both are zero). */
export function relativeError(v: ArrayLike<number>, m: ArrayLike<number>): number {
  if (v.length !== m.length) return Infinity;
  let num = 0;
  let den = 0;
  for (let i = 0; i < v.length; i++) {
    num += (v[i] - m[i]) ** 2;
    den += v[i] ** 2;
  }
  if (den === 0) return num === 0 ? 0 : Infinity;
  return Math.sqrt(num / den);
}

export class Validator {
  readonly client: SignedClient;
  private run!: RunConfig;
  private model!: ModelConfig;
  private computes = new Map<number, { compute: Compute; weightsKey: string }>();
  private stopping = false;
  readonly stats = { checked: 0, passed: 0, failed: 0, abstained: 0 };

  constructor(private readonly o: ValidatorOptions) {
    this.client = new SignedClient({ baseUrl: o.orchestrator, identity: o.identity, run: '' });
  }

  stop(): void {
    this.stopping = true;
  }

  async runLoop(): Promise<void> {
    const hello = await this.client.get<{ run: string; config_hash?: string }>('/v1/info');
    if (!hello.config_hash)
      throw new IotaError(
        'E_NO_RUN',
        `${this.o.orchestrator} serves no run`,
        'start the orchestrator with --run FILE',
      );
    (this.client.o as { run: string }).run = hello.run;
    const reg = await this.client.post<{ role: string }>('/v1/register', {
      version: this.o.version,
    });
    if (reg.role !== 'validator')
      throw new IotaError(
        'E_NOT_VALIDATOR',
        'this key is not one of the run’s validators',
        'the operator lists validator key ids in the node config (validators: [...])',
      );
    const info = await this.client.get<{ run: RunConfig; model: ModelConfig; config_hash: string }>(
      '/v1/run',
    );
    this.run = info.run;
    this.model = info.model;
    this.client.runHash = info.config_hash;
    this.o.onEvent({ event: 'started', run: hello.run });
    try {
      while (
        !this.stopping &&
        (this.o.maxTasks === undefined || this.stats.checked < this.o.maxTasks)
      ) {
        // A pending evaluation first (they are rare), then replays.
        const e = await this.client.post<EvalTaskReply>('/v1/validate/eval-task', {});
        if (e.task) await this.evaluate(e.task);
        const r = await this.client.post<ValidationTasksReply>('/v1/validate/tasks', { max: 4 });
        if (r.tasks.length === 0) {
          if (!e.task) await sleep(200);
          continue;
        }
        for (const t of r.tasks) await this.check(t, r.threshold, r.exact_threshold);
      }
    } finally {
      for (const c of this.computes.values()) await c.compute.close();
      await this.client.close();
      this.o.onEvent({ event: 'stopped', ...this.stats });
    }
  }

  private async computeFor(
    stage: number,
    weights: ValidationTaskMessage['weights'],
  ): Promise<Compute> {
    let c = this.computes.get(stage);
    if (c && c.weightsKey === weights.key) return c.compute;
    const { weights: flat } = await loadStageWeights(this.client, weights, this.o.transfer);
    if (!c) {
      const compute = new Compute();
      await compute.init(this.model, stage, flat, this.o.backend);
      c = { compute, weightsKey: weights.key };
      this.computes.set(stage, c);
    } else {
      await c.compute.setWeights(flat);
      c.weightsKey = weights.key;
    }
    return c.compute;
  }

  /** The mean loss of an epoch's weights over held-out windows, every stage chained. */
  private async evaluate(task: NonNullable<EvalTaskReply['task']>): Promise<void> {
    const seq = this.model.seq;
    const windows = await fetchWindows(task.windows, this.model, this.o.transfer);
    const batch = Math.max(1, this.run.batch);
    let total = 0;
    for (let i = 0; i < windows.length; i += batch) {
      const chunk = windows.slice(i, i + batch);
      const n = chunk.length;
      const tokens = new Int32Array(n * seq);
      const targets = new Int32Array(n * seq);
      chunk.forEach((w, j) => {
        tokens.set(w.subarray(0, seq), j * seq);
        targets.set(w.subarray(1), j * seq);
      });
      let input: StageInput = { tokens, shape: [n, seq] };
      for (let s = 0; s < task.stages.length; s++) {
        const compute = await this.computeFor(s, task.stages[s]);
        if (s === task.stages.length - 1) {
          const key = `eval-${task.epoch}-${i}`;
          const r = await compute.tail(key, input, targets, 'none');
          total += r.losses.reduce((a, b) => a + b, 0);
        } else {
          const y = await compute.forward(input);
          input = { x: y.y, shape: y.shape as [number, number, number] };
        }
      }
    }
    const loss = total / windows.length;
    await this.client.post('/v1/validate/eval', {
      epoch: task.epoch,
      loss,
      windows: windows.length,
    });
    this.o.onEvent({ event: 'eval', epoch: task.epoch, loss, windows: windows.length });
  }

  private async verdict(
    t: ValidationTaskMessage,
    passed: boolean | null,
    relErr: number | undefined,
    detail: string,
  ): Promise<void> {
    await this.client.post('/v1/validate/verdict', {
      id: t.id,
      passed: passed ?? false,
      ...(passed === null ? { abstain: true } : {}),
      ...(relErr !== undefined && Number.isFinite(relErr) ? { rel_err: relErr } : {}),
      detail,
    });
    this.stats.checked++;
    if (passed === null) this.stats.abstained++;
    else if (passed) this.stats.passed++;
    else this.stats.failed++;
    this.o.onEvent({
      event: 'verdict',
      id: t.id,
      miner: t.miner,
      kind: t.kind,
      stage: t.stage,
      epoch: t.epoch,
      passed,
      abstained: passed === null,
      rel_err: relErr,
      detail,
    });
  }

  /**
   * A whole upload: every item credited to the miner at that stage and epoch, replayed into a
   * fresh gradient sum, against the sum it uploaded (the order of the additions differs, so the
   * lossy threshold applies). A zero or made-up gradient is far outside it.
   */
  private async checkUpload(t: ValidationTaskMessage, lossy: number): Promise<void> {
    const compute = await this.computeFor(t.stage, t.weights);
    await compute.reset();
    try {
      for (const it of t.items ?? []) {
        let inputs;
        try {
          inputs = await fetchInputs({ ...it, stage: t.stage }, this.model, this.o.transfer);
        } catch (e) {
          if (!isIotaError(e)) throw e;
          return await this.verdict(
            t,
            null,
            undefined,
            `an input of item ${it.item} is unusable (${e.code}): ${e.message}`,
          );
        }
        const key = `upload-${t.id}-${it.item}`;
        if (it.kind === 'tail') await compute.tail(key, inputs.input, inputs.targets!);
        else await compute.backward(key, inputs.input, inputs.dy!, inputs.shape);
        await compute.commit(key);
      }
      const replay = await compute.gradientSum();
      let claimed: Float32Array;
      try {
        const bytes = await download(
          t.gradient!.url!,
          { sha256: t.gradient!.sha256, size: t.gradient!.size },
          this.o.transfer,
        );
        const d = decodeSafetensors(bytes, {
          expect: { g: { dtype: 'F32', shape: [replay.length] } },
        });
        claimed = d.tensors.g.data as Float32Array;
      } catch (e) {
        if (!isIotaError(e)) throw e;
        return await this.verdict(
          t,
          verdictOnUnreadable(e.code),
          undefined,
          unreadableDetail('the uploaded gradient', e.code, e.message),
        );
      }
      const e = relativeError(replay, claimed);
      return await this.verdict(
        t,
        e <= lossy,
        e,
        `gradient sum of ${t.items?.length ?? 0} items: rel err ${e.toExponential(3)} (limit ${lossy})`,
      );
    } finally {
      await compute.reset();
    }
  }

  /** Verified Range reads of any object of the run, through the orchestrator's download URLs. */
  private rangeReader(): RangeReader {
    const infos = new Map<
      string,
      Promise<{ url: string; size: number; chunk_hashes?: string[] }>
    >();
    const info = (key: string) => {
      let i = infos.get(key);
      if (!i)
        infos.set(
          key,
          (i = this.client.get(`/v1/storage/download?key=${encodeURIComponent(key)}`)),
        );
      return i;
    };
    return {
      read: async (key, start, end) => {
        const i = await info(key);
        if (!i.chunk_hashes)
          throw new IotaError(
            'E_BAD_RANGE',
            `${key} has no chunk hashes to check a Range read against`,
          );
        return download(
          i.url,
          { range: { start, end }, size: i.size, chunkHashes: i.chunk_hashes },
          this.o.transfer,
        );
      },
      size: async (key) => (await info(key)).size,
    };
  }

  /**
   * A merged partition: runs of elements at random places (the merger cannot know which),
   * recomputed from the participants' gradients, w_E and the moments, against the merger's
   * uploaded weights and moments. Honest bytes are reproduced exactly.
   */
  private async checkMerge(t: ValidationTaskMessage, exact: number): Promise<void> {
    const spec = t.merge!;
    const reader = this.rangeReader();
    let manifest;
    try {
      const info = await this.client.get<{ url: string }>(
        `/v1/storage/download?key=${encodeURIComponent(t.weights.key)}`,
      );
      manifest = parseManifest(
        await download(
          info.url,
          { sha256: t.weights.sha256, size: t.weights.size },
          this.o.transfer,
        ),
      );
    } catch (e) {
      if (!isIotaError(e)) throw e;
      return this.verdict(
        t,
        null,
        undefined,
        `the weights the merge started from are unusable (${e.code}): ${e.message}`,
      );
    }
    const entry = manifest.partitions[spec.partition];
    if (!entry || entry.offset !== spec.offset || entry.length !== spec.length)
      return this.verdict(
        t,
        null,
        undefined,
        `partition ${spec.partition} is not in the manifest as described`,
      );
    const o = this.run.optimizer;
    const layout = stageLayout(this.model, stageSpecs(this.model)[t.stage]).params;
    const runs = pickRuns(spec.length, 4, 32, () => randomInt(2 ** 32) / 2 ** 32);
    let r;
    try {
      r = await auditMerge(
        { ...spec, w: entry.key, ...(entry.optim ? { optim: entry.optim.key } : {}) },
        runs,
        reader,
        layout,
        { beta1: o.beta1, beta2: o.beta2, eps: o.eps, weightDecay: o.weight_decay },
      );
    } catch (e) {
      if (!isIotaError(e)) throw e;
      // Only the merger's own objects are its claim; another unreadable input is not its fault.
      return this.verdict(
        t,
        e.code === 'E_MERGE_RESULT_UNUSABLE' ? false : null,
        undefined,
        `${e.code}: ${e.message}`,
      );
    }
    const passed = r.relErr <= exact;
    return this.verdict(
      t,
      passed,
      r.relErr,
      `merged partition ${spec.partition}: ${r.mismatches} of ${3 * r.elements} values ` +
        `differ, rel err ${r.relErr.toExponential(3)} (limit ${exact})`,
    );
  }

  private async check(t: ValidationTaskMessage, lossy: number, exact: number): Promise<void> {
    if (stageSpecs(this.model)[t.stage] === undefined)
      return this.verdict(t, null, undefined, `no stage ${t.stage}`);
    if (t.kind === 'upload') return this.checkUpload(t, lossy);
    if (t.kind === 'merge')
      return t.merge
        ? this.checkMerge(t, exact)
        : this.verdict(t, null, undefined, 'a merge task without its description');
    let inputs;
    try {
      inputs = await fetchInputs({ ...t, kind: t.kind }, this.model, this.o.transfer);
    } catch (e) {
      if (!isIotaError(e)) throw e;
      return this.verdict(t, null, undefined, `an input is unusable (${e.code}): ${e.message}`);
    }
    // The miner's claim: its output (and the tail's loss), checked as strictly as any input.
    let claimed: Float32Array | undefined;
    if (t.output) {
      try {
        claimed = await fetchActivation(t.output, inputs.shape, this.o.transfer);
      } catch (e) {
        if (!isIotaError(e)) throw e;
        return this.verdict(
          t,
          verdictOnUnreadable(e.code),
          undefined,
          unreadableDetail("the miner's output", e.code, e.message),
        );
      }
    }
    const compute = await this.computeFor(t.stage, t.weights);
    let replay: Float32Array | undefined;
    let loss: number | undefined;
    const key = `validate-${t.id}`;
    if (t.kind === 'fwd') {
      replay = (await compute.forward(inputs.input)).y;
    } else if (t.kind === 'tail') {
      // Only the input gradient and the loss are compared: the weights' gradients are not formed.
      const r = await compute.tail(key, inputs.input, inputs.targets!, 'input');
      replay = r.dx;
      loss = r.losses.reduce((a, b) => a + b, 0) / r.losses.length;
    } else {
      replay = (await compute.backward(key, inputs.input, inputs.dy!, inputs.shape, 'input')).dx;
    }
    // Each comparison is scaled by its threshold: a verdict fails when any ratio is over 1.
    const ratios: number[] = [];
    const notes: string[] = [];
    let worst = 0;
    if (replay && claimed) {
      // Round the replay through the codec the miner had to use, then compare like with like.
      const v = decodeActivation(
        encodeActivation(replay, inputs.shape, t.codec as Codec),
        inputs.shape,
      );
      const e = relativeError(v, claimed);
      const limit = t.codec === 'f32' ? exact : lossy;
      ratios.push(e / limit);
      worst = Math.max(worst, e);
      notes.push(`output rel err ${e.toExponential(3)} (limit ${limit})`);
    } else if (replay && !claimed) {
      return this.verdict(t, false, undefined, 'the miner reported no output where one is due');
    }
    if (loss !== undefined) {
      const e =
        t.loss === undefined ? Infinity : Math.abs(loss - t.loss) / Math.max(Math.abs(loss), 1e-12);
      ratios.push(e / exact);
      worst = Math.max(worst, e);
      notes.push(
        `loss ${t.loss?.toFixed(6)} vs ${loss.toFixed(6)}, rel err ${e.toExponential(3)} (limit ${exact})`,
      );
    }
    const passed = ratios.every((r) => r <= 1);
    return this.verdict(t, passed, worst, notes.join('; '));
  }
}
