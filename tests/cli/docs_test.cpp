// The docs point at what is there: every relative Markdown link of README.md, tools/ and
// docs/ resolves inside the repository, and every source path they quote in backticks
// (`runtime/session.h`) exists.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;
const fs::path kSource = MOAT_SOURCE_DIR;

std::string read_text(const fs::path& path) {
  std::ifstream in(path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<fs::path> doc_files() {
  std::vector<fs::path> files = {kSource / "README.md", kSource / "tools" / "README.md"};
  for (const auto& entry : fs::directory_iterator(kSource / "docs"))
    if (entry.path().extension() == ".md") files.push_back(entry.path());
  return files;
}

// `path` relative to the repository, normalised; "" when it leaves the repository.
std::string inside_repository(const fs::path& path) {
  const std::string relative = fs::weakly_canonical(path).lexically_relative(fs::weakly_canonical(kSource)).string();
  return relative.starts_with("..") ? "" : relative;
}

}  // namespace

TEST_CASE("relative links in the docs resolve inside the repository") {
  const std::regex link(R"(\]\(([^)#\s]+))");
  for (const fs::path& file : doc_files()) {
    const std::string text = read_text(file);
    for (auto it = std::sregex_iterator(text.begin(), text.end(), link); it != std::sregex_iterator(); ++it) {
      const std::string target = (*it)[1].str();
      if (target.starts_with("http://") || target.starts_with("https://") || target.starts_with("mailto:")) continue;
      INFO(file.filename().string(), " links ", target);
      const fs::path resolved = file.parent_path() / target;
      CHECK(!inside_repository(resolved).empty());
      CHECK(fs::exists(resolved));
    }
  }
}

TEST_CASE("source paths quoted in the docs exist") {
  const std::regex quoted(
      R"(`((?:docs|tools|tests|models|samples|runtime|jit|backends|frontend|ir|support|third_party|capi|include|python)/[A-Za-z0-9_./-]+)`)");
  for (const fs::path& file : doc_files()) {
    const std::string text = read_text(file);
    for (auto it = std::sregex_iterator(text.begin(), text.end(), quoted); it != std::sregex_iterator(); ++it) {
      std::string path = (*it)[1].str();
      while (path.ends_with(".")) path.pop_back();
      INFO(file.filename().string(), " quotes ", path);
      CHECK(fs::exists(kSource / path));
    }
  }
}
