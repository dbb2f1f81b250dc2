#include <doctest/doctest.h>

#include "frontend/gguf.h"
#include "frontend/gguf_writer.h"

using namespace moat::gguf;

TEST_CASE("writer -> reader round-trip of every value type, nested arrays and tensors") {
  for (uint64_t alignment : {32u, 64u}) {
    Writer w;
    w.set_alignment(alignment);
    w.set_string("general.architecture", "deepseek2");
    w.set("k.u8", Value{.type = ValueType::u8, .u = 255});
    w.set("k.i8", Value{.type = ValueType::i8, .i = -128});
    w.set("k.u16", Value{.type = ValueType::u16, .u = 65535});
    w.set("k.i16", Value{.type = ValueType::i16, .i = -32768});
    w.set_u32("k.u32", 0xffffffffu);
    w.set_i32("k.i32", INT32_MIN);
    w.set_f32("k.f32", -0.5f);
    w.set_bool("k.bool", false);
    w.set_u64("k.u64", UINT64_MAX);
    w.set("k.i64", Value{.type = ValueType::i64, .i = INT64_MIN});
    w.set("k.f64", Value{.type = ValueType::f64, .f = 1e300});
    w.set_string_array("k.strings", {"x", "", "yz"});
    Value inner{.type = ValueType::array, .elem_type = ValueType::f32};
    inner.array.push_back(Value{.type = ValueType::f32, .f = 1.5});
    Value outer{.type = ValueType::array, .elem_type = ValueType::array};
    outer.array = {inner, inner};
    w.set("k.nested", outer);
    std::vector<uint8_t> a(48, 7), b(34 * 2, 9);
    w.add_tensor("a", GgmlType::F32, {4, 3}, a);
    w.add_tensor("b", GgmlType::Q8_0, {64}, b);
    std::vector<uint8_t> bytes = w.to_bytes();
    File f = File::parse(bytes, "mem");
    CHECK(f.alignment() == alignment);
    CHECK(f.find("k.u8")->u == 255);
    CHECK(f.find("k.i8")->i == -128);
    CHECK(f.find("k.u16")->u == 65535);
    CHECK(f.find("k.i16")->i == -32768);
    CHECK(f.get_u64("k.u32") == 0xffffffffu);
    CHECK(f.find("k.i32")->i == INT32_MIN);
    CHECK(f.get_f64("k.f32") == -0.5);
    CHECK(f.get_bool("k.bool") == false);
    CHECK(f.get_u64("k.u64") == UINT64_MAX);
    CHECK(f.find("k.i64")->i == INT64_MIN);
    CHECK(f.get_f64("k.f64") == 1e300);
    CHECK(f.find("k.strings")->array[2].str == "yz");
    CHECK(f.find("k.nested")->array[1].array[0].f == 1.5);
    REQUIRE(f.tensors().size() == 2);
    CHECK(f.tensors()[1].offset == (48 + alignment - 1) / alignment * alignment);  // 48 bytes, padded
    CHECK(f.data_offset() % alignment == 0);
    CHECK(std::vector<uint8_t>(f.tensors()[1].data.begin(), f.tensors()[1].data.end()) == b);
    CHECK(f.metadata()[0].key == "general.alignment");
  }
}
