/**
 * Kernels that move data rather than compute: transpose, slice, split, concat and pad on any
 * axis (block copies in C++, a memcpy per contiguous run), gather, cast and one-hot. The
 * copies work for float32, int32 and bool alike.
 */
import * as tf from '@tensorflow/tfjs';
import type { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';
import { isFloat32Array, isInt32Array, isUint8Array } from 'node:util/types';
import { isPlainTyped, sameKind, size, type Ctx, type Kernel } from './context.js';

type Plain = Float32Array | Int32Array | Uint8Array;

/** The storage of a tensor the copy kernels can move, or null (strings, complex). */
function plain(ctx: Ctx, backend: MathBackendCPU, t: tf.TensorInfo): Plain | null {
  if (t.dtype === 'string' || t.dtype === 'complex64') return null;
  const v = ctx.values(backend, t);
  return isPlainTyped(v) ? (v as Plain) : null;
}

function kind(v: Plain): string {
  return isFloat32Array(v) ? 'f32' : isInt32Array(v) ? 'i32' : isUint8Array(v) ? 'u8' : 'other';
}

const zeros = (n: number) => new Array<number>(n).fill(0);

const transpose: Kernel = (args, ctx) => {
  const backend = args.backend as MathBackendCPU;
  const { x } = args.inputs as { x: tf.TensorInfo };
  const { perm } = args.attrs as { perm: number[] };
  const v = plain(ctx, backend, x);
  if (!v) return ctx.fallback('Transpose', args, 'dtype');
  const out = sameKind(v, v.length, ctx);
  ctx.addon.transpose(v, x.shape, perm, out);
  return ctx.output(
    backend,
    perm.map((p) => x.shape[p]),
    x.dtype,
    out,
  );
};

function sliceOf(
  ctx: Ctx,
  backend: MathBackendCPU,
  x: tf.TensorInfo,
  v: Plain,
  begin: number[],
  extent: number[],
): tf.TensorInfo {
  const out = sameKind(v, size(extent), ctx);
  ctx.addon.copy(v, x.shape, begin, out, extent, zeros(extent.length), extent);
  return ctx.output(backend, extent, x.dtype, out);
}

const slice: Kernel = (args, ctx) => {
  const backend = args.backend as MathBackendCPU;
  const { x } = args.inputs as { x: tf.TensorInfo };
  const { begin, size: extent } = args.attrs as {
    begin: number | number[];
    size: number | number[];
  };
  const v = plain(ctx, backend, x);
  if (!v) return ctx.fallback('Slice', args, 'dtype');
  const [b, s] = tf.slice_util.parseSliceParams(x as tf.Tensor, begin, extent);
  tf.slice_util.assertParamsValid(x as tf.Tensor, b, s);
  return sliceOf(ctx, backend, x, v, b, s);
};

const splitV: Kernel = (args, ctx) => {
  const backend = args.backend as MathBackendCPU;
  const { x } = args.inputs as { x: tf.TensorInfo };
  const { numOrSizeSplits, axis } = args.attrs as {
    numOrSizeSplits: number | number[];
    axis: number;
  };
  const v = plain(ctx, backend, x);
  if (!v) return ctx.fallback('SplitV', args, 'dtype');
  const $axis = tf.util.parseAxisParam(axis, x.shape)[0];
  const sizes = tf.backend_util.prepareSplitSize(x as tf.Tensor, numOrSizeSplits, $axis);
  const begin = zeros(x.shape.length);
  return sizes.map((s) => {
    const extent = x.shape.slice();
    extent[$axis] = s;
    const piece = sliceOf(ctx, backend, x, v, begin.slice(), extent);
    begin[$axis] += s;
    return piece;
  });
};

const concat: Kernel = (args, ctx) => {
  const backend = args.backend as MathBackendCPU;
  const inputs = args.inputs as unknown as tf.TensorInfo[];
  const { axis } = args.attrs as { axis: number };
  const values = inputs.map((t) => plain(ctx, backend, t));
  if (
    inputs.length === 0 ||
    values.some((v) => !v) ||
    inputs.some((t) => t.dtype !== inputs[0].dtype) ||
    values.some((v) => kind(v!) !== kind(values[0]!))
  ) {
    return ctx.fallback('Concat', args, 'dtype');
  }
  const $axis = tf.util.parseAxisParam(axis, inputs[0].shape)[0];
  const shapes = inputs.map((t) => t.shape);
  tf.backend_util.assertParamsConsistent(shapes, $axis);
  const outShape = tf.backend_util.computeOutShape(shapes, $axis);
  const out = sameKind(values[0]!, size(outShape), ctx);
  const start = zeros(outShape.length);
  inputs.forEach((t, i) => {
    if (size(t.shape) > 0)
      ctx.addon.copy(values[i]!, t.shape, zeros(t.shape.length), out, outShape, start, t.shape);
    start[$axis] += t.shape[$axis];
  });
  return ctx.output(backend, outShape, inputs[0].dtype, out);
};

const padV2: Kernel = (args, ctx) => {
  const backend = args.backend as MathBackendCPU;
  const { x } = args.inputs as { x: tf.TensorInfo };
  const { paddings, constantValue } = args.attrs as {
    paddings: Array<[number, number]>;
    constantValue: number;
  };
  const v = ctx.f32(backend, x);
  if (!v) return ctx.fallback('PadV2', args, 'dtype');
  const outShape = x.shape.map((d, i) => paddings[i][0] + d + paddings[i][1]);
  const out = ctx.alloc(size(outShape));
  ctx.addon.fill(out, constantValue);
  if (v.length > 0)
    ctx.addon.copy(
      v,
      x.shape,
      zeros(x.shape.length),
      out,
      outShape,
      paddings.map((p) => p[0]),
      x.shape,
    );
  return ctx.output(backend, outShape, 'float32', out);
};

const gatherV2: Kernel = (args, ctx) => {
  const backend = args.backend as MathBackendCPU;
  const { x, indices } = args.inputs as { x: tf.TensorInfo; indices: tf.TensorInfo };
  const { axis, batchDims } = args.attrs as { axis: number; batchDims?: number };
  const v = plain(ctx, backend, x);
  const iv = ctx.values(backend, indices);
  if (!v || (batchDims ?? 0) !== 0 || !isPlainTyped(iv))
    return ctx.fallback('GatherV2', args, 'dtype or batchDims');
  const idx = isInt32Array(iv) ? iv : Int32Array.from(iv as Plain);
  const $axis = tf.util.parseAxisParam(axis, x.shape)[0];
  const n = x.shape[$axis];
  const outer = size(x.shape.slice(0, $axis));
  const inner = size(x.shape.slice($axis + 1));
  const outShape = [...x.shape.slice(0, $axis), ...indices.shape, ...x.shape.slice($axis + 1)];
  const out = sameKind(v, size(outShape), ctx);
  const bad = ctx.addon.gather(v, outer, n, inner, idx, out);
  if (bad >= 0) throw new Error(`GatherV2: the index value ${idx[bad]} is not in [0, ${n - 1}]`);
  return ctx.output(backend, outShape, x.dtype, out);
};

/**
 * Casts always produce storage of the target dtype's own array type (the stock kernel labels an
 * int32 array float32 without copying, which would push every later op off the native path).
 */
const cast: Kernel = (args, ctx) => {
  const backend = args.backend as MathBackendCPU;
  const { x } = args.inputs as { x: tf.TensorInfo };
  const { dtype } = args.attrs as { dtype: tf.DataType };
  const v = plain(ctx, backend, x);
  if (!v || dtype === 'string' || dtype === 'complex64') return ctx.fallback('Cast', args, 'dtype');
  const target = dtype === 'float32' ? 'f32' : dtype === 'int32' ? 'i32' : 'u8';
  if (x.dtype === dtype && kind(v) === target) {
    backend.incRef(x.dataId);
    return { dataId: x.dataId, shape: x.shape, dtype };
  }
  let out: Plain;
  if (kind(v) === target) {
    out = sameKind(v, v.length, ctx); // right storage under another dtype label: copy as is
    out.set(v);
  } else if (dtype === 'float32') {
    out = ctx.alloc(v.length);
    ctx.addon.convert(v, out);
  } else if (dtype === 'int32') {
    out = Int32Array.from(v); // JavaScript's truncation and wrap-around, as the stock kernel
  } else {
    out = new Uint8Array(v.length);
    ctx.addon.convert(v, out);
  }
  return ctx.output(backend, x.shape, dtype, out);
};

const oneHot: Kernel = (args, ctx) => {
  const backend = args.backend as MathBackendCPU;
  const { indices } = args.inputs as { indices: tf.TensorInfo };
  const { dtype, depth, onValue, offValue } = args.attrs as {
    dtype: tf.DataType;
    depth: number;
    onValue: number;
    offValue: number;
  };
  const iv = ctx.values(backend, indices);
  if (!isPlainTyped(iv) || (dtype !== 'float32' && dtype !== 'int32'))
    return ctx.fallback('OneHot', args, 'dtype');
  const n = iv.length;
  const out = dtype === 'float32' ? new Float32Array(n * depth) : new Int32Array(n * depth);
  if (offValue !== 0) out.fill(offValue);
  for (let i = 0; i < n; i++) {
    const j = iv[i];
    if (j >= 0 && j < depth) out[i * depth + j] = onValue;
  }
  return ctx.output(backend, [...indices.shape, depth], dtype, out);
};

function filled(name: string, value: (args: Parameters<Kernel>[0]) => number): Kernel {
  return (args, ctx) => {
    const backend = args.backend as MathBackendCPU;
    const { x } = args.inputs as { x?: tf.TensorInfo };
    const attrs = args.attrs as { shape?: number[]; dtype?: tf.DataType; value?: unknown };
    const shape = x ? x.shape : attrs.shape!;
    const dtype = x
      ? x.dtype
      : (attrs.dtype ?? (typeof attrs.value === 'number' ? 'float32' : 'string'));
    if (dtype !== 'float32') return ctx.fallback(name, args, 'dtype');
    const out = ctx.alloc(size(shape));
    ctx.addon.fill(out, value(args));
    return ctx.output(backend, shape, 'float32', out);
  };
}

/** where(condition, t, e) for float32 t and e of the condition's shape (tf.where broadcasts first). */
const select: Kernel = (args, ctx) => {
  const backend = args.backend as MathBackendCPU;
  const { condition, t, e } = args.inputs as {
    condition: tf.TensorInfo;
    t: tf.TensorInfo;
    e: tf.TensorInfo;
  };
  const c = ctx.values(backend, condition);
  const tv = ctx.f32(backend, t);
  const ev = ctx.f32(backend, e);
  if (
    !tv ||
    !ev ||
    !isPlainTyped(c) ||
    !tf.util.arraysEqual(condition.shape, t.shape) ||
    !tf.util.arraysEqual(t.shape, e.shape)
  )
    return ctx.fallback('Select', args, 'dtype or shapes');
  const out = ctx.alloc(tv.length);
  for (let i = 0; i < out.length; i++) out[i] = c[i] ? tv[i] : ev[i];
  return ctx.output(backend, t.shape, 'float32', out);
};

export const layoutKernels: Record<string, Kernel> = {
  Fill: filled('Fill', (args) => Number((args.attrs as { value: number }).value)),
  ZerosLike: filled('ZerosLike', () => 0),
  OnesLike: filled('OnesLike', () => 1),
  Select: select,
  Transpose: transpose,
  Slice: slice,
  SplitV: splitV,
  Concat: concat,
  PadV2: padV2,
  GatherV2: gatherV2,
  Cast: cast,
  OneHot: oneHot,
};
