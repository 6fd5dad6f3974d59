#!/usr/bin/env python3
"""tools/plot_ablation.py: plot RUN_DIR/ablation.csv (written by `cispo ablate`) as held-out pass@1
against RL step: per algorithm the mean over seeds as a line and the min-max range over seeds as a
band, with the target accuracy as a dashed line.

usage: python3 tools/plot_ablation.py RUN_DIR/ablation.csv RUN_DIR/ablation.png [--target ACC]
"""
import argparse
import csv
import sys
from collections import defaultdict


def load(path):
    """{algo: {seed: [(step, pass1), ...]}} from the CSV (columns algo,seed,step,pass1,passk)."""
    runs = defaultdict(lambda: defaultdict(list))
    with open(path, newline="") as f:
        rows = csv.DictReader(f)
        need = {"algo", "seed", "step", "pass1"}
        if not need.issubset(rows.fieldnames or []):
            sys.exit(f"{path}: expected columns {sorted(need)}, got {rows.fieldnames}")
        for r in rows:
            runs[r["algo"]][r["seed"]].append((int(r["step"]), float(r["pass1"])))
    return runs


def band(seeds):
    """Steps evaluated by every seed, with the mean, min and max pass@1 there."""
    per_seed = [dict(points) for points in seeds.values()]
    steps = sorted(set.intersection(*(set(p) for p in per_seed)))
    vals = [[p[s] for p in per_seed] for s in steps]
    return steps, [sum(v) / len(v) for v in vals], [min(v) for v in vals], [max(v) for v in vals]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("csv")
    ap.add_argument("png")
    ap.add_argument("--target", type=float, default=None)
    a = ap.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = load(a.csv)
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    for algo in sorted(runs):
        steps, mean, lo, hi = band(runs[algo])
        line, = ax.plot(steps, mean, marker="o", ms=3, label=f"{algo} (n={len(runs[algo])})")
        ax.fill_between(steps, lo, hi, color=line.get_color(), alpha=0.2, linewidth=0)
    if a.target is not None:
        ax.axhline(a.target, color="gray", ls="--", lw=1, label=f"target {a.target:.3f}")
    ax.set_xlabel("RL step")
    ax.set_ylabel("held-out pass@1 (mean over seeds; band: min-max)")
    ax.set_title("CISPO vs DAPO / GRPO / PPO")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(a.png)
    print(f"wrote {a.png}")


if __name__ == "__main__":
    main()
