/**
 * Arithmetic kernels: matmul on OpenBLAS, elementwise binary ops with broadcasting, unary ops,
 * softmax, addN. Float32 only; anything else goes to the stock kernel (counted).
 * Op numbers follow the enums of csrc/ops.h.
 */
import * as tf from '@tensorflow/tfjs';
import type { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';
import { isUint8Array } from 'node:util/types';
import { size, type Ctx, type Kernel, type KernelArgs } from './context.js';

/** `a` [...batchA, M, K] x `b` [...batchB, K, N] (either transposed) -> [...batch, M, N] */
export function matmul(
  ctx: Ctx,
  backend: MathBackendCPU,
  a: tf.TensorInfo,
  b: tf.TensorInfo,
  transA: boolean,
  transB: boolean,
): tf.TensorInfo | null {
  const av = ctx.f32(backend, a);
  const bv = ctx.f32(backend, b);
  if (!av || !bv || a.shape.length < 2 || b.shape.length < 2) return null;
  const ra = a.shape.length;
  const rb = b.shape.length;
  const M = transA ? a.shape[ra - 1] : a.shape[ra - 2];
  const K = transA ? a.shape[ra - 2] : a.shape[ra - 1];
  const K2 = transB ? b.shape[rb - 1] : b.shape[rb - 2];
  const N = transB ? b.shape[rb - 2] : b.shape[rb - 1];
  if (K !== K2) {
    throw new Error(
      `Error in matMul: inner shapes (${K}) and (${K2}) of Tensors with shapes ` +
        `${a.shape} and ${b.shape} and transposeA=${transA} and transposeB=${transB} ` +
        `must match.`,
    );
  }
  const batch = tf.broadcast_util.assertAndGetBroadcastShape(
    a.shape.slice(0, -2),
    b.shape.slice(0, -2),
  );
  const pad = (s: number[]) => [...new Array(batch.length - s.length).fill(1), ...s];
  const out = ctx.alloc(size(batch) * M * N);
  ctx.addon.matmul(
    av,
    bv,
    out,
    batch,
    pad(a.shape.slice(0, -2)),
    pad(b.shape.slice(0, -2)),
    M,
    N,
    K,
    transA,
    transB,
  );
  return ctx.output(backend, [...batch, M, N], 'float32', out);
}

const batchMatMul: Kernel = (args, ctx) => {
  const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
  const { transposeA, transposeB } = args.attrs as { transposeA: boolean; transposeB: boolean };
  return (
    matmul(ctx, args.backend as MathBackendCPU, a, b, transposeA, transposeB) ??
    ctx.fallback('BatchMatMul', args, 'dtype')
  );
};

const ACTIVATIONS: Record<string, number> = {
  relu: 7,
  relu6: 12,
  sigmoid: 6,
  leakyrelu: 13,
  elu: 14,
};

/** matmul + bias + activation, as three native passes for now (one fused pass is the next step). */
const fusedMatMul: Kernel = (args, ctx) => {
  const backend = args.backend as MathBackendCPU;
  const { a, b, bias, preluActivationWeights } = args.inputs as Record<
    string,
    tf.TensorInfo | undefined
  >;
  const { transposeA, transposeB, activation, leakyreluAlpha } = args.attrs as {
    transposeA: boolean;
    transposeB: boolean;
    activation: string;
    leakyreluAlpha?: number;
  };
  const act = activation ?? 'linear';
  if (preluActivationWeights || (act !== 'linear' && !(act in ACTIVATIONS)))
    return ctx.fallback('_FusedMatMul', args, `activation ${act}`);
  if (bias && !ctx.f32(backend, bias)) return ctx.fallback('_FusedMatMul', args, 'dtype');
  let y = matmul(ctx, backend, a!, b!, transposeA, transposeB);
  if (!y) return ctx.fallback('_FusedMatMul', args, 'dtype');
  if (bias) {
    const shape = tf.broadcast_util.assertAndGetBroadcastShape(y.shape, bias.shape);
    const out = ctx.alloc(size(shape));
    ctx.addon.binary(0, ctx.f32(backend, y)!, y.shape, ctx.f32(backend, bias)!, bias.shape, out);
    backend.disposeIntermediateTensorInfo(y);
    y = ctx.output(backend, shape, 'float32', out);
  }
  if (act !== 'linear') {
    const x = ctx.f32(backend, y)!;
    const out = ctx.alloc(x.length);
    ctx.addon.unary(ACTIVATIONS[act], x, out, leakyreluAlpha ?? 0.2);
    backend.disposeIntermediateTensorInfo(y);
    y = ctx.output(backend, y.shape, 'float32', out);
  }
  return y;
};

function binary(name: string, op: number, comparison = false): Kernel {
  return (args, ctx) => {
    const backend = args.backend as MathBackendCPU;
    const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
    const av = ctx.f32(backend, a);
    const bv = ctx.f32(backend, b);
    if (!av || !bv) return ctx.fallback(name, args, 'dtype');
    const shape = tf.broadcast_util.assertAndGetBroadcastShape(a.shape, b.shape);
    const n = size(shape);
    const out = comparison ? new Uint8Array(n) : ctx.alloc(n);
    ctx.addon.binary(op, av, a.shape, bv, b.shape, out);
    return ctx.output(backend, shape, comparison ? 'bool' : 'float32', out);
  };
}

function unary(name: string, op: number, alphaAttr?: string): Kernel {
  return (args, ctx) => {
    const backend = args.backend as MathBackendCPU;
    const { x } = args.inputs as { x: tf.TensorInfo };
    const xv = ctx.f32(backend, x);
    if (!xv) return ctx.fallback(name, args, 'dtype');
    const out = ctx.alloc(xv.length);
    const alpha = alphaAttr ? Number((args.attrs as Record<string, unknown>)[alphaAttr]) : 0;
    ctx.addon.unary(op, xv, out, alpha);
    return ctx.output(backend, x.shape, 'float32', out);
  };
}

const softmax: Kernel = (args, ctx) => {
  const backend = args.backend as MathBackendCPU;
  const { logits } = args.inputs as { logits: tf.TensorInfo };
  const { dim } = args.attrs as { dim: number };
  const rank = logits.shape.length;
  const xv = ctx.f32(backend, logits);
  if (!xv || rank === 0 || (dim !== -1 && dim !== rank - 1))
    return ctx.fallback('Softmax', args, 'dtype or axis');
  const cols = logits.shape[rank - 1];
  const out = ctx.alloc(xv.length);
  ctx.addon.softmax(xv, out, cols === 0 ? 0 : xv.length / cols, cols);
  return ctx.output(backend, logits.shape, 'float32', out);
};

const addN: Kernel = (args: KernelArgs, ctx) => {
  const backend = args.backend as MathBackendCPU;
  const tensors = args.inputs as unknown as tf.TensorInfo[];
  const values = tensors.map((t) => ctx.f32(backend, t));
  if (
    tensors.length === 0 ||
    values.some((v) => !v) ||
    tensors.some((t) => !tf.util.arraysEqual(t.shape, tensors[0].shape))
  )
    return ctx.fallback('AddN', args, 'dtype or shapes');
  const n = size(tensors[0].shape);
  const out = ctx.alloc(n);
  ctx.addon.addN(values as Float32Array[], out, n);
  return ctx.output(backend, tensors[0].shape, 'float32', out);
};

/** Logical ops on bool tensors of equal shapes (where's and relu6's gradients use them). */
function logical(name: string, op: (a: number, b: number) => number, unaryOp = false): Kernel {
  return (args, ctx) => {
    const backend = args.backend as MathBackendCPU;
    const { a, b, x } = args.inputs as Record<string, tf.TensorInfo | undefined>;
    const first = unaryOp ? x! : a!;
    const av = ctx.values(backend, first);
    const bv = unaryOp ? av : ctx.values(backend, b!);
    if (
      first.dtype !== 'bool' ||
      !isUint8Array(av) ||
      !isUint8Array(bv) ||
      (!unaryOp && !tf.util.arraysEqual(a!.shape, b!.shape))
    )
      return ctx.fallback(name, args, 'dtype or shapes');
    const out = new Uint8Array(av.length);
    for (let i = 0; i < out.length; i++) out[i] = op(av[i], bv[i]);
    return ctx.output(backend, first.shape, 'bool', out);
  };
}

export const mathKernels: Record<string, Kernel> = {
  LogicalAnd: logical('LogicalAnd', (p, q) => (p && q ? 1 : 0)),
  LogicalOr: logical('LogicalOr', (p, q) => (p || q ? 1 : 0)),
  LogicalNot: logical('LogicalNot', (p) => (p ? 0 : 1), true),
  BatchMatMul: batchMatMul,
  _FusedMatMul: fusedMatMul,
  Add: binary('Add', 0),
  Sub: binary('Sub', 1),
  Multiply: binary('Multiply', 2),
  RealDiv: binary('RealDiv', 3),
  Pow: binary('Pow', 4),
  Maximum: binary('Maximum', 5),
  Minimum: binary('Minimum', 6),
  SquaredDifference: binary('SquaredDifference', 7),
  Equal: binary('Equal', 8, true),
  NotEqual: binary('NotEqual', 9, true),
  Less: binary('Less', 10, true),
  LessEqual: binary('LessEqual', 11, true),
  Greater: binary('Greater', 12, true),
  GreaterEqual: binary('GreaterEqual', 13, true),
  Neg: unary('Neg', 0),
  Exp: unary('Exp', 1),
  Log: unary('Log', 2),
  Sqrt: unary('Sqrt', 3),
  Rsqrt: unary('Rsqrt', 4),
  Square: unary('Square', 5),
  Sigmoid: unary('Sigmoid', 6),
  Relu: unary('Relu', 7),
  Step: unary('Step', 8, 'alpha'),
  Abs: unary('Abs', 9),
  Reciprocal: unary('Reciprocal', 10),
  Tanh: unary('Tanh', 11),
  Relu6: unary('Relu6', 12),
  LeakyRelu: unary('LeakyRelu', 13, 'alpha'),
  Elu: unary('Elu', 14),
  Log1p: unary('Log1p', 15),
  Softmax: softmax,
  AddN: addN,
};
