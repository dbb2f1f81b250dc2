#!/usr/bin/env python3
"""Trains moatless's demo model: a small DeepSeek-V3-architecture model (MLA with q-LoRA and
decoupled RoPE, a dense first layer, then MoE layers with one shared expert and sigmoid-scored
routed experts balanced without an auxiliary loss) on the King James Bible, and writes it as a
llama.cpp-style `deepseek2` GGUF with its byte-level BPE tokenizer.

    python3 -m venv V && V/bin/pip install torch tokenizers gguf numpy
    V/bin/python tools/train_tiny.py                  # ~30 min on 2 cores; writes the files below
    V/bin/python tools/train_tiny.py --check models/kjv-tiny.gguf --moat build/bin/moat

Training writes models/kjv-tiny.gguf (F16 matrices, F32 norms / router / bias),
models/kjv-heldout.txt (the held-out book, Revelation) and tests/data/demo/ (a 32-token
held-out prompt and the PyTorch logits of the GGUF's weights for it). --check compares moat
with this file's PyTorch model on the weights stored in the GGUF: token ids, logits, greedy
continuations, and reports the held-out perplexity. docs/demo_model.md describes it all.

Text: `bible -f Gen1:1-Rev22:21` of Debian's bible-kjv (the text is in bible-kjv-text), one
verse per line, whitespace runs collapsed. Nothing here is needed to build, run or test the C++.
"""

import argparse
import dataclasses
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time

# OpenMP threads that spin while waiting burn whole cores when the machine is shared (a step
# took 10x the CPU time with 2 spinning threads under load); must be set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import gguf
import numpy as np
import torch
import torch.nn.functional as F
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from torch import nn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEED = 1234
BOS, EOS = "<|begin_of_text|>", "<|end_of_text|>"  # ids 0 and 1
HELDOUT_BOOK = "Rev"                                 # `bible`'s abbreviation of Revelation
PROMPTS = ["In the beginning", "And Jesus said unto them,", "The LORD is my shepherd;"]


@dataclasses.dataclass(frozen=True)
class Config:
    vocab: int = 4096
    hidden: int = 256
    layers: int = 4
    dense_layers: int = 1      # the first layers use a dense FFN, the rest MoE
    heads: int = 4
    q_lora: int = 128
    kv_lora: int = 64
    qk_nope: int = 32
    qk_rope: int = 16
    v_head: int = 32
    experts: int = 16          # routed experts per MoE layer (one group)
    experts_used: int = 4
    shared_experts: int = 1
    expert_ffn: int = 128
    dense_ffn: int = 512
    context: int = 256         # tokens per sequence, BOS included
    rope_theta: float = 10000.0
    rms_eps: float = 1e-6
    routed_scale: float = 2.5  # DeepSeek-V3's routed_scaling_factor
    mtp: int = 1               # MTP modules (DeepSeek-V3 section 2.2): 1 predicts the token after next


# ---------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------

def read_bible():
    """-> [(book abbreviation, verse text)] for all 31,102 verses in canonical order.
    `bible -f` turns pretty-printing off: one line per verse, "Ge1:1 In the beginning ..."."""
    out = subprocess.run(["bible", "-f", "Gen1:1-Rev22:21"], stdin=subprocess.DEVNULL,
                         capture_output=True, text=True, check=True).stdout
    verses = []
    for line in out.splitlines():
        m = re.match(r"^(\d?[A-Za-z]+)(\d+):(\d+) (.*)$", line)
        assert m, f"unexpected line from `bible`: {line!r}"
        verses.append((m.group(1), " ".join(m.group(4).split())))
    assert len(verses) == 31102, len(verses)
    return verses


def books_text(verses):
    """-> [(book, text)]: each book's verses, one per line, each ended by a newline."""
    books = []
    for book, text in verses:
        if not books or books[-1][0] != book:
            books.append((book, ""))
        books[-1] = (book, books[-1][1] + text + "\n")
    return books


def split_corpus(verses):
    """-> (training books' texts, held-out text): the held-out part is the whole last book."""
    books = books_text(verses)
    assert books[-1][0] == HELDOUT_BOOK
    return [t for _, t in books[:-1]], books[-1][1]


# ---------------------------------------------------------------------------------------
# Tokenizer: byte-level BPE with GPT-2's pre-tokenizer regex (moat's "gpt-2")
# ---------------------------------------------------------------------------------------

def new_tokenizer(model):
    tok = Tokenizer(model)
    # use_regex=True: GPT-2's expression 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    return tok


def train_tokenizer(texts, vocab):
    """BPE of `vocab` tokens (BOS, EOS, the 256 bytes, merges) trained on `texts`."""
    tok = new_tokenizer(models.BPE())
    trainer = trainers.BpeTrainer(vocab_size=vocab, special_tokens=[BOS, EOS], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer=trainer)
    assert tok.get_vocab_size() == vocab and tok.token_to_id(BOS) == 0 and tok.token_to_id(EOS) == 1
    return tok


def tokenizer_parts(tok):
    """-> (tokens by id, merges as "LEFT RIGHT" in rank order) of a trained BPE."""
    state = json.loads(tok.to_str())
    vocab = state["model"]["vocab"]
    tokens = [None] * len(vocab)
    for text, i in vocab.items():
        tokens[i] = text
    for added in state["added_tokens"]:
        assert tokens[added["id"]] == added["content"]
    merges = [m if isinstance(m, str) else " ".join(m) for m in state["model"]["merges"]]
    return tokens, merges


def tokenizer_from_parts(tokens, merges):
    """The `tokenizers` tokenizer that a GGUF's tokenizer.ggml.* metadata describes."""
    tok = new_tokenizer(models.BPE(vocab={t: i for i, t in enumerate(tokens)},
                                   merges=[tuple(m.split(" ", 1)) for m in merges]))
    tok.add_special_tokens([BOS, EOS])
    return tok


def token_stream(tok, texts):
    """Every text's ids followed by EOS, concatenated: int64 [N]."""
    ids = []
    for enc in tok.encode_batch(texts):
        ids.extend(enc.ids)
        ids.append(tok.token_to_id(EOS))
    return np.array(ids, dtype=np.int64)


# ---------------------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------------------

class RMSNorm(nn.Module):
    def __init__(self, n, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def linear(n_in, n_out):
    return nn.Linear(n_in, n_out, bias=False)


def rope_tables(cfg, n, dtype):
    """cos, sin [n, qk_rope / 2] of angle p * theta^(-2i / qk_rope) for position p, pair i."""
    inv = 1.0 / cfg.rope_theta ** (torch.arange(0, cfg.qk_rope, 2, dtype=torch.float64) / cfg.qk_rope)
    ang = torch.outer(torch.arange(n, dtype=torch.float64), inv)
    return ang.cos().to(dtype), ang.sin().to(dtype)


def apply_rope(x, cos, sin):
    """Rotates adjacent pairs (x[2i], x[2i+1]) as DeepSeek's model.py and ggml's NORM rope do.
    x [B, T, H, rope], cos / sin [T, rope / 2]."""
    c, s = cos[:, None, :], sin[:, None, :]
    x0, x1 = x[..., 0::2], x[..., 1::2]
    return torch.stack([x0 * c - x1 * s, x0 * s + x1 * c], -1).flatten(-2)


class Attention(nn.Module):
    """MLA in its expanded form: q = q_b(norm(q_a(x))); [latent, k_rope] = kv_a(x);
    [k_nope, v] = kv_b(norm(latent)) per head; the rope key is shared by all heads."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        qk = cfg.qk_nope + cfg.qk_rope
        self.q_a = linear(cfg.hidden, cfg.q_lora)
        self.q_a_norm = RMSNorm(cfg.q_lora, cfg.rms_eps)
        self.q_b = linear(cfg.q_lora, cfg.heads * qk)
        self.kv_a = linear(cfg.hidden, cfg.kv_lora + cfg.qk_rope)
        self.kv_a_norm = RMSNorm(cfg.kv_lora, cfg.rms_eps)
        self.kv_b = linear(cfg.kv_lora, cfg.heads * (cfg.qk_nope + cfg.v_head))
        self.out = linear(cfg.heads * cfg.v_head, cfg.hidden)

    def forward(self, x, cos, sin):
        c = self.cfg
        B, T, _ = x.shape
        q = self.q_b(self.q_a_norm(self.q_a(x))).view(B, T, c.heads, c.qk_nope + c.qk_rope)
        q_nope, q_pe = q.split([c.qk_nope, c.qk_rope], -1)
        latent, k_pe = self.kv_a(x).split([c.kv_lora, c.qk_rope], -1)              # [B, T, L], [B, T, rope]
        k_pe = apply_rope(k_pe.unsqueeze(2), cos, sin)                              # [B, T, 1, rope]
        kv = self.kv_b(self.kv_a_norm(latent)).view(B, T, c.heads, c.qk_nope + c.v_head)
        k_nope, v = kv.split([c.qk_nope, c.v_head], -1)
        q = torch.cat([q_nope, apply_rope(q_pe, cos, sin)], -1)                     # [B, T, H, qk]
        k = torch.cat([k_nope, k_pe.expand(B, T, c.heads, c.qk_rope)], -1)          # [B, T, H, qk]
        o = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                           is_causal=True, scale=(c.qk_nope + c.qk_rope) ** -0.5)
        return self.out(o.transpose(1, 2).reshape(B, T, c.heads * c.v_head))


class Mlp(nn.Module):
    """down(silu(gate(x)) * up(x))."""

    def __init__(self, hidden, ffn):
        super().__init__()
        self.gate, self.up, self.down = linear(hidden, ffn), linear(hidden, ffn), linear(ffn, hidden)

    def forward(self, x):
        return self.down(F.silu(self.gate(x)) * self.up(x))


class Moe(nn.Module):
    """Routed experts + shared expert. scores = sigmoid(router(x)); the top-k of scores + bias
    are chosen (the bias only selects); their weights are the unbiased scores normalised to
    sum 1, times routed_scale. Experts are stacked as GGUF stores them: gate / up [E, F, D],
    down [E, D, F]. `bias` is DeepSeek-V3's e_score_correction_bias, a buffer that the training
    loop moves after every step (aux-loss-free load balancing)."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        E, Fe, D = cfg.experts, cfg.expert_ffn, cfg.hidden
        self.router = linear(D, E)
        self.gate_exps = nn.Parameter(torch.empty(E, Fe, D))
        self.up_exps = nn.Parameter(torch.empty(E, Fe, D))
        self.down_exps = nn.Parameter(torch.empty(E, D, Fe))
        self.shared = Mlp(D, Fe * cfg.shared_experts)
        self.register_buffer("bias", torch.zeros(E, dtype=torch.float32))
        self.load = None  # tokens per expert of the last forward, int64 [E]

    def route(self, x):
        """x [N, D] -> (expert ids [N, k], weights [N, k])."""
        scores = torch.sigmoid(self.router(x))                                     # [N, E]
        chosen = (scores.detach() + self.bias.to(scores.dtype)).topk(self.cfg.experts_used, -1).indices
        w = scores.gather(1, chosen)
        return chosen, w / w.sum(-1, keepdim=True) * self.cfg.routed_scale

    def forward(self, x):
        shape = x.shape
        x = x.reshape(-1, shape[-1])                                                # [N, D]
        chosen, w = self.route(x)
        flat = chosen.flatten()                                                     # [N * k]
        order = flat.argsort(stable=True)
        self.load = torch.bincount(flat, minlength=self.cfg.experts)
        out = self.shared(x)
        start = 0
        for e, n in enumerate(self.load.tolist()):
            if n == 0:
                continue
            slots = order[start:start + n]                                          # into [N * k]
            start += n
            rows = slots // self.cfg.experts_used
            xe = x[rows]                                                            # [n, D]
            h = F.silu(xe @ self.gate_exps[e].T) * (xe @ self.up_exps[e].T)         # [n, F]
            out = out.index_add(0, rows, (h @ self.down_exps[e].T) * w.flatten()[slots, None])
        return out.view(shape)


class Block(nn.Module):
    def __init__(self, cfg, dense):
        super().__init__()
        self.attn_norm = RMSNorm(cfg.hidden, cfg.rms_eps)
        self.attn = Attention(cfg)
        self.ffn_norm = RMSNorm(cfg.hidden, cfg.rms_eps)
        self.ffn = Mlp(cfg.hidden, cfg.dense_ffn) if dense else Moe(cfg)

    def forward(self, x, cos, sin):
        x = x + self.attn(self.attn_norm(x), cos, sin)
        return x + self.ffn(self.ffn_norm(x))


class Mtp(nn.Module):
    """DeepSeek-V3's MTP module (section 2.2), as vLLM and llama.cpp run V3's: at position i it
    takes the main model's final normalised hidden state h_i and the embedding of the token at
    i + 1, x = eh_proj([enorm(embed(t_i+1)); hnorm(h_i)]), runs one MoE block over positions
    0.. causally and predicts the token at i + 2 with the shared head after its own norm
    (shared_head.norm). Its normalised output is also the hidden state of a further draft step."""

    def __init__(self, cfg):
        super().__init__()
        self.enorm = RMSNorm(cfg.hidden, cfg.rms_eps)
        self.hnorm = RMSNorm(cfg.hidden, cfg.rms_eps)
        self.eh_proj = linear(2 * cfg.hidden, cfg.hidden)
        self.block = Block(cfg, dense=False)
        self.norm = RMSNorm(cfg.hidden, cfg.rms_eps)

    def forward(self, hidden, embedded, cos, sin):
        """hidden, embedded [B, T, D] -> the normalised output [B, T, D]."""
        x = self.eh_proj(torch.cat([self.enorm(embedded), self.hnorm(hidden)], -1))
        return self.norm(self.block(x, cos, sin))


class DeepSeekTiny(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab, cfg.hidden)
        self.blocks = nn.ModuleList(Block(cfg, i < cfg.dense_layers) for i in range(cfg.layers))
        self.norm = RMSNorm(cfg.hidden, cfg.rms_eps)
        self.head = linear(cfg.hidden, cfg.vocab)
        assert cfg.mtp in (0, 1), "one MTP module at most"
        self.mtp = Mtp(cfg) if cfg.mtp else None

    def moe_layers(self):
        blocks = list(self.blocks) + ([self.mtp.block] if self.mtp is not None else [])
        return [b.ffn for b in blocks if isinstance(b.ffn, Moe)]

    def hidden(self, tokens):
        """tokens int64 [B, T] (position 0 first) -> the final normalised hidden states [B, T, D]."""
        cos, sin = rope_tables(self.cfg, tokens.shape[1], self.head.weight.dtype)
        x = self.embed(tokens)
        for b in self.blocks:
            x = b(x, cos, sin)
        return self.norm(x)

    def forward(self, tokens):
        """tokens int64 [B, T] (position 0 first) -> logits [B, T, vocab]."""
        return self.head(self.hidden(tokens))

    def mtp_hidden(self, hidden, next_tokens):
        """The MTP module at positions 0..T-1: hidden [B, T, D] (the main model's, or a previous
        draft step's), next_tokens int64 [B, T] (the token after each position) -> [B, T, D]."""
        cos, sin = rope_tables(self.cfg, next_tokens.shape[1], self.head.weight.dtype)
        return self.mtp(hidden, self.embed(next_tokens), cos, sin)

    def mtp_logits(self, hidden, next_tokens):
        """-> logits [B, T, vocab] of the token two after each position."""
        return self.head(self.mtp_hidden(hidden, next_tokens))


def init_weights(model, generator):
    """N(0, 0.02) for matrices and embeddings, 0.02 / sqrt(2 layers) for the projections
    that write into the residual stream; norms 1, biases 0."""
    std = 0.02
    resid = std / math.sqrt(2 * model.cfg.layers)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim == 1:
                continue
            writes_residual = name.endswith(("attn.out.weight", "down.weight", "down_exps"))
            p.normal_(0.0, resid if writes_residual else std, generator=generator)


def count_parameters(model):
    """-> (all, active per token): active counts top-k of the routed experts."""
    total = sum(p.numel() for p in model.parameters())
    c = model.cfg
    routed = sum(m.gate_exps.numel() + m.up_exps.numel() + m.down_exps.numel() for m in model.moe_layers())
    return total, total - routed + routed * c.experts_used // c.experts


# ---------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------

def heldout_windows(stream, bos, context):
    """Non-overlapping windows of the held-out stream: inputs [BOS] + chunk[:-1] and targets
    chunk, chunk = `context` consecutive tokens (the last one shorter). -> [(x, y)] int64 [1, n]."""
    out = []
    for start in range(0, len(stream), context):
        chunk = stream[start:start + context]
        x = np.concatenate([[bos], chunk[:-1]])
        out.append((torch.from_numpy(x)[None], torch.from_numpy(chunk.copy())[None]))
    return out


@torch.no_grad()
def mean_nll(model, windows):
    """Mean next-token negative log-likelihood (nats / token) over all targets of `windows`."""
    model.eval()
    total, count = 0.0, 0
    for x, y in windows:
        logits = model(x)
        total += F.cross_entropy(logits[0].double(), y[0], reduction="sum").item()
        count += y.numel()
    model.train()
    return total / count


@torch.no_grad()
def mean_mtp_nll(model, windows):
    """The MTP module's mean negative log-likelihood of the token after next over `windows`
    (None without one)."""
    if model.mtp is None:
        return None
    model.eval()
    total, count = 0.0, 0
    for x, y in windows:
        if y.shape[1] < 2:
            continue
        logits = model.mtp_logits(model.hidden(x)[:, :-1], y[:, :-1])
        total += F.cross_entropy(logits[0].double(), y[0, 1:], reduction="sum").item()
        count += y.shape[1] - 1
    model.train()
    return total / count


@torch.no_grad()
def mtp_agreement(model, windows):
    """How often the MTP module's argmax equals the main model's argmax one position later: the
    acceptance of greedy drafts of one token over `windows`."""
    model.eval()
    same, count = 0, 0
    for x, y in windows:
        if y.shape[1] < 2:
            continue
        h = model.hidden(x)
        main_next = model.head(h)[0, 1:].argmax(-1)            # the main model's choice at i + 1
        draft = model.mtp_logits(h[:, :-1], y[:, :-1])[0].argmax(-1)
        same += int((draft == main_next).sum())
        count += y.shape[1] - 1
    model.train()
    return same / count


def lr_at(step, steps, peak, warmup):
    """Linear warm-up, then cosine decay to 10 % of the peak."""
    if step < warmup:
        return peak * (step + 1) / warmup
    t = (step - warmup) / max(1, steps - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t)))


def optimizer_for(model, lr, weight_decay, main_lr_scale=1.0):
    """AdamW; weight decay on matrices and expert stacks only (not embeddings, norms). The main
    model's parameters learn at `main_lr_scale` x the rate (continued training, --init-from)."""
    groups = []
    for is_mtp in (False, True):
        named = [(n, p) for n, p in model.named_parameters() if n.startswith("mtp.") == is_mtp]
        decays = lambda n, p: p.ndim >= 2 and not n.startswith("embed")
        scale = 1.0 if is_mtp else main_lr_scale
        groups.append({"params": [p for n, p in named if decays(n, p)], "weight_decay": weight_decay, "scale": scale})
        groups.append({"params": [p for n, p in named if not decays(n, p)], "weight_decay": 0.0, "scale": scale})
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=lr, betas=(0.9, 0.95), eps=1e-8)


def training_loss(model, x, y, mtp_weight):
    """-> (loss, main loss, MTP loss or None). DeepSeek-V3's objective (section 2.2.2): the
    next-token loss plus mtp_weight x the MTP module's loss on the token after next, whose
    inputs at position i are the main model's hidden state h_i and the token y_i (= x_i+1)."""
    vocab = model.cfg.vocab
    h = model.hidden(x)                                                             # [B, T, D]
    main = F.cross_entropy(model.head(h).view(-1, vocab), y.view(-1))
    if model.mtp is None:
        return main, main, None
    mtp = F.cross_entropy(model.mtp_logits(h[:, :-1], y[:, :-1]).reshape(-1, vocab), y[:, 1:].reshape(-1))
    return main + mtp_weight * mtp, main, mtp


def balance_experts(model, rate):
    """Aux-loss-free balancing (DeepSeek-V3 §2.1.2): after each step, per MoE layer, lower the
    bias of experts that got more than the mean load by `rate`, raise the others'.
    -> each MoE layer's max / mean expert load in this step (1: balanced; E / k: one expert
    took every token)."""
    ratios = []
    with torch.no_grad():
        for moe in model.moe_layers():
            load = moe.load.to(torch.float32)
            moe.bias += rate * torch.sign(load.mean() - load)
            ratios.append(float(load.max() / load.mean()))
    return ratios


def train(args, cfg, stream, windows):
    torch.manual_seed(args.seed)
    model = DeepSeekTiny(cfg)
    init_weights(model, torch.Generator().manual_seed(args.seed))
    main_lr_scale = 1.0
    if args.init_from:  # continued training: the main model's weights from a GGUF, the MTP module new
        _, arrays, _, _ = read_gguf(args.init_from)
        load_gguf_arrays(model, arrays, main_only=True)
        main_lr_scale = args.main_lr_scale
    opt = optimizer_for(model, args.lr, args.weight_decay, main_lr_scale)
    rng = np.random.default_rng(args.seed)
    T, bos = cfg.context, 0
    total, active = count_parameters(model)
    print(f"parameters: {total:,} ({active:,} active per token); {len(stream):,} training tokens; "
          f"{args.steps} steps x {args.batch} x {T} = {args.steps * args.batch * T:,} tokens")
    start, cpu_start, smooth, smooth_mtp, log = time.time(), time.process_time(), None, None, []
    for step in range(args.steps):
        lr = lr_at(step, args.steps, args.lr, args.warmup)
        for group in opt.param_groups:
            group["lr"] = lr * group["scale"]
        offsets = rng.integers(0, len(stream) - T, size=args.batch)
        y = torch.from_numpy(np.stack([stream[o:o + T] for o in offsets]))               # [B, T]
        x = torch.cat([torch.full((args.batch, 1), bos, dtype=torch.int64), y[:, :-1]], 1)  # [B, T]
        loss, main_loss, mtp_loss = training_loss(model, x, y, args.mtp_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        imbalance = balance_experts(model, args.bias_rate)
        smooth = main_loss.item() if smooth is None else 0.95 * smooth + 0.05 * main_loss.item()
        if mtp_loss is not None:
            smooth_mtp = mtp_loss.item() if smooth_mtp is None else 0.95 * smooth_mtp + 0.05 * mtp_loss.item()
        last = step + 1 == args.steps
        if (step + 1) % args.log_every == 0 or last:
            elapsed = time.time() - start
            print(f"step {step + 1:5d}  loss {smooth:.4f}  mtp loss {smooth_mtp or 0:.4f}  lr {lr:.2e}  expert load max/mean {' '.join(f'{r:.2f}' for r in imbalance)}  "
                  f"{elapsed:7.1f} s  {(step + 1) * args.batch * T / elapsed:,.0f} tok/s", flush=True)
        if (step + 1) % args.eval_every == 0 or last:
            held, held_mtp = mean_nll(model, windows), mean_mtp_nll(model, windows)
            log.append({"step": step + 1, "train_loss": smooth, "train_mtp_loss": smooth_mtp, "heldout_loss": held,
                        "heldout_mtp_loss": held_mtp, "seconds": time.time() - start,
                        "cpu_seconds": time.process_time() - cpu_start})
            print(f"step {step + 1:5d}  held-out loss {held:.4f}  perplexity {math.exp(held):.2f}  "
                  f"MTP held-out loss {held_mtp or 0:.4f}", flush=True)
    return model, time.time() - start, log


# ---------------------------------------------------------------------------------------
# GGUF (llama.cpp deepseek2)
# ---------------------------------------------------------------------------------------

def gguf_names(model):
    """{state-dict name: GGUF name} of every tensor but kv_b (stored split, see to_gguf_arrays)."""
    table = {"embed.weight": "token_embd.weight", "norm.weight": "output_norm.weight", "head.weight": "output.weight"}
    common = [("attn_norm.weight", "attn_norm"), ("attn.q_a.weight", "attn_q_a"),
              ("attn.q_a_norm.weight", "attn_q_a_norm"), ("attn.q_b.weight", "attn_q_b"),
              ("attn.kv_a.weight", "attn_kv_a_mqa"), ("attn.kv_a_norm.weight", "attn_kv_a_norm"),
              ("attn.out.weight", "attn_output"), ("ffn_norm.weight", "ffn_norm")]
    dense = [("ffn.gate.weight", "ffn_gate"), ("ffn.up.weight", "ffn_up"), ("ffn.down.weight", "ffn_down")]
    moe = [("ffn.router.weight", "ffn_gate_inp"), ("ffn.gate_exps", "ffn_gate_exps"), ("ffn.up_exps", "ffn_up_exps"),
           ("ffn.down_exps", "ffn_down_exps"), ("ffn.shared.gate.weight", "ffn_gate_shexp"),
           ("ffn.shared.up.weight", "ffn_up_shexp"), ("ffn.shared.down.weight", "ffn_down_shexp")]
    blocks = [(f"blocks.{i}", block) for i, block in enumerate(model.blocks)]
    if model.mtp is not None:  # llama.cpp's layout: the MTP block is the layer after the last
        blocks.append(("mtp.block", model.mtp.block))
        n = model.cfg.layers
        table.update({"mtp.enorm.weight": f"blk.{n}.nextn.enorm.weight", "mtp.hnorm.weight": f"blk.{n}.nextn.hnorm.weight",
                      "mtp.eh_proj.weight": f"blk.{n}.nextn.eh_proj.weight",
                      "mtp.norm.weight": f"blk.{n}.nextn.shared_head_norm.weight"})
    for i, (prefix, block) in enumerate(blocks):
        for ours, theirs in common + (moe if isinstance(block.ffn, Moe) else dense):
            table[f"{prefix}.{ours}"] = f"blk.{i}.{theirs}.weight"
        if isinstance(block.ffn, Moe):
            table[f"{prefix}.ffn.bias"] = f"blk.{i}.exp_probs_b.bias"
    return table


def attention_prefixes(model):
    """-> [(state-dict prefix of an Attention, GGUF layer)], the MTP block's last."""
    out = [(f"blocks.{i}.attn", i) for i in range(model.cfg.layers)]
    if model.mtp is not None:
        out.append(("mtp.block.attn", model.cfg.layers))
    return out


def to_gguf_arrays(model):
    """-> {GGUF name: f32 array whose numpy shape is the GGUF dimensions reversed}. kv_b
    [H * (nope + v), L] is split per head into k_b [H, L, nope] (transposed) and v_b [H, v, L],
    as llama.cpp's convert_hf_to_gguf.py does."""
    c = model.cfg
    sd = {k: v.detach().to(torch.float32).numpy() for k, v in model.state_dict().items()}
    out = {theirs: sd[ours] for ours, theirs in gguf_names(model).items()}
    for prefix, i in attention_prefixes(model):
        kv_b = sd[f"{prefix}.kv_b.weight"].reshape(c.heads, c.qk_nope + c.v_head, c.kv_lora)
        out[f"blk.{i}.attn_k_b.weight"] = np.ascontiguousarray(kv_b[:, :c.qk_nope].transpose(0, 2, 1))
        out[f"blk.{i}.attn_v_b.weight"] = np.ascontiguousarray(kv_b[:, c.qk_nope:])
    assert len(out) == len(sd) + len(attention_prefixes(model)), "every state-dict tensor is written (kv_b as two)"
    return out


def load_gguf_arrays(model, arrays, main_only=False):
    """Inverse of to_gguf_arrays: loads {GGUF name: array} into `model` (strict; main_only: every
    tensor but the MTP module's, which keep their values)."""
    c = model.cfg
    keep = lambda ours: not (main_only and ours.startswith("mtp."))
    sd = {ours: arrays[theirs] for ours, theirs in gguf_names(model).items() if keep(ours)}
    for prefix, i in attention_prefixes(model):
        if not keep(prefix):
            continue
        k_b = arrays[f"blk.{i}.attn_k_b.weight"].transpose(0, 2, 1)                # [H, nope, L]
        kv_b = np.concatenate([k_b, arrays[f"blk.{i}.attn_v_b.weight"]], 1)           # [H, nope + v, L]
        sd[f"{prefix}.kv_b.weight"] = kv_b.reshape(-1, c.kv_lora)
    dtype = model.head.weight.dtype
    if main_only:
        sd.update({k: v.detach().to(torch.float32).numpy() for k, v in model.state_dict().items() if k.startswith("mtp.")})
    model.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)).to(dtype) for k, v in sd.items()}, strict=True)


def stored_dtype(name, array):
    """llama.cpp's choice for an F16 file: 1-D tensors and the router stay F32."""
    return np.float32 if array.ndim == 1 or ".ffn_gate_inp." in name else np.float16


def write_gguf(path, cfg, arrays, tokens, merges):
    """Writes the model with its tokenizer; returns {GGUF name: the array as stored, f32}."""
    w = gguf.GGUFWriter(path, "deepseek2")
    w.add_type(gguf.GGUFType.MODEL)
    w.add_name("kjv-tiny")
    w.add_description("moatless demo: a small DeepSeek-V3-architecture model trained on the King James Bible "
                      "(tools/train_tiny.py, docs/demo_model.md)")
    w.add_block_count(cfg.layers + cfg.mtp)  # llama.cpp counts the MTP layers as blocks
    if cfg.mtp:
        w.add_nextn_predict_layers(cfg.mtp)
    w.add_context_length(cfg.context)
    w.add_embedding_length(cfg.hidden)
    w.add_feed_forward_length(cfg.dense_ffn)
    w.add_head_count(cfg.heads)
    w.add_head_count_kv(1)  # MLA as MQA over the latent (current llama.cpp layout)
    w.add_rope_freq_base(cfg.rope_theta)
    w.add_layer_norm_rms_eps(cfg.rms_eps)
    w.add_expert_used_count(cfg.experts_used)
    w.add_expert_group_count(1)
    w.add_expert_group_used_count(1)
    w.add_expert_gating_func(gguf.ExpertGatingFuncType.SIGMOID)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    w.add_leading_dense_block_count(cfg.dense_layers)
    w.add_vocab_size(cfg.vocab)
    w.add_q_lora_rank(cfg.q_lora)
    w.add_kv_lora_rank(cfg.kv_lora)
    w.add_key_length(cfg.kv_lora + cfg.qk_rope)
    w.add_value_length(cfg.kv_lora)
    w.add_key_length_mla(cfg.qk_nope + cfg.qk_rope)
    w.add_value_length_mla(cfg.v_head)
    w.add_expert_feed_forward_length(cfg.expert_ffn)
    w.add_expert_count(cfg.experts)
    w.add_expert_shared_count(cfg.shared_experts)
    w.add_expert_weights_scale(cfg.routed_scale)
    w.add_expert_weights_norm(True)
    w.add_rope_dimension_count(cfg.qk_rope)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("gpt-2")
    w.add_token_list(tokens)
    w.add_token_types([gguf.TokenType.CONTROL if t in (BOS, EOS) else gguf.TokenType.NORMAL for t in tokens])
    w.add_token_merges(merges)
    w.add_bos_token_id(tokens.index(BOS))
    w.add_eos_token_id(tokens.index(EOS))
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    # DeepSeek-V3's chat template (as V3 GGUFs carry it), for `moat run --chat`; its role
    # markers are not tokens of this vocabulary, so they are encoded as ordinary text.
    w.add_chat_template(json.load(open(os.path.join(ROOT, "tests/data/tokenizer/chat_vectors.json"), encoding="utf-8"))
                        ["templates"]["deepseek3"])
    stored = {}
    for name, a in arrays.items():
        s = np.ascontiguousarray(a.astype(stored_dtype(name, a)))
        w.add_tensor(name, s)
        stored[name] = s.astype(np.float32)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return stored


def read_gguf(path):
    """-> (Config, {GGUF name: f32 array}, tokens, merges) from a file write_gguf wrote."""
    r = gguf.GGUFReader(path)
    meta = {k: f.contents() for k, f in r.fields.items()}
    assert meta["general.architecture"] == "deepseek2"
    a = lambda k: meta["deepseek2." + k]
    key_mla = a("attention.key_length_mla")
    mtp = meta.get("deepseek2.nextn_predict_layers", 0)
    cfg = Config(vocab=a("vocab_size"), hidden=a("embedding_length"), layers=a("block_count") - mtp, mtp=mtp,
                 dense_layers=a("leading_dense_block_count"), heads=a("attention.head_count"),
                 q_lora=a("attention.q_lora_rank"), kv_lora=a("attention.kv_lora_rank"),
                 qk_nope=key_mla - a("rope.dimension_count"), qk_rope=a("rope.dimension_count"),
                 v_head=a("attention.value_length_mla"), experts=a("expert_count"),
                 experts_used=a("expert_used_count"), shared_experts=a("expert_shared_count"),
                 expert_ffn=a("expert_feed_forward_length"), dense_ffn=a("feed_forward_length"),
                 context=a("context_length"), rope_theta=a("rope.freq_base"),
                 rms_eps=a("attention.layer_norm_rms_epsilon"), routed_scale=a("expert_weights_scale"))
    assert a("expert_gating_func") == gguf.ExpertGatingFuncType.SIGMOID and a("expert_weights_norm")
    assert a("expert_group_count") == 1, "this script's routing has one expert group"
    arrays = {t.name: np.asarray(t.data).astype(np.float32).reshape(list(reversed(t.shape.tolist())))
              for t in r.tensors}
    return cfg, arrays, meta["tokenizer.ggml.tokens"], meta["tokenizer.ggml.merges"]


def model_from_gguf(path, dtype):
    """-> (model with the GGUF's weights exactly, in `dtype`; tokenizer; Config)."""
    cfg, arrays, tokens, merges = read_gguf(path)
    model = DeepSeekTiny(cfg).to(dtype).eval()
    load_gguf_arrays(model, arrays)
    return model, tokenizer_from_parts(tokens, merges), cfg


# ---------------------------------------------------------------------------------------
# Use of a trained model
# ---------------------------------------------------------------------------------------

@torch.no_grad()
def logits_of(model, ids):
    """Logits [len(ids), vocab] as float64 numpy."""
    model.eval()
    return model(torch.tensor([ids]))[0].double().numpy()


@torch.no_grad()
def mtp_logits_of(model, ids):
    """The MTP module's logits [len(ids) - 1, vocab] as float64 numpy: row i from the main
    model's hidden state at i and the token ids[i + 1], predicting the token at i + 2."""
    model.eval()
    x = torch.tensor([ids])
    return model.mtp_logits(model.hidden(x)[:, :-1], x[:, 1:])[0].double().numpy()


@torch.no_grad()
def greedy(model, ids, n, eos):
    """Up to n greedy tokens after ids (full recomputation each step; stops before EOS)."""
    ids = list(ids)
    out = []
    for _ in range(n):
        nxt = int(logits_of(model, ids)[-1].argmax())
        if nxt == eos:
            break
        out.append(nxt)
        ids.append(nxt)
    return out


@torch.no_grad()
def routing_margin(model, ids):
    """Smallest gap, over MoE layers and positions of `ids`, between the k-th and (k+1)-th
    selection score (sigmoid + bias): how far the routing is from a tie."""
    gaps = []
    hooks = [m.register_forward_pre_hook(lambda mod, inp: gaps.append(_gap(mod, inp[0]))) for m in model.moe_layers()]
    logits_of(model, ids)
    for h in hooks:
        h.remove()
    return min(gaps)


def _gap(moe, x):
    sel = torch.sigmoid(moe.router(x.reshape(-1, x.shape[-1]))) + moe.bias.to(x.dtype)
    top = sel.topk(moe.cfg.experts_used + 1, -1).values
    return float((top[:, -2] - top[:, -1]).min())


def perplexity(model, tok, text, context):
    """Token-level perplexity of `text`: its ids (no BOS) cut into consecutive windows of
    `context` tokens; each window is scored with [BOS] + window[:-1] as input, so every token
    is predicted from BOS and the tokens before it in its window. -> (mean nll, ppl, tokens)."""
    stream = np.array(tok.encode(text).ids, dtype=np.int64)
    nll = mean_nll(model, heldout_windows(stream, tok.token_to_id(BOS), context))
    return nll, math.exp(nll), len(stream)


@torch.no_grad()
def perplexity_no_bos(model, tok, text, window):
    """`moat perplexity --no-bos`'s method (runtime/perplexity.h): the ids of `text` (no BOS) cut into
    non-overlapping windows of `window` ids, each run on its own without BOS, every id but a
    window's first scored. -> (mean nll, ppl, ids scored)."""
    ids = tok.encode(text).ids
    total, count = 0.0, 0
    for start in range(0, len(ids) - 1, window):
        chunk = ids[start:start + window]
        if len(chunk) < 2:
            break
        logp = torch.log_softmax(torch.from_numpy(logits_of(model, chunk)[:-1]), -1)
        total -= float(logp[torch.arange(len(chunk) - 1), torch.tensor(chunk[1:])].sum())
        count += len(chunk) - 1
    return total / count, math.exp(total / count), count


def demo_prompt(tok, heldout):
    """The C++ test's prompt: BOS and the first 31 tokens of the held-out text."""
    return [tok.token_to_id(BOS)] + tok.encode(heldout).ids[:31]


def write_demo_reference(folder, model, tok, heldout):
    """tests/data/demo/: tokens.json (32 ids) and logits.npy (f32 [32, vocab], computed in
    float64 from the GGUF's weights)."""
    os.makedirs(folder, exist_ok=True)
    ids = demo_prompt(tok, heldout)
    with open(os.path.join(folder, "tokens.json"), "w") as f:
        json.dump(ids, f)
        f.write("\n")
    logits = logits_of(model, ids).astype(np.float32)
    np.save(os.path.join(folder, "logits.npy"), logits)
    if model.mtp is not None:
        np.save(os.path.join(folder, "mtp_logits.npy"), mtp_logits_of(model, ids).astype(np.float32))
    return ids, logits


def write_greedy_reference(folder, samples, n):
    """tests/data/demo/greedy.json: the greedy continuations of PROMPTS (ids and text)."""
    about = (f"Greedy continuations ({n} tokens) of the trained demo model, computed by tools/train_tiny.py's PyTorch "
             "model from the weights as stored in models/kjv-tiny.gguf (F16 matrices); the prompt is encoded with BOS.")
    cases = [{"prompt": p, "ids": ids, "text": text} for p, ids, text in samples]
    with open(os.path.join(folder, "greedy.json"), "w") as f:
        json.dump({"about": about, "cases": cases}, f, indent=1)
        f.write("\n")


def show_samples(model, tok, n):
    """Greedy continuations of PROMPTS -> [(prompt, ids, text)]."""
    out = []
    for p in PROMPTS:
        ids = tok.encode(BOS + p).ids
        cont = greedy(model, ids, n, tok.token_to_id(EOS))
        out.append((p, cont, tok.decode(cont)))
        print(f"  {p!r} -> {tok.decode(cont)!r}")
    return out


# ---------------------------------------------------------------------------------------
# --check: moat against PyTorch on the GGUF's weights
# ---------------------------------------------------------------------------------------

def moat(binary, *args):
    res = subprocess.run([binary, *args], capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"{binary} {' '.join(args)[:200]} failed ({res.returncode}):\n{res.stderr}")
    return res.stdout


def moat_tokenize(binary, gguf_path, text):
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write(text)
    try:
        return [int(t) for t in moat(binary, "tokenize", "-m", gguf_path, "-f", f.name).split()]
    finally:
        os.remove(f.name)


def check_tokenizer(binary, gguf_path, tok, texts):
    """moat's ids (with BOS) must equal tokenizers' for every text. -> tokens compared."""
    n = 0
    for name, text in texts:
        ours = moat_tokenize(binary, gguf_path, text)
        ref = tok.encode(BOS + text).ids
        first = next((i for i, (a, b) in enumerate(zip(ours, ref)) if a != b), min(len(ours), len(ref)))
        assert ours == ref, f"tokenizer: {name}: moat and tokenizers differ from token {first}: {ours[first:first + 8]} vs {ref[first:first + 8]}"
        n += len(ref)
        print(f"  tokenizer: {name}: {len(ref)} ids equal")
    return n


def check_logits(binary, gguf_path, device, model, ids, label):
    """moat run's logits on `device` against PyTorch (float64, the GGUF's weights).
    -> (max|d| / max|ref|, positions whose argmax agrees)."""
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "logits.npy")
        moat(binary, "run", "-m", gguf_path, "--device", device, "--tokens", ",".join(map(str, ids)),
             "--logits-out", out)
        ours = np.load(out)
    ref = logits_of(model, ids)
    assert ours.shape == ref.shape, (ours.shape, ref.shape)
    err = float(np.abs(ours - ref).max() / np.abs(ref).max())
    same = int((ours.argmax(-1) == ref.argmax(-1)).sum())
    print(f"  logits: {label}: {len(ids)} positions, max|d|/max|ref| = {err:.2e}, argmax equal at {same}/{len(ids)}, "
          f"routing margin {routing_margin(model, ids):.2e}")
    return err, same


def run_check(args):
    model, tok, cfg = model_from_gguf(args.check, torch.float64)
    with open(args.heldout, encoding="utf-8") as f:
        heldout = f.read()
    verses = heldout.splitlines()
    texts = [("held-out file", heldout), ("verse 1 of the held-out text", verses[0]),
             ("a held-out verse with an apostrophe", next(v for v in verses if "'" in v))]
    texts += [(f"prompt {p!r}", p) for p in PROMPTS]
    try:
        train_texts, _ = split_corpus(read_bible())
        texts.append(("the whole training text", "".join(train_texts)))
    except FileNotFoundError:
        print("  (the `bible` program is absent: the training text is not checked)")
    n = check_tokenizer(args.moat, args.check, tok, texts)
    print(f"tokenizer: moat == tokenizers on {n:,} ids")

    errors = []
    ids = demo_prompt(tok, heldout)
    errors.append(check_logits(args.moat, args.check, args.device, model, ids, "demo prompt")[0])
    if os.path.exists(os.path.join(args.demo, "logits.npy")):
        stored = np.load(os.path.join(args.demo, "logits.npy"))
        with open(os.path.join(args.demo, "tokens.json")) as f:
            assert json.load(f) == ids, "tests/data/demo/tokens.json is not this model's demo prompt"
        drift = float(np.abs(stored - logits_of(model, ids)).max() / np.abs(stored).max())
        print(f"  {args.demo}/logits.npy against PyTorch now: max|d|/max|ref| = {drift:.2e}")
        assert drift < 1e-6
    if model.mtp is not None and os.path.exists(os.path.join(args.demo, "mtp_logits.npy")):
        stored = np.load(os.path.join(args.demo, "mtp_logits.npy"))
        drift = float(np.abs(stored - mtp_logits_of(model, ids)).max() / np.abs(stored).max())
        print(f"  {args.demo}/mtp_logits.npy against PyTorch's MTP module now: max|d|/max|ref| = {drift:.2e}")
        assert drift < 1e-6
    full = [tok.token_to_id(BOS)] + tok.encode(heldout).ids[1000:1000 + cfg.context - 1]
    errors.append(check_logits(args.moat, args.check, args.device, model, full, "a full context of held-out text")[0])
    worst = max(errors)
    print(f"logits: worst max|d|/max|ref| = {worst:.2e} (limit 1e-3)")
    assert worst < 1e-3

    agree = agree_spec = 0
    for p in PROMPTS:
        ids = tok.encode(BOS + p).ids
        ref = greedy(model, ids, args.sample_tokens, tok.token_to_id(EOS))
        ours = [int(t) for t in moat(args.moat, "run", "-m", args.check, "--device", args.device,
                                     "--tokens", ",".join(map(str, ids)),
                                     "-n", str(args.sample_tokens), "--temp", "0").split()]
        agree += ours == ref
        print(f"  greedy {p!r}: {'same ids' if ours == ref else 'DIFFERENT ids'}: {tok.decode(ref)!r}")
        if model.mtp is not None:  # speculative decoding with the MTP layer: the same ids
            spec = [int(t) for t in moat(args.moat, "run", "-m", args.check, "--device", args.device,
                                         "--tokens", ",".join(map(str, ids)), "-n", str(args.sample_tokens),
                                         "--temp", "0", "--spec", "mtp").split()]
            agree_spec += spec == ref
            print(f"  greedy {p!r} with --spec mtp: {'same ids' if spec == ref else 'DIFFERENT ids'}")
    print(f"greedy: moat == PyTorch on {agree}/{len(PROMPTS)} prompts"
          + (f", with --spec mtp on {agree_spec}/{len(PROMPTS)}" if model.mtp is not None else ""))
    nll, ppl, n = perplexity_no_bos(model, tok, heldout, cfg.context)
    ours = json.loads(moat(args.moat, "perplexity", "-m", args.check, "--device", args.device, "-f", args.heldout, "--no-bos", "--json"))
    rel = abs(ours["perplexity"] - ppl) / ppl
    print(f"perplexity without BOS (moat's method): moat {ours['perplexity']:.4f} over {ours['scored_tokens']} ids, "
          f"PyTorch {ppl:.4f} over {n}: relative difference {rel:.1e}")
    assert ours["scored_tokens"] == n and rel < 1e-4
    nll, ppl, n = perplexity(model.float(), tok, heldout, cfg.context)
    print(f"held-out perplexity (this file's method, GGUF weights, f32): {ppl:.3f} (mean nll {nll:.4f} over {n} tokens)")
    return 0 if agree == len(PROMPTS) and (model.mtp is None or agree_spec == len(PROMPTS)) else 1


# ---------------------------------------------------------------------------------------
# driver
# ---------------------------------------------------------------------------------------

def run_train(args):
    torch.manual_seed(args.seed)
    cfg = Config()
    t0 = time.time()
    train_texts, heldout = split_corpus(read_bible())
    tok = train_tokenizer(train_texts, cfg.vocab)
    again = train_tokenizer(train_texts, cfg.vocab)
    assert tok.to_str() == again.to_str(), "tokenizer training is not deterministic"
    stream = token_stream(tok, train_texts)
    held_stream = np.array(tok.encode(heldout).ids, dtype=np.int64)
    windows = heldout_windows(held_stream, tok.token_to_id(BOS), cfg.context)
    print(f"data + tokenizer: {time.time() - t0:.1f} s; held-out {len(held_stream):,} tokens in {len(windows)} windows")

    if args.from_checkpoint:
        saved = torch.load(args.from_checkpoint)
        model = DeepSeekTiny(cfg)
        model.load_state_dict(saved["state"])
        seconds, log = saved["seconds"], saved["log"]
    else:
        model, seconds, log = train(args, cfg, stream, windows)
        if args.checkpoint:
            torch.save({"state": model.state_dict(), "seconds": seconds, "log": log}, args.checkpoint)
    print(f"training: {seconds:.0f} s wall, {log[-1]['cpu_seconds']:.0f} s CPU")

    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    tokens, merges = tokenizer_parts(tok)
    write_gguf(args.out, cfg, to_gguf_arrays(model), tokens, merges)
    with open(args.heldout, "w", encoding="utf-8") as f:
        f.write(heldout)
    print(f"wrote {args.out} ({os.path.getsize(args.out):,} bytes) and {args.heldout} ({len(heldout.encode()):,} bytes)")

    f16, tok_back, _ = model_from_gguf(args.out, torch.float64)
    assert tok_back.encode(heldout).ids == held_stream.tolist(), "the GGUF's tokenizer differs from the trained one"
    ids, _ = write_demo_reference(args.demo, f16, tok, heldout)
    print(f"wrote {args.demo}: {len(ids)} tokens, routing margin {routing_margin(f16, ids):.2e}")
    nll32, ppl32, n = perplexity(model, tok, heldout, cfg.context)
    nll16, ppl16, _ = perplexity(f16.float(), tok, heldout, cfg.context)
    print(f"held-out perplexity over {n} tokens: {ppl32:.3f} (f32 weights, nll {nll32:.4f}), "
          f"{ppl16:.3f} (F16 weights of the GGUF, nll {nll16:.4f})")
    agreement = mtp_agreement(f16.float(), windows) if f16.mtp is not None else None
    if agreement is not None:
        print(f"MTP: its argmax equals the main model's next argmax at {100 * agreement:.1f}% of held-out positions")
    print("greedy continuations (GGUF weights):")
    samples = show_samples(f16, tok, args.sample_tokens)
    write_greedy_reference(args.demo, samples, args.sample_tokens)
    total, active = count_parameters(model)
    summary = {"seed": args.seed, "config": dataclasses.asdict(cfg), "parameters": total, "active": active,
               "steps": args.steps, "batch": args.batch, "lr": args.lr, "train_seconds": seconds,
               "gguf_bytes": os.path.getsize(args.out), "train_tokens": len(stream), "heldout_tokens": n,
               "heldout_nll_f32": nll32, "heldout_ppl_f32": ppl32, "mtp_agreement": agreement,
               "init_from": args.init_from, "mtp_weight": args.mtp_weight, "main_lr_scale": args.main_lr_scale, "heldout_nll_f16": nll16, "heldout_ppl_f16": ppl16,
               "log": log, "samples": samples, "torch": torch.__version__}
    print(json.dumps({k: v for k, v in summary.items() if k != "log"}))
    if args.summary:
        with open(args.summary, "w") as f:
            json.dump(summary, f, indent=1)
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", metavar="GGUF", help="compare moat with PyTorch on this file instead of training")
    ap.add_argument("--moat", default=os.path.join(ROOT, "build", "bin", "moat"), help="the moat binary (--check)")
    ap.add_argument("--device", default="cpu", help="moat's device for --check: cpu, opencl:N, cuda:N, hip:N")
    ap.add_argument("--out", default=os.path.join(ROOT, "models", "kjv-tiny.gguf"))
    ap.add_argument("--heldout", default=os.path.join(ROOT, "models", "kjv-heldout.txt"))
    ap.add_argument("--demo", default=os.path.join(ROOT, "tests", "data", "demo"))
    ap.add_argument("--summary", help="write training numbers and the loss log as JSON here")
    ap.add_argument("--checkpoint", help="save the trained model's state here (torch.save)")
    ap.add_argument("--from-checkpoint", help="skip training: export the model saved here by --checkpoint")
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--steps", type=int, default=1600)
    ap.add_argument("--batch", type=int, default=16, help="sequences per step")
    ap.add_argument("--lr", type=float, default=2e-3, help="peak learning rate")
    ap.add_argument("--warmup", type=int, default=100, help="steps")
    ap.add_argument("--weight-decay", type=float, default=0.1)
    ap.add_argument("--bias-rate", type=float, default=1e-2,
                    help="expert bias update per step (V3's gamma; 1e-3 there, over far more steps)")
    ap.add_argument("--mtp-weight", type=float, default=0.3,
                    help="the MTP loss's weight (DeepSeek-V3's lambda: 0.3 for its first 10T tokens)")
    ap.add_argument("--init-from", metavar="GGUF",
                    help="continue training: the main model's weights from this file, the MTP module new")
    ap.add_argument("--main-lr-scale", type=float, default=1.0,
                    help="with --init-from: the main model's learning rate relative to the MTP module's")
    ap.add_argument("--log-every", type=int, default=25)
    ap.add_argument("--eval-every", type=int, default=200)
    ap.add_argument("--sample-tokens", type=int, default=40)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    return run_check(args) if args.check else run_train(args)


if __name__ == "__main__":
    sys.exit(main())
