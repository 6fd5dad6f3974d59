#!/usr/bin/env python3
"""bench/bench_tokenizer.py: encode throughput of cispo's tokenizer.json BPE against Hugging Face
`tokenizers` on the same text and the same tokenizer.json, checking both give the same ids.

Corpus: the files of Python's standard library (code, comments, docstrings; sorted, read as
UTF-8, the first --mb megabytes) followed by the multilingual lines of the test fixtures' generator,
cut into documents of whole lines closing at >= 4096 bytes (as bench_tokenizer.c cuts them).
Tokenizer: byte-level BPE trained on that corpus with `tokenizers` using Qwen2's normalizer and
split regex (tools/make_tokenizer_fixtures.py), --vocab entries.

Timed: cispo (build/bench/bench_tokenizer, one thread, median of 5); HF `Tokenizer.encode` one
document at a time with RAYON_NUM_THREADS=1 (one thread, median of 5); HF `encode_batch` over
all documents with its default thread pool (all cores), for reference. Both sides' ids are hashed
(FNV-1a over every id in order) and must agree.

Usage: python3 bench/bench_tokenizer.py [--mb 8] [--vocab 32000] [--write docs/benchmarks.md]
"""
import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import sysconfig
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))


def build_corpus(path, mb):
    import random
    import make_tokenizer_fixtures as fx
    stdlib = sysconfig.get_paths()["stdlib"]
    parts, size = [], 0
    for dirpath, dirnames, files in sorted(os.walk(stdlib)):
        dirnames.sort()
        if "site-packages" in dirpath or "dist-packages" in dirpath:
            continue
        for f in sorted(files):
            if not f.endswith(".py"):
                continue
            try:
                s = open(os.path.join(dirpath, f), encoding="utf-8").read()
            except (UnicodeDecodeError, OSError):
                continue
            parts.append(s)
            size += len(s.encode())
            if size >= mb * 1e6:
                break
        if size >= mb * 1e6:
            break
    parts.append("\n".join(fx.corpus(random.Random(3))[3:]))
    with open(path, "w", encoding="utf-8") as f:
        f.write("".join(parts))


def cut_docs(text):
    docs, cur = [], []
    n = 0
    for line in text.encode().splitlines(keepends=True):
        cur.append(line)
        n += len(line)
        if n >= 4096:
            docs.append(b"".join(cur).decode())
            cur, n = [], 0
    if cur:
        docs.append(b"".join(cur).decode())
    return docs


def train(path, corpus, vocab):
    import make_tokenizer_fixtures as fx
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers, Regex
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(fx.QWEN2_SPLIT), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    tr = trainers.BpeTrainer(vocab_size=vocab, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                             special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"], show_progress=False)
    tok.train([corpus], trainer=tr)
    tok.save(path)


def fnv(ids_lists):
    h = 1469598103934665603
    for ids in ids_lists:
        for i in ids:
            h = ((h ^ i) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def hf_single(tok_path, corpus):
    """Runs in a child with RAYON_NUM_THREADS=1: per-document encode, median of 5."""
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(tok_path)
    docs = cut_docs(open(corpus, encoding="utf-8").read())
    times, out = [], None
    for _ in range(5):
        t0 = time.perf_counter()
        out = [tok.encode(d, add_special_tokens=False).ids for d in docs]
        times.append(time.perf_counter() - t0)
    return statistics.median(times), sum(map(len, out)), fnv(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mb", type=float, default=8)
    ap.add_argument("--vocab", type=int, default=32000)
    ap.add_argument("--work", default="/tmp/cispo_bench_tokenizer")
    ap.add_argument("--bin", default=os.path.join(ROOT, "build/bench/bench_tokenizer"))
    ap.add_argument("--reuse", action="store_true", help="keep the corpus and tokenizer already in --work")
    ap.add_argument("--write")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(hf_single(*args.child)))
        return
    import tokenizers
    os.makedirs(args.work, exist_ok=True)
    corpus, tok_path = os.path.join(args.work, "corpus.txt"), os.path.join(args.work, "tokenizer.json")
    if not (args.reuse and os.path.exists(tok_path)):
        build_corpus(corpus, args.mb)
        train(tok_path, corpus, args.vocab)
    nbytes = os.path.getsize(corpus)
    c = json.loads(subprocess.run([args.bin, tok_path, corpus, "5"], check=True, capture_output=True, text=True).stdout)
    env = dict(os.environ, RAYON_NUM_THREADS="1")
    hf_s, hf_tokens, hf_hash = json.loads(subprocess.run([sys.executable, __file__, "--child", tok_path, corpus],
                                                         check=True, capture_output=True, text=True, env=env).stdout)
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(tok_path)
    docs = cut_docs(open(corpus, encoding="utf-8").read())
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        tok.encode_batch(docs, add_special_tokens=False)
        times.append(time.perf_counter() - t0)
    batch_s = statistics.median(times)
    same = c["hash"] == hf_hash and c["tokens"] == hf_tokens
    print(f"corpus {nbytes / 1e6:.2f} MB, {c['docs']} documents, {c['tokens']} tokens (HF {hf_tokens}); "
          f"ids {'identical' if same else 'DIFFER'}")
    print(f"cispo BPE, 1 thread:           {c['encode_mb_s']:7.2f} MB/s {c['encode_tok_s']:12,.0f} tokens/s "
          f"(decode {c['decode_mb_s']:.1f} MB/s)")
    print(f"HF tokenizers encode, 1 thread: {nbytes / hf_s / 1e6:7.2f} MB/s {hf_tokens / hf_s:12,.0f} tokens/s")
    print(f"HF encode_batch, {os.cpu_count()} cores:      {nbytes / batch_s / 1e6:7.2f} MB/s "
          f"{hf_tokens / batch_s:12,.0f} tokens/s")
    if not same:
        sys.exit("bench_tokenizer: cispo and HF ids differ")
    if args.write:
        load = os.getloadavg()[0]
        cmd = f"`python3 bench/bench_tokenizer.py --mb {args.mb:g} --vocab {args.vocab} --write docs/benchmarks.md`"
        with open(args.write, "a") as f:
            f.write(f"| {datetime.date.today()} | dev-cpu, load {load:.2f} | {c['version']} | tokenizers "
                    f"{tokenizers.__version__} | {nbytes / 1e6:.1f} MB, {c['tokens']:,} tokens, vocab {args.vocab} | "
                    f"{c['encode_mb_s']:.2f} MB/s, {c['encode_tok_s']:,.0f} tok/s | "
                    f"{nbytes / hf_s / 1e6:.2f} MB/s, {hf_tokens / hf_s:,.0f} tok/s | "
                    f"{nbytes / batch_s / 1e6:.2f} MB/s ({os.cpu_count()} cores) | {c['decode_mb_s']:.1f} MB/s | "
                    f"{cmd} |\n")
        print(f"appended a row to {args.write}")


if __name__ == "__main__":
    main()
