// Reductions over the middle axis of [outer, red, inner]. Sums accumulate in double, as tfjs's
// cpu kernels do (JavaScript numbers), so long sums lose nothing to float rounding.
#include <cmath>
#include <limits>
#include <vector>

#include "ops.h"
#include "pool.h"

namespace iota {

namespace {

constexpr int64_t kGrain = 1 << 14;

double sum_row(const float* x, int64_t n) {
  // Eight independent accumulators let the compiler use vector adds without reassociating.
  double s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; k++) s[k] += x[i + k];
  double total = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
  for (; i < n; i++) total += x[i];
  return total;
}

float reduce_row(int op, const float* x, int64_t n, int64_t stride) {
  switch (op) {
    case kSum:
    case kMean: {
      double s;
      if (stride == 1) {
        s = sum_row(x, n);
      } else {
        s = 0;
        for (int64_t i = 0; i < n; i++) s += x[i * stride];
      }
      return static_cast<float>(op == kMean ? s / static_cast<double>(n) : s);
    }
    case kProd: {
      double p = 1;
      for (int64_t i = 0; i < n; i++) p *= x[i * stride];
      return static_cast<float>(p);
    }
    case kMax:
    case kMin: {
      float m = x[0];
      for (int64_t i = 1; i < n; i++) {
        const float v = x[i * stride];
        if (v != v || (op == kMax ? v > m : v < m)) m = v;
        if (m != m) break;
      }
      return m;
    }
  }
  return 0;
}

}  // namespace

void reduce(int op, const float* x, float* out, int64_t outer, int64_t red, int64_t inner) {
  const int64_t outputs = outer * inner;
  if (outputs == 0) return;
  if (red == 0) {
    const float empty = op == kMax    ? -std::numeric_limits<float>::infinity()
                        : op == kMin  ? std::numeric_limits<float>::infinity()
                        : op == kProd ? 1.0f
                        : op == kMean ? std::numeric_limits<float>::quiet_NaN()
                                      : 0.0f;
    for (int64_t i = 0; i < outputs; i++) out[i] = empty;
    return;
  }
  Pool& pool = Pool::get();
  const int64_t work = outputs * red;
  if (inner == 1) {
    // rows of contiguous values
    auto rows = [&](int64_t begin, int64_t end) {
      for (int64_t o = begin; o < end; o++) out[o] = reduce_row(op, x + o * red, red, 1);
    };
    if (work <= kGrain || outer == 1) rows(0, outer);
    else pool.parallel_for(outer, std::max<int64_t>(1, kGrain / red), rows);
    return;
  }
  // Columns: walk each [red, inner] slab row by row so reads stay contiguous; accumulate a
  // block of columns in double.
  auto columns = [&](int64_t begin, int64_t end) {
    constexpr int64_t kBlock = 512;
    std::vector<double> acc(kBlock);
    for (int64_t o = 0; o < outer; o++) {
      for (int64_t c0 = begin; c0 < end; c0 += kBlock) {
        const int64_t c1 = std::min(end, c0 + kBlock);
        const int64_t w = c1 - c0;
        const float* base = x + o * red * inner + c0;
        if (op == kSum || op == kMean || op == kProd) {
          const double init = op == kProd ? 1.0 : 0.0;
          for (int64_t j = 0; j < w; j++) acc[j] = init;
          for (int64_t r = 0; r < red; r++) {
            const float* row = base + r * inner;
            if (op == kProd)
              for (int64_t j = 0; j < w; j++) acc[j] *= row[j];
            else
              for (int64_t j = 0; j < w; j++) acc[j] += row[j];
          }
          for (int64_t j = 0; j < w; j++)
            out[o * inner + c0 + j] =
                static_cast<float>(op == kMean ? acc[j] / static_cast<double>(red) : acc[j]);
        } else {
          for (int64_t j = 0; j < w; j++) out[o * inner + c0 + j] = reduce_row(op, base + j, red, inner);
        }
      }
    }
  };
  if (work <= kGrain) columns(0, inner);
  else pool.parallel_for(inner, std::max<int64_t>(16, kGrain / (red * outer) + 1), columns);
}

}  // namespace iota
