// Internal to the PTX emitter (emit_ptx.cpp, emit_ptx_numeric.cpp): the body of one
// PTX entry under construction. Every value gets a fresh virtual register of its class
// (ptxas allocates physical registers); registers are written once except those of
// Kernel IR vars and loop counters. Instructions are kept as text lines.
#pragma once

#include <bit>
#include <cstdint>
#include <cstdio>
#include <initializer_list>
#include <string>
#include <string_view>

namespace moat::jit::ptx {

// Register classes and their PTX spellings: predicates (%p), 16-bit (%rs: f16 / bf16
// bits), 32-bit (%r: i32, and i8 / u8 / f8 kept sign- / zero-extended), 64-bit (%rd:
// i64, addresses), f32 (%f), f64 (%fd: internal to the math sequences).
enum class Reg : uint8_t { pred, b16, b32, b64, f32, f64 };
inline constexpr int kRegClasses = 6;

class Builder {
 public:
  std::string reg(Reg r) {
    const int c = static_cast<int>(r);
    return std::string(kPrefix[c]) + std::to_string(count_[c]++);
  }

  // "\topcode a, b, c;" (operands are registers, immediates or [addresses]).
  void op(std::string_view opcode, std::initializer_list<std::string> operands) {
    text_ += '\t';
    text_ += opcode;
    bool first = true;
    for (const std::string& o : operands) {
      text_ += first ? " " : ", ";
      text_ += o;
      first = false;
    }
    text_ += ";\n";
  }

  // A destination register of class r, written by `opcode d, operands...`.
  std::string def(Reg r, std::string_view opcode, std::initializer_list<std::string> operands) {
    std::string d = reg(r);
    std::string line = "\t" + std::string(opcode) + " " + d;
    for (const std::string& o : operands) line += ", " + o;
    text_ += line + ";\n";
    return d;
  }

  std::string label(std::string_view hint) { return "$L_" + std::string(hint) + "_" + std::to_string(labels_++); }
  void place(const std::string& label) { text_ += label + ":\n"; }
  // bra when `pred` holds (or does not hold, when `negate`).
  void branch_if(const std::string& pred, bool negate, const std::string& label) {
    text_ += "\t@" + std::string(negate ? "!" : "") + pred + " bra " + label + ";\n";
  }
  void jump(const std::string& label) { text_ += "\tbra.uni " + label + ";\n"; }
  void comment(std::string_view text) { text_ += "\t// " + std::string(text) + "\n"; }

  // ".reg" lines for every class used.
  std::string declarations() const {
    static constexpr std::string_view kType[] = {".pred", ".b16", ".b32", ".b64", ".f32", ".f64"};
    std::string out;
    for (int c = 0; c < kRegClasses; ++c)
      if (count_[c] > 0) out += "\t.reg " + std::string(kType[c]) + " " + kPrefix[c] + "<" + std::to_string(count_[c]) + ">;\n";
    return out;
  }
  const std::string& text() const { return text_; }

 private:
  static constexpr const char* kPrefix[] = {"%p", "%rs", "%r", "%rd", "%f", "%fd"};
  int count_[kRegClasses] = {};
  int labels_ = 0;
  std::string text_;
};

// Exact immediates: 0fXXXXXXXX (f32 bits) and 0dXXXXXXXXXXXXXXXX (f64 bits).
inline std::string f32_imm(float v) {
  char s[16];
  std::snprintf(s, sizeof s, "0f%08X", std::bit_cast<uint32_t>(v));
  return s;
}
inline std::string f64_imm(double v) {
  char s[24];
  std::snprintf(s, sizeof s, "0d%016llX", static_cast<unsigned long long>(std::bit_cast<uint64_t>(v)));
  return s;
}
inline std::string imm(int64_t v) { return std::to_string(v); }

}  // namespace moat::jit::ptx
