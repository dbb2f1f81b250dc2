#include "support/npy.h"

#include <cstring>
#include <fstream>
#include <iterator>

#include "support/error.h"

namespace moat {

void write_npy_f32(const std::string& path, const std::vector<int64_t>& shape, const std::vector<float>& values) {
  std::string dims;
  for (int64_t d : shape) dims += std::to_string(d) + ", ";
  if (shape.size() > 1) dims.resize(dims.size() - 2);  // "(3, 4)"; a 1-D shape keeps its comma: "(3,)"
  else if (!dims.empty()) dims.resize(dims.size() - 1);
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + dims + "), }";
  const size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header += '\n';
  std::ofstream out(path, std::ios::binary);
  const uint16_t len = static_cast<uint16_t>(header.size());
  out.write("\x93NUMPY\x01\x00", 8);
  out.write(reinterpret_cast<const char*>(&len), 2);
  out << header;
  out.write(reinterpret_cast<const char*>(values.data()), static_cast<std::streamsize>(values.size() * sizeof(float)));
  if (!out) user_error("cannot write ", path, ": check that the directory exists and is writable");
}

NpyF32 read_npy_f32(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) user_error("cannot read ", path);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (bytes.size() < 10 || std::memcmp(bytes.data(), "\x93NUMPY", 6) != 0) user_error(path, ": not a .npy file");
  const int major = static_cast<unsigned char>(bytes[6]);
  size_t header_len = 0, start = 0;
  if (major == 1) {
    header_len = static_cast<unsigned char>(bytes[8]) | (static_cast<size_t>(static_cast<unsigned char>(bytes[9])) << 8);
    start = 10;
  } else {
    if (bytes.size() < 12) user_error(path, ": truncated .npy header");
    uint32_t len = 0;
    std::memcpy(&len, bytes.data() + 8, 4);
    header_len = len;
    start = 12;
  }
  if (start + header_len > bytes.size()) user_error(path, ": truncated .npy header");
  const std::string header(bytes.data() + start, header_len);
  const bool int32 = header.find("'<i4'") != std::string::npos;
  if ((header.find("'<f4'") == std::string::npos && !int32) || header.find("'fortran_order': False") == std::string::npos)
    user_error(path, ": only little-endian float32 or int32 C-order arrays are read");
  NpyF32 out;
  const size_t open = header.find('('), close = header.find(')', open);
  if (open == std::string::npos || close == std::string::npos) user_error(path, ": no shape in the .npy header");
  std::string dims = header.substr(open + 1, close - open - 1);
  size_t pos = 0;
  while (pos < dims.size()) {
    size_t comma = dims.find(',', pos);
    std::string item = dims.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    if (item.find_first_not_of(' ') != std::string::npos) out.shape.push_back(std::stoll(item));
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  int64_t n = 1;
  for (int64_t d : out.shape) n *= d;
  const size_t data = start + header_len;
  if (bytes.size() - data != static_cast<size_t>(n) * sizeof(float)) user_error(path, ": data size does not match the shape");
  out.values.resize(static_cast<size_t>(n));
  if (int32) {
    for (size_t i = 0; i < out.values.size(); ++i) {
      int32_t v = 0;
      std::memcpy(&v, bytes.data() + data + i * sizeof(v), sizeof(v));
      out.values[i] = static_cast<float>(v);
    }
  } else {
    std::memcpy(out.values.data(), bytes.data() + data, static_cast<size_t>(n) * sizeof(float));
  }
  return out;
}

}  // namespace moat
