// Kernels that only move data: transpose, block copies (slice, concat, split, pad), fill,
// gather. They work on any element size, so int32 and bool tensors use them too.
#include <cstring>

#include "ops.h"
#include "pool.h"

namespace iota {

namespace {

constexpr int64_t kGrainBytes = 1 << 16;

inline void copy_elems(void* dst, const void* src, int64_t n, int elem) {
  std::memcpy(dst, src, static_cast<size_t>(n) * elem);
}

// Gathers n elements at src[i * stride] into dst.
template <typename T>
void strided(T* __restrict dst, const T* __restrict src, int64_t n, int64_t stride) {
  for (int64_t i = 0; i < n; i++) dst[i] = src[i * stride];
}

void strided_any(void* dst, const void* src, int64_t n, int64_t stride, int elem) {
  switch (elem) {
    case 1: return strided(static_cast<uint8_t*>(dst), static_cast<const uint8_t*>(src), n, stride);
    case 2: return strided(static_cast<uint16_t*>(dst), static_cast<const uint16_t*>(src), n, stride);
    case 4: return strided(static_cast<uint32_t*>(dst), static_cast<const uint32_t*>(src), n, stride);
    case 8: return strided(static_cast<uint64_t*>(dst), static_cast<const uint64_t*>(src), n, stride);
  }
}

// Runs f(row) for each row index in [0, rows), split over the pool when the bytes moved are many.
template <typename F>
void rows_parallel(int64_t rows, int64_t bytesPerRow, F&& f) {
  const int64_t grain = std::max<int64_t>(1, kGrainBytes / std::max<int64_t>(1, bytesPerRow));
  if (rows <= grain) {
    for (int64_t r = 0; r < rows; r++) f(r);
    return;
  }
  Pool::get().parallel_for(rows, grain, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; r++) f(r);
  });
}

}  // namespace

void transpose(const void* x, void* out, const Shape& shape, const std::vector<int>& perm, int elem) {
  const int r = static_cast<int>(shape.size());
  const int64_t total = numel(shape);
  if (total == 0) return;
  // Drop size-1 axes and merge input axes that stay adjacent and in order in the output.
  std::vector<int64_t> dims;      // output dims, collapsed
  std::vector<int64_t> inStride;  // input stride of each output dim
  std::vector<int64_t> stride(r);
  int64_t s = 1;
  for (int i = r - 1; i >= 0; i--) {
    stride[i] = s;
    s *= shape[i];
  }
  for (int k = 0; k < r; k++) {
    const int axis = perm[k];
    if (shape[axis] == 1) continue;
    if (!dims.empty() && inStride.back() == stride[axis] * shape[axis]) {
      dims.back() *= shape[axis];
      inStride.back() = stride[axis];
      continue;
    }
    dims.push_back(shape[axis]);
    inStride.push_back(stride[axis]);
  }
  if (dims.empty()) {
    copy_elems(out, x, 1, elem);
    return;
  }
  const int n = static_cast<int>(dims.size());
  const int64_t inner = dims[n - 1];
  const bool contiguous = inStride[n - 1] == 1;
  const int64_t rows = total / inner;
  const char* src = static_cast<const char*>(x);
  char* dst = static_cast<char*>(out);
  rows_parallel(rows, inner * elem, [&](int64_t row) {
    int64_t off = 0, rem = row;
    for (int d = n - 2; d >= 0; d--) {
      off += (rem % dims[d]) * inStride[d];
      rem /= dims[d];
    }
    if (contiguous) copy_elems(dst + row * inner * elem, src + off * elem, inner, elem);
    else strided_any(dst + row * inner * elem, src + off * elem, inner, inStride[n - 1], elem);
  });
}

void copy_region(const void* src, const Shape& srcShape, const Shape& srcStart, void* dst,
                 const Shape& dstShape, const Shape& dstStart, const Shape& size, int elem) {
  const int r = static_cast<int>(size.size());
  if (numel(size) == 0) return;
  // Element offsets of the block's origin and strides, then merge trailing axes the block
  // covers completely in both arrays into one contiguous run.
  std::vector<int64_t> ss(r), ds(r);
  int64_t a = 1, b = 1;
  for (int i = r - 1; i >= 0; i--) {
    ss[i] = a;
    ds[i] = b;
    a *= srcShape[i];
    b *= dstShape[i];
  }
  int64_t srcBase = 0, dstBase = 0;
  for (int i = 0; i < r; i++) {
    srcBase += srcStart[i] * ss[i];
    dstBase += dstStart[i] * ds[i];
  }
  int last = r - 1;
  int64_t run = r == 0 ? 1 : size[last];
  while (last > 0 && size[last] == srcShape[last] && size[last] == dstShape[last]) {
    last--;
    run *= size[last];
  }
  // axes 0..last-1 are iterated; `run` elements are contiguous in both from axis `last` on
  std::vector<int64_t> dims(size.begin(), size.begin() + (r == 0 ? 0 : last));
  const int n = static_cast<int>(dims.size());
  const int64_t rows = numel(dims);
  const char* s8 = static_cast<const char*>(src);
  char* d8 = static_cast<char*>(dst);
  rows_parallel(rows, run * elem, [&](int64_t row) {
    int64_t so = srcBase, dOff = dstBase, rem = row;
    for (int d = n - 1; d >= 0; d--) {
      const int64_t i = rem % dims[d];
      rem /= dims[d];
      so += i * ss[d];
      dOff += i * ds[d];
    }
    copy_elems(d8 + dOff * elem, s8 + so * elem, run, elem);
  });
}

void fill(float* out, int64_t n, float value) {
  rows_parallel((n + 4095) / 4096, 4096 * 4, [&](int64_t block) {
    const int64_t end = std::min(n, (block + 1) * 4096);
    for (int64_t i = block * 4096; i < end; i++) out[i] = value;
  });
}

int64_t gather(const void* x, int64_t outer, int64_t n, int64_t inner, const int32_t* idx,
               int64_t m, void* out, int elem) {
  for (int64_t j = 0; j < m; j++)
    if (idx[j] < 0 || idx[j] >= n) return j;
  const char* src = static_cast<const char*>(x);
  char* dst = static_cast<char*>(out);
  rows_parallel(outer * m, inner * elem, [&](int64_t row) {
    const int64_t o = row / m, j = row % m;
    copy_elems(dst + row * inner * elem, src + (o * n + idx[j]) * inner * elem, inner, elem);
  });
  return -1;
}

}  // namespace iota
