/**
 * Fused kernels with no stock counterpart, registered for the `native` backend only under their
 * own names (the model asks whether the active backend has them: fused.ts). Cross-entropy over
 * the rows of logits reads each row once for its log-sum-exp and writes one number per row;
 * its gradient writes softmax minus the one-hot, scaled, in one pass. The unfused graph
 * (logSumExp, a one-hot of vocabulary width, a product and a sum, and their gradients) made
 * about a dozen tensors of the logits' size.
 */
import type * as tf from '@tensorflow/tfjs';
import type { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';
import { isInt32Array } from 'node:util/types';
import { IotaError } from '../../errors.js';
import type { Ctx, Kernel } from './context.js';

export const CROSS_ENTROPY = 'IotaCrossEntropy';
export const CROSS_ENTROPY_GRAD = 'IotaCrossEntropyGrad';

function operands(
  ctx: Ctx,
  backend: MathBackendCPU,
  logits: tf.TensorInfo,
  targets: tf.TensorInfo,
) {
  const x = ctx.f32(backend, logits);
  const t = ctx.values(backend, targets);
  const [rows, cols] = logits.shape;
  if (!x || !isInt32Array(t) || logits.shape.length !== 2 || t.length !== rows)
    throw new IotaError(
      'E_BAD_TENSOR',
      `cross-entropy takes float32 logits [rows, cols] and int32 targets [rows], got ` +
        `${logits.dtype} [${logits.shape.join(', ')}] and ${targets.dtype} [${targets.shape.join(', ')}]`,
    );
  return { x, t, rows, cols };
}

/** logits [rows, V], targets int32 [rows] -> [loss [rows], logSumExp [rows]] */
const crossEntropy: Kernel = (args, ctx) => {
  const backend = args.backend as MathBackendCPU;
  const { logits, targets } = args.inputs as { logits: tf.TensorInfo; targets: tf.TensorInfo };
  const { x, t, rows, cols } = operands(ctx, backend, logits, targets);
  const loss = ctx.alloc(rows);
  const lse = ctx.alloc(rows);
  const bad = ctx.addon.crossEntropy(x, t, rows, cols, loss, lse);
  if (bad >= 0)
    throw new IotaError(
      'E_BAD_TOKEN',
      `target ${t[bad]} of row ${bad} is outside the vocabulary [0, ${cols})`,
      'the targets are token ids of the model vocabulary',
    );
  return [
    ctx.output(backend, [rows], 'float32', loss),
    ctx.output(backend, [rows], 'float32', lse),
  ];
};

/** (logits, targets, logSumExp, scale [rows]) -> scale * (softmax(logits) - onehot(targets)) */
const crossEntropyGrad: Kernel = (args, ctx) => {
  const backend = args.backend as MathBackendCPU;
  const { logits, targets, lse, scale } = args.inputs as Record<string, tf.TensorInfo>;
  const { x, t, rows, cols } = operands(ctx, backend, logits, targets);
  const l = ctx.f32(backend, lse);
  const s = ctx.f32(backend, scale);
  if (!l || !s || l.length !== rows || s.length !== rows)
    throw new IotaError(
      'E_BAD_TENSOR',
      'cross-entropy gradient: logSumExp and scale are float32 [rows]',
    );
  const grad = ctx.alloc(rows * cols);
  ctx.addon.crossEntropyGrad(x, t, l, s, rows, cols, grad);
  return ctx.output(backend, [rows, cols], 'float32', grad);
};

export const lossKernels: Readonly<Record<string, Kernel>> = {
  [CROSS_ENTROPY]: crossEntropy,
  [CROSS_ENTROPY_GRAD]: crossEntropyGrad,
};
