import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../../../src/kernels/backends.js';
import { stageSpecs, validateConfig } from '../../../src/config/index.js';
import { crossEntropySum } from '../../../src/model/layers.js';
import { Model } from '../../../src/model/model.js';
import { Stage } from '../../../src/model/stage.js';
import { relErr } from '../../support/model.js';

/** Debian's python3 with python3-torch; override with IOTA_PYTHON. */
const PYTHON = process.env.IOTA_PYTHON ?? '/usr/bin/python3';
const dir = join(process.cwd(), 'test/fixtures/pytorch');
const fixture = JSON.parse(readFileSync(join(dir, 'fixture.json'), 'utf8'));
const config = validateConfig('model', fixture.config, 'fixture.json');
const batch = fixture.tokens.length;

function meanLoss(model: Model): number {
  const ids = tf.tensor2d(fixture.tokens, undefined, 'int32');
  const targets = tf.tensor2d(fixture.targets, undefined, 'int32');
  const logits = model.logits(ids);
  const loss = crossEntropySum(logits, targets).dataSync()[0] / batch;
  tf.dispose([ids, targets, logits]);
  return loss;
}

// On the stock kernels and on the native ones (with their fused cross-entropy).
describe.each(['cpu', 'native'] as const)('PyTorch reference fixture on %s', (backend) => {
  beforeAll(async () => {
    await selectBackend(backend);
  });

  it('reproduces the loss and every stage output', () => {
    const stages = stageSpecs(config).map((s) =>
      Stage.fromSafetensors(
        config,
        s.index,
        readFileSync(join(dir, `stage${s.index}.safetensors`)),
      ),
    );
    const model = new Model(config, stages);
    expect(Math.abs(meanLoss(model) - fixture.loss) / fixture.loss).toBeLessThanOrEqual(1e-4);

    let x: tf.Tensor = tf.tensor2d(fixture.tokens, undefined, 'int32');
    for (let i = 0; i < stages.length - 1; i++) {
      const y = stages[i].forward(x);
      expect(y.shape).toEqual([batch, config.seq, config.bottleneck]);
      expect(relErr(y.dataSync(), fixture.stage_outputs[i])).toBeLessThanOrEqual(1e-4);
      x.dispose();
      x = y;
    }
    const logits = stages[stages.length - 1].forward(x);
    expect(
      relErr(logits.dataSync().slice(0, config.vocab_size), fixture.logits_first_row),
    ).toBeLessThanOrEqual(1e-4);
    tf.dispose([x, logits]);
    model.dispose();
  });

  it('loads weights exported here back into the PyTorch script with the same loss', () => {
    const out = mkdtempSync(join(tmpdir(), 'iota-interop-'));
    const model = Model.initial(config, 'interop');
    const files = model.stages.map((s) => {
      const f = join(out, `stage${s.spec.index}.safetensors`);
      writeFileSync(f, s.toSafetensors());
      return f;
    });
    const printed = execFileSync(
      PYTHON,
      [join(process.cwd(), 'test/fixtures/pytorch_reference.py'), 'check', dir, ...files],
      { encoding: 'utf8' },
    );
    const theirs = JSON.parse(printed.trim().split('\n').pop()!);
    const ours = meanLoss(model);
    expect(Math.abs(theirs.loss - ours) / ours).toBeLessThanOrEqual(1e-4);
    model.dispose();
  });
});
