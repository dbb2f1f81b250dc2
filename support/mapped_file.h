// A read-only memory mapping of a whole file. Model weights are used straight from
// the mapping (never copied on the CPU path).
#pragma once

#include <cstdint>
#include <span>
#include <string>

namespace moat {

class MappedFile {
 public:
  // Maps `path` read-only. Throws UserError naming the file when it cannot be opened,
  // is not a regular file, or cannot be mapped. An empty file maps to an empty span.
  static MappedFile open(const std::string& path);

  MappedFile() = default;
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();

  std::span<const uint8_t> bytes() const { return {data_, size_}; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;  // bytes
};

}  // namespace moat
