// The one conformance runner: every case family of conformance_cases.h on every device
// enumerate_devices() returns, compared with the reference interpreter. One test case
// per (backend row, family), named "<row>: <family>", so CTest runs them in parallel and
// reports each: a row whose backend has no device here, or whose family the skip table
// below excludes, is skipped (tests/skip.h: exit 77), saying why; cases with an op the
// device does not support (Device::supports_op) are left out, and listed.
//
// Rows: every backend of the registration table (backends/backend_table.h), plus the
// flavours below (the same devices fed another artifact format). A new backend gets
// its rows with no edit here; add a flavour or a skip entry only to say something.
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "backends/backend_table.h"
#include "support/error.h"
#include "tests/jit/conformance_cases.h"
#include "tests/skip.h"

namespace moat::testing {

namespace {

using CaseFamily = void (*)(BackendUnderTest&);

struct Family {
  const char* name;
  CaseFamily run;
};

// The case families of conformance_cases.h, in order.
const Family kFamilies[] = {
    {"unary ops", cases::unary},
    {"binary ops with broadcasting", cases::binary},
    {"select", cases::select},
    {"cast between every pair of plain dtypes", cases::cast},
    {"reductions", cases::reduce},
    {"matmul with float B", cases::matmul_float},
    {"matmul with quantised B", cases::matmul_quantised},
    {"matmul with fp8 B and block scales", cases::matmul_fp8},
    {"gather and take_along", cases::gather},
    {"topk", cases::topk},
    {"views", cases::views},
    {"sources constants iota and outputs", cases::sources},  // no commas in names: doctest filters split on them
    {"symbolic dimensions", cases::symbolic},
    {"composites", cases::composites},
};

// A row of the runner: the devices of one backend, fed kernels in one way.
struct Row {
  std::string name;     // test-case prefix
  std::string backend;  // DeviceInfo::backend of the devices it runs on
  runtime::ExecutorOptions options;
  std::string needs_feature;                          // a DeviceInfo feature each device must report
  std::map<std::string, std::string> skipped_families;  // family -> why it is not run
  const char* label = "";                             // CTest label (the doctest test suite)
};

// The skip table: what differs per row from "every family on the backend's devices,
// default options". A row named after a backend of the registration table changes
// that backend's row; one with `flavour_of` adds a row after it.
struct RowSpec {
  const char* name;
  const char* flavour_of = nullptr;  // runs on this backend's devices
  const char* opencl_format = "cl";  // ExecutorOptions::opencl_format
  const char* needs_feature = "";
  // "toolchains": an external compiler dominates the time (tools/dev.sh sanitize
  // leaves these out).
  const char* label = "";
  std::vector<std::string> skipped = {};  // families not run, for `why`
  const char* why = "";
};

const RowSpec kRowSpecs[] = {
    {.name = "opencl", .label = "toolchains"},  // PoCL builds every kernel
    // SPIR 1.2 bitcode from the LLVM emitter's spir flavour (what SPIR-V is translated
    // from), where the device takes it (PoCL does).
    {.name = "opencl-spir",
     .flavour_of = "opencl",
     .opencl_format = "bc-spir",
     .needs_feature = "cl_khr_spir",
     .label = "toolchains",
     .skipped = {"binary ops with broadcasting", "select", "matmul with float B", "matmul with fp8 B and block scales",
                 "gather and take_along", "topk", "views", "sources constants iota and outputs", "symbolic dimensions"},
     .why = "SPIR bitcode shares lowering with OpenCL C: a subset (element math, casts, local memory and barriers, "
            "quantised matmul, composites) keeps PoCL's time down"},
};

Row row_of(const RowSpec& spec, std::string_view backend) {
  Row row{.name = spec.name, .backend = std::string(backend), .needs_feature = spec.needs_feature, .label = spec.label};
  row.options.opencl_format = spec.opencl_format;
  for (const std::string& family : spec.skipped) row.skipped_families[family] = spec.why;
  return row;
}

// Every backend's row, each followed by its flavours.
std::vector<Row> rows() {
  std::vector<Row> out;
  for (const backends::BackendEntry& entry : backends::backend_table()) {
    RowSpec plain{.name = entry.name.data()};
    for (const RowSpec& spec : kRowSpecs)
      if (!spec.flavour_of && spec.name == entry.name) plain = spec;
    out.push_back(row_of(plain, entry.name));
    for (const RowSpec& spec : kRowSpecs)
      if (spec.flavour_of && spec.flavour_of == entry.name) out.push_back(row_of(spec, entry.name));
  }
  return out;
}

struct Registered {
  Row row;
  const Family* family;
  std::string name;
};

std::vector<Registered>& registered() {
  static std::vector<Registered> all;
  return all;
}

void run_registered(size_t index) {
  const Registered& r = registered().at(index);
  if (auto it = r.row.skipped_families.find(r.family->name); it != r.row.skipped_families.end()) {
    skip(it->second);
    return;
  }
  backends::DeviceReport report = backends::enumerate_devices();
  int checked = 0;
  std::vector<std::string> unsupported, notes;
  for (const backends::DeviceInfo& info : report.devices) {
    if (info.backend != r.row.backend) continue;
    if (!r.row.needs_feature.empty() && !info.has_feature(r.row.needs_feature)) {
      notes.push_back(info.id + " does not report " + r.row.needs_feature);
      continue;
    }
    std::unique_ptr<BackendUnderTest> be;
    try {
      // threads = 2, as every CPU test here; other backends ignore it
      be = std::make_unique<BackendUnderTest>(backends::open_device(info.id, {.threads = 2}), r.row.options);
    } catch (const UserError& e) {
      FAIL_CHECK(info.id << " is listed but does not open: " << e.what());
      continue;
    }
    INFO("device ", info.id);
    r.family->run(*be);
    checked += be->checked;
    for (const std::string& u : be->unsupported) unsupported.push_back(info.id + ": " + u);
  }
  if (!unsupported.empty()) {
    MESSAGE(unsupported.size(), " cases not run: the device does not support them (supports_op), e.g. ",
            unsupported.front());
  }
  if (checked > 0) return;
  if (!unsupported.empty()) {
    skip(cat("every case needs an op the devices do not support, e.g. ", unsupported.front()));
  } else if (!notes.empty()) {
    skip(join(notes, "; "));
  } else {
    std::string status = "the backend is not enabled on this run";
    for (const backends::BackendStatus& s : report.backends)
      if (s.backend == r.row.backend) status = s.detail;
    skip(cat("no ", r.row.backend, " device on this machine (", status, ")"));
  }
}

// doctest calls a test case through a plain function pointer: one instance per slot.
template <size_t Slot>
void run_slot() {
  run_registered(Slot);
}

constexpr size_t kSlots = 256;

template <size_t... Slots>
void register_all(std::index_sequence<Slots...>) {
  constexpr doctest::detail::funcType slots[] = {&run_slot<Slots>...};
  for (const Row& row : rows())
    for (const Family& family : kFamilies)
      registered().push_back({row, &family, row.name + ": " + family.name});
  MOAT_INTERNAL_CHECK(registered().size() <= kSlots, "raise kSlots to ", registered().size());
  for (size_t i = 0; i < registered().size(); ++i) {
    doctest::detail::TestSuite suite;
    suite.m_test_suite = registered()[i].row.label;
    doctest::detail::regTest(doctest::detail::TestCase(slots[i], __FILE__, static_cast<unsigned>(i + 1), suite) *
                             registered()[i].name.c_str());
  }
}

const bool kRegistered = (register_all(std::make_index_sequence<kSlots>()), true);

}  // namespace

}  // namespace moat::testing
