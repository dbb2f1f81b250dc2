// The model interface: what the runtime needs of a model, whatever its family. The
// runtime (runtime/) includes this header and never a family's (frontend/models/): a
// family implements Model and adds itself to open_model.
//
// A model is its weights, the graph of one forward pass for T new tokens over its
// cache, and the layout of that cache. The cache is a list of parts (for DeepSeek-V2/V3:
// one latent tensor per layer; newer families: several per layer, of other widths), each
// a graph input of [rows, width] elements in the cache type that the pass updates in
// place (ir write_rows) and returns as an output, after the logits, in this order.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "ir/tensor.h"

namespace moat::models {

// Which positions get logits: every one (scoring, --logits-out) or only the last (what
// generation needs: the output matrix, often the largest, is then read for one row).
enum class LogitRows { all, last };

struct LoadOptions {
  std::string routing_method;  // overrides the inferred expert routing of a GGUF file ("" = infer)
  // Load the model's draft module (DeepSeek's MTP layer) when it has one: Model::has_draft.
  // Off by default, so that sessions which do not draft never place its weights.
  bool draft = false;
  // A separate file that holds the draft module, read with `draft` (llama.cpp's mtp-*.gguf
  // beside a DeepSeek-V4 GGUF). UserError, whatever `draft`, for any other model (which
  // keeps its MTP layers in its own files, if it has any).
  std::string draft_file;
};

// One part of the cache: a graph input `input` of [rows, width] elements, per sequence
// rows(context) rows: one row per `tokens_per_row` tokens of the context (1: a row per
// token, DeepSeek-V2/V3's latent; 4 or 128: a row per compressed block, DeepSeek-V4),
// rounded up, plus `fixed_rows` that do not grow with the context (a sliding window's
// ring, a partial block's state). tokens_per_row 0: fixed_rows only.
struct CachePart {
  std::string input;  // the graph input's name ("cache.3")
  int64_t width = 0;  // elements per row
  int64_t tokens_per_row = 1;
  int64_t fixed_rows = 0;
  // f32 whatever the session's cache type: state that accumulates (a partial block's
  // running sums), not rows that are read back as keys.
  bool always_f32 = false;
  // Passes read rows of this part that no pass has written yet (masked out by a bias of
  // -inf, which a NaN bit pattern would still poison): the session fills it with zeros.
  bool zero_filled = false;

  int64_t rows(int64_t context) const {
    return fixed_rows + (tokens_per_row > 0 ? (context + tokens_per_row - 1) / tokens_per_row : 0);
  }
  ir::DType dtype(ir::DType cache) const { return always_f32 ? ir::DType::f32 : cache; }
  // Bytes of one sequence's rows for a context of `context` tokens in a `cache`-typed cache.
  uint64_t bytes(ir::DType cache, int64_t context) const;
};

// Bytes of one sequence's cache over every part of `layout` for `context` tokens.
uint64_t cache_bytes(const std::vector<CachePart>& layout, ir::DType cache, int64_t context);
// Cache bytes per token of context, the rate at which `layout` grows (its fixed rows and
// the rounding up left out; a fraction where a part holds a row per several tokens).
double cache_bytes_per_token(const std::vector<CachePart>& layout, ir::DType cache);

// One forward pass: `tokens` new tokens at positions P..P+tokens-1 over a cache of
// `cache_rows` rows per part (0: no cache). `first`: P is 0 (a family may then take a
// cheaper form that attends to the new tokens only).
//
// `hidden`: the pass also outputs the hidden states of every new token that a draft pass
// takes, f32[T, hidden_size()], after the cache parts (DeepSeek-V3: the final normalised
// hidden state; V4: the hyper-connection streams before the head).
//
// `draft`: the pass of the model's draft module (multi-token prediction) instead of the
// model: "tokens" holds the token after each position, an extra input "hidden"
// f32[T, hidden_size()] the hidden state at each position (the model's, or an earlier
// draft pass's); the logits predict the token two after each position. Its cache parts
// are draft_cache_layout()'s.
//
// `batched`: the pass may hold tokens of several sequences (continuous batching), each
// sequence's cache a range of the parts' rows. Extra inputs "cache_at" i32[T] (the row
// each new token's cache entry goes to) and "key_starts" i32[T] (its sequence x the
// context: the first row of its sequence in a part of a row per token, where a token
// attends to rows key_starts..cache_at; a family whose parts hold other row counts finds
// the sequence from it, DeepSeek-V4); with LogitRows::last,
// "logit_rows" i32[outputs] (which new tokens get logits, [outputs, vocab]). `first`
// then means one sequence at positions 0..T-1. `sequences`: how many sequences' rows each
// part holds, each sequence's a block of part.rows(cache_rows / sequences) rows in turn
// (cache_rows is then sequences x each one's context). `one_sequence`: the batched pass's
// tokens are all one sequence's (a prompt's chunk), else they may be several sequences'
// (at most Model::batch_tokens_per_sequence() each).
struct PassSpec {
  int64_t tokens = 1;
  bool first = false;
  LogitRows rows = LogitRows::all;
  int64_t cache_rows = 0;
  ir::DType cache_dtype = ir::DType::f16;
  bool batched = false;
  int64_t outputs = 1;  // batched with LogitRows::last: rows of logits
  bool hidden = false;
  bool draft = false;
  int64_t sequences = 1;
  bool one_sequence = true;
};

// What the weights weigh and how many of their bytes one decoded token reads.
struct ModelSize {
  uint64_t bytes = 0;   // every weight tensor as loaded (as the device holds them)
  uint64_t params = 0;  // elements of every weight tensor
  // Weight bytes one decode step reads (dense weights in full, one embedding row, the
  // routed experts a token uses); cache reads are not included.
  uint64_t decode_bytes_per_token = 0;
  std::string label;  // llama-bench's model_type: "deepseek2 176.1K F32"
};

// llama-bench's model_type label: the family, the parameter count ("176.1K", "15.7B")
// and the dtype holding most bytes ("deepseek2 176.1K F32").
std::string size_label(const std::string& family, const std::map<ir::DType, uint64_t>& bytes_by_dtype, uint64_t params);

class Model {
 public:
  virtual ~Model() = default;
  virtual int64_t vocab_size() const = 0;
  virtual int64_t training_context() const = 0;  // tokens the model was trained for
  // The end-of-sequence token the model's file names (-1: none; its tokenizer may still
  // have one).
  virtual int32_t eos_token() const { return -1; }
  // Every weight by the name its graphs' params bind.
  virtual const std::map<std::string, ir::HostTensor>& tensors() const = 0;
  virtual std::vector<CachePart> cache_layout() const = 0;
  // Inputs "tokens" i32[T] and "positions" i32[T] and the cache parts (when
  // cache_rows > 0), and a batched pass's (PassSpec); outputs the logits
  // f32[T or 1 or outputs, vocab], then the updated parts.
  virtual ir::Graph pass_graph(const PassSpec& pass) const = 0;
  virtual ModelSize size() const = 0;

  // The draft module (multi-token prediction), when the model has one and it was loaded
  // (LoadOptions::draft): its passes are PassSpec::draft, its cache draft_cache_layout().
  virtual bool has_draft() const { return false; }
  virtual std::vector<CachePart> draft_cache_layout() const { return {}; }
  virtual int64_t hidden_size() const = 0;  // elements of one token's hidden state
  // Decoder layers: weights "blk.0.*" .. "blk.{layers()-1}.*" (a draft module's, if any,
  // come after). A placement over several devices splits them (runtime/placement.h).
  virtual int64_t layers() const = 0;
  // Why has_draft() is false ("the file has no MTP layers"), for the error a user sees.
  virtual std::string why_no_draft() const { return "the model has no draft module"; }
  // How far a sequence's cache can be cut back exactly: a cut to length L is exact while
  // no pass since it was last emptied wrote past position L + cache_rewind_limit() - 1.
  // kRewindsAnywhere for a cache of a row per token (DeepSeek-V2/V3's latent); a few
  // tokens where passes overwrite rows a shorter length needs (a ring of the last tokens
  // and a partial block's state, kept with that many spare rows: DeepSeek-V4). A longer
  // cut empties the cache (Session::rewind), and no pass runs twice (a warm-up would
  // write past the cut).
  static constexpr int64_t kRewindsAnywhere = INT64_MAX;
  virtual int64_t cache_rewind_limit() const { return kRewindsAnywhere; }
  // A batched pass of several sequences holds at most this many new tokens of each
  // (kAnyTokens: any mix); the session runs a mix with more as one pass per sequence.
  // DeepSeek-V4: 1, a decode step of several sequences (its passes of one sequence take
  // any number).
  static constexpr int64_t kAnyTokens = INT64_MAX;
  virtual int64_t batch_tokens_per_sequence() const { return kAnyTokens; }
  // What loading skipped or converted ("MTP layer 61 skipped"), for the user to read.
  virtual std::vector<std::string> load_notes() const { return {}; }
};

// The model in a file or folder, of whichever family it is. UserError naming the path
// for a file that cannot be read, is not a model, or is of an unsupported architecture.
std::unique_ptr<Model> open_model(const std::string& path, const LoadOptions& options = {});

}  // namespace moat::models
