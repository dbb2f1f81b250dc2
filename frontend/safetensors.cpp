#include "frontend/safetensors.h"

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <tuple>
#include <utility>

#include "support/checked.h"
#include "support/error.h"
#include "support/mapped_file.h"
#include "support/strings.h"

namespace moat::safetensors {

using nlohmann::json;

namespace {

struct DTypeInfo {
  DType type;
  std::string_view name;
  int64_t bytes;
  std::optional<ir::DType> ir_type;
};

constexpr DTypeInfo kDTypes[] = {
#define MOAT_X(id, bytes, ir_type) {DType::id, #id, bytes, ir_type},
    MOAT_SAFETENSORS_DTYPES(MOAT_X)
#undef MOAT_X
};

const DTypeInfo& info(DType type) { return kDTypes[static_cast<size_t>(type)]; }

// A JSON value for an error message: its compact text, cut to a readable length.
std::string brief(const json& value) {
  std::string text = value.dump(-1, ' ', false, json::error_handler_t::replace);
  if (text.size() > 60) text = text.substr(0, 57) + "...";
  return text;
}

uint64_t read_le64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

// Parses one header entry into `out` (name, dtype, shape, offsets; data is set later).
void parse_entry(const std::string& file, const std::string& name, const json& entry,
                 uint64_t data_size, TensorInfo* out) {
  std::string where = cat(file, ": tensor ", quoted(name));
  if (!entry.is_object())
    user_error(where, ": expected an object {\"dtype\", \"shape\", \"data_offsets\"}, got ",
               brief(entry), " (the file is not a valid safetensors file; re-download or re-export it)");
  for (const auto& [key, value] : entry.items()) {
    (void)value;
    if (key != "dtype" && key != "shape" && key != "data_offsets")
      user_error(where, ": unexpected field ", quoted(key),
                 " (a tensor entry has only \"dtype\", \"shape\" and \"data_offsets\")");
  }
  for (const char* key : {"dtype", "shape", "data_offsets"})
    if (!entry.contains(key)) user_error(where, ": missing field \"", key, "\"");

  const json& dtype = entry["dtype"];
  if (!dtype.is_string()) user_error(where, ": field \"dtype\" must be a string, got ", brief(dtype));
  std::optional<DType> type = parse_dtype(dtype.get_ref<const std::string&>());
  if (!type) {
    std::vector<std::string_view> names;
    for (const DTypeInfo& d : kDTypes) names.push_back(d.name);
    user_error(where, ": unknown dtype ", quoted(dtype.get_ref<const std::string&>()), " (supported: ",
               join(names, ", "), ")");
  }

  const json& shape = entry["shape"];
  if (!shape.is_array()) user_error(where, ": field \"shape\" must be an array, got ", brief(shape));
  uint64_t elements = 1;
  std::vector<int64_t> dims;
  for (size_t i = 0; i < shape.size(); ++i) {
    const json& d = shape[i];
    if (!d.is_number_unsigned() || d.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX))
      user_error(where, ": field \"shape\" element ", i, " must be a non-negative integer, got ", brief(d));
    uint64_t dim = d.get<uint64_t>();
    if (!checked_mul(elements, dim, &elements) || elements > static_cast<uint64_t>(INT64_MAX))
      user_error(where, ": shape ", brief(shape), " has more elements than fit in 63 bits");
    dims.push_back(static_cast<int64_t>(dim));
  }
  uint64_t nbytes = 0;
  if (!checked_mul(elements, static_cast<uint64_t>(info(*type).bytes), &nbytes))
    user_error(where, ": shape ", brief(shape), " of ", dtype_name(*type), " overflows 64-bit byte counts");

  const json& offsets = entry["data_offsets"];
  if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() ||
      !offsets[1].is_number_unsigned())
    user_error(where, ": field \"data_offsets\" must be [begin, end] with non-negative integers, got ",
               brief(offsets));
  uint64_t begin = offsets[0].get<uint64_t>(), end = offsets[1].get<uint64_t>();
  if (begin > end) user_error(where, ": data_offsets [", begin, ", ", end, "] end before they begin");
  if (end > data_size)
    user_error(where, ": data_offsets [", begin, ", ", end, "] run past the end of the data section (",
               data_size, " bytes); the file is truncated or corrupt, re-download it");
  if (end - begin != nbytes)
    user_error(where, ": data_offsets [", begin, ", ", end, "] hold ", end - begin, " bytes but ",
               dtype_name(*type), " shape ", brief(shape), " needs ", nbytes);

  out->name = name;
  out->dtype = *type;
  out->shape = std::move(dims);
  out->begin = begin;
  out->end = end;
}

void parse_metadata(const std::string& file, const json& value, std::map<std::string, std::string>* out) {
  if (!value.is_object())
    user_error(file, ": \"__metadata__\" must be an object of strings, got ", brief(value));
  for (const auto& [key, v] : value.items()) {
    if (!v.is_string())
      user_error(file, ": \"__metadata__\" field ", quoted(key), " must be a string, got ", brief(v));
    (*out)[key] = v.get<std::string>();
  }
}

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// A shard name from an index must name a file in the index's own folder.
void check_shard_name(const std::string& index_path, const std::string& tensor, const std::string& shard) {
  bool bad = shard.empty() || shard == "." || shard == ".." ||
             shard.find_first_of(std::string_view("/\\\0", 3)) != std::string::npos;
  if (bad)
    user_error(index_path, ": tensor ", quoted(tensor), " maps to ", quoted(shard),
               ", which is not a plain file name; an index may only name shard files in its own folder");
}

}  // namespace

std::string_view dtype_name(DType type) { return info(type).name; }
int64_t dtype_bytes(DType type) { return info(type).bytes; }
std::optional<ir::DType> to_ir_dtype(DType type) { return info(type).ir_type; }

std::optional<DType> parse_dtype(std::string_view name) {
  for (const DTypeInfo& d : kDTypes)
    if (d.name == name) return d.type;
  return std::nullopt;
}

int64_t TensorInfo::elements() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;  // fits: checked when the header was parsed
  return n;
}

File File::parse(std::span<const uint8_t> bytes, std::string name) {
  File file;
  file.path_ = std::move(name);
  file.bytes_ = bytes;
  const std::string& path = file.path_;
  if (bytes.size() < 8)
    user_error(path, ": file is ", bytes.size(),
               " bytes, too short for a safetensors header (8-byte length + JSON); re-download it");
  uint64_t header_size = read_le64(bytes.data());
  if (header_size > kMaxHeaderBytes)
    user_error(path, ": header length at byte 0 is ", header_size, " bytes, over the ", kMaxHeaderBytes,
               "-byte limit; this is not a safetensors file or it is corrupt");
  if (header_size > bytes.size() - 8)
    user_error(path, ": header length at byte 0 is ", header_size, " bytes but only ", bytes.size() - 8,
               " bytes follow; the file is truncated, re-download it");
  const uint8_t* header_begin = bytes.data() + 8;
  json header = json::parse(header_begin, header_begin + header_size, nullptr, /*allow_exceptions=*/false);
  if (header.is_discarded())
    user_error(path, ": header (bytes 8..", 8 + header_size,
               ") is not valid JSON; the file is corrupt or not a safetensors file");
  if (!header.is_object())
    user_error(path, ": header (bytes 8..", 8 + header_size, ") must be a JSON object, got ", brief(header));

  std::span<const uint8_t> data = bytes.subspan(8 + header_size);
  for (const auto& [key, value] : header.items()) {
    if (key == "__metadata__") {
      parse_metadata(path, value, &file.metadata_);
      continue;
    }
    TensorInfo t;
    parse_entry(path, key, value, data.size(), &t);
    t.data = data.subspan(t.begin, t.end - t.begin);
    t.file = path;
    file.tensors_.push_back(std::move(t));
  }
  if (file.tensors_.size() > UINT32_MAX) user_error(path, ": too many tensors");

  std::sort(file.tensors_.begin(), file.tensors_.end(), [](const TensorInfo& a, const TensorInfo& b) {
    return std::tie(a.begin, a.end, a.name) < std::tie(b.begin, b.end, b.name);
  });
  // Any byte belongs to at most one tensor (empty tensors own no bytes).
  uint64_t covered_end = 0;
  const TensorInfo* last = nullptr;
  for (const TensorInfo& t : file.tensors_) {
    if (t.begin == t.end) continue;
    if (last && t.begin < covered_end)
      user_error(path, ": tensor ", quoted(t.name), " (data_offsets [", t.begin, ", ", t.end,
                 "]) overlaps tensor ", quoted(last->name), " (data_offsets [", last->begin, ", ", last->end,
                 "]); the file is corrupt, re-export it");
    covered_end = t.end;
    last = &t;
  }

  file.by_name_.resize(file.tensors_.size());
  for (uint32_t i = 0; i < file.by_name_.size(); ++i) file.by_name_[i] = i;
  std::sort(file.by_name_.begin(), file.by_name_.end(),
            [&](uint32_t a, uint32_t b) { return file.tensors_[a].name < file.tensors_[b].name; });
  return file;
}

File File::open(const std::string& path) {
  auto mapping = std::make_shared<const MappedFile>(MappedFile::open(path));
  File file = parse(mapping->bytes(), path);
  file.mapping_ = std::move(mapping);
  return file;
}

const TensorInfo* File::find(std::string_view name) const {
  auto it = std::lower_bound(by_name_.begin(), by_name_.end(), name,
                             [&](uint32_t i, std::string_view n) { return tensors_[i].name < n; });
  if (it == by_name_.end() || tensors_[*it].name != name) return nullptr;
  return &tensors_[*it];
}

Model Model::open(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    fs::path dir(path);
    if (fs::exists(dir / "model.safetensors.index.json", ec))
      return from_index((dir / "model.safetensors.index.json").string());
    if (fs::exists(dir / "model.safetensors", ec)) return from_files({(dir / "model.safetensors").string()});
    std::vector<std::string> files;
    for (const fs::directory_entry& e : fs::directory_iterator(dir, ec))
      if (ends_with(e.path().filename().string(), ".safetensors")) files.push_back(e.path().string());
    if (ec) user_error(path, ": cannot list the folder: ", ec.message());
    if (files.empty())
      user_error(path, ": no model.safetensors.index.json and no .safetensors files in this folder; "
                       "give the folder of a Hugging Face model");
    std::sort(files.begin(), files.end());
    return from_files(files);
  }
  if (ends_with(path, ".json")) return from_index(path);
  return from_files({path});
}

Model Model::from_files(const std::vector<std::string>& paths) {
  Model model;
  for (const std::string& p : paths) {
    model.shards_.push_back(File::open(p));
    model.shard_paths_.push_back(p);
    for (const TensorInfo& t : model.shards_.back().tensors()) model.tensors_.push_back(t);
  }
  std::sort(model.tensors_.begin(), model.tensors_.end(),
            [](const TensorInfo& a, const TensorInfo& b) { return a.name < b.name; });
  for (size_t i = 1; i < model.tensors_.size(); ++i)
    if (model.tensors_[i].name == model.tensors_[i - 1].name)
      user_error(model.tensors_[i].file, ": tensor ", quoted(model.tensors_[i].name), " is also in ",
                 model.tensors_[i - 1].file, "; remove the stray file or add a model.safetensors.index.json");
  for (const TensorInfo& t : model.tensors_) model.total_bytes_ += t.nbytes();
  return model;
}

Model Model::from_index(const std::string& index_path) {
  MappedFile mapping = MappedFile::open(index_path);
  std::span<const uint8_t> bytes = mapping.bytes();
  if (bytes.size() > kMaxHeaderBytes)
    user_error(index_path, ": index is ", bytes.size(), " bytes, over the ", kMaxHeaderBytes, "-byte limit");
  json index = json::parse(bytes.begin(), bytes.end(), nullptr, /*allow_exceptions=*/false);
  if (index.is_discarded()) user_error(index_path, ": not valid JSON; re-download the index file");
  if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object())
    user_error(index_path, ": expected an object with \"weight_map\": {tensor name: shard file name}");

  std::filesystem::path dir = std::filesystem::path(index_path).parent_path();
  std::map<std::string, size_t> shard_index;  // shard file name -> position in shards_
  Model model;
  for (const auto& [tensor, shard_value] : index["weight_map"].items()) {
    if (!shard_value.is_string())
      user_error(index_path, ": weight_map[", quoted(tensor), "] must be a file name string, got ",
                 brief(shard_value));
    const std::string& shard = shard_value.get_ref<const std::string&>();
    check_shard_name(index_path, tensor, shard);
    auto [it, inserted] = shard_index.try_emplace(shard, model.shards_.size());
    if (inserted) {
      std::string shard_path = (dir / shard).string();
      model.shards_.push_back(File::open(shard_path));
      model.shard_paths_.push_back(shard_path);
    }
    const File& file = model.shards_[it->second];
    const TensorInfo* t = file.find(tensor);
    if (!t)
      user_error(index_path, ": tensor ", quoted(tensor), " is listed in ", quoted(shard),
                 " but that file does not hold it; the download is incomplete or the index is stale");
    model.tensors_.push_back(*t);
    model.total_bytes_ += t->nbytes();
  }
  std::sort(model.tensors_.begin(), model.tensors_.end(),
            [](const TensorInfo& a, const TensorInfo& b) { return a.name < b.name; });
  return model;
}

const TensorInfo* Model::find(std::string_view name) const {
  auto it = std::lower_bound(tensors_.begin(), tensors_.end(), name,
                             [](const TensorInfo& t, std::string_view n) { return t.name < n; });
  if (it == tensors_.end() || it->name != name) return nullptr;
  return &*it;
}

}  // namespace moat::safetensors
