// The N-API surface: thin wrappers that check every argument, then call a kernel. Kernels
// write into output arrays the caller allocated (tfjs owns tensor storage; V8 frees it).
#include <malloc.h>
#include <napi.h>

#include <cstdlib>
#include <string>

#include "ops.h"
#include "pool.h"

namespace {

using iota::Shape;

struct View {
  void* data;
  size_t length;
  napi_typedarray_type type;
};

size_t elem_size(napi_typedarray_type t) {
  switch (t) {
    case napi_int8_array:
    case napi_uint8_array:
    case napi_uint8_clamped_array: return 1;
    case napi_int16_array:
    case napi_uint16_array: return 2;
    case napi_int32_array:
    case napi_uint32_array:
    case napi_float32_array: return 4;
    default: return 8;
  }
}

View view(const Napi::CallbackInfo& info, size_t i, const char* what) {
  const Napi::Env env = info.Env();
  if (i >= info.Length() || !info[i].IsTypedArray())
    throw Napi::TypeError::New(env, std::string(what) + " must be a typed array");
  View v{};
  napi_value buffer;
  size_t offset;
  NAPI_THROW_IF_FAILED(env, napi_get_typedarray_info(env, info[i], &v.type, &v.length, &v.data, &buffer, &offset), v);
  return v;
}

View floats(const Napi::CallbackInfo& info, size_t i, const char* what, size_t need) {
  View v = view(info, i, what);
  if (v.type != napi_float32_array)
    throw Napi::TypeError::New(info.Env(), std::string(what) + " must be a Float32Array");
  if (v.length < need)
    throw Napi::RangeError::New(info.Env(), std::string(what) + " has " + std::to_string(v.length) +
                                                " elements, needs " + std::to_string(need));
  return v;
}

int64_t integer(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (i >= info.Length() || !info[i].IsNumber())
    throw Napi::TypeError::New(info.Env(), std::string(what) + " must be a number");
  return info[i].As<Napi::Number>().Int64Value();
}

Shape shape(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (i >= info.Length() || !info[i].IsArray())
    throw Napi::TypeError::New(info.Env(), std::string(what) + " must be an array of integers");
  const Napi::Array a = info[i].As<Napi::Array>();
  Shape s(a.Length());
  for (uint32_t k = 0; k < a.Length(); k++) {
    const Napi::Value v = a.Get(k);
    if (!v.IsNumber()) throw Napi::TypeError::New(info.Env(), std::string(what) + " must be an array of integers");
    s[k] = v.As<Napi::Number>().Int64Value();
    if (s[k] < 0) throw Napi::RangeError::New(info.Env(), std::string(what) + " has a negative entry");
  }
  return s;
}

void check(const Napi::CallbackInfo& info, bool ok, const std::string& message) {
  if (!ok) throw Napi::RangeError::New(info.Env(), message);
}

// matmul(a, b, out, batch, aBatch, bBatch, M, N, K, transA, transB)
Napi::Value Matmul(const Napi::CallbackInfo& info) {
  const Shape batch = shape(info, 3, "batch"), aBatch = shape(info, 4, "aBatch"), bBatch = shape(info, 5, "bBatch");
  const int64_t M = integer(info, 6, "M"), N = integer(info, 7, "N"), K = integer(info, 8, "K");
  const bool transA = info[9].ToBoolean(), transB = info[10].ToBoolean();
  check(info, aBatch.size() == batch.size() && bBatch.size() == batch.size(), "batch shapes must have the same rank");
  for (size_t i = 0; i < batch.size(); i++)
    check(info,
          (aBatch[i] == batch[i] || aBatch[i] == 1) && (bBatch[i] == batch[i] || bBatch[i] == 1),
          "batch shapes do not broadcast");
  check(info, M <= INT32_MAX && N <= INT32_MAX && K <= INT32_MAX, "matrix too large for BLAS");
  const View a = floats(info, 0, "a", iota::numel(aBatch) * M * K);
  const View b = floats(info, 1, "b", iota::numel(bBatch) * K * N);
  const View out = floats(info, 2, "out", iota::numel(batch) * M * N);
  iota::matmul(static_cast<float*>(a.data), static_cast<float*>(b.data),
               static_cast<float*>(out.data), batch, aBatch, bBatch, M, N, K, transA, transB);
  return info.Env().Undefined();
}

// binary(op, a, aShape, b, bShape, out)
Napi::Value Binary(const Napi::CallbackInfo& info) {
  const int64_t op = integer(info, 0, "op");
  check(info, op >= 0 && op < iota::kBinaryOpCount, "unknown binary op");
  const Shape as = shape(info, 2, "aShape"), bs = shape(info, 4, "bShape");
  Shape os;
  check(info, iota::broadcast_shape(as, bs, os), "shapes do not broadcast");
  const View a = floats(info, 1, "a", iota::numel(as));
  const View b = floats(info, 3, "b", iota::numel(bs));
  View out = view(info, 5, "out");
  const bool cmp = iota::binary_is_comparison(static_cast<int>(op));
  check(info, out.type == (cmp ? napi_uint8_array : napi_float32_array),
        cmp ? "out must be a Uint8Array" : "out must be a Float32Array");
  check(info, out.length >= static_cast<size_t>(iota::numel(os)), "out is too small");
  iota::binary(static_cast<int>(op), static_cast<float*>(a.data), as, static_cast<float*>(b.data), bs, out.data);
  return info.Env().Undefined();
}

// unary(op, x, out, alpha)
Napi::Value Unary(const Napi::CallbackInfo& info) {
  const int64_t op = integer(info, 0, "op");
  check(info, op >= 0 && op < iota::kUnaryOpCount, "unknown unary op");
  const View x = floats(info, 1, "x", 0);
  const View out = floats(info, 2, "out", x.length);
  const float alpha = info.Length() > 3 && info[3].IsNumber() ? info[3].As<Napi::Number>().FloatValue() : 0.0f;
  iota::unary(static_cast<int>(op), static_cast<float*>(x.data), static_cast<float*>(out.data),
              static_cast<int64_t>(x.length), alpha);
  return info.Env().Undefined();
}

// softmax(x, out, rows, cols)
Napi::Value Softmax(const Napi::CallbackInfo& info) {
  const int64_t rows = integer(info, 2, "rows"), cols = integer(info, 3, "cols");
  const View x = floats(info, 0, "x", rows * cols);
  const View out = floats(info, 1, "out", rows * cols);
  iota::softmax(static_cast<float*>(x.data), static_cast<float*>(out.data), rows, cols);
  return info.Env().Undefined();
}

// A cross-entropy's targets: an Int32Array of (at least) one entry per row.
View targets_of(const Napi::CallbackInfo& info, size_t i, int64_t rows) {
  const View t = view(info, i, "targets");
  check(info, t.type == napi_int32_array && static_cast<int64_t>(t.length) >= rows,
        "targets must be an Int32Array of one entry per row");
  return t;
}

// crossEntropy(x, targets Int32Array, rows, cols, loss, lse) -> first row with a bad target or -1
Napi::Value CrossEntropy(const Napi::CallbackInfo& info) {
  const int64_t rows = integer(info, 2, "rows"), cols = integer(info, 3, "cols");
  const View x = floats(info, 0, "x", rows * cols);
  const View t = targets_of(info, 1, rows);
  const View loss = floats(info, 4, "loss", rows);
  const View lse = floats(info, 5, "lse", rows);
  const int64_t bad = iota::cross_entropy(static_cast<float*>(x.data), static_cast<int32_t*>(t.data), rows, cols,
                                          static_cast<float*>(loss.data), static_cast<float*>(lse.data));
  return Napi::Number::New(info.Env(), static_cast<double>(bad));
}

// crossEntropyGrad(x, targets Int32Array, lse, scale, rows, cols, grad); targets checked by crossEntropy
Napi::Value CrossEntropyGrad(const Napi::CallbackInfo& info) {
  const int64_t rows = integer(info, 4, "rows"), cols = integer(info, 5, "cols");
  const View x = floats(info, 0, "x", rows * cols);
  const View t = targets_of(info, 1, rows);
  const int32_t* targets = static_cast<int32_t*>(t.data);
  for (int64_t r = 0; r < rows; r++) check(info, targets[r] >= 0 && targets[r] < cols, "target out of range");
  const View lse = floats(info, 2, "lse", rows);
  const View scale = floats(info, 3, "scale", rows);
  const View grad = floats(info, 6, "grad", rows * cols);
  iota::cross_entropy_grad(static_cast<float*>(x.data), targets, static_cast<float*>(lse.data),
                           static_cast<float*>(scale.data), rows, cols, static_cast<float*>(grad.data));
  return info.Env().Undefined();
}

// adamw(w, g, m, v, [clip, beta1, 1 - beta1, beta2, 1 - beta2, eps, stepSize, bc2Sqrt, decay])
Napi::Value AdamW(const Napi::CallbackInfo& info) {
  const View w = floats(info, 0, "w", 0);
  const View g = floats(info, 1, "g", w.length);
  const View m = floats(info, 2, "m", w.length);
  const View v = floats(info, 3, "v", w.length);
  check(info, info.Length() > 4 && info[4].IsArray() && info[4].As<Napi::Array>().Length() == 9,
        "settings must be an array of 9 numbers");
  const Napi::Array a = info[4].As<Napi::Array>();
  double x[9];
  for (uint32_t k = 0; k < 9; k++) {
    const Napi::Value e = a.Get(k);
    check(info, e.IsNumber(), "settings must be an array of 9 numbers");
    x[k] = e.As<Napi::Number>().DoubleValue();
  }
  const iota::AdamW s{x[0], x[1], x[2], x[3], x[4], x[5], x[6], x[7], x[8]};
  iota::adamw(static_cast<float*>(w.data), static_cast<float*>(g.data), static_cast<float*>(m.data),
              static_cast<float*>(v.data), static_cast<int64_t>(w.length), s);
  return info.Env().Undefined();
}

// meanOfSum(sum, n, out): out = fround(sum / n)
Napi::Value MeanOfSum(const Napi::CallbackInfo& info) {
  const View sum = floats(info, 0, "sum", 0);
  check(info, info.Length() > 1 && info[1].IsNumber(), "n must be a number");
  const double n = info[1].As<Napi::Number>().DoubleValue();
  const View out = floats(info, 2, "out", sum.length);
  iota::mean_of_sum(static_cast<float*>(sum.data), n, static_cast<float*>(out.data), static_cast<int64_t>(sum.length));
  return info.Env().Undefined();
}

// sumOfSquares(x) -> float64
Napi::Value SumOfSquares(const Napi::CallbackInfo& info) {
  const View x = floats(info, 0, "x", 0);
  return Napi::Number::New(info.Env(), iota::sum_of_squares(static_cast<float*>(x.data), static_cast<int64_t>(x.length)));
}

// addInto(dst, src): dst += src over src's length
Napi::Value AddInto(const Napi::CallbackInfo& info) {
  const View src = floats(info, 1, "src", 0);
  const View dst = floats(info, 0, "dst", src.length);
  iota::add_into(static_cast<float*>(dst.data), static_cast<float*>(src.data), static_cast<int64_t>(src.length));
  return info.Env().Undefined();
}

// addN(inputs[], out, n)
Napi::Value AddN(const Napi::CallbackInfo& info) {
  check(info, info.Length() > 2 && info[0].IsArray(), "inputs must be an array");
  const int64_t n = integer(info, 2, "n");
  const Napi::Array list = info[0].As<Napi::Array>();
  std::vector<const float*> xs;
  for (uint32_t k = 0; k < list.Length(); k++) {
    const Napi::Value v = list.Get(k);
    napi_typedarray_type type;
    size_t length;
    void* data;
    if (!v.IsTypedArray()) throw Napi::TypeError::New(info.Env(), "inputs must be Float32Arrays");
    NAPI_THROW_IF_FAILED(
        info.Env(),
        napi_get_typedarray_info(info.Env(), v, &type, &length, &data, nullptr, nullptr),
        info.Env().Undefined());
    check(info, type == napi_float32_array && static_cast<int64_t>(length) >= n,
          "inputs must be Float32Arrays of n elements");
    xs.push_back(static_cast<const float*>(data));
  }
  const View out = floats(info, 1, "out", n);
  iota::add_n(xs, static_cast<float*>(out.data), n);
  return info.Env().Undefined();
}

// reduce(op, x, out, outer, red, inner)
Napi::Value Reduce(const Napi::CallbackInfo& info) {
  const int64_t op = integer(info, 0, "op");
  check(info, op >= 0 && op < iota::kReduceOpCount, "unknown reduce op");
  const int64_t outer = integer(info, 3, "outer"), red = integer(info, 4, "red"), inner = integer(info, 5, "inner");
  const View x = floats(info, 1, "x", outer * red * inner);
  const View out = floats(info, 2, "out", outer * inner);
  iota::reduce(static_cast<int>(op), static_cast<float*>(x.data), static_cast<float*>(out.data), outer, red, inner);
  return info.Env().Undefined();
}

// transpose(x, shape, perm, out)
Napi::Value Transpose(const Napi::CallbackInfo& info) {
  const View x = view(info, 0, "x");
  const Shape s = shape(info, 1, "shape");
  const Shape p = shape(info, 2, "perm");
  const View out = view(info, 3, "out");
  check(info, p.size() == s.size(), "perm must have the rank of shape");
  std::vector<int> perm(p.size());
  std::vector<bool> seen(p.size(), false);
  for (size_t i = 0; i < p.size(); i++) {
    check(info, p[i] < static_cast<int64_t>(p.size()) && !seen[p[i]], "perm is not a permutation");
    seen[p[i]] = true;
    perm[i] = static_cast<int>(p[i]);
  }
  const int64_t n = iota::numel(s);
  check(info, x.type == out.type && elem_size(x.type) <= 8, "x and out must have the same type");
  check(info, static_cast<int64_t>(x.length) >= n && static_cast<int64_t>(out.length) >= n, "x or out is too small");
  iota::transpose(x.data, out.data, s, perm, static_cast<int>(elem_size(x.type)));
  return info.Env().Undefined();
}

// copy(src, srcShape, srcStart, dst, dstShape, dstStart, size)
Napi::Value Copy(const Napi::CallbackInfo& info) {
  const View src = view(info, 0, "src");
  const Shape ss = shape(info, 1, "srcShape"), s0 = shape(info, 2, "srcStart");
  const View dst = view(info, 3, "dst");
  const Shape ds = shape(info, 4, "dstShape"), d0 = shape(info, 5, "dstStart"), size = shape(info, 6, "size");
  const size_t r = size.size();
  check(info, ss.size() == r && s0.size() == r && ds.size() == r && d0.size() == r, "copy: shapes must have one rank");
  check(info, src.type == dst.type, "src and dst must have the same type");
  for (size_t i = 0; i < r; i++)
    check(info, s0[i] + size[i] <= ss[i] && d0[i] + size[i] <= ds[i], "copy: block out of range");
  check(info,
        static_cast<int64_t>(src.length) >= iota::numel(ss) &&
            static_cast<int64_t>(dst.length) >= iota::numel(ds),
        "copy: array too small for its shape");
  iota::copy_region(src.data, ss, s0, dst.data, ds, d0, size, static_cast<int>(elem_size(src.type)));
  return info.Env().Undefined();
}

// fill(out, value)
Napi::Value Fill(const Napi::CallbackInfo& info) {
  const View out = floats(info, 0, "out", 0);
  const float value = info[1].As<Napi::Number>().FloatValue();
  iota::fill(static_cast<float*>(out.data), static_cast<int64_t>(out.length), value);
  return info.Env().Undefined();
}

// gather(x, outer, n, inner, indices Int32Array, out) -> position of a bad index or -1
Napi::Value Gather(const Napi::CallbackInfo& info) {
  const View x = view(info, 0, "x");
  const int64_t outer = integer(info, 1, "outer"), n = integer(info, 2, "n"), inner = integer(info, 3, "inner");
  const View idx = view(info, 4, "indices");
  const View out = view(info, 5, "out");
  check(info, idx.type == napi_int32_array, "indices must be an Int32Array");
  check(info, x.type == out.type, "x and out must have the same type");
  const int64_t m = static_cast<int64_t>(idx.length);
  check(info,
        static_cast<int64_t>(x.length) >= outer * n * inner &&
            static_cast<int64_t>(out.length) >= outer * m * inner,
        "gather: array too small");
  const int64_t bad = iota::gather(x.data, outer, n, inner, static_cast<int32_t*>(idx.data), m,
                                   out.data, static_cast<int>(elem_size(x.type)));
  return Napi::Number::New(info.Env(), static_cast<double>(bad));
}

// convert(src, dst): element-wise numeric conversion between Float32Array, Int32Array and
// Uint8Array (bool: x != 0 -> 1). float32 -> int32 is left to JavaScript (its wrap-around rules).
Napi::Value Convert(const Napi::CallbackInfo& info) {
  const View src = view(info, 0, "src");
  const View dst = view(info, 1, "dst");
  check(info, dst.length >= src.length, "dst is too small");
  const int64_t n = static_cast<int64_t>(src.length);
  if (dst.type == napi_float32_array && src.type == napi_int32_array)
    iota::convert(static_cast<const int32_t*>(src.data), static_cast<float*>(dst.data), n);
  else if (dst.type == napi_float32_array && src.type == napi_uint8_array)
    iota::convert(static_cast<const uint8_t*>(src.data), static_cast<float*>(dst.data), n);
  else if (dst.type == napi_uint8_array && src.type == napi_float32_array)
    iota::to_bool(static_cast<const float*>(src.data), static_cast<uint8_t*>(dst.data), n);
  else if (dst.type == napi_uint8_array && src.type == napi_int32_array)
    iota::to_bool(static_cast<const int32_t*>(src.data), static_cast<uint8_t*>(dst.data), n);
  else throw Napi::TypeError::New(info.Env(), "convert: unsupported pair of array types");
  return info.Env().Undefined();
}

Napi::Value SetThreads(const Napi::CallbackInfo& info) {
  const int64_t n = integer(info, 0, "threads");
  check(info, n >= 1 && n <= 1024, "threads must be between 1 and 1024");
  if (info.Length() > 1 && info[1].IsNumber()) iota::Pool::get().set_spin_us(info[1].As<Napi::Number>().Int32Value());
  const bool pin = info.Length() > 2 && info[2].ToBoolean();
  iota::Pool::get().resize(static_cast<int>(n), pin);
  return info.Env().Undefined();
}

Napi::Value Info(const Napi::CallbackInfo& info) {
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("threads", iota::Pool::get().size());
  o.Set("spinUs", iota::Pool::get().spin_us());
  o.Set("pinned", iota::Pool::get().pinned());
  o.Set("blas", iota::blas_info());
  return o;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  iota::blas_init();
  // Tensor storage is large, short-lived and the same sizes every step. By default glibc maps
  // each large block fresh and unmaps it on free, so every kernel output pays page faults
  // (measured: 1.9 ms instead of 0.4 for a 5.8 MB output). Keep freed blocks in the heap for
  // reuse instead; the process keeps its peak footprint, as a training process does anyway.
  static bool tuned = false;
  if (!tuned) {
    tuned = true;
    mallopt(M_MMAP_MAX, 0);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
  }
  exports.Set("matmul", Napi::Function::New(env, Matmul));
  exports.Set("binary", Napi::Function::New(env, Binary));
  exports.Set("unary", Napi::Function::New(env, Unary));
  exports.Set("softmax", Napi::Function::New(env, Softmax));
  exports.Set("crossEntropy", Napi::Function::New(env, CrossEntropy));
  exports.Set("crossEntropyGrad", Napi::Function::New(env, CrossEntropyGrad));
  exports.Set("addN", Napi::Function::New(env, AddN));
  exports.Set("adamw", Napi::Function::New(env, AdamW));
  exports.Set("addInto", Napi::Function::New(env, AddInto));
  exports.Set("meanOfSum", Napi::Function::New(env, MeanOfSum));
  exports.Set("sumOfSquares", Napi::Function::New(env, SumOfSquares));
  exports.Set("reduce", Napi::Function::New(env, Reduce));
  exports.Set("transpose", Napi::Function::New(env, Transpose));
  exports.Set("copy", Napi::Function::New(env, Copy));
  exports.Set("fill", Napi::Function::New(env, Fill));
  exports.Set("gather", Napi::Function::New(env, Gather));
  exports.Set("convert", Napi::Function::New(env, Convert));
  exports.Set("setThreads", Napi::Function::New(env, SetThreads));
  exports.Set("info", Napi::Function::New(env, Info));
  return exports;
}

}  // namespace

NODE_API_MODULE(iota_native, Init)
