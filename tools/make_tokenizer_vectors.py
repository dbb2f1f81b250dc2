#!/usr/bin/env python3
"""Reference vectors for moat's tokenizers, made with Hugging Face's `tokenizers`
package (an independent regex engine, Oniguruma, and BPE implementation).

Writes tests/data/tokenizer/pre_tokenizer_splits.json: for every named pre-tokenizer of
frontend/tokenizer/pre_tokenizer_table.cpp (its expressions are read from that file, so
the two cannot drift apart) and a set of tricky strings, the pieces that
tokenizers' Sequence of Split(behavior="isolated") cuts them into.

Writes tests/data/tokenizer/NAME.tokenizer.json: a tiny byte-level BPE (a few hundred
tokens) trained by tokenizers on a fixed corpus with NAME's expressions, two special
tokens and one added (user-defined) token; and tests/data/tokenizer/encode_vectors.json:
the ids tokenizers gives for every string, per NAME.

Usage: python3 tools/make_tokenizer_vectors.py   (needs: pip install tokenizers)
"""
import json
import pathlib
import re

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

ROOT = pathlib.Path(__file__).resolve().parent.parent
TABLE = ROOT / "frontend/tokenizer/pre_tokenizer_table.cpp"
OUT = ROOT / "tests/data/tokenizer"

TEXTS = [
    "Hello world",
    " Hello World!  ",
    "I'm sure you'LL say: we'Ve a'lL DONE it's 'tis",
    "1234567 12 3.14159 ３４５６ ٣٤٥ ²³ ⅷ",
    "  \n\n  x  \t\tfoo\r\nbar\n \n",
    "trailing spaces   ",
    "\u00a0nbsp\u3000ideographic\u2003em",
    "👨‍👩‍👧 🚀🦙 ✅ (emoji)",
    "e\u0301 naïve café Ωmega ΐ ǅ ᾈ",
    "你好，世界！中文字符 龥 한국어 텍스트 ひらがな カタカナ ｶﾀｶﾅ",
    "Привет, мир! Ελληνικά",
    "def f(x):\n    return x**2  # comment\n\ttab",
    "$100.00 ~~~ <|tag|> https://example.com/a?b=c&d=e",
    "''''''```````\"\"\"\"......!!!!!!??????",
    "∑ x² ≤ ∞ → ← ‘quoted’ “double” — dash… ellipsis",
    "3..3 3...3 .3 3. a1b2c3 x_y-z",
    "\u200bzero\u200cwidth\ufeffbom",
    "",
]


def read_table():
    src = TABLE.read_text(encoding="utf-8")
    vectors = {}
    for m in re.finditer(r"const std::vector<std::string> (k\w+) = \{(.*?)\n\};", src, re.S):
        body = m.group(2)
        vectors[m.group(1)] = [r.group(2) for r in re.finditer(r'R"(\w*)\((.*?)\)\1"', body, re.S)]
    names = re.findall(r'\{"([\w.-]+)", (k\w+)\}', src)
    return {name: vectors[var] for name, var in names}


def split(regexes, text):
    pre = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(r), behavior="isolated") for r in regexes])
    return [piece for piece, _ in pre.pre_tokenize_str(text)]


CORPUS = TEXTS + [
    "The quick brown fox jumps over the lazy dog. " * 3,
    "It's what we've done, and they'll say we'd've liked it; I'm sure.",
    "for i in range(10):\n    print(i * 2)\n",
    "中文的句子和更多的中文。 한국어 문장입니다. Русский текст и ещё немного.",
    "0123456789 2024-01-01 3.14159 1,000,000",
]
SPECIALS = ["<|begin|>", "<|end|>"]
ADDED = "<tool>"
EXTRA = ["<|begin|>Hello<|end|>", "call <tool> now<tool>", "a<|end|>b <|begin|> c"]


def train(regexes, ignore_merges):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Split(Regex(r), behavior="isolated") for r in regexes]
        + [pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=420, special_tokens=SPECIALS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(CORPUS * 4, trainer)
    tok.add_tokens([ADDED])
    doc = json.loads(tok.to_str())
    doc["model"]["ignore_merges"] = ignore_merges
    return Tokenizer.from_str(json.dumps(doc)), doc


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    table = read_table()
    assert len(table) >= 6, table.keys()
    splits = {name: [{"text": t, "pieces": split(regexes, t)} for t in TEXTS] for name, regexes in table.items()}
    doc = {"generator": "tools/make_tokenizer_vectors.py", "splits": splits}
    (OUT / "pre_tokenizer_splits.json").write_text(json.dumps(doc, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print("wrote", OUT / "pre_tokenizer_splits.json", "for", ", ".join(table))

    encodes = {}
    for name, regexes in table.items():
        tok, doc = train(regexes, ignore_merges=(name == "llama-bpe"))
        (OUT / f"{name}.tokenizer.json").write_text(json.dumps(doc, ensure_ascii=False) + "\n", encoding="utf-8")
        encodes[name] = [{"text": t, "ids": tok.encode(t, add_special_tokens=False).ids} for t in TEXTS + EXTRA]
    doc = {"generator": "tools/make_tokenizer_vectors.py", "encode": encodes}
    (OUT / "encode_vectors.json").write_text(json.dumps(doc, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print("wrote", OUT / "encode_vectors.json")


if __name__ == "__main__":
    main()
