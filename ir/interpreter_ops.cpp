// Primitive ops of the reference interpreter. Every function decodes its operands,
// loops plainly, and encodes the result in the node's dtype (see ir/interpreter.h).
#include "ir/interpreter_ops.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>

#include "ir/infer.h"

namespace moat::ir::interp {

namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

std::vector<int64_t> strides_of(const std::vector<int64_t>& dims) {
  std::vector<int64_t> s(dims.size(), 1);
  for (size_t i = dims.size(); i-- > 1;) s[i - 1] = s[i] * dims[i];
  return s;
}

// Offsets base + sum_d idx[d] * strides[d] for every index of `dims`, row-major.
std::vector<int64_t> strided_offsets(const std::vector<int64_t>& dims, const std::vector<int64_t>& strides,
                                     int64_t base) {
  std::vector<int64_t> out(static_cast<size_t>(product(dims)));
  std::vector<int64_t> idx(dims.size(), 0);
  int64_t offset = base;
  for (size_t n = 0; n < out.size(); ++n) {
    out[n] = offset;
    for (size_t d = dims.size(); d-- > 0;) {  // odometer increment
      ++idx[d];
      offset += strides[d];
      if (idx[d] < dims[d]) break;
      offset -= strides[d] * idx[d];
      idx[d] = 0;
    }
  }
  return out;
}

// Copies units of `unit` bytes: out unit n = src unit offsets[n].
std::vector<uint8_t> copy_units(std::span<const uint8_t> src, int64_t unit, const std::vector<int64_t>& offsets) {
  std::vector<uint8_t> out(offsets.size() * static_cast<size_t>(unit));
  for (size_t n = 0; n < offsets.size(); ++n)
    std::memcpy(out.data() + n * static_cast<size_t>(unit), src.data() + offsets[n] * unit, static_cast<size_t>(unit));
  return out;
}

// Dimensions counted in storage units: a quantised tensor's last dimension in blocks.
std::vector<int64_t> unit_dims(DType dtype, std::vector<int64_t> dims) {
  if (is_quantised(dtype)) dims.back() /= dtype_block_elems(dtype);
  return dims;
}

float max_nan(float a, float b) { return std::isnan(a) || std::isnan(b) ? kNaN : std::max(a, b); }
float min_nan(float a, float b) { return std::isnan(a) || std::isnan(b) ? kNaN : std::min(a, b); }

float unary_f32(Op op, float x) {
  switch (op) {
    case Op::neg: return -x;
    case Op::abs: return std::fabs(x);
    case Op::exp: return std::exp(x);
    case Op::log: return std::log(x);
    case Op::sqrt: return std::sqrt(x);
    case Op::rsqrt: return 1.0f / std::sqrt(x);
    case Op::recip: return 1.0f / x;
    case Op::sin: return std::sin(x);
    case Op::cos: return std::cos(x);
    case Op::tanh: return std::tanh(x);
    case Op::sigmoid: return 1.0f / (1.0f + std::exp(-x));
    case Op::silu: return x / (1.0f + std::exp(-x));
    default: break;
  }
  throw InternalError(cat("unary_f32: ", op_name(op)));
}

float binary_f32(Op op, float a, float b) {
  switch (op) {
    case Op::add: return a + b;
    case Op::sub: return a - b;
    case Op::mul: return a * b;
    case Op::div: return a / b;
    case Op::max: return max_nan(a, b);
    case Op::min: return min_nan(a, b);
    case Op::pow: return std::pow(a, b);
    case Op::cmp_lt: return a < b ? 1.0f : 0.0f;
    case Op::cmp_le: return a <= b ? 1.0f : 0.0f;
    case Op::cmp_eq: return a == b ? 1.0f : 0.0f;
    default: break;
  }
  throw InternalError(cat("binary_f32: ", op_name(op)));
}

// Wrapping int64 arithmetic (the store into the node's width wraps again).
int64_t wrap(uint64_t v) { return static_cast<int64_t>(v); }

int64_t binary_i64(const Ctx& c, int64_t a, int64_t b) {
  uint64_t ua = static_cast<uint64_t>(a), ub = static_cast<uint64_t>(b);
  switch (c.node.op) {
    case Op::add: return wrap(ua + ub);
    case Op::sub: return wrap(ua - ub);
    case Op::mul: return wrap(ua * ub);
    case Op::div:
      if (b == 0) c.fail("integer division by zero");
      if (b == -1) return wrap(0 - ua);  // INT64_MIN / -1 wraps
      return a / b;                      // truncates toward zero
    case Op::max: return std::max(a, b);
    case Op::min: return std::min(a, b);
    case Op::cmp_lt: return a < b;
    case Op::cmp_le: return a <= b;
    case Op::cmp_eq: return a == b;
    default: break;
  }
  throw InternalError(cat("binary_i64: ", op_name(c.node.op)));
}

bool is_int_like(DType t) { return is_int(t) || t == DType::boolean; }

int64_t int_min(DType t) {
  switch (t) {
    case DType::i64: return INT64_MIN;
    case DType::i32: return INT32_MIN;
    case DType::i8: return INT8_MIN;
    default: return 0;  // u8
  }
}

}  // namespace

int64_t product(const std::vector<int64_t>& dims) {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  return n;
}

std::vector<int64_t> broadcast_offsets(const std::vector<int64_t>& in_dims, const std::vector<int64_t>& out_dims) {
  MOAT_INTERNAL_CHECK(in_dims.size() <= out_dims.size(), "broadcast to a lower rank");
  std::vector<int64_t> in_strides = strides_of(in_dims);
  std::vector<int64_t> strides(out_dims.size(), 0);
  size_t shift = out_dims.size() - in_dims.size();
  for (size_t i = 0; i < in_dims.size(); ++i) {
    MOAT_INTERNAL_CHECK(in_dims[i] == out_dims[i + shift] || in_dims[i] == 1, "dimensions do not broadcast");
    strides[i + shift] = in_dims[i] == 1 ? 0 : in_strides[i];
  }
  return strided_offsets(out_dims, strides, 0);
}

HostTensor eval_elementwise(const Ctx& c) {
  const Op op = c.node.op;
  const size_t n = static_cast<size_t>(product(c.out_shape));
  std::vector<std::vector<int64_t>> at;  // per operand: source element of each output element
  for (const HostTensor* a : c.args) at.push_back(broadcast_offsets(a->shape(), c.out_shape));

  if (op == Op::select) {  // copies the chosen element's bytes: exact for every dtype
    std::vector<int64_t> cond = c.arg(0).to_i64();
    int64_t size = dtype_block_bytes(c.out_dtype());
    std::vector<uint8_t> out(n * static_cast<size_t>(size));
    for (size_t i = 0; i < n; ++i) {
      const HostTensor& from = cond[static_cast<size_t>(at[0][i])] ? c.arg(1) : c.arg(2);
      int64_t j = cond[static_cast<size_t>(at[0][i])] ? at[1][i] : at[2][i];
      std::memcpy(out.data() + i * static_cast<size_t>(size), from.bytes().data() + j * size, static_cast<size_t>(size));
    }
    return HostTensor::from_bytes(c.out_dtype(), c.out_shape, std::move(out));
  }

  if (is_int_like(c.arg(0).dtype())) {
    std::vector<int64_t> a = c.arg(0).to_i64(), out(n);
    if (op_kind(op) == OpKind::Unary) {
      for (size_t i = 0; i < n; ++i) {
        int64_t x = a[static_cast<size_t>(at[0][i])];
        bool negate = op == Op::neg || x < 0;  // neg, or abs of a negative
        out[i] = negate ? wrap(0 - static_cast<uint64_t>(x)) : x;
      }
    } else {
      std::vector<int64_t> b = c.arg(1).to_i64();
      for (size_t i = 0; i < n; ++i)
        out[i] = binary_i64(c, a[static_cast<size_t>(at[0][i])], b[static_cast<size_t>(at[1][i])]);
    }
    return HostTensor::from_i64(c.out_shape, out, c.out_dtype());
  }

  std::vector<float> a = c.arg(0).to_f32(), out(n);
  if (op_kind(op) == OpKind::Unary) {
    for (size_t i = 0; i < n; ++i) out[i] = unary_f32(op, a[static_cast<size_t>(at[0][i])]);
  } else {
    std::vector<float> b = c.arg(1).to_f32();
    for (size_t i = 0; i < n; ++i)
      out[i] = binary_f32(op, a[static_cast<size_t>(at[0][i])], b[static_cast<size_t>(at[1][i])]);
  }
  return HostTensor::from_f32(c.out_shape, out, c.out_dtype());
}

HostTensor eval_reduce(const Ctx& c) {
  const HostTensor& x = c.arg(0);
  const auto& dims = x.shape();
  size_t axis = static_cast<size_t>(normalise_axis(attr_int(c.node, "axis"), dims.size()));
  int64_t outer = 1, len = dims[axis], inner = 1;
  for (size_t d = 0; d < axis; ++d) outer *= dims[d];
  for (size_t d = axis + 1; d < dims.size(); ++d) inner *= dims[d];
  const bool sum = c.node.op == Op::reduce_sum;

  if (is_int(x.dtype())) {
    std::vector<int64_t> v = x.to_i64(), out(static_cast<size_t>(outer * inner));
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t i = 0; i < inner; ++i) {
        int64_t acc = sum ? 0 : int_min(x.dtype());
        for (int64_t j = 0; j < len; ++j) {
          int64_t e = v[static_cast<size_t>((o * len + j) * inner + i)];
          acc = sum ? wrap(static_cast<uint64_t>(acc) + static_cast<uint64_t>(e)) : std::max(acc, e);
        }
        out[static_cast<size_t>(o * inner + i)] = acc;
      }
    return HostTensor::from_i64(c.out_shape, out, c.out_dtype());
  }

  std::vector<float> v = x.to_f32(), out(static_cast<size_t>(outer * inner));
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      float acc = sum ? 0.0f : -kInf;
      for (int64_t j = 0; j < len; ++j) {
        float e = v[static_cast<size_t>((o * len + j) * inner + i)];
        acc = sum ? acc + e : max_nan(acc, e);
      }
      out[static_cast<size_t>(o * inner + i)] = acc;
    }
  return HostTensor::from_f32(c.out_shape, out, c.out_dtype());
}

// B is read one row (transposed: B[.., n, :]) or one matrix (B[.., K, N]) at a time, so
// a large quantised weight is dequantised piecewise and never copied whole.
HostTensor eval_matmul(const Ctx& c) {
  const HostTensor& a = c.arg(0);
  const HostTensor& b = c.arg(1);
  const bool bt = attr_bool(c.node, "b_transposed");
  const auto& ad = a.shape();
  const auto& bd = b.shape();
  const int64_t m = ad[ad.size() - 2], k = ad.back();
  const int64_t n = bt ? bd[bd.size() - 2] : bd.back();
  std::vector<int64_t> a_batch(ad.begin(), ad.end() - 2), b_batch(bd.begin(), bd.end() - 2);
  std::vector<int64_t> out_batch(c.out_shape.begin(), c.out_shape.end() - 2);
  std::vector<int64_t> a_at = broadcast_offsets(a_batch, out_batch), b_at = broadcast_offsets(b_batch, out_batch);

  std::vector<float> av = a.to_f32();
  const int64_t b_row_bytes = tensor_bytes(b.dtype(), {1, bt ? k : n});  // bytes of one stored row of B
  const int64_t b_rows = bt ? n : k;                                     // stored rows per batch matrix

  // Block scales of an f8_e4m3 B: scale[batch][n / bn][k / bk].
  std::vector<float> scales;
  int64_t bn = 1, bk = 1, sn = 0, sk = 0;
  if (c.args.size() == 3) {
    scales = c.arg(2).to_f32();
    bn = attr_ints(c.node, "block")[0];
    bk = attr_ints(c.node, "block")[1];
    sn = (n + bn - 1) / bn;
    sk = (k + bk - 1) / bk;
  }

  std::vector<float> out(static_cast<size_t>(product(c.out_shape)));
  std::vector<float> bm(static_cast<size_t>(bt ? k : k * n));  // one row [K] or one matrix [K, N]
  for (size_t batch = 0; batch < a_at.size(); ++batch) {
    const float* am = av.data() + a_at[batch] * m * k;
    const uint8_t* braw = b.bytes().data() + b_at[batch] * b_rows * b_row_bytes;
    float* om = out.data() + static_cast<int64_t>(batch) * m * n;
    auto b_value_scale = [&](int64_t row, int64_t col) {  // (n, k) of a transposed B
      return scales.empty() ? 1.0f : scales[static_cast<size_t>((b_at[batch] * sn + row / bn) * sk + col / bk)];
    };
    if (bt) {
      for (int64_t j = 0; j < n; ++j) {
        decode_f32(b.dtype(), braw + j * b_row_bytes, bm.data(), k);
        if (!scales.empty())
          for (int64_t kk = 0; kk < k; ++kk) bm[static_cast<size_t>(kk)] *= b_value_scale(j, kk);
        for (int64_t i = 0; i < m; ++i) {
          float acc = 0.0f;
          for (int64_t kk = 0; kk < k; ++kk) acc += am[i * k + kk] * bm[static_cast<size_t>(kk)];
          om[i * n + j] = acc;
        }
      }
    } else {
      decode_f32(b.dtype(), braw, bm.data(), k * n);
      for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n; ++j) {
          float acc = 0.0f;
          for (int64_t kk = 0; kk < k; ++kk) acc += am[i * k + kk] * bm[static_cast<size_t>(kk * n + j)];
          om[i * n + j] = acc;
        }
    }
  }
  return HostTensor::from_f32(c.out_shape, out, c.out_dtype());
}

HostTensor eval_gather(const Ctx& c) {
  const HostTensor& x = c.arg(0);
  std::vector<int64_t> idx = c.arg(1).to_i64();
  auto check = [&](int64_t i, int64_t rows, size_t where) {
    if (i < 0 || i >= rows)
      c.fail("index ", i, " is out of range [0, ", rows, ") (element ", where, " of the indices)");
  };
  if (c.node.op == Op::gather) {
    std::vector<int64_t> row_shape = x.shape();
    const int64_t rows = row_shape[0];
    row_shape[0] = 1;
    const int64_t row_bytes = tensor_bytes(x.dtype(), row_shape);  // quantised rows stay raw blocks
    std::vector<uint8_t> out(idx.size() * static_cast<size_t>(row_bytes));
    for (size_t r = 0; r < idx.size(); ++r) {
      check(idx[r], rows, r);
      std::memcpy(out.data() + r * static_cast<size_t>(row_bytes), x.bytes().data() + idx[r] * row_bytes,
                  static_cast<size_t>(row_bytes));
    }
    return HostTensor::from_bytes(c.out_dtype(), c.out_shape, std::move(out));
  }
  // take_along: out[r, j] = x[r, idx[r, j]] over the rows r of the leading dims.
  const int64_t len = x.shape().back(), kk = c.out_shape.back();
  const int64_t size = dtype_block_bytes(x.dtype());
  std::vector<uint8_t> out(idx.size() * static_cast<size_t>(size));
  for (size_t e = 0; e < idx.size(); ++e) {
    int64_t r = static_cast<int64_t>(e) / kk;
    check(idx[e], len, e);
    std::memcpy(out.data() + e * static_cast<size_t>(size), x.bytes().data() + (r * len + idx[e]) * size,
                static_cast<size_t>(size));
  }
  return HostTensor::from_bytes(c.out_dtype(), c.out_shape, std::move(out));
}

HostTensor eval_write_rows(const Ctx& c) {
  const HostTensor& dst = c.arg(0);
  const HostTensor& rows = c.arg(1);
  const std::vector<int64_t> at = c.arg(2).to_i64();
  std::vector<uint8_t> out(dst.bytes().begin(), dst.bytes().end());
  const int64_t n_rows = dst.shape()[0];
  const size_t row_bytes = at.empty() ? 0 : rows.bytes().size() / at.size();
  for (size_t r = 0; r < at.size(); ++r) {
    if (at[r] < 0 || at[r] >= n_rows)
      c.fail("index ", at[r], " is out of range [0, ", n_rows, ") (element ", r, " of the indices)");
    std::memcpy(out.data() + static_cast<size_t>(at[r]) * row_bytes, rows.bytes().data() + r * row_bytes, row_bytes);
  }
  return HostTensor::from_bytes(c.out_dtype(), c.out_shape, std::move(out));
}

HostTensor eval_view(const Ctx& c) {
  const HostTensor& x = c.arg(0);
  const DType t = x.dtype();
  const int64_t unit = dtype_block_bytes(t);
  const std::vector<int64_t> xd = unit_dims(t, x.shape()), od = unit_dims(t, c.out_shape);
  switch (c.node.op) {
    case Op::reshape:
      return x.reshaped(c.out_shape);
    case Op::broadcast:
      return HostTensor::from_bytes(t, c.out_shape, copy_units(x.bytes(), unit, broadcast_offsets(xd, od)));
    case Op::permute: {
      const auto& perm = attr_ints(c.node, "perm");
      std::vector<int64_t> xs = strides_of(xd), strides;
      for (int64_t p : perm) strides.push_back(xs[static_cast<size_t>(p)]);
      return HostTensor::from_bytes(t, c.out_shape, copy_units(x.bytes(), unit, strided_offsets(od, strides, 0)));
    }
    case Op::slice: {
      size_t axis = static_cast<size_t>(normalise_axis(attr_int(c.node, "axis"), xd.size()));
      int64_t start = attr_int(c.node, "start");
      if (is_quantised(t) && axis + 1 == xd.size()) start /= dtype_block_elems(t);
      std::vector<int64_t> xs = strides_of(xd);
      return HostTensor::from_bytes(
          t, c.out_shape, copy_units(x.bytes(), unit, strided_offsets(od, xs, start * xs[axis])));
    }
    case Op::concat: {
      size_t axis = static_cast<size_t>(normalise_axis(attr_int(c.node, "axis"), xd.size()));
      int64_t outer = 1, inner = unit;  // inner: bytes per step of the concat axis
      for (size_t d = 0; d < axis; ++d) outer *= od[d];
      for (size_t d = axis + 1; d < od.size(); ++d) inner *= od[d];
      std::vector<uint8_t> out;
      out.reserve(static_cast<size_t>(product(od) * unit));
      for (int64_t o = 0; o < outer; ++o)
        for (const HostTensor* part : c.args) {
          int64_t chunk = part->shape()[axis] * inner;
          const uint8_t* src = part->bytes().data() + o * chunk;
          out.insert(out.end(), src, src + chunk);
        }
      return HostTensor::from_bytes(t, c.out_shape, std::move(out));
    }
    default:
      break;
  }
  throw InternalError(cat("eval_view: ", op_name(c.node.op)));
}

HostTensor eval_cast(const Ctx& c) {
  const HostTensor& x = c.arg(0);
  if (x.dtype() == c.out_dtype()) return x;
  if (is_int_like(x.dtype())) return HostTensor::from_i64(c.out_shape, x.to_i64(), c.out_dtype());
  return HostTensor::from_f32(c.out_shape, x.to_f32(), c.out_dtype());
}

HostTensor eval_topk(const Ctx& c) {
  const HostTensor& x = c.arg(0);
  const int64_t len = x.shape().back(), k = attr_int(c.node, "k");
  if (k > len) c.fail("k = ", k, " is larger than the ", len, " values of a row");
  const std::vector<float> v = x.to_f32();
  // a before b: a is larger, NaN above every number; stable sort keeps ties by index.
  auto before = [](float a, float b) { return (std::isnan(a) && !std::isnan(b)) || a > b; };
  const int64_t rows = len == 0 ? 0 : static_cast<int64_t>(v.size()) / len;
  std::vector<int64_t> out;
  out.reserve(static_cast<size_t>(rows * k));
  std::vector<int64_t> order(static_cast<size_t>(len));
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = v.data() + r * len;
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return before(row[a], row[b]); });
    out.insert(out.end(), order.begin(), order.begin() + k);
  }
  return HostTensor::from_i64(c.out_shape, out, DType::i32);
}

HostTensor eval_kth_largest(const Ctx& c) {
  const HostTensor& x = c.arg(0);
  const int64_t len = x.shape().back(), k = attr_int(c.node, "k");
  if (k > len) c.fail("k = ", k, " is larger than the ", len, " values of a row");
  std::vector<float> v = x.to_f32();
  auto before = [](float a, float b) { return (std::isnan(a) && !std::isnan(b)) || a > b; };
  const int64_t rows = len == 0 ? 0 : static_cast<int64_t>(v.size()) / len;
  std::vector<float> out;
  for (int64_t r = 0; r < rows; ++r) {
    float* row = v.data() + r * len;
    std::nth_element(row, row + k - 1, row + len, before);
    out.push_back(row[k - 1]);
  }
  return HostTensor::from_f32(c.out_shape, out, c.out_dtype());
}

}  // namespace moat::ir::interp
