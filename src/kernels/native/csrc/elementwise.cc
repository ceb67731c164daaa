// Elementwise kernels: binary ops with broadcasting, unary ops, softmax, cross-entropy, addN. Built with
// -ffp-contract=off and without fast-math, so each result is the IEEE float operation: the
// same bits as tfjs's cpu kernels for + - * / (JavaScript computes in double and rounds once,
// which gives the identical float for these), within an ulp or two for exp/log/sigmoid.
#include <cmath>
#include <cstring>
#include <limits>

#if defined(__AVX2__)
#include <immintrin.h>
// glibc's vector math library (libmvec), AVX2 variants: 8 lanes, within 4 ulp.
extern "C" __m256 _ZGVdN8v_expf(__m256);
extern "C" __m256 _ZGVdN8v_logf(__m256);
#endif

#include "ops.h"
#include "pool.h"

namespace iota {

namespace {

// out[i] = exp(x[i] - shift)
void exp_shifted(const float* x, float shift, float* out, int64_t n) {
  int64_t i = 0;
#if defined(__AVX2__)
  const __m256 s = _mm256_set1_ps(shift);
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, _ZGVdN8v_expf(_mm256_sub_ps(_mm256_loadu_ps(x + i), s)));
#endif
  for (; i < n; i++) out[i] = std::exp(x[i] - shift);
}

void log_of(const float* x, float* out, int64_t n) {
  int64_t i = 0;
#if defined(__AVX2__)
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, _ZGVdN8v_logf(_mm256_loadu_ps(x + i)));
#endif
  for (; i < n; i++) out[i] = std::log(x[i]);
}

// max of x[0..n), NaN if any is NaN; n >= 1
float row_max(const float* x, int64_t n) {
  int64_t i = 0;
  float m = x[0];
#if defined(__AVX2__)
  if (n >= 8) {
    __m256 vm = _mm256_loadu_ps(x);
    __m256 nan = _mm256_setzero_ps();
    for (i = 8; i + 8 <= n; i += 8) {
      const __m256 v = _mm256_loadu_ps(x + i);
      vm = _mm256_max_ps(vm, v);
      nan = _mm256_or_ps(nan, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
    }
    nan = _mm256_or_ps(nan, _mm256_cmp_ps(vm, vm, _CMP_UNORD_Q));
    if (_mm256_movemask_ps(nan)) return std::numeric_limits<float>::quiet_NaN();
    alignas(32) float lanes[8];
    _mm256_store_ps(lanes, vm);
    m = lanes[0];
    for (int k = 1; k < 8; k++) m = lanes[k] > m ? lanes[k] : m;
  }
#endif
  for (; i < n; i++) {
    if (x[i] != x[i]) return x[i];
    m = x[i] > m ? x[i] : m;
  }
  return m;
}

// sum of x[0..n) accumulated in double
double row_sum(const float* x, int64_t n) {
  int64_t i = 0;
  double total = 0;
#if defined(__AVX2__)
  __m256d a0 = _mm256_setzero_pd(), a1 = _mm256_setzero_pd();
  for (; i + 8 <= n; i += 8) {
    a0 = _mm256_add_pd(a0, _mm256_cvtps_pd(_mm_loadu_ps(x + i)));
    a1 = _mm256_add_pd(a1, _mm256_cvtps_pd(_mm_loadu_ps(x + i + 4)));
  }
  alignas(32) double lanes[4];
  _mm256_store_pd(lanes, _mm256_add_pd(a0, a1));
  total = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
#endif
  for (; i < n; i++) total += x[i];
  return total;
}

// out[i] = 1 / (1 + exp(-x[i]))
void sigmoid_of(const float* x, float* out, int64_t n) {
  int64_t i = 0;
#if defined(__AVX2__)
  const __m256 one = _mm256_set1_ps(1.0f);
  const __m256 zero = _mm256_setzero_ps();
  for (; i + 8 <= n; i += 8) {
    const __m256 e = _ZGVdN8v_expf(_mm256_sub_ps(zero, _mm256_loadu_ps(x + i)));
    _mm256_storeu_ps(out + i, _mm256_div_ps(one, _mm256_add_ps(one, e)));
  }
#endif
  for (; i < n; i++) out[i] = 1.0f / (1.0f + std::exp(-x[i]));
}

// Elements per task below which splitting is not worth a pool dispatch.
constexpr int64_t kGrain = 1 << 14;

template <typename F>
inline void parallel(int64_t n, int64_t grain, F&& f) {
  if (n <= grain) {
    f(int64_t{0}, n);
    return;
  }
  Pool::get().parallel_for(n, grain, f);
}

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

struct Add { static float f(float a, float b) { return a + b; } };
struct Sub { static float f(float a, float b) { return a - b; } };
struct Mul { static float f(float a, float b) { return a * b; } };
struct Div { static float f(float a, float b) { return a / b; } };
struct Pow {
  static float f(float a, float b) {
    return static_cast<float>(std::pow(static_cast<double>(a), static_cast<double>(b)));
  }
};
struct Maximum { static float f(float a, float b) { return (a != a || b != b) ? kNaN : (a > b ? a : b); } };
struct Minimum { static float f(float a, float b) { return (a != a || b != b) ? kNaN : (a < b ? a : b); } };
struct SquaredDifference { static float f(float a, float b) { const float d = a - b; return d * d; } };
struct Equal { static uint8_t f(float a, float b) { return a == b; } };
struct NotEqual { static uint8_t f(float a, float b) { return a != b; } };
struct Less { static uint8_t f(float a, float b) { return a < b; } };
struct LessEqual { static uint8_t f(float a, float b) { return a <= b; } };
struct Greater { static uint8_t f(float a, float b) { return a > b; } };
struct GreaterEqual { static uint8_t f(float a, float b) { return a >= b; } };

// One contiguous run of the output; each input either advances with it or repeats one value.
template <typename Op, typename T>
inline void run(const float* __restrict a, bool aStep, const float* __restrict b, bool bStep,
                T* __restrict o, int64_t n) {
  if (aStep && bStep) {
    for (int64_t i = 0; i < n; i++) o[i] = Op::f(a[i], b[i]);
  } else if (aStep) {
    const float y = b[0];
    for (int64_t i = 0; i < n; i++) o[i] = Op::f(a[i], y);
  } else if (bStep) {
    const float x = a[0];
    for (int64_t i = 0; i < n; i++) o[i] = Op::f(x, b[i]);
  } else {
    const auto v = Op::f(a[0], b[0]);
    for (int64_t i = 0; i < n; i++) o[i] = v;
  }
}

// The broadcast as a few collapsed dimensions with a stride per input (0 where repeated).
struct Plan {
  std::vector<int64_t> dims, sa, sb;
  int64_t total = 1;
};

Plan plan(const Shape& aShape, const Shape& bShape, const Shape& outShape) {
  const int r = static_cast<int>(outShape.size());
  std::vector<int64_t> ad(r, 1), bd(r, 1);
  for (size_t i = 0; i < aShape.size(); i++) ad[r - aShape.size() + i] = aShape[i];
  for (size_t i = 0; i < bShape.size(); i++) bd[r - bShape.size() + i] = bShape[i];
  std::vector<int64_t> dims, sa, sb;
  int64_t strideA = 1, strideB = 1;
  // Walk from the innermost dimension out, merging a dimension into the previous one when
  // both inputs stay contiguous across the pair.
  for (int i = r - 1; i >= 0; i--) {
    const int64_t d = outShape[i];
    if (d == 1) continue;
    const int64_t x = ad[i] == 1 ? 0 : strideA;
    const int64_t y = bd[i] == 1 ? 0 : strideB;
    if (!dims.empty()) {
      const int64_t k = dims.size() - 1;
      if (x == sa[k] * dims[k] && y == sb[k] * dims[k]) {
        dims[k] *= d;
        strideA *= ad[i];
        strideB *= bd[i];
        continue;
      }
    }
    dims.push_back(d);
    sa.push_back(x);
    sb.push_back(y);
    strideA *= ad[i];
    strideB *= bd[i];
  }
  Plan p;
  // stored innermost first; flip to outermost first
  p.dims.assign(dims.rbegin(), dims.rend());
  p.sa.assign(sa.rbegin(), sa.rend());
  p.sb.assign(sb.rbegin(), sb.rend());
  if (p.dims.empty()) {
    p.dims = {1};
    p.sa = {0};
    p.sb = {0};
  }
  p.total = numel(p.dims);
  return p;
}

template <typename Op, typename T>
void binary_impl(const float* a, const float* b, T* out, const Plan& p) {
  const int r = static_cast<int>(p.dims.size());
  const int64_t n = p.dims[r - 1];
  const bool aStep = p.sa[r - 1] != 0, bStep = p.sb[r - 1] != 0;
  parallel(p.total, kGrain, [&](int64_t begin, int64_t end) {
    int64_t e = begin;
    while (e < end) {
      int64_t row = e / n, col = e % n;
      int64_t oa = 0, ob = 0;
      for (int d = r - 2; d >= 0; d--) {
        const int64_t i = row % p.dims[d];
        row /= p.dims[d];
        oa += i * p.sa[d];
        ob += i * p.sb[d];
      }
      const int64_t len = std::min(n - col, end - e);
      run<Op, T>(a + oa + (aStep ? col : 0), aStep, b + ob + (bStep ? col : 0), bStep, out + e, len);
      e += len;
    }
  });
}

}  // namespace

bool broadcast_shape(const Shape& a, const Shape& b, Shape& out) {
  const size_t r = std::max(a.size(), b.size());
  out.assign(r, 1);
  for (size_t i = 0; i < r; i++) {
    const int64_t x = i < r - a.size() ? 1 : a[i - (r - a.size())];
    const int64_t y = i < r - b.size() ? 1 : b[i - (r - b.size())];
    if (x != y && x != 1 && y != 1) return false;
    out[i] = x == 1 ? y : x;
  }
  return true;
}

void binary(int op, const float* a, const Shape& aShape, const float* b, const Shape& bShape, void* out) {
  Shape outShape;
  broadcast_shape(aShape, bShape, outShape);
  if (numel(outShape) == 0) return;
  const Plan p = plan(aShape, bShape, outShape);
  float* f = static_cast<float*>(out);
  uint8_t* u = static_cast<uint8_t*>(out);
  switch (op) {
    case kAdd: return binary_impl<Add>(a, b, f, p);
    case kSub: return binary_impl<Sub>(a, b, f, p);
    case kMul: return binary_impl<Mul>(a, b, f, p);
    case kDiv: return binary_impl<Div>(a, b, f, p);
    case kPow: return binary_impl<Pow>(a, b, f, p);
    case kMaximum: return binary_impl<Maximum>(a, b, f, p);
    case kMinimum: return binary_impl<Minimum>(a, b, f, p);
    case kSquaredDifference: return binary_impl<SquaredDifference>(a, b, f, p);
    case kEqual: return binary_impl<Equal>(a, b, u, p);
    case kNotEqual: return binary_impl<NotEqual>(a, b, u, p);
    case kLess: return binary_impl<Less>(a, b, u, p);
    case kLessEqual: return binary_impl<LessEqual>(a, b, u, p);
    case kGreater: return binary_impl<Greater>(a, b, u, p);
    case kGreaterEqual: return binary_impl<GreaterEqual>(a, b, u, p);
  }
}

namespace {

template <typename F>
void map(const float* __restrict x, float* __restrict out, int64_t n, F f) {
  parallel(n, kGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; i++) out[i] = f(x[i]);
  });
}

// the same, for kernels that take a whole block
template <typename F>
void blocks(const float* x, float* out, int64_t n, F f) {
  parallel(n, kGrain, [&](int64_t begin, int64_t end) { f(x + begin, out + begin, end - begin); });
}

}  // namespace

void unary(int op, const float* x, float* out, int64_t n, float alpha) {
  switch (op) {
    case kNeg: return map(x, out, n, [](float v) { return -v; });
    case kExp: return blocks(x, out, n, [](const float* a, float* o, int64_t k) { exp_shifted(a, 0.0f, o, k); });
    case kLog: return blocks(x, out, n, log_of);
    case kSqrt: return map(x, out, n, [](float v) { return std::sqrt(v); });
    case kRsqrt: return map(x, out, n, [](float v) { return 1.0f / std::sqrt(v); });
    case kSquare: return map(x, out, n, [](float v) { return v * v; });
    case kSigmoid: return blocks(x, out, n, sigmoid_of);
    case kRelu: return map(x, out, n, [](float v) { return v < 0.0f ? 0.0f : v; });
    case kStep: return map(x, out, n, [alpha](float v) { return v != v ? v : (v > 0.0f ? 1.0f : alpha); });
    case kAbs: return map(x, out, n, [](float v) { return std::fabs(v); });
    case kReciprocal: return map(x, out, n, [](float v) { return 1.0f / v; });
    case kTanh: return map(x, out, n, [](float v) { return std::tanh(v); });
    case kRelu6: return map(x, out, n, [](float v) { return v < 0.0f ? 0.0f : (v > 6.0f ? 6.0f : v); });
    case kLeakyRelu: return map(x, out, n, [alpha](float v) { return v < 0.0f ? alpha * v : v; });
    case kElu: return map(x, out, n, [](float v) { return v >= 0.0f ? v : std::expm1(v); });
    case kLog1p: return map(x, out, n, [](float v) { return std::log1p(v); });
  }
}

void softmax(const float* x, float* out, int64_t rows, int64_t cols) {
  if (cols == 0) return;
  parallel(rows, std::max<int64_t>(1, kGrain / cols), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; r++) {
      const float* xr = x + r * cols;
      float* o = out + r * cols;
      const float m = row_max(xr, cols);
      exp_shifted(xr, m, o, cols);
      const float s = static_cast<float>(row_sum(o, cols));
      for (int64_t j = 0; j < cols; j++) o[j] = o[j] / s;
    }
  });
}

int64_t cross_entropy(const float* x, const int32_t* targets, int64_t rows, int64_t cols, float* loss,
                      float* lse) {
  for (int64_t r = 0; r < rows; r++)
    if (targets[r] < 0 || targets[r] >= cols) return r;
  if (cols == 0) return -1;
  parallel(rows, std::max<int64_t>(1, kGrain / cols), [&](int64_t begin, int64_t end) {
    // The exponentials of a row pass through a small buffer: only their sum is kept.
    float buf[1024];
    for (int64_t r = begin; r < end; r++) {
      const float* xr = x + r * cols;
      const float m = row_max(xr, cols);
      double total = 0;
      for (int64_t j = 0; j < cols; j += 1024) {
        const int64_t k = std::min<int64_t>(1024, cols - j);
        exp_shifted(xr + j, m, buf, k);
        total += row_sum(buf, k);
      }
      lse[r] = static_cast<float>(static_cast<double>(m) + std::log(total));
      loss[r] = lse[r] - xr[targets[r]];
    }
  });
  return -1;
}

void cross_entropy_grad(const float* x, const int32_t* targets, const float* lse, const float* scale,
                        int64_t rows, int64_t cols, float* grad) {
  parallel(rows, std::max<int64_t>(1, kGrain / std::max<int64_t>(1, cols)), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; r++) {
      float* g = grad + r * cols;
      const float s = scale[r];
      exp_shifted(x + r * cols, lse[r], g, cols);
      for (int64_t j = 0; j < cols; j++) g[j] = g[j] * s;
      g[targets[r]] = g[targets[r]] - s;
    }
  });
}

void adamw(float* w, const float* g, float* m, float* v, int64_t n, const AdamW& a) {
  // Float64 with one rounding per stored value, in the order of model/optimizer.ts's JavaScript
  // (and -ffp-contract=off: no fused multiply-add), so both give the same bytes everywhere.
  parallel(n, kGrain, [&](int64_t begin, int64_t end) {
    for (int64_t j = begin; j < end; j++) {
      const double gj = static_cast<double>(g[j]) * a.clip;
      const double mj = a.beta1 * static_cast<double>(m[j]) + a.one_minus_beta1 * gj;
      const double vj = a.beta2 * static_cast<double>(v[j]) + a.one_minus_beta2 * gj * gj;
      const double wj = static_cast<double>(w[j]) * a.decay - (a.step_size * mj) / (std::sqrt(vj) / a.bc2_sqrt + a.eps);
      m[j] = static_cast<float>(mj);
      v[j] = static_cast<float>(vj);
      w[j] = static_cast<float>(wj);
    }
  });
}

void mean_of_sum(const float* sum, double n, float* out, int64_t len) {
  parallel(len, kGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; i++) out[i] = static_cast<float>(static_cast<double>(sum[i]) / n);
  });
}

double sum_of_squares(const float* x, int64_t n) {
  // One thread, in order: the same float64 additions as JavaScript's loop, so the same norm.
  double s = 0;
  for (int64_t i = 0; i < n; i++) s += static_cast<double>(x[i]) * static_cast<double>(x[i]);
  return s;
}

void add_into(float* dst, const float* src, int64_t n) {
  parallel(n, kGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; i++) dst[i] = dst[i] + src[i];
  });
}

void add_n(const std::vector<const float*>& xs, float* out, int64_t n) {
  parallel(n, kGrain, [&](int64_t begin, int64_t end) {
    if (xs.empty()) {
      std::memset(out + begin, 0, sizeof(float) * (end - begin));
      return;
    }
    const float* x0 = xs[0];
    for (int64_t i = begin; i < end; i++) out[i] = x0[i];
    for (size_t k = 1; k < xs.size(); k++) {
      const float* __restrict xk = xs[k];
      for (int64_t i = begin; i < end; i++) out[i] = out[i] + xk[i];
    }
  });
}

}  // namespace iota
