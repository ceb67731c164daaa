// Batched matmul on OpenBLAS. OpenBLAS is kept single-threaded; the pool splits the work
// (across batch entries, then across row or column blocks), so there is one set of threads.
#include <cblas.h>

#include <algorithm>
#include <cstring>

#include "ops.h"
#include "pool.h"

namespace iota {

void blas_init() { openblas_set_num_threads(1); }

std::string blas_info() {
  std::string s = openblas_get_config();
  s += ", core ";
  s += openblas_get_corename();
  return s;
}

namespace {

// Element offset of each batch entry's matrix in an operand whose batch shape is `operand`
// (same rank as `batch`, 1 where broadcast).
std::vector<int64_t> batch_offsets(const Shape& batch, const Shape& operand, int64_t matrix) {
  const int r = static_cast<int>(batch.size());
  std::vector<int64_t> strides(r);
  int64_t s = matrix;
  for (int i = r - 1; i >= 0; i--) {
    strides[i] = operand[i] == 1 ? 0 : s;
    s *= operand[i];
  }
  const int64_t n = numel(batch);
  std::vector<int64_t> off(n);
  std::vector<int64_t> idx(r, 0);
  for (int64_t i = 0; i < n; i++) {
    int64_t o = 0;
    for (int d = 0; d < r; d++) o += idx[d] * strides[d];
    off[i] = o;
    for (int d = r - 1; d >= 0; d--) {
      if (++idx[d] < batch[d]) break;
      idx[d] = 0;
    }
  }
  return off;
}

// Work below this many flops runs on the calling thread: waking the pool costs more.
constexpr double kParallelFlops = 1 << 21;

}  // namespace

void matmul(const float* a, const float* b, float* out, const Shape& batch, const Shape& aBatch,
            const Shape& bBatch, int64_t M, int64_t N, int64_t K, bool transA, bool transB) {
  int64_t nb = numel(batch);
  if (nb == 0 || M == 0 || N == 0) return;
  if (K == 0) {
    std::memset(out, 0, sizeof(float) * nb * M * N);
    return;
  }
  std::vector<int64_t> ao = batch_offsets(batch, aBatch, M * K);
  std::vector<int64_t> bo = batch_offsets(batch, bBatch, K * N);
  // One shared right operand and a contiguous left one: a single [nb*M, K] x [K, N] product.
  if (nb > 1 && !transA) {
    bool fold = true;
    for (int64_t i = 0; i < nb && fold; i++) fold = bo[i] == 0 && ao[i] == i * M * K;
    if (fold) {
      M *= nb;
      nb = 1;
      ao.assign(1, 0);
      bo.assign(1, 0);
    }
  }
  const int lda = static_cast<int>(transA ? M : K);
  const int ldb = static_cast<int>(transB ? K : N);
  const int ldc = static_cast<int>(N);
  Pool& pool = Pool::get();
  const int threads = 2.0 * nb * M * N * K < kParallelFlops ? 1 : pool.size();
  // Split each product into blocks of rows (or columns, when wider than tall) so there are at
  // least as many tasks as threads; blocks are multiples of 16 where possible.
  const bool splitRows = M >= N;
  const int64_t extent = splitRows ? M : N;
  int64_t parts = nb >= threads ? 1 : (threads + nb - 1) / nb;
  parts = std::max<int64_t>(1, std::min<int64_t>(parts, extent / 16));
  const int64_t tasks = nb * parts;
  auto task = [&](int t) {
    const int64_t i = t / parts;
    const int64_t p = t % parts;
    int64_t lo = extent * p / parts;
    int64_t hi = extent * (p + 1) / parts;
    if (parts > 1) {
      lo = p == 0 ? 0 : std::min(extent, (lo + 8) / 16 * 16);
      hi = p == parts - 1 ? extent : std::min(extent, (hi + 8) / 16 * 16);
    }
    if (hi <= lo) return;
    const float* A = a + ao[i];
    const float* B = b + bo[i];
    float* C = out + i * M * N;
    int64_t m = M, n = N;
    if (splitRows) {
      A += transA ? lo : lo * K;
      C += lo * N;
      m = hi - lo;
    } else {
      B += transB ? lo * K : lo;
      C += lo;
      n = hi - lo;
    }
    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans,
                transB ? CblasTrans : CblasNoTrans, static_cast<int>(m), static_cast<int>(n),
                static_cast<int>(K), 1.0f, A, lda, B, ldb, 0.0f, C, ldc);
  };
  if (threads == 1 || tasks == 1) {
    for (int t = 0; t < tasks; t++) task(t);
  } else {
    pool.run(static_cast<int>(tasks), task);
  }
}

}  // namespace iota
