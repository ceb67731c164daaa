/**
 * Reductions (Sum, Mean, Max, Min, Prod) over any axes of a float32 tensor. Axes that form one
 * contiguous run reduce in place as [outer, red, inner]; others are transposed to the end first.
 * Sums accumulate in double, as the stock kernels do. Op numbers follow csrc/ops.h.
 */
import * as tf from '@tensorflow/tfjs';
import type { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';
import { size, type Kernel } from './context.js';

function reduction(name: string, op: number, axisAttr: 'axis' | 'reductionIndices'): Kernel {
  return (args, ctx) => {
    const backend = args.backend as MathBackendCPU;
    const { x } = args.inputs as { x: tf.TensorInfo };
    const attrs = args.attrs as Record<string, unknown>;
    const xv = ctx.f32(backend, x);
    if (!xv) return ctx.fallback(name, args, 'dtype');
    const shape = x.shape;
    const axes = [
      ...new Set(tf.util.parseAxisParam(attrs[axisAttr] as number | number[], shape)),
    ].sort((p, q) => p - q);
    const outShape = shape.filter((_, i) => !axes.includes(i));
    let outer: number;
    let red: number;
    let inner: number;
    let source = xv;
    const contiguous = axes.every((a, i) => i === 0 || a === axes[i - 1] + 1);
    if (axes.length === 0) {
      [outer, red, inner] = [size(shape), 1, 1];
    } else if (contiguous) {
      outer = size(shape.slice(0, axes[0]));
      red = size(shape.slice(axes[0], axes[axes.length - 1] + 1));
      inner = size(shape.slice(axes[axes.length - 1] + 1));
    } else {
      const perm = [...shape.keys()].filter((i) => !axes.includes(i)).concat(axes);
      source = ctx.alloc(xv.length);
      ctx.addon.transpose(xv, shape, perm, source);
      [outer, red, inner] = [size(outShape), size(axes.map((a) => shape[a])), 1];
    }
    const out = ctx.alloc(outer * inner);
    ctx.addon.reduce(op, source, out, outer, red, inner);
    const keepDims = Boolean(attrs.keepDims);
    return ctx.output(
      backend,
      keepDims ? tf.backend_util.expandShapeToKeepDim(outShape, axes) : outShape,
      'float32',
      out,
    );
  };
}

export const reduceKernels: Record<string, Kernel> = {
  Sum: reduction('Sum', 0, 'axis'),
  Mean: reduction('Mean', 1, 'axis'),
  Max: reduction('Max', 2, 'reductionIndices'),
  Min: reduction('Min', 3, 'axis'),
  Prod: reduction('Prod', 4, 'axis'),
};
