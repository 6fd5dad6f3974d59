#!/usr/bin/env python3
"""tools/make_tokenizer_fixtures.py: small byte-level BPE tokenizers and the ids Hugging Face
`tokenizers` gives for them, for tests/model/test_tokenizer_bpe.c and test_chat_template.c.

Three tokenizers are trained with `tokenizers` itself on a small deterministic corpus, each with
the pre-tokenisation of the family it stands for (normalizer, Split regex, ByteLevel settings,
ignore_merges as in the published tokenizer.json files) and that family's special tokens:

  qwen2   NFC + Qwen2's split regex (single digits), ChatML tokens and <think>/<answer> tags
  llama3  no normalizer, Llama-3's split regex (digits in runs of 1-3), ignore_merges, its
          header tokens, no reasoning tags (they encode as ordinary text)
  gpt2    ByteLevel's own (GPT-2) regex, no normalizer; ids for the first 1000 strings only
  minimax the Qwen2 pre-tokenisation with MiniMax-M1's document/sentence tokens and the tags

Each gets DIR/<name>/tokenizer.json and a tokenizer_config.json naming bos/eos/pad as the
published ones do. Then, for qwen2 and llama3 (and gpt2), a few thousand strings (ASCII, code, CJK, emoji,
whitespace runs, contractions, decomposed accents, special tokens inside text, invalid UTF-8, and
a few pieces thousands of bytes long)
are encoded without added BOS (add_special_tokens=False): DIR/cases.jsonl holds the strings
({"text": s} or {"hex": bytes} for invalid UTF-8, which is encoded as Python's
bytes.decode("utf-8", "replace") of it, i.e. what a Python caller hands `tokenizers`) and
DIR/<name>/encode.txt one line of ids per case. DIR/<name>/decode.jsonl holds random id
sequences (often splitting UTF-8 sequences) and HF's decode of them (skip_special_tokens=False).
DIR/chat.jsonl holds the ids of the rendered chat prompts the C templates must reproduce.

Usage: python3 tools/make_tokenizer_fixtures.py [--out tests/data/tokenizers]
Needs: pip install tokenizers (tested with 0.23.3).
"""
import argparse
import inspect
import json
import os
import random

import tokenizers
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

QWEN2_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
               r"|\s*[\r\n]+|\s+(?!\S)|\s+")
LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")
TAGS = ["<think>", "</think>", "<answer>", "</answer>"]

FAMILIES = {
    "qwen2": dict(split=QWEN2_SPLIT, nfc=True, ignore_merges=False, vocab=1200,
                  special=["<|endoftext|>", "<|im_start|>", "<|im_end|>"], tags=TAGS,
                  config={"bos_token": None, "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"}),
    "llama3": dict(split=LLAMA3_SPLIT, nfc=False, ignore_merges=True, vocab=900,
                   special=["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
                            "<|eot_id|>"], tags=[],
                   config={"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>", "pad_token": None}),
    "gpt2": dict(split=None, nfc=False, ignore_merges=False, vocab=600, special=["<|endoftext|>"], tags=[],
                 config={"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>", "pad_token": None}),
    "minimax": dict(split=QWEN2_SPLIT, nfc=True, ignore_merges=False, vocab=700,
                    special=["<end_of_document>", "<begin_of_document>", "<beginning_of_sentence>",
                             "<end_of_sentence>"], tags=TAGS,
                    config={"bos_token": "<begin_of_document>", "eos_token": "<end_of_sentence>",
                            "pad_token": "<end_of_document>"}),
}

SYSTEM = ("A conversation between User and Assistant. The assistant first thinks about the reasoning process "
          "and then gives the answer, enclosed in <think> </think> and <answer> </answer> tags.")
CHAT_USERS = ["What is 12 + 30?", "Sort: 3 1 2", "日本語で答えて: 2+2?", "<think>not a turn</think> x\n\n"]


def render_chat(fmt, system, user):
    """The chat prompts as the model cards' templates write them (generation prompt added)."""
    if fmt == "chatml":
        return (f"<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n"
                "<|im_start|>assistant\n")
    return ("<begin_of_document><beginning_of_sentence>system ai_setting=assistant\n" + system +
            "<end_of_sentence>\n<beginning_of_sentence>user name=user\n" + user +
            "<end_of_sentence>\n<beginning_of_sentence>ai name=assistant\n")


def corpus(rng):
    """Deterministic training text: Python sources of a few stdlib modules plus multilingual lines."""
    import textwrap, json as j, argparse as a  # noqa: E401
    text = [inspect.getsource(m) for m in (textwrap, j.decoder, a)]
    cjk = "".join(chr(c) for c in range(0x4E00, 0x4E00 + 300))
    for _ in range(3000):
        text.append("".join(rng.choice(cjk) for _ in range(rng.randint(2, 8))) + "。")
        text.append(" ".join(rng.choice(["Привет", "мир", "naïve", "café", "über", "東京", "🙂", "123", "4567"])
                             for _ in range(4)))
    return text


def train(name, spec, rng):
    tok = Tokenizer(models.BPE(ignore_merges=spec["ignore_merges"]))
    if spec["nfc"]:
        tok.normalizer = normalizers.NFC()
    if spec["split"]:
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(spec["split"]), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)])
    else:  # GPT-2: the ByteLevel pre-tokenizer's own regex
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    trainer = trainers.BpeTrainer(vocab_size=spec["vocab"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=spec["special"], show_progress=False)
    tok.train_from_iterator(corpus(rng), trainer=trainer)
    tok.add_tokens([tokenizers.AddedToken(t, special=False, normalized=False) for t in spec["tags"]])
    return tok


FRAGMENTS = ["hello", " world", "Hello, World!", "it's", "IT'S", "we'LL", "they'Re", "don't", "'s", "  ", "\t",
             "\n", "\r\n", "\n\n\n", "   \n  ", "x = 1", "def f(a, b):\n    return a + b\n", "if (x) { y(); }",
             "for i in range(10):", "1234567", "3.14159", "12,345", "東京都", "中文字符", "日本語のテキスト",
             "한국어", "😀", "👍🏽", "👨‍👩‍👧", "🇫🇷", "café", "cafe\u0301", "Å", "A\u030a", "ﬁ", "\u00a0", "\u3000",
             "\u0085", "\u2028", "Привет мир", "مرحبا", "नमस्ते", "<think>", "</think>", "<answer>",
             "</answer>", "<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<|begin_of_text|>",
             "<thi", "nk>", "<", ">", "ſ", "K", "$$", "\\frac{1}{2}", "a+b=c", "---", "...", "?!", "~~~"]
INVALID = [b"\xff", b"\xc3", b"\xe6\x97", b"\xf0\x9f\x98", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80",
           b"\x80\x80", b"\xf8\x88\x80\x80\x80", b"\xfe", b"\xe0\x80\xaf"]


def random_string(rng):
    kind = rng.random()
    if kind < 0.55:
        return "".join(rng.choice(FRAGMENTS) for _ in range(rng.randint(1, 6)))
    if kind < 0.75:  # random code points from chosen blocks
        blocks = [(0x20, 0x7e), (0xa0, 0x24f), (0x370, 0x4ff), (0x4e00, 0x4fff), (0x3040, 0x30ff), (0x1f300, 0x1f64f),
                  (0x2000, 0x206f), (0x9, 0xd), (0x600, 0x6ff), (0x900, 0x97f), (0xac00, 0xad00)]
        out = []
        for _ in range(rng.randint(1, 24)):
            lo, hi = rng.choice(blocks)
            out.append(chr(rng.randint(lo, hi)))
        return "".join(out)
    if kind < 0.85:  # whitespace runs
        return "".join(rng.choice([" ", "  ", "\t", "\n", "\r", "\r\n", "a", "1", ".", "\u3000"])
                       for _ in range(rng.randint(1, 16)))
    b = b""
    for _ in range(rng.randint(1, 5)):
        b += rng.choice([rng.choice(INVALID), rng.choice(FRAGMENTS).encode()])
    return b


def write_cases(out, rng, toks, limits):
    cases = [random_string(rng) for _ in range(3000)]
    cases = [c for c in cases if len(c) > 0]
    long_rng = random.Random(88)  # long pieces (the encoder's heap-based merge loop), own stream
    cases += ["ab" * 600, "".join(long_rng.choice("abcde") for _ in range(3000)), " " * 2000, "1" * 500 + "x",
              "东京" * 300, "=" * 1000, "\n" * 300 + "end", "the" * 400 + " " + "Zz" * 300,
              "".join(long_rng.choice("aé東 ") for _ in range(2000))]
    with open(os.path.join(out, "cases.jsonl"), "w") as f:
        for c in cases:
            if isinstance(c, bytes):
                try:
                    c = c.decode("utf-8")
                except UnicodeDecodeError:
                    f.write(json.dumps({"hex": c.hex()}) + "\n")
                    continue
            f.write(json.dumps({"text": c}, ensure_ascii=False) + "\n")
    for name, tok in toks.items():
        with open(os.path.join(out, name, "encode.txt"), "w") as f:
            for c in cases[:limits.get(name, len(cases))]:
                s = c.decode("utf-8", "replace") if isinstance(c, bytes) else c
                f.write(" ".join(map(str, tok.encode(s, add_special_tokens=False).ids)) + "\n")


def write_decode(out, name, tok, cfg, rng):
    skip = {tok.token_to_id(t) for t in cfg.values() if t}
    ids_all = [i for i in range(tok.get_vocab_size(with_added_tokens=True)) if i not in skip]
    with open(os.path.join(out, name, "decode.jsonl"), "w") as f:
        for _ in range(500):
            ids = [rng.choice(ids_all) for _ in range(rng.randint(1, 12))]
            f.write(json.dumps({"ids": ids, "text": tok.decode(ids, skip_special_tokens=False)}, ensure_ascii=False)
                    + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="tests/data/tokenizers")
    args = ap.parse_args()
    rng = random.Random(8)
    toks = {}
    for name, spec in FAMILIES.items():
        os.makedirs(os.path.join(args.out, name), exist_ok=True)
        tok = train(name, spec, random.Random(1))
        tok.save(os.path.join(args.out, name, "tokenizer.json"))
        with open(os.path.join(args.out, name, "tokenizer_config.json"), "w") as f:
            json.dump(spec["config"], f, indent=1)
        toks[name] = tok
    write_cases(args.out, rng, {k: toks[k] for k in ("qwen2", "llama3", "gpt2")}, {"gpt2": 1000})
    for name in ("qwen2", "llama3"):
        write_decode(args.out, name, toks[name], FAMILIES[name]["config"], rng)
    with open(os.path.join(args.out, "chat.jsonl"), "w") as f:
        for name, fmt in (("qwen2", "chatml"), ("minimax", "minimax")):
            for u in CHAT_USERS:
                ids = toks[name].encode(render_chat(fmt, SYSTEM, u), add_special_tokens=False).ids
                f.write(json.dumps({"tokenizer": name, "format": fmt, "system": SYSTEM, "user": u, "ids": ids},
                                   ensure_ascii=False) + "\n")
    print(f"wrote {args.out} with tokenizers {tokenizers.__version__}")


if __name__ == "__main__":
    main()
