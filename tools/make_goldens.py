#!/usr/bin/env python3
"""tools/make_goldens.py: golden files from Hugging Face transformers for cispo's CPU model.

Runs where torch and transformers 5.17 are installed (the GPU machine), on torch's CPU device in
float32, deterministically. It builds three tiny random models (two MiniMax, one Qwen2), saves each
with save_pretrained (safetensors) into OUTDIR/<name>/, and records the logits of a right-padded
batch of three sequences and the gradient of every named parameter of

    loss = ce + router_aux_loss_coef * aux_loss      (aux_loss = HF's load-balancing loss, MiniMax)
    ce   = -mean over valid positions of log_softmax(logits)[target]

with explicit (unshifted) targets, the same ones tests/model/test_golden.c uses. RMSNorm weights
and biases are randomised before saving so that their gradients are tested too.

Checks made here: each sequence run alone gives the batched logits (padding does not leak), the
saved directory reloads to the same logits, and no token's router top-k choice is within a hair
of a tie (else the C side could legitimately pick a different expert).

Usage: python3 tools/make_goldens.py --out DIR
Writes DIR/<name>/{config.json, model.safetensors, golden.json, golden.safetensors} and copies the
transformers sources it used into DIR/hf_src/.
"""
import argparse
import inspect
import json
import os
import shutil
import sys
import traceback

os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import torch  # noqa: E402
import transformers  # noqa: E402
from safetensors import safe_open  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from transformers import MiniMaxConfig, MiniMaxForCausalLM, Qwen2Config, Qwen2ForCausalLM  # noqa: E402

LENGTHS = [21, 13, 5]
DATA_SEED = 1234
TOL_SINGLE = 1e-5     # batched vs single-sequence logits, max abs
MIN_ROUTER_GAP = 1e-4  # smallest allowed gap between the K-th and (K+1)-th router logit


def rope(theta):
    return {"rope_type": "default", "rope_theta": float(theta)}


def spec_minimax_moe():
    cfg = MiniMaxConfig(
        vocab_size=128, hidden_size=32, intermediate_size=48, num_hidden_layers=4,
        layer_types=["linear_attention", "linear_attention", "full_attention", "linear_attention"],
        num_attention_heads=4, num_key_value_heads=2, head_dim=8, block_size=8,
        num_local_experts=4, num_experts_per_tok=2, router_aux_loss_coef=0.02,
        output_router_logits=True, tie_word_embeddings=False, rope_parameters=rope(10000.0),
        initializer_range=0.1, max_position_embeddings=256,
        full_attn_alpha_factor=1.0, full_attn_beta_factor=1.0,
        linear_attn_alpha_factor=1.0, linear_attn_beta_factor=1.0,
        mlp_alpha_factor=1.0, mlp_beta_factor=1.0)
    return MiniMaxForCausalLM, cfg, 101


def spec_minimax_ab_tied():
    cfg = MiniMaxConfig(
        vocab_size=128, hidden_size=32, intermediate_size=48, num_hidden_layers=3,
        layer_types=["full_attention", "linear_attention", "linear_attention"],
        num_attention_heads=4, num_key_value_heads=1, head_dim=16, block_size=4,
        num_local_experts=3, num_experts_per_tok=2, router_aux_loss_coef=0.02,
        output_router_logits=True, tie_word_embeddings=True, rope_parameters=rope(10000.0),
        initializer_range=0.1, max_position_embeddings=256,
        full_attn_alpha_factor=1.3, full_attn_beta_factor=1.1,
        linear_attn_alpha_factor=1.7, linear_attn_beta_factor=0.8,
        mlp_alpha_factor=1.5, mlp_beta_factor=0.9)
    return MiniMaxForCausalLM, cfg, 202


def spec_qwen2_bias():
    cfg = Qwen2Config(
        vocab_size=128, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False,
        rope_parameters=rope(10000.0), initializer_range=0.1, max_position_embeddings=256,
        use_sliding_window=False)
    return Qwen2ForCausalLM, cfg, 303


SPECS = {"minimax_moe": spec_minimax_moe, "minimax_ab_tied": spec_minimax_ab_tied,
         "qwen2_bias": spec_qwen2_bias}


def build_model(cls, cfg, seed):
    """Construct with a fixed seed, then randomise RMSNorm weights and biases."""
    try:
        cfg._attn_implementation = "eager"
    except Exception as e:  # noqa: BLE001
        print(f"  note: could not set eager attention on the config: {e}")
    torch.manual_seed(seed)
    model = cls(cfg).float()
    try:
        model.set_attn_implementation("eager")
    except Exception as e:  # noqa: BLE001
        print(f"  note: set_attn_implementation failed: {e}")
    print(f"  attn implementation: {model.config._attn_implementation}")
    g = torch.Generator().manual_seed(seed + 7)
    with torch.no_grad():
        n_norm = 0
        for name, mod in model.named_modules():
            if type(mod).__name__.endswith("RMSNorm"):
                mod.weight.copy_(1.0 + 0.1 * torch.randn(mod.weight.shape, generator=g))
                n_norm += 1
        n_bias = 0
        for name, p in model.named_parameters():
            if name.endswith(".bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
                n_bias += 1
    print(f"  randomised {n_norm} RMSNorm weights and {n_bias} biases")
    return model


def make_inputs(vocab, seed):
    g = torch.Generator().manual_seed(seed)
    T, B = max(LENGTHS), len(LENGTHS)
    ids = torch.zeros(B, T, dtype=torch.long)
    tgt = torch.zeros(B, T, dtype=torch.long)
    mask = torch.zeros(B, T, dtype=torch.long)
    for b, n in enumerate(LENGTHS):
        ids[b, :n] = torch.randint(0, vocab, (n,), generator=g)
        tgt[b, :n] = torch.randint(0, vocab, (n,), generator=g)
        mask[b, :n] = 1
    return ids, tgt, mask


def run_forward(model, ids, mask, is_moe):
    kw = {"input_ids": ids, "attention_mask": mask, "use_cache": False}
    if is_moe:
        kw["output_router_logits"] = True
    return model(**kw)


def cross_entropy(logits, tgt, mask):
    logp = torch.log_softmax(logits.float(), dim=-1)
    lp = logp.gather(-1, tgt.unsqueeze(-1)).squeeze(-1)
    m = mask.to(lp.dtype)
    return -(lp * m).sum() / m.sum()


def min_router_gap(router_probs, mask, k):
    """Smallest gap between the K-th and (K+1)-th entry of the router output over valid tokens.
    In 5.17 out.router_logits holds the raw gate logits (same ranking as the probabilities)."""
    valid = mask.reshape(-1).bool()
    gap = float("inf")
    for layer_probs in router_probs:
        p = layer_probs.detach().reshape(-1, layer_probs.shape[-1])[valid]
        if p.shape[-1] <= k:
            continue
        s = torch.sort(p, dim=-1, descending=True).values
        gap = min(gap, float((s[:, k - 1] - s[:, k]).min()))
    return gap


def check_single(model, ids, logits, is_moe):
    """Each sequence alone (batch of 1, no padding) must give the batched logits."""
    worst = 0.0
    with torch.no_grad():
        for b, n in enumerate(LENGTHS):
            one = run_forward(model, ids[b:b + 1, :n], torch.ones(1, n, dtype=torch.long), is_moe)
            d = float((one.logits[0] - logits[b, :n]).abs().max())
            worst = max(worst, d)
    ok = worst <= TOL_SINGLE
    print(f"  single-sequence vs batched logits: max abs diff {worst:.3e} "
          f"({'OK' if ok else 'FAIL: padding leaks'})")
    return ok, worst


def check_reload(cls, d, ids, mask, logits, is_moe):
    m2 = cls.from_pretrained(d, dtype=torch.float32)
    m2.eval()
    with torch.no_grad():
        out = run_forward(m2, ids, mask, is_moe)
    valid = mask.bool()
    diff = float((out.logits[valid] - logits[valid]).abs().max())
    print(f"  reloaded from {d}: max abs logits diff {diff:.3e}")
    return diff


def saved_tensor_names(d):
    names = []
    for f in sorted(os.listdir(d)):
        if f.endswith(".safetensors"):
            with safe_open(os.path.join(d, f), framework="pt") as sf:
                for k in sf.keys():
                    t = sf.get_tensor(k)
                    names.append(k)
                    print(f"    saved {f}: {k} {tuple(t.shape)} {t.dtype}")
    return sorted(names)


def pick_model(name, cfg, cls, seed, is_moe):
    """Build the model; for MiniMax retry other seeds while a router choice is a near-tie."""
    for attempt in range(5):
        s = seed + 1000 * attempt
        model = build_model(cls, cfg, s)
        model.eval()  # no dropout, no jitter (both 0 anyway)
        ids, tgt, mask = make_inputs(cfg.vocab_size, DATA_SEED + s)
        if not is_moe:
            return model, ids, tgt, mask, s
        with torch.no_grad():
            out = run_forward(model, ids, mask, is_moe)
        if out.router_logits is None:
            print("  WARNING: no router_logits returned; tie check skipped")
            return model, ids, tgt, mask, s
        gap = min_router_gap(out.router_logits, mask, cfg.num_experts_per_tok)
        print(f"  seed {s}: min router top-k gap over valid tokens {gap:.3e}")
        if gap >= MIN_ROUTER_GAP:
            return model, ids, tgt, mask, s
    raise RuntimeError(f"{name}: router near-ties for every seed tried")


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=1)


def make_one(name, outdir):
    cls, cfg, seed = SPECS[name]()
    is_moe = cls is MiniMaxForCausalLM
    print(f"== {name} ({cls.__name__}, base seed {seed})")
    model, ids, tgt, mask, seed = pick_model(name, cfg, cls, seed, is_moe)
    d = os.path.join(outdir, name)
    os.makedirs(d, exist_ok=True)
    model.save_pretrained(d)
    with open(os.path.join(d, "config.json")) as f:
        print(f"  config.json written by save_pretrained:\n{f.read()}")
    saved = saved_tensor_names(d)

    model.zero_grad(set_to_none=True)
    out = run_forward(model, ids, mask, is_moe)
    ce = cross_entropy(out.logits, tgt, mask)
    aux = None
    loss = ce
    if is_moe:
        aux = out.aux_loss
        loss = ce + cfg.router_aux_loss_coef * aux
        print(f"  ce {float(ce):.8f} aux {float(aux):.8f}")
    loss.backward()
    print(f"  loss {float(loss):.8f}")
    logits = out.logits.detach()

    tensors = {}
    for b, n in enumerate(LENGTHS):
        tensors[f"logits.{b}"] = logits[b, :n].float().contiguous().clone()
    param_names = []
    for pname, p in model.named_parameters():
        param_names.append(pname)
        if p.grad is None:
            raise RuntimeError(f"{name}: parameter {pname} has no gradient")
        tensors[f"grad.{pname}"] = p.grad.detach().float().contiguous().clone()
    save_file(tensors, os.path.join(d, "golden.safetensors"))
    print(f"  param names ({len(param_names)}): {param_names}")

    golden = {
        "lengths": LENGTHS,
        "tokens": [ids[b, :n].tolist() for b, n in enumerate(LENGTHS)],
        "targets": [tgt[b, :n].tolist() for b, n in enumerate(LENGTHS)],
        "ce": float(ce),
        "aux_loss": None if aux is None else float(aux),
        "loss": float(loss),
        "router_aux_loss_coef": float(cfg.router_aux_loss_coef) if is_moe else 0.0,
        "seed": seed,
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "param_names": param_names,
        "saved_names": saved,
    }
    gpath = os.path.join(d, "golden.json")
    write_json(gpath, golden)

    ok = True
    try:
        ok_single, worst = check_single(model, ids, logits, is_moe)
        golden["single_vs_batched_max_abs"] = worst
        ok = ok and ok_single
    except Exception:  # noqa: BLE001
        traceback.print_exc()
        ok = False
    try:
        diff = check_reload(cls, d, ids, mask, logits, is_moe)
        golden["reload_max_abs"] = diff
        ok = ok and diff <= TOL_SINGLE
    except Exception:  # noqa: BLE001
        traceback.print_exc()
        ok = False
    write_json(gpath, golden)
    return ok


HF_SOURCES = ["transformers.models.minimax.modeling_minimax",
              "transformers.models.minimax.configuration_minimax",
              "transformers.models.qwen2.modeling_qwen2",
              "transformers.models.qwen2.configuration_qwen2",
              "transformers.conversion_mapping",
              "transformers.modeling_rope_utils"]


def copy_sources(outdir):
    """Copy the transformers source files these goldens depend on into OUTDIR/hf_src/."""
    import importlib
    dst = os.path.join(outdir, "hf_src")
    os.makedirs(dst, exist_ok=True)
    ok = True
    for modname in HF_SOURCES:
        try:
            src = inspect.getsourcefile(importlib.import_module(modname))
            shutil.copy(src, os.path.join(dst, os.path.basename(src)))
            print(f"copied {src}")
        except Exception:  # noqa: BLE001
            traceback.print_exc()
            ok = ok and not modname.startswith("transformers.models.")
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="output directory")
    ap.add_argument("--only", nargs="*", default=None, help="model names (default: all)")
    args = ap.parse_args()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    print(f"transformers {transformers.__version__}, torch {torch.__version__}, python {sys.version.split()[0]}")
    if not transformers.__version__.startswith("5.17"):
        print(f"WARNING: expected transformers 5.17, found {transformers.__version__}")
    os.makedirs(args.out, exist_ok=True)
    failures = []
    if not copy_sources(args.out):
        failures.append("hf_src")
    for name in args.only or list(SPECS):
        try:
            if not make_one(name, args.out):
                failures.append(name + " (checks)")
        except Exception:  # noqa: BLE001
            traceback.print_exc()
            failures.append(name)
    if failures:
        print(f"FAILED: {failures}")
        return 1
    print("all goldens written")
    return 0


if __name__ == "__main__":
    sys.exit(main())
