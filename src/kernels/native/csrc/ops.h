// The native kernels, on plain row-major float32 buffers. Each runs on the shared Pool.
// Shapes are int64 vectors; the N-API layer (addon.cc) checks every length before calling.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace iota {

using Shape = std::vector<int64_t>;

inline int64_t numel(const Shape& s) {
  int64_t n = 1;
  for (auto d : s) n *= d;
  return n;
}

// ---- matmul.cc
// out[i] = op(a[ia]) x op(b[ib]) for every index i of the broadcast batch shape; op transposes
// when asked. aBatch/bBatch have the rank of `batch` (1 where broadcast).
void matmul(const float* a, const float* b, float* out, const Shape& batch, const Shape& aBatch,
            const Shape& bBatch, int64_t M, int64_t N, int64_t K, bool transA, bool transB);
void blas_init();
std::string blas_info();

// ---- elementwise.cc
enum BinaryOp {
  kAdd,
  kSub,
  kMul,
  kDiv,
  kPow,
  kMaximum,
  kMinimum,
  kSquaredDifference,
  kEqual,
  kNotEqual,
  kLess,
  kLessEqual,
  kGreater,
  kGreaterEqual,
  kBinaryOpCount
};
inline bool binary_is_comparison(int op) { return op >= kEqual && op < kBinaryOpCount; }
// Output shape is the broadcast of the two; `out` is float32, or uint8 for comparisons.
// Returns false when the shapes do not broadcast.
bool broadcast_shape(const Shape& a, const Shape& b, Shape& out);
void binary(int op, const float* a, const Shape& aShape, const float* b, const Shape& bShape, void* out);

enum UnaryOp {
  kNeg,
  kExp,
  kLog,
  kSqrt,
  kRsqrt,
  kSquare,
  kSigmoid,
  kRelu,
  kStep,
  kAbs,
  kReciprocal,
  kTanh,
  kRelu6,
  kLeakyRelu,
  kElu,
  kLog1p,
  kUnaryOpCount
};
void unary(int op, const float* x, float* out, int64_t n, float alpha);

// rows x cols, along the last axis
void softmax(const float* x, float* out, int64_t rows, int64_t cols);
// Cross-entropy of each row of logits x [rows, cols] against its target column: lse[r] =
// log(sum(exp(x[r]))), loss[r] = lse[r] - x[r, targets[r]], without the softmax or a one-hot.
// Returns the first row whose target is out of range (nothing written), or -1.
int64_t cross_entropy(const float* x, const int32_t* targets, int64_t rows, int64_t cols, float* loss,
                      float* lse);
// Its gradient for the rows' loss gradients `scale`: grad[r] = scale[r] * (softmax(x[r]) - onehot).
void cross_entropy_grad(const float* x, const int32_t* targets, const float* lse, const float* scale,
                        int64_t rows, int64_t cols, float* grad);
// One AdamW step in place on n elements, bit for bit as model/optimizer.ts: each value in
// float64, rounded once to float32 when stored. The caller passes the JavaScript side's doubles.
struct AdamW {
  double clip, beta1, one_minus_beta1, beta2, one_minus_beta2, eps, step_size, bc2_sqrt, decay;
};
void adamw(float* w, const float* g, float* m, float* v, int64_t n, const AdamW& a);
// out[i] = fround(sum[i] / n), as JavaScript computes it
void mean_of_sum(const float* sum, double n, float* out, int64_t len);
// sum of x[i]^2 in float64, in order (the bits of JavaScript's loop)
double sum_of_squares(const float* x, int64_t n);
// dst += src (float32 adds: the same bits as JavaScript's on Float32Arrays)
void add_into(float* dst, const float* src, int64_t n);
// out = sum of the inputs (all of n elements)
void add_n(const std::vector<const float*>& xs, float* out, int64_t n);

// ---- reduce.cc
enum ReduceOp { kSum, kMean, kMax, kMin, kProd, kReduceOpCount };
// x viewed as [outer, red, inner] -> out [outer, inner]
void reduce(int op, const float* x, float* out, int64_t outer, int64_t red, int64_t inner);

// ---- layout.cc (element size 1, 2, 4 or 8 bytes: these only move data)
void transpose(const void* x, void* out, const Shape& shape, const std::vector<int>& perm, int elem);
// Copies the block `size` starting at srcStart in src into dst at dstStart.
void copy_region(const void* src, const Shape& srcShape, const Shape& srcStart, void* dst,
                 const Shape& dstShape, const Shape& dstStart, const Shape& size, int elem);
void fill(float* out, int64_t n, float value);
// x [outer, n, inner], idx [m] -> out [outer, m, inner]. Returns the position of the first
// out-of-range index, or -1.
int64_t gather(const void* x, int64_t outer, int64_t n, int64_t inner, const int32_t* idx,
               int64_t m, void* out, int elem);
// numeric conversions (cast kernels)
template <typename T>
void convert(const T* x, float* out, int64_t n) {
  for (int64_t i = 0; i < n; i++) out[i] = static_cast<float>(x[i]);
}
template <typename T>
void to_bool(const T* x, uint8_t* out, int64_t n) {
  for (int64_t i = 0; i < n; i++) out[i] = x[i] != 0;
}

}  // namespace iota
