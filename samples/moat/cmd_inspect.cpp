// moat inspect FILE|DIR [--json]: a model file's architecture, metadata and tensors.
// GGUF files, single .safetensors files, safetensors index files and Hugging Face
// folders (config.json + safetensors) are accepted. Shapes are printed row-major,
// outermost dimension first, for every format (GGUF stores them innermost first). The
// tensor type mix (tensors and bytes per storage type) follows the tensor list.
#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <nlohmann/json.hpp>

#include "frontend/gguf.h"
#include "frontend/hf_config.h"
#include "frontend/safetensors.h"
#include "samples/moat/commands.h"
#include "samples/moat/inspect_cache.h"
#include "support/error.h"
#include "support/mapped_file.h"

namespace moat::cli {

namespace {

using nlohmann::json;

// Arrays longer than this are summarised (length + first elements).
constexpr size_t kArraySummaryLimit = 16;
constexpr size_t kArrayHeadElements = 6;

struct TensorRow {
  std::string name, dtype, file;
  std::vector<int64_t> shape;
  uint64_t bytes = 0, offset = 0;
};

struct Inspection {
  std::string path, format, architecture;
  json metadata = json::object();  // key -> value (JSON form, long arrays summarised)
  std::vector<std::pair<std::string, std::string>> metadata_text;  // key -> one-line text
  std::vector<TensorRow> tensors;
  std::optional<CacheSummary> cache;  // DeepSeek families: what the cache takes
  std::string cache_error;            // why `cache` could not be computed, or ""
};

// ---- GGUF ------------------------------------------------------------------

json gguf_value_json(const gguf::Value& v) {
  using gguf::ValueType;
  switch (v.type) {
    case ValueType::u8: case ValueType::u16: case ValueType::u32: case ValueType::u64: return v.u;
    case ValueType::i8: case ValueType::i16: case ValueType::i32: case ValueType::i64: return v.i;
    case ValueType::f32: case ValueType::f64: return v.f;
    case ValueType::boolean: return v.b;
    case ValueType::string: return v.str;
    case ValueType::array: {
      json items = json::array();
      size_t n = v.array.size() > kArraySummaryLimit ? kArrayHeadElements : v.array.size();
      for (size_t i = 0; i < n; ++i) items.push_back(gguf_value_json(v.array[i]));
      if (v.array.size() <= kArraySummaryLimit) return items;
      return json{{"array_of", gguf::value_type_name(v.elem_type)}, {"length", v.array.size()}, {"head", items}};
    }
  }
  return nullptr;
}

std::string gguf_value_text(const gguf::Value& v) {
  using gguf::ValueType;
  switch (v.type) {
    case ValueType::u8: case ValueType::u16: case ValueType::u32: case ValueType::u64: return std::to_string(v.u);
    case ValueType::i8: case ValueType::i16: case ValueType::i32: case ValueType::i64: return std::to_string(v.i);
    case ValueType::f32: return format_float(static_cast<float>(v.f));
    case ValueType::f64: return format_float(v.f);
    case ValueType::boolean: return v.b ? "true" : "false";
    case ValueType::string: return moat::quoted(v.str);
    case ValueType::array: {
      std::string out = cat("[", v.array.size(), " x ", gguf::value_type_name(v.elem_type), "] [");
      size_t n = v.array.size() > kArraySummaryLimit ? kArrayHeadElements : v.array.size();
      for (size_t i = 0; i < n; ++i) out += (i ? ", " : "") + gguf_value_text(v.array[i]);
      return out + (n < v.array.size() ? ", ...]" : "]");
    }
  }
  return "?";
}

Inspection inspect_gguf(const std::string& path) {
  gguf::File file = gguf::File::open(path);
  Inspection out;
  out.path = path;
  out.format = cat("GGUF v", file.version(), " (alignment ", file.alignment(), ", data at byte ", file.data_offset(), ")");
  out.architecture = file.architecture();
  for (const gguf::KeyValue& kv : file.metadata()) {
    out.metadata[kv.key] = gguf_value_json(kv.value);
    std::string type = kv.value.type == gguf::ValueType::array ? "array" : std::string(gguf::value_type_name(kv.value.type));
    out.metadata_text.emplace_back(kv.key, cat(type, " ", gguf_value_text(kv.value)));
  }
  for (const gguf::TensorInfo& t : file.tensors())
    out.tensors.push_back({t.name, std::string(gguf::ggml_type_name(t.type)), "", t.shape(), t.bytes, t.offset});
  return out;
}

// ---- safetensors / Hugging Face ---------------------------------------------

void flatten_config(const json& value, const std::string& prefix, Inspection& out) {
  if (value.is_object() && !value.empty()) {
    for (const auto& [key, item] : value.items()) flatten_config(item, prefix.empty() ? key : prefix + "." + key, out);
    return;
  }
  out.metadata[prefix] = value;
  out.metadata_text.emplace_back(prefix, value.dump(-1, ' ', false, json::error_handler_t::replace));
}

Inspection inspect_safetensors(const std::string& path, bool is_dir) {
  Inspection out;
  out.path = path;
  std::string config_path = is_dir ? path + "/config.json" : "";
  struct stat info {};
  bool has_config = is_dir && ::stat(config_path.c_str(), &info) == 0;
  if (has_config) {
    // Shown as it is: inspect is a viewer, so any model family's config.json is accepted.
    json config = hf::read_json_file(config_path);
    if (config.contains("architectures") && config["architectures"].is_array() && !config["architectures"].empty() &&
        config["architectures"][0].is_string())
      out.architecture = config["architectures"][0].get<std::string>();
    else if (config.contains("model_type") && config["model_type"].is_string())
      out.architecture = config["model_type"].get<std::string>();
    flatten_config(config, "", out);
  }
  safetensors::Model model = safetensors::Model::open(path);
  out.format = cat("safetensors (", model.shard_paths().size(), model.shard_paths().size() == 1 ? " file" : " shards",
                   has_config ? " + config.json" : "", ")");
  if (model.shard_paths().size() == 1 && !model.tensors().empty()) {
    safetensors::File single = safetensors::File::open(model.shard_paths().front());
    for (const auto& [key, value] : single.metadata()) {
      out.metadata["__metadata__." + key] = value;
      out.metadata_text.emplace_back("__metadata__." + key, moat::quoted(value));
    }
  }
  bool sharded = model.shard_paths().size() > 1;
  for (const safetensors::TensorInfo& t : model.tensors()) {
    std::string file = t.file.substr(t.file.find_last_of('/') + 1);
    out.tensors.push_back({t.name, std::string(safetensors::dtype_name(t.dtype)), sharded ? file : "", t.shape,
                           t.end - t.begin, t.begin});
  }
  return out;
}

bool starts_with_gguf_magic(const std::string& path) {
  MappedFile file = MappedFile::open(path);
  auto bytes = file.bytes();
  return bytes.size() >= 4 && std::memcmp(bytes.data(), "GGUF", 4) == 0;
}

Inspection inspect_path(const std::string& path) {
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0) user_error(path, ": no such file or folder");
  if (S_ISDIR(info.st_mode)) return inspect_safetensors(path, true);
  if (starts_with_gguf_magic(path)) return inspect_gguf(path);
  if (path.ends_with(".safetensors") || path.ends_with(".json")) return inspect_safetensors(path, false);
  user_error(path, ": not a GGUF file (no 'GGUF' magic), a .safetensors file or a Hugging Face folder");
}

// ---- the model family ----------------------------------------------------------

// An integer metadata value (GGUF key or flattened config.json field); -1 when absent.
int64_t metadata_int(const Inspection& in, const std::string& key) {
  auto it = in.metadata.find(key);
  return it != in.metadata.end() && it->is_number_integer() ? it->get<int64_t>() : -1;
}

// The DeepSeek family the file's architecture names and what it adds, or "" for any
// other architecture (inspect shows every file; `moat run` says what it runs).
std::string family_of(const Inspection& in) {
  const std::string& a = in.architecture;
  std::string family, features;
  std::string sparse_prefix;  // where the indexer's sizes are
  if (a == "deepseek2") {
    family = "DeepSeek-V2 / V2-Lite / V3 / R1 (llama.cpp deepseek2)", features = "MLA, MoE";
  } else if (a == "deepseek_v2" || a == "DeepseekV2ForCausalLM") {
    family = "DeepSeek-V2 / V2-Lite", features = "MLA, MoE";
  } else if (a == "deepseek_v3" || a == "DeepseekV3ForCausalLM") {
    family = "DeepSeek-V3 / R1", features = "MLA, MoE";
  } else if (a == "deepseek32" || a == "deepseek_v32" || a == "DeepseekV32ForCausalLM") {
    family = "DeepSeek-V3.2", features = "MLA with DeepSeek Sparse Attention, MoE";
    const bool gguf = a == "deepseek32";
    const int64_t heads = metadata_int(in, gguf ? "deepseek32.attention.indexer.head_count" : "index_n_heads");
    const int64_t width = metadata_int(in, gguf ? "deepseek32.attention.indexer.key_length" : "index_head_dim");
    const int64_t top = metadata_int(in, gguf ? "deepseek32.attention.indexer.top_k" : "index_topk");
    if (heads > 0 && width > 0 && top > 0)
      features = cat("MLA with DeepSeek Sparse Attention (indexer ", heads, " heads x ", width, ", top ", top, " keys per query), MoE");
  } else if (a == "deepseek4" || a == "deepseek_v4" || a == "DeepseekV4ForCausalLM") {
    family = "DeepSeek-V4 (llama.cpp deepseek4)";
    features = "MQA over a sliding window and compressed rows (blocks of 4 chosen by an indexer, blocks of 128), "
               "hyper-connections, MoE with hash-routed first layers";
  } else {
    return "";
  }
  int64_t mtp = metadata_int(in, a == "deepseek2" || a == "deepseek32" || a == "deepseek4" ? a + ".nextn_predict_layers"
                                                                                            : "num_nextn_predict_layers");
  if (mtp > 0) features += cat(", ", mtp, " MTP layer", mtp > 1 ? "s" : "");
  return family + ": " + features;
}

// ---- output ------------------------------------------------------------------

std::string shape_text(const std::vector<int64_t>& shape) { return "[" + join(shape, ", ") + "]"; }

// One storage type's share of a file: how many tensors are stored in it and their bytes.
struct TypeShare {
  std::string dtype;
  size_t tensors = 0;
  uint64_t bytes = 0;
};

// The file's tensor type mix, most bytes first (ties by name): what a quantiser chose,
// including the types it fell back to for rows its main type cannot hold.
std::vector<TypeShare> type_mix(const std::vector<TensorRow>& tensors) {
  std::vector<TypeShare> mix;
  for (const TensorRow& t : tensors) {
    auto it = std::find_if(mix.begin(), mix.end(), [&](const TypeShare& s) { return s.dtype == t.dtype; });
    if (it == mix.end()) it = mix.insert(mix.end(), TypeShare{t.dtype});
    it->tensors += 1;
    it->bytes += t.bytes;
  }
  std::sort(mix.begin(), mix.end(), [](const TypeShare& a, const TypeShare& b) {
    return a.bytes != b.bytes ? a.bytes > b.bytes : a.dtype < b.dtype;
  });
  return mix;
}

void print_text(const Inspection& in) {
  uint64_t total_bytes = 0, total_elements = 0;
  for (const TensorRow& t : in.tensors) {
    total_bytes += t.bytes;
    uint64_t n = 1;
    for (int64_t d : t.shape) n *= static_cast<uint64_t>(d);
    total_elements += n;
  }
  std::printf("file:         %s\nformat:       %s\narchitecture: %s\n", in.path.c_str(), in.format.c_str(),
              in.architecture.empty() ? "(not stated)" : in.architecture.c_str());
  if (const std::string family = family_of(in); !family.empty()) std::printf("family:       %s\n", family.c_str());
  if (in.cache) {
    const CacheSummary& c = *in.cache;
    std::printf("cache:        f16, one sequence: %.1f bytes per token%s (parts: %s)\n", c.bytes_per_token,
                c.fixed_bytes ? cat(" + ", mib(c.fixed_bytes), " fixed").c_str() : "", c.layout.c_str());
    std::string at;
    for (const auto& [tokens, bytes] : c.at) at += cat(at.empty() ? "" : "; ", tokens, " tokens ", mib(bytes));
    std::printf("              %s\n", at.c_str());
  } else if (!in.cache_error.empty()) {
    std::printf("cache:        not computed: %s\n", in.cache_error.c_str());
  }
  std::printf("\n");
  std::printf("metadata (%zu keys):\n", in.metadata_text.size());
  size_t key_width = 0;
  for (const auto& [key, value] : in.metadata_text) key_width = std::max(key_width, key.size());
  for (const auto& [key, value] : in.metadata_text)
    std::printf("  %-*s  %s\n", static_cast<int>(key_width), key.c_str(), value.c_str());
  std::printf("\ntensors (%zu):\n", in.tensors.size());
  if (!in.tensors.empty()) {
    size_t name_width = 4;
    for (const TensorRow& t : in.tensors) name_width = std::max(name_width, t.name.size());
    std::printf("  %-*s  %-8s  %-22s  %12s  %12s%s\n", static_cast<int>(name_width), "name", "dtype",
                "shape (outermost first)", "bytes", "offset", in.tensors.front().file.empty() ? "" : "  file");
    for (const TensorRow& t : in.tensors)
      std::printf("  %-*s  %-8s  %-22s  %12llu  %12llu%s%s\n", static_cast<int>(name_width), t.name.c_str(),
                  t.dtype.c_str(), shape_text(t.shape).c_str(), static_cast<unsigned long long>(t.bytes),
                  static_cast<unsigned long long>(t.offset), t.file.empty() ? "" : "  ", t.file.c_str());
  }
  std::printf("\ntensor types (%zu):\n", type_mix(in.tensors).size());
  if (!in.tensors.empty()) std::printf("  %-8s  %7s  %12s  %6s\n", "dtype", "tensors", "bytes", "bytes%");
  for (const TypeShare& s : type_mix(in.tensors))
    std::printf("  %-8s  %7zu  %12llu  %5.1f%%\n", s.dtype.c_str(), s.tensors, static_cast<unsigned long long>(s.bytes),
                total_bytes ? 100.0 * static_cast<double>(s.bytes) / static_cast<double>(total_bytes) : 0.0);
  std::printf("\ntotal: %zu tensors, %llu elements, %llu bytes (%.2f MiB)\n", in.tensors.size(),
              static_cast<unsigned long long>(total_elements), static_cast<unsigned long long>(total_bytes),
              static_cast<double>(total_bytes) / (1024.0 * 1024.0));
}

void print_json(const Inspection& in) {
  json out{{"file", in.path}, {"format", in.format}, {"architecture", in.architecture}, {"metadata", in.metadata}};
  if (const std::string family = family_of(in); !family.empty()) out["family"] = family;
  if (in.cache) {
    json at = json::array();
    for (const auto& [tokens, bytes] : in.cache->at) at.push_back({{"tokens", tokens}, {"bytes", bytes}});
    out["cache"] = {{"type", "f16"}, {"bytes_per_token", in.cache->bytes_per_token}, {"fixed_bytes", in.cache->fixed_bytes},
                    {"layer_parts", in.cache->layout}, {"at", at}};
  }
  out["tensors"] = json::array();
  for (const TensorRow& t : in.tensors) {
    json row{{"name", t.name}, {"dtype", t.dtype}, {"shape", t.shape}, {"bytes", t.bytes}, {"offset", t.offset}};
    if (!t.file.empty()) row["file"] = t.file;
    out["tensors"].push_back(std::move(row));
  }
  out["tensor_types"] = json::array();
  for (const TypeShare& s : type_mix(in.tensors))
    out["tensor_types"].push_back({{"dtype", s.dtype}, {"tensors", s.tensors}, {"bytes", s.bytes}});
  std::cout << out.dump(2, ' ', false, json::error_handler_t::replace) << "\n";
}

int run_inspect(const ParsedArgs& args) {
  const std::string& path = args.positional.front();
  Inspection inspection = inspect_path(path);
  struct stat info {};
  const bool gguf = inspection.format.rfind("GGUF", 0) == 0;
  if (gguf || (::stat(path.c_str(), &info) == 0 && S_ISDIR(info.st_mode))) {
    try {
      inspection.cache = summarize_cache(path, gguf, inspection.architecture);
    } catch (const UserError& e) {  // a viewer shows what it can: the rest of the file still prints
      inspection.cache_error = e.what();
    }
  }
  if (args.has("--json")) print_json(inspection);
  else print_text(inspection);
  return 0;
}

const Command kInspect{{"inspect", "FILE|DIR [--json]",
                        "show a model file's architecture, metadata, tensors and tensor type mix (GGUF, safetensors, Hugging Face folder)",
                        {{"--json", "", "print one JSON object with the keys metadata, tensors and tensor_types"}},
                        1,
                        1},
                       run_inspect};

}  // namespace

const Command& inspect_command() { return kInspect; }

}  // namespace moat::cli
