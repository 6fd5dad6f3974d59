#!/usr/bin/env python3
"""Check that cispo's HDF5 files (checkpoints and rollout dumps) read in Python with h5py + hdf5plugin.

usage: python3 tools/check_h5py.py RUN_DIR
Needs `pip install h5py hdf5plugin` (hdf5plugin registers the zstd filter, id 32015). Reads every
dataset of every .h5 file under RUN_DIR/checkpoints and RUN_DIR/rollouts and prints a summary line per
file; exits non-zero if any dataset fails to read.
"""
import pathlib
import sys

import h5py
import hdf5plugin  # noqa: F401  (registers the zstd filter)


def main(run_dir: str) -> int:
    root = pathlib.Path(run_dir)
    files = sorted(list(root.glob("checkpoints/step_*/*.h5")) + list(root.glob("rollouts/*.h5")))
    if not files:
        print(f"no .h5 files under {root}/checkpoints or {root}/rollouts")
        return 1
    bad = 0
    for path in files:
        names = []
        with h5py.File(path, "r") as f:
            f.visit(lambda n: names.append(n) if isinstance(f[n], h5py.Dataset) else None)
            total = 0
            for n in names:
                try:
                    total += f[n][()].size if f[n].shape != () else 1
                except OSError as e:  # checksum or filter failure
                    print(f"{path}: {n}: {e}")
                    bad += 1
        print(f"{path.relative_to(root)}: {len(names)} datasets, {total} values")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "runs/demo"))
