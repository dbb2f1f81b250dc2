#include <charconv>
#include <cmath>
#include <fstream>
#include <limits>
#include <sstream>

#include "ir/text.h"
#include "ir/verify.h"
#include "support/error.h"

namespace moat::ir {

namespace {

// Recursive-descent parser over the text; positions are tracked for messages.
class Parser {
 public:
  Parser(std::string_view text, const std::string& source) : text_(text), source_(source) {}

  Graph parse_graph() {
    Graph graph;
    expect_word("graph");
    graph.name = identifier("a graph name");
    expect('(');
    if (!accept(')')) {
      do graph.symbols.push_back(identifier("a symbol name"));
      while (accept(','));
      expect(')');
    }
    expect('{');
    while (true) {
      skip_space();
      if (peek() == '%') {
        parse_node(graph);
        continue;
      }
      expect_word("return");
      skip_space();
      if (peek() == '%') {
        do graph.outputs.push_back(value_ref(graph));
        while (accept(','));
      }
      expect('}');
      break;
    }
    skip_space();
    if (pos_ < text_.size()) fail("unexpected text after the graph");
    return graph;
  }

 private:
  void parse_node(Graph& graph) {
    NodeId id = value_ref_number();
    if (id != static_cast<NodeId>(graph.nodes.size()))
      fail(cat("expected %", graph.nodes.size(), " (values are numbered in order), got %", id));
    expect('=');
    skip_space();
    size_t op_at = pos_;
    std::string op_text = identifier("an op name");
    auto op = parse_op(op_text);
    if (!op) {
      pos_ = op_at;
      fail(cat("unknown op ", op_text));
    }
    Node node;
    node.op = *op;
    expect('(');
    if (!accept(')')) {
      do node.operands.push_back(value_ref(graph));
      while (accept(','));
      expect(')');
    }
    if (accept('{')) {
      do {
        std::string key = identifier("an attribute name");
        expect('=');
        if (node.attrs.count(key)) fail(cat("attribute ", key, " given twice"));
        node.attrs[key] = attr_value();
      } while (accept(','));
      expect('}');
    }
    expect(':');
    node.type = tensor_type(graph);
    coerce_attrs(node);
    graph.nodes.push_back(std::move(node));
  }

  // Hand-written files may write 2 for a float attribute or [1, 2] for a float list.
  static void coerce_attrs(Node& node) {
    for (const AttrSpec& spec : op_attr_specs(node.op, node.operands.size())) {
      auto it = node.attrs.find(std::string(spec.name));
      if (it == node.attrs.end()) continue;
      if (spec.kind == AttrKind::Float && std::holds_alternative<int64_t>(it->second))
        it->second = static_cast<double>(std::get<int64_t>(it->second));
      if (spec.kind == AttrKind::FloatList && std::holds_alternative<std::vector<int64_t>>(it->second)) {
        const auto& ints = std::get<std::vector<int64_t>>(it->second);
        it->second = std::vector<double>(ints.begin(), ints.end());
      }
    }
  }

  TensorType tensor_type(const Graph& graph) {
    TensorType type;
    skip_space();
    size_t dtype_at = pos_;
    std::string dtype_text = identifier("a dtype");
    auto dtype = parse_dtype(dtype_text);
    if (!dtype) {
      pos_ = dtype_at;
      fail(cat("unknown dtype ", dtype_text));
    }
    type.dtype = *dtype;
    expect('[');
    if (!accept(']')) {
      do {
        skip_space();
        if (std::isdigit(static_cast<unsigned char>(peek()))) {
          type.shape.push_back(Dim::of(integer()));
        } else {
          std::string symbol = identifier("a dimension");
          bool known = false;
          for (const std::string& s : graph.symbols) known |= s == symbol;
          if (!known) fail(cat("symbol ", symbol, " is not declared in graph ", graph.name, "(...)"));
          type.shape.push_back(Dim::sym(symbol));
        }
      } while (accept(','));
      expect(']');
    }
    return type;
  }

  AttrValue attr_value() {
    skip_space();
    char c = peek();
    if (c == '"') return string_literal();
    if (c == '[') {
      ++pos_;
      std::vector<AttrValue> items;
      if (!accept(']')) {
        do items.push_back(number());
        while (accept(','));
        expect(']');
      }
      bool any_float = false;
      for (const AttrValue& v : items) any_float |= std::holds_alternative<double>(v);
      if (!any_float) {
        std::vector<int64_t> ints;
        for (const AttrValue& v : items) ints.push_back(std::get<int64_t>(v));
        return ints;
      }
      std::vector<double> floats;
      for (const AttrValue& v : items)
        floats.push_back(std::holds_alternative<double>(v) ? std::get<double>(v)
                                                           : static_cast<double>(std::get<int64_t>(v)));
      return floats;
    }
    if (text_.substr(pos_, 4) == "true" && !ident_char_at(pos_ + 4)) {
      pos_ += 4;
      return true;
    }
    if (text_.substr(pos_, 5) == "false" && !ident_char_at(pos_ + 5)) {
      pos_ += 5;
      return false;
    }
    return number();
  }

  // An int64 or a double (a '.', an exponent, inf or nan makes it a double).
  AttrValue number() {
    skip_space();
    size_t start = pos_;
    bool negative = peek() == '-';
    if (negative) ++pos_;
    for (std::string_view word : {"inf", "nan"}) {
      if (text_.substr(pos_, word.size()) == word && !ident_char_at(pos_ + word.size())) {
        pos_ += word.size();
        double v = word == "inf" ? std::numeric_limits<double>::infinity() : std::numeric_limits<double>::quiet_NaN();
        return negative ? -v : v;
      }
    }
    while (pos_ < text_.size() && (std::isalnum(static_cast<unsigned char>(text_[pos_])) || text_[pos_] == '.' ||
                                   ((text_[pos_] == '-' || text_[pos_] == '+') &&
                                    (text_[pos_ - 1] == 'e' || text_[pos_ - 1] == 'E'))))
      ++pos_;
    std::string_view token = text_.substr(start, pos_ - start);
    if (token.empty() || token == "-") fail("expected a number");
    const char* first = token.data();
    const char* last = token.data() + token.size();
    if (token.find_first_of(".eE") == std::string_view::npos) {
      int64_t v = 0;
      auto [end, ec] = std::from_chars(first, last, v);
      if (ec != std::errc() || end != last) fail(cat("bad integer ", token));
      return v;
    }
    double v = 0;
    auto [end, ec] = std::from_chars(first, last, v);
    if (ec != std::errc() || end != last) fail(cat("bad number ", token));
    return v;
  }

  int64_t integer() {
    AttrValue v = number();
    if (!std::holds_alternative<int64_t>(v)) fail("expected an integer");
    return std::get<int64_t>(v);
  }

  std::string string_literal() {
    expect('"');
    std::string out;
    while (true) {
      if (pos_ >= text_.size()) fail("unterminated string");
      char c = text_[pos_++];
      if (c == '"') return out;
      if (c == '\n') fail("newline in a string");
      if (c != '\\') {
        out += c;
        continue;
      }
      if (pos_ >= text_.size()) fail("unterminated string");
      char e = text_[pos_++];
      switch (e) {
        case 'n': out += '\n'; break;
        case 't': out += '\t'; break;
        case 'r': out += '\r'; break;
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case 'x': {
          if (pos_ + 2 > text_.size()) fail("bad \\x escape");
          unsigned value = 0;
          auto [end, ec] = std::from_chars(text_.data() + pos_, text_.data() + pos_ + 2, value, 16);
          if (ec != std::errc() || end != text_.data() + pos_ + 2) fail("bad \\x escape");
          out += static_cast<char>(value);
          pos_ += 2;
          break;
        }
        default: fail(cat("unknown escape \\", e));
      }
    }
  }

  NodeId value_ref_number() {
    expect('%');
    if (!std::isdigit(static_cast<unsigned char>(peek()))) fail("expected a value number after %");
    int64_t id = integer();
    if (id > std::numeric_limits<NodeId>::max()) fail("value number too large");
    return static_cast<NodeId>(id);
  }

  NodeId value_ref(const Graph& graph) {
    skip_space();
    NodeId id = value_ref_number();
    if (static_cast<size_t>(id) >= graph.nodes.size()) fail(cat("%", id, " is used before it is defined"));
    return id;
  }

  std::string identifier(const char* what) {
    skip_space();
    size_t start = pos_;
    if (pos_ < text_.size() && (std::isalpha(static_cast<unsigned char>(text_[pos_])) || text_[pos_] == '_')) {
      while (ident_char_at(pos_)) ++pos_;
    }
    if (start == pos_) fail(cat("expected ", what));
    return std::string(text_.substr(start, pos_ - start));
  }

  bool ident_char_at(size_t i) const {
    return i < text_.size() && (std::isalnum(static_cast<unsigned char>(text_[i])) || text_[i] == '_');
  }

  void expect_word(std::string_view word) {
    size_t at = pos_;
    std::string got = identifier(cat("'", word, "'").c_str());
    if (got != word) {
      pos_ = at;
      skip_space();
      fail(cat("expected '", word, "', got '", got, "'"));
    }
  }

  void skip_space() {
    while (pos_ < text_.size()) {
      char c = text_[pos_];
      if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
        ++pos_;
      } else if (c == '/' && pos_ + 1 < text_.size() && text_[pos_ + 1] == '/') {
        while (pos_ < text_.size() && text_[pos_] != '\n') ++pos_;
      } else {
        break;
      }
    }
  }

  char peek() const { return pos_ < text_.size() ? text_[pos_] : '\0'; }

  bool accept(char c) {
    skip_space();
    if (peek() != c) return false;
    ++pos_;
    return true;
  }

  void expect(char c) {
    if (!accept(c)) fail(peek() ? cat("expected '", c, "', got '", peek(), "'") : cat("expected '", c, "' before the end"));
  }

  [[noreturn]] void fail(const std::string& what) const {
    size_t line = 1, column = 1;
    for (size_t i = 0; i < pos_ && i < text_.size(); ++i) {
      if (text_[i] == '\n') {
        ++line;
        column = 1;
      } else {
        ++column;
      }
    }
    user_error(source_, ":", line, ":", column, ": ", what);
  }

  std::string_view text_;
  const std::string& source_;
  size_t pos_ = 0;
};

}  // namespace

Graph parse(std::string_view text, const std::string& source_name) {
  Graph graph = Parser(text, source_name).parse_graph();
  try {
    verify(graph);
  } catch (const UserError& e) {
    user_error(source_name, ": ", e.what());
  }
  return graph;
}

Graph parse_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) user_error(path, ": cannot read the graph file");
  std::ostringstream text;
  text << in.rdbuf();
  return parse(text.str(), path);
}

}  // namespace moat::ir
