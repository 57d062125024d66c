"""Benchmark checkpoints for scripts/bench/llada.sh: a LLaDA-shaped and a Dream-shaped model
with random weights, built with the authors' own PyTorch classes and saved with
`save_pretrained(safe_serialization=True)` (float32), scaled to fit a 24 GiB, 2-core machine:

    LLaDA: 12 layers, d_model 1024, 16 heads (16 KV heads), SwiGLU MLP 2816 ("silu", llama
           block), vocabulary 126464 (the released one), RoPE theta 500000, RMSNorm 1e-5,
           mask 126336, bos 126080, eos/pad 126081                       (~413M parameters)
    Dream: 12 layers, hidden 1024, 16 heads, 4 KV heads (GQA), MLP 2816, vocabulary 152064
           (the released one), RoPE theta 1e6, RMSNorm 1e-6, QKV biases, mask 151666,
           bos/eos/pad 151643                                            (~447M parameters)

SMOKE (--smoke, or the env SMOKE=1): 2 layers, width 64, 4 heads (Dream: 2 KV heads), MLP
96, vocabulary 32000 (not smaller: dlm's forward_bench example feeds ids up to 29999), the
special ids moved below 32000; a functional check of the scripts, no measurement.

Reference code (copied out of the local bare git mirrors at run time, unchanged, into a temp
dir and imported; the same commits as scripts/reference/llada_dream_fixtures.py):
    NVlabs/Fast-dLLM @ 24cc59e  llada/model/*, llada/generate.py, dream/model/*
    ML-GSAI/LLaDA    @ b7e6c35  generate.py (the original LLaDA generate())

Weights as in the fixture script: every parameter re-drawn from a seeded generator so that
the distributions are not flat (std-0.02 init gives near-uniform distributions whose
rankings f32 rounding decides): embeddings ~ N(0,1), Linear weights ~ N(0, 1/fan_in) (the
output head N(0, 9/fan_in): logits with a std of about 3), biases 0.1 N(0,1), norm weights
1 + 0.1 N(0,1); the output-head row of the mask id is zeroed (its logit is exactly 0, as a
trained model never predicts [MASK]; the reference samplers take the argmax over the full
vocabulary, mask id included).

Usage (from the repo root, with a Python holding torch + transformers==4.49.0 + einops +
safetensors, e.g. /work/pyref/bin/python):
    python scripts/bench/llada_dream_models.py [--model llada|dream|both] [--out DIR] [--smoke]
Default DIR: .cache/bench/llada-bench, .cache/bench/dream-bench (smoke: *-smoke). --out needs
--model llada or dream. Mirrors: --fast-dllm-mirror / --llada-mirror, or the env
FAST_DLLM_MIRROR / LLADA_MIRROR.
"""
import argparse
import json
import math
import os
import subprocess
import sys
import tempfile

FAST_DLLM_COMMIT = "24cc59e75f20a6384bae8c905965bb090b96388e"
LLADA_COMMIT = "b7e6c3565f194352da44b38dd12b6970597309f3"
FAST_DLLM_MIRROR = os.environ.get("FAST_DLLM_MIRROR", "/work/.mirror/NVlabs+Fast-dLLM/repo")
LLADA_MIRROR = os.environ.get("LLADA_MIRROR", "/work/.mirror/ML-GSAI+LLaDA/repo")


def smoke_env():
    return os.environ.get("SMOKE", "0") not in ("", "0")


def llada_config(smoke):
    if smoke:
        shape = dict(d_model=64, n_heads=4, n_kv_heads=4, n_layers=2, mlp_hidden_size=96, vocab_size=32000)
        ids = dict(mask_token_id=31900, bos_token_id=31800, eos_token_id=31801, pad_token_id=31801)
    else:
        shape = dict(d_model=1024, n_heads=16, n_kv_heads=16, n_layers=12, mlp_hidden_size=2816, vocab_size=126464)
        ids = dict(mask_token_id=126336, bos_token_id=126080, eos_token_id=126081, pad_token_id=126081)
    return dict(
        block_type="llama", rope=True, rope_theta=500000.0, layer_norm_type="rms", rms_norm_eps=1e-5,
        # "silu" as in the released LLaDA-8B config.json: the llama block computes
        # ff_out(silu(ff_proj(x)) * up_proj(x)), a SwiGLU MLP ("swiglu" breaks the llama block).
        activation_type="silu", include_bias=False, include_qkv_bias=False, weight_tying=False,
        embedding_size=shape["vocab_size"], max_sequence_length=4096,
        attention_dropout=0.0, residual_dropout=0.0, embedding_dropout=0.0, flash_attention=False,
        **shape, **ids,
    )


def dream_config(smoke):
    if smoke:
        shape = dict(hidden_size=64, num_attention_heads=4, num_key_value_heads=2, num_hidden_layers=2,
                     intermediate_size=96, vocab_size=32000)
        ids = dict(mask_token_id=31900, bos_token_id=31801, eos_token_id=31801, pad_token_id=31801)
    else:
        shape = dict(hidden_size=1024, num_attention_heads=16, num_key_value_heads=4, num_hidden_layers=12,
                     intermediate_size=2816, vocab_size=152064)
        ids = dict(mask_token_id=151666, bos_token_id=151643, eos_token_id=151643, pad_token_id=151643)
    return dict(
        max_position_embeddings=4096, rope_theta=1000000.0, rms_norm_eps=1e-6, hidden_act="silu",
        tie_word_embeddings=False, attention_dropout=0.0, **shape, **ids,
    )


# ----------------------------------------------------------------------------------------
# Reference code: copy out of the mirrors, unchanged, and import.
# ----------------------------------------------------------------------------------------

def git_show(mirror, commit, path):
    return subprocess.run(["git", "-C", mirror, "show", f"{commit}:{path}"],
                          check=True, capture_output=True, text=True).stdout


def stage_reference(fast_mirror=FAST_DLLM_MIRROR, llada_mirror=LLADA_MIRROR):
    """Copies the reference files into a temp dir that is put on sys.path, laid out as in
    scripts/reference/llada_dream_fixtures.py but unpatched: `model` (Fast-dLLM's LLaDA
    package; its generate.py imports `model.modeling_llada`), `fastdllm_generate`,
    `dream_model` (Dream's package, relative imports) and `llada_generate` (the original
    LLaDA generate.py). Returns the TemporaryDirectory (keep it alive)."""
    tmp = tempfile.TemporaryDirectory(prefix="llada_dream_bench_")
    d = tmp.name
    files = {
        **{f"model/{f}": (fast_mirror, FAST_DLLM_COMMIT, f"llada/model/{f}")
           for f in ("__init__.py", "configuration_llada.py", "modeling_llada.py")},
        "fastdllm_generate.py": (fast_mirror, FAST_DLLM_COMMIT, "llada/generate.py"),
        **{f"dream_model/{f}": (fast_mirror, FAST_DLLM_COMMIT, f"dream/model/{f}")
           for f in ("__init__.py", "configuration_dream.py", "modeling_dream.py", "generation_utils.py")},
        "llada_generate.py": (llada_mirror, LLADA_COMMIT, "generate.py"),
    }
    for dst, (mirror, commit, src) in files.items():
        path = os.path.join(d, dst)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as fh:
            fh.write(git_show(mirror, commit, src))
    sys.path.insert(0, d)
    return tmp


def load(kind, path):
    """The reference model of `kind` from a directory this script wrote (config.json +
    load_state_dict, strict: DreamModel.from_pretrained would also want a
    generation_config.json), f32, eval mode."""
    from safetensors.torch import load_file
    if kind == "llada":
        from model.configuration_llada import LLaDAConfig
        from model.modeling_llada import LLaDAModelLM
        model = LLaDAModelLM(LLaDAConfig.from_pretrained(path))
    else:
        from dream_model.configuration_dream import DreamConfig
        from dream_model.modeling_dream import DreamModel
        model = DreamModel(DreamConfig.from_pretrained(path))
    state = {}
    for f in sorted(os.listdir(path)):
        if f.endswith(".safetensors"):
            state.update(load_file(os.path.join(path, f)))
    model.load_state_dict(state, strict=True)
    return model.float().eval()


# ----------------------------------------------------------------------------------------
# Building
# ----------------------------------------------------------------------------------------

def redraw_(model, seed, head, mask_id, head_gain=3.0):
    """Re-draws every parameter (see the module docstring); `head` is the output Linear."""
    import torch
    import torch.nn as nn

    g = torch.Generator().manual_seed(seed)
    seen = set()
    with torch.no_grad():
        for _, mod in model.named_modules():
            if isinstance(mod, nn.Linear):
                gain = head_gain if mod is head else 1.0
                mod.weight.copy_(torch.randn(mod.weight.shape, generator=g) * (gain / math.sqrt(mod.weight.shape[1])))
                seen.add(id(mod.weight))
                if mod.bias is not None:
                    mod.bias.copy_(0.1 * torch.randn(mod.bias.shape, generator=g))
                    seen.add(id(mod.bias))
            elif isinstance(mod, nn.Embedding):
                mod.weight.copy_(torch.randn(mod.weight.shape, generator=g))
                seen.add(id(mod.weight))
            elif "Norm" in type(mod).__name__ and getattr(mod, "weight", None) is not None:
                mod.weight.copy_(1.0 + 0.1 * torch.randn(mod.weight.shape, generator=g))
                seen.add(id(mod.weight))
                if getattr(mod, "bias", None) is not None:
                    mod.bias.copy_(0.1 * torch.randn(mod.bias.shape, generator=g))
                    seen.add(id(mod.bias))
        missed = [n for n, p in model.named_parameters() if id(p) not in seen]
        assert not missed, f"parameters not re-drawn: {missed}"
        head.weight[mask_id].zero_()


def build(kind, out, smoke):
    import torch

    torch.manual_seed(0)
    if kind == "llada":
        from model.configuration_llada import LLaDAConfig
        from model.modeling_llada import LLaDAModelLM
        cfg = llada_config(smoke)
        model = LLaDAModelLM(LLaDAConfig(**cfg)).float().eval()
        redraw_(model, seed=0, head=model.model.transformer.ff_out, mask_id=cfg["mask_token_id"])
    else:
        from dream_model.configuration_dream import DreamConfig
        from dream_model.modeling_dream import DreamModel
        cfg = dream_config(smoke)
        model = DreamModel(DreamConfig(**cfg)).float().eval()
        assert model.lm_head.weight is not model.model.embed_tokens.weight
        redraw_(model, seed=1, head=model.lm_head, mask_id=cfg["mask_token_id"])
    os.makedirs(out, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    # auto_map names remote-code modules that are not in the folder (as the fixture script).
    cfg_path = os.path.join(out, "config.json")
    with open(cfg_path) as fh:
        saved = json.load(fh)
    if saved.pop("auto_map", None) is not None:
        with open(cfg_path, "w") as fh:
            json.dump(saved, fh, indent=2, sort_keys=True)
            fh.write("\n")
    # Reload and check that the files hold exactly the model built.
    probe = torch.tensor([[5, 9, cfg["mask_token_id"], 17, 33, 2, 1000]])
    with torch.no_grad():
        a = model(probe).logits
        b = load(kind, out)(probe).logits
    assert torch.equal(a, b), "the saved checkpoint does not reload to the same logits"
    params = sum(p.numel() for p in model.parameters())
    print(f"wrote {out} ({kind}{' smoke' if smoke else ''}: {params / 1e6:.1f}M parameters, "
          f"files {sorted(os.listdir(out))}, logit std {a.std().item():.2f})")


def default_dir(kind, smoke):
    return os.path.join(".cache", "bench", f"{kind}-{'smoke' if smoke else 'bench'}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", choices=("llada", "dream", "both"), default="both")
    ap.add_argument("--out", help="output directory (with --model llada or dream)")
    ap.add_argument("--smoke", action="store_true", default=smoke_env())
    ap.add_argument("--fast-dllm-mirror", default=FAST_DLLM_MIRROR)
    ap.add_argument("--llada-mirror", default=LLADA_MIRROR)
    args = ap.parse_args()
    if args.out and args.model == "both":
        ap.error("--out needs --model llada or --model dream")
    tmp = stage_reference(args.fast_dllm_mirror, args.llada_mirror)
    import torch
    torch.set_num_threads(int(os.environ.get("THREADS", "2")))
    for kind in (("llada", "dream") if args.model == "both" else (args.model,)):
        build(kind, args.out or default_dir(kind, args.smoke), args.smoke)
    tmp.cleanup()


if __name__ == "__main__":
    main()
