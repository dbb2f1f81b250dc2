// The math functions written once in Kernel IR (jit/math_functions.h, what the PTX
// target runs) executed on the CPU against libm in double precision rounded to f32:
// errors in units in the last place over sweeps of ordinary, tiny, huge and special
// arguments, as scalars and as 8-lane vectors.
#include <doctest/doctest.h>

#include <bit>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "backends/device.h"
#include "jit/emit_llvm.h"
#include "jit/legalize.h"

using namespace moat::jit;
namespace backends = moat::backends;
namespace ir = moat::ir;

namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

// out[i] = f(a[i], b[i]) over n elements, `lanes` at a time, with the math written out.
std::vector<float> run(const std::function<NodeRef(NodeRef, NodeRef)>& f, const std::vector<float>& a,
                       const std::vector<float>& b, int lanes) {
  const int64_t n = static_cast<int64_t>(a.size());
  Kernel k;
  k.name = "math";
  int ia = k.add_buffer({"a", ir::DType::f32, Space::global, n, false});
  int ib = k.add_buffer({"b", ir::DType::f32, Space::global, n, false});
  int out = k.add_buffer({"out", ir::DType::f32, Space::global, n, true});
  NodeRef i = ref("i", kI64);
  k.body = block({for_loop("i", c_i64(0), c_i64(n), c_i64(lanes),
                           {store(k, out, i, f(load(k, ia, i, lanes), load(k, ib, i, lanes)))})});
  const Kernel legal = legalize_numerics(k, {.native_f16 = true, .native_math = false});
  const std::string text = print(legal);  // the functions are written out, not left to libm
  for (const std::string native : {"exp(", "log(", "sin(", "cos(", "tanh(", "pow(", "rem("})
    for (size_t at = text.find(native); at != std::string::npos; at = text.find(native, at + 1))
      REQUIRE_MESSAGE((at > 0 && (std::isalnum(static_cast<unsigned char>(text[at - 1])) || text[at - 1] == '_')), native);
  auto device = backends::open_cpu_device({.threads = 1});
  auto module = device->load(device->compile(backends::Artifact::text("ll", emit_llvm(legal), {k.name})));
  const size_t bytes = a.size() * sizeof(float);
  auto da = device->allocate(bytes), db = device->allocate(bytes), dout = device->allocate(bytes);
  device->stream().write(*da, 0, a.data(), bytes);
  device->stream().write(*db, 0, b.data(), bytes);
  const std::vector<backends::KernelArg> args{backends::KernelArg::of(*da), backends::KernelArg::of(*db),
                                              backends::KernelArg::of(*dout)};
  device->stream().launch(module->kernel(k.name), backends::Grid{}, args);
  std::vector<float> result(a.size());
  device->stream().read(*dout, 0, result.data(), bytes);
  device->stream().synchronize();
  return result;
}

// Distance in representable floats (0 for two NaNs; huge for NaN against a number).
int64_t ulps(float x, float y) {
  if (std::isnan(x) || std::isnan(y)) return std::isnan(x) && std::isnan(y) ? 0 : INT64_MAX;
  auto ordered = [](float f) {
    const int32_t i = std::bit_cast<int32_t>(f);
    return i < 0 ? -static_cast<int64_t>(i & 0x7fffffff) : static_cast<int64_t>(i);
  };
  const int64_t d = ordered(x) - ordered(y);
  return d < 0 ? -d : d;
}

std::vector<float> sweep(float lo, float hi, int count) {
  std::vector<float> v;
  for (int i = 0; i < count; ++i) v.push_back(lo + (hi - lo) * static_cast<float>(i) / static_cast<float>(count - 1));
  return v;
}

// Runs f on every argument (b is 1 where unused), scalar and in vectors, against want;
// checks the worst error is within `max_ulps`.
void check(const char* name, const std::function<NodeRef(NodeRef, NodeRef)>& f, std::vector<float> a, std::vector<float> b,
           const std::function<float(float, float)>& want, int64_t max_ulps) {
  while (a.size() % 8 != 0) {
    a.push_back(1.0f);
    b.push_back(1.0f);
  }
  for (int lanes : {1, 8}) {
    const std::vector<float> got = run(f, a, b, lanes);
    int64_t worst = 0;
    size_t at = 0;
    for (size_t i = 0; i < a.size(); ++i) {
      const int64_t e = ulps(got[i], want(a[i], b[i]));
      if (e > worst) worst = e, at = i;
    }
    INFO(name, ", lanes ", lanes, ": worst at (", a[at], ", ", b[at], "): got ", got[at], ", want ", want(a[at], b[at]));
    CHECK(worst <= max_ulps);
    if (lanes == 1) MESSAGE(std::string(name), ": at most ", worst, " ulp over ", a.size(), " arguments");
  }
}

std::vector<float> with_specials(std::vector<float> v) {
  for (float x : {0.0f, -0.0f, kInf, -kInf, kNaN, 1e-40f, -1e-40f, 1e-30f, 3e38f, -3e38f}) v.push_back(x);
  return v;
}

NodeRef un(UnaryOp op, NodeRef a) { return unary(op, std::move(a)); }

}  // namespace

TEST_CASE("math rules: exp, log, tanh within a few ulp of libm, special values exact") {
  auto exp_args = with_specials(sweep(-110.0f, 95.0f, 1000));
  check("exp", [](NodeRef a, NodeRef) { return un(UnaryOp::exp, a); }, exp_args, std::vector<float>(exp_args.size(), 1.0f),
        [](float x, float) { return static_cast<float>(std::exp(static_cast<double>(x))); }, 2);
  std::vector<float> log_args = sweep(1e-3f, 1e3f, 500);
  for (int e = -140; e <= 127; e += 3) log_args.push_back(std::ldexp(1.3f, e));
  for (float x : {-1.0f, -1e-20f, 1.0f, 0.99999994f, 1.0000001f}) log_args.push_back(x);
  log_args = with_specials(log_args);
  check("log", [](NodeRef a, NodeRef) { return un(UnaryOp::log, a); }, log_args, std::vector<float>(log_args.size(), 1.0f),
        [](float x, float) { return static_cast<float>(std::log(static_cast<double>(x))); }, 1);
  auto tanh_args = with_specials(sweep(-12.0f, 12.0f, 1001));
  for (float x : {0.625f, 0.62499994f, 0.62500006f, -0.625f, 1e-8f}) tanh_args.push_back(x);
  check("tanh", [](NodeRef a, NodeRef) { return un(UnaryOp::tanh, a); }, tanh_args, std::vector<float>(tanh_args.size(), 1.0f),
        [](float x, float) { return static_cast<float>(std::tanh(static_cast<double>(x))); }, 4);
}

TEST_CASE("math rules: sin and cos within 2 ulp up to rope-sized arguments, in [-1, 1] beyond") {
  std::vector<float> args = sweep(-10.0f, 10.0f, 801);
  for (float x : sweep(1e3f, 2e5f, 400)) args.push_back(x);  // positions x frequencies of long contexts
  for (float x : {1e-20f, 1.5707964f, 3.1415927f, 4.712389f, 6.2831855f, 1e7f, 16777216.0f}) args.push_back(x);
  args = with_specials(args);
  for (UnaryOp op : {UnaryOp::sin, UnaryOp::cos}) {
    const bool is_sin = op == UnaryOp::sin;
    std::vector<float> normal, huge;
    for (float x : args) (std::fabs(x) < 1e15f || !std::isfinite(x) ? normal : huge).push_back(x);
    check(is_sin ? "sin" : "cos", [op](NodeRef a, NodeRef) { return un(op, a); }, normal,
          std::vector<float>(normal.size(), 1.0f),
          [is_sin](float x, float) {
            const double d = static_cast<double>(x);
            return static_cast<float>(is_sin ? std::sin(d) : std::cos(d));
          },
          2);
    const std::vector<float> got = run([op](NodeRef a, NodeRef) { return un(op, a); }, huge, huge, 1);
    for (float g : got) CHECK((g >= -1.0f && g <= 1.0f));
  }
}

TEST_CASE("math rules: pow within 2 ulp with C99's special cases, fmod exact") {
  std::vector<float> a, b;
  const float xs[] = {0.5f, 2.0f, 3.7f, 10.0f, 1e-3f, 7e5f, -2.0f, -0.5f, -3.7f, 0.0f, -0.0f, 1.0f, -1.0f, kInf, -kInf, kNaN};
  const float ys[] = {0.0f, -0.0f, 0.5f, 1.0f, 2.0f, 3.0f, -1.0f, -2.5f, 10.0f, 37.0f, 0.333f, 1e10f, kInf, -kInf, kNaN};
  for (float x : xs)
    for (float y : ys) a.push_back(x), b.push_back(y);
  check("pow", [](NodeRef x, NodeRef y) { return binary(BinaryOp::pow, x, y); }, a, b,
        [](float x, float y) { return static_cast<float>(std::pow(static_cast<double>(x), static_cast<double>(y))); }, 2);

  std::vector<float> fa, fb;
  const float ns[] = {5.5f, -5.5f, 1e30f, -7.25f, 0.1f, 3e-39f, 123456.789f, 0.0f, -0.0f, kInf, kNaN, 2.0f};
  const float ds[] = {2.0f, -3.0f, 0.1f, 1e-30f, 7.0f, 0.0f, kInf, kNaN, 1e-44f};
  for (float x : ns)
    for (float y : ds) fa.push_back(x), fb.push_back(y);
  check("fmod", [](NodeRef x, NodeRef y) { return binary(BinaryOp::rem, x, y); }, fa, fb,
        [](float x, float y) { return std::fmod(x, y); }, 0);
}
