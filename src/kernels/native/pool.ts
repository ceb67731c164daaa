/**
 * A caching allocator for kernel outputs, as PyTorch's: a float32 buffer freed by tf.dispose
 * goes on a free list by length and the next output of that length reuses it. A training step
 * allocates the same sizes every time, so after the first step outputs come from memory that
 * is already mapped and in cache, instead of fresh pages (on the project's VMs a first touch
 * costs more than the kernel that writes it) that only the garbage collector gives back.
 *
 * Safety: only buffers this pool allocated are recycled, and never one that left the backend:
 * readSync/read (dataSync, data, moving a tensor to another backend) and stock-kernel fallbacks
 * (which may return views of their inputs) mark a buffer exposed, and exposed buffers are left
 * to the garbage collector.
 */
import { isFloat32Array } from 'node:util/types';

/** Outputs smaller than this are plain zeroed arrays, outside the pool. */
const MIN_POOLED = 1024;

export class BufferPool {
  private readonly free = new Map<number, Float32Array[]>();
  private readonly owned = new WeakSet<Float32Array>();
  private readonly exposed = new WeakSet<object>();
  private readonly idle = new WeakSet<Float32Array>();
  private idleBytes = 0;
  /** outputs served from the free lists, and freshly allocated (pooled sizes only) */
  reused = 0;
  allocated = 0;

  /** @param limitBytes most bytes kept on the free lists; beyond it freed buffers go to the GC */
  constructor(readonly limitBytes: number) {}

  /** A Float32Array of n elements with undefined contents: the caller writes all of it. */
  take(n: number): Float32Array {
    if (n < MIN_POOLED) return new Float32Array(n);
    const list = this.free.get(n);
    const reused = list?.pop();
    if (reused) {
      this.idle.delete(reused);
      this.idleBytes -= n * 4;
      this.reused++;
      return reused;
    }
    this.allocated++;
    // Buffer.allocUnsafe skips the zero fill; at this size it is never a slice of Node's pool.
    const b = Buffer.allocUnsafe(n * 4);
    const a =
      b.byteOffset === 0 && b.buffer.byteLength === n * 4
        ? new Float32Array(b.buffer, 0, n)
        : new Float32Array(n);
    this.owned.add(a);
    return a;
  }

  /** The buffer has left the backend's control: never recycle it. */
  expose(values: unknown): void {
    if (values !== null && typeof values === 'object') this.exposed.add(values);
  }

  /** A tensor's storage was freed; keep it for reuse if it is ours and nobody else saw it. */
  give(values: unknown): void {
    if (
      !isFloat32Array(values) ||
      !this.owned.has(values) ||
      this.exposed.has(values) ||
      this.idle.has(values)
    )
      return;
    const bytes = values.length * 4;
    if (this.idleBytes + bytes > this.limitBytes) return;
    let list = this.free.get(values.length);
    if (!list) this.free.set(values.length, (list = []));
    list.push(values);
    this.idle.add(values);
    this.idleBytes += bytes;
  }

  /** Bytes on the free lists. */
  get cachedBytes(): number {
    return this.idleBytes;
  }

  /** Drops every cached buffer (to the garbage collector). */
  clear(): void {
    for (const list of this.free.values()) for (const a of list) this.idle.delete(a);
    this.free.clear();
    this.idleBytes = 0;
  }
}
