#!/usr/bin/env python3
"""tools/parquet_to_jsonl.py: a Parquet dataset (as Hugging Face hubs ship them) to cispo's JSONL
task format ({"prompt", "answer", optional "id", "difficulty", "solution"}; see
curricula/jsonl_source.h). Debian 12 packages no C Parquet reader (no Arrow/Parquet GLib), so
cispo reads JSONL and this converts, with pyarrow (pip install pyarrow).

Columns are named with --prompt/--answer/--id/--solution/--difficulty; a dotted name reaches into
struct columns (reward_model.ground_truth). A prompt given as a list of chat messages
([{"role": "user", "content": ...}, ...]) becomes the content of its last user message. Rows
without a usable prompt or answer are skipped and counted; numbers become text.

Usage:
  python3 tools/parquet_to_jsonl.py train.parquet data.jsonl --prompt problem --answer answer
  python3 tools/parquet_to_jsonl.py dapo.parquet data.jsonl --prompt prompt --answer reward_model.ground_truth
  python3 tools/parquet_to_jsonl.py --selftest
"""
import argparse
import json
import os
import sys
import tempfile


def field(row, name):
    """row[name], following dots into nested dicts; None when absent."""
    v = row
    for part in name.split("."):
        if not isinstance(v, dict) or part not in v:
            return None
        v = v[part]
    return v


def as_prompt(v):
    if isinstance(v, list):  # chat messages: the last user turn
        users = [m.get("content") for m in v if isinstance(m, dict) and m.get("role") == "user"]
        v = users[-1] if users else None
    return v if isinstance(v, str) and v.strip() else None


def as_text(v):
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, (int, float)):
        return repr(v) if isinstance(v, float) else str(v)
    if isinstance(v, list) and len(v) == 1:
        return as_text(v[0])
    return v if isinstance(v, str) and v.strip() else None


def convert(src, dst, args):
    import pyarrow.parquet as pq
    table = pq.read_table(src)
    kept = skipped = 0
    with open(dst, "w", encoding="utf-8") as out:
        for batch in table.to_batches():
            for row in batch.to_pylist():
                prompt, answer = as_prompt(field(row, args.prompt)), as_text(field(row, args.answer))
                if prompt is None or answer is None:
                    skipped += 1
                    continue
                rec = {"prompt": prompt, "answer": answer}
                for key, col in (("id", args.id), ("solution", args.solution)):
                    v = as_text(field(row, col)) if col else None
                    if v is not None:
                        rec[key] = v
                d = field(row, args.difficulty) if args.difficulty else None
                if isinstance(d, int) and not isinstance(d, bool) and d >= 1:
                    rec["difficulty"] = d
                out.write(json.dumps(rec, ensure_ascii=False) + "\n")
                kept += 1
    print(f"{src}: {kept} rows written to {dst}, {skipped} skipped (no usable {args.prompt!r} or {args.answer!r})",
          file=sys.stderr)
    return kept, skipped


def selftest():
    import pyarrow as pa
    import pyarrow.parquet as pq
    with tempfile.TemporaryDirectory() as d:
        src, dst = os.path.join(d, "t.parquet"), os.path.join(d, "t.jsonl")
        pq.write_table(pa.table({
            "prompt": [[{"role": "system", "content": "s"}, {"role": "user", "content": "1+1?"}],
                       [{"role": "user", "content": "東京 2*3?"}], []],
            "reward_model": [{"ground_truth": "2"}, {"ground_truth": "6"}, {"ground_truth": "0"}],
            "level": [1, 3, 2], "uid": [10, 11, 12]}), src)
        ns = argparse.Namespace(prompt="prompt", answer="reward_model.ground_truth", id="uid", solution=None,
                                difficulty="level")
        assert convert(src, dst, ns) == (2, 1)
        rows = [json.loads(x) for x in open(dst, encoding="utf-8")]
        assert rows == [{"prompt": "1+1?", "answer": "2", "id": "10", "difficulty": 1},
                        {"prompt": "東京 2*3?", "answer": "6", "id": "11", "difficulty": 3}], rows
    print("selftest ok")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("src", nargs="?")
    ap.add_argument("dst", nargs="?")
    ap.add_argument("--prompt", default="prompt")
    ap.add_argument("--answer", default="answer")
    ap.add_argument("--id")
    ap.add_argument("--solution")
    ap.add_argument("--difficulty")
    ap.add_argument("--selftest", action="store_true")
    args = ap.parse_args()
    if args.selftest:
        return selftest()
    if not args.src or not args.dst:
        ap.error("give SRC.parquet and DST.jsonl (or --selftest)")
    kept, _ = convert(args.src, args.dst, args)
    if kept == 0:
        sys.exit(f"{args.src}: no row had both columns; HINT: name them with --prompt and --answer")


if __name__ == "__main__":
    main()
