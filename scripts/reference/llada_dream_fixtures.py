"""Golden fixtures for the LLaDA and Dream diffusion LMs, computed by the authors' own
PyTorch reference code on tiny random configs.

Reference code (copied out of local bare git mirrors at run time into a temp dir, patched
only where noted below, then imported; none of it is committed here):
- NVlabs/Fast-dLLM @ 24cc59e75f20a6384bae8c905965bb090b96388e
    llada/model/{__init__,configuration_llada,modeling_llada}.py   (LLaDAModelLM, LLaDAConfig)
    llada/generate.py  (generate / generate_with_prefix_cache / generate_with_dual_cache,
                        with Fast-dLLM's confidence `threshold`)
    dream/model/{__init__,configuration_dream,modeling_dream,generation_utils}.py
                       (DreamModel, DreamConfig, diffusion_generate)
- ML-GSAI/LLaDA @ b7e6c3565f194352da44b38dd12b6970597309f3
    generate.py        (the original LLaDA `generate()`, low_confidence / random remasking)

The only patch: in the generate files every line of the form
`x...[transfer_index] = x0[transfer_index]` (the in-place commit of the tokens chosen in a
step) gets one line `_TRAJ_HOOK(x)` inserted after it, so the full canvas `x` is recorded
after every step; `_TRAJ_HOOK` is a module global this script sets. Nothing else changes.
Dream's `diffusion_generate` records its trajectory itself (`output_history=True`).

Python packages (a venv at /work/pyref was used):
    python 3.11, torch==2.15.0 (PyPI, CPU is enough), transformers==4.49.0 (the version
    Fast-dLLM's requirements.txt pins; it imports the reference code unchanged),
    safetensors, numpy, einops (imported at module level by modeling_llada.py).

Run from the repo root (takes well under a minute on a CPU):
    /work/pyref/bin/python scripts/reference/llada_dream_fixtures.py
Optional: --fast-dllm-mirror / --llada-mirror point at other clones of the two repos (they
must contain the pinned commits).

Writes
    crates/dlm-models/tests/fixtures/llada-tiny/{config.json,model.safetensors}
    crates/dlm-models/tests/fixtures/dream-tiny/{config.json,model.safetensors}
    crates/dlm-models/tests/fixtures/llada_dream_golden.json
The JSON's "schema" key describes every field.

Weights: the models are built with the reference classes, then every parameter is
re-drawn from a seeded generator so that logits are well spread (the default std-0.02 init
gives near-flat distributions whose rankings f32 rounding decides): embeddings ~ N(0,1),
linear weights ~ N(0, 1/fan_in) (the output head ~ N(0, 9/fan_in), i.e. logits with a std
of about 3), biases ~ 0.1 N(0,1), norm weights ~ 1 + 0.1 N(0,1). The output-head row of the
mask id (126) is then set to zero, so the mask id's logit is exactly 0 everywhere (like a
trained model, which never predicts [MASK]): the reference samplers take the argmax over
the FULL vocabulary, mask id included, and Fast-dLLM's threshold loop never terminates if
the top-confidence prediction is the mask id. Everything is float32.
"""
import argparse
import contextlib
import io
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile

FAST_DLLM_REPO = "NVlabs/Fast-dLLM"
FAST_DLLM_COMMIT = "24cc59e75f20a6384bae8c905965bb090b96388e"
LLADA_REPO = "ML-GSAI/LLaDA"
LLADA_COMMIT = "b7e6c3565f194352da44b38dd12b6970597309f3"

FIXTURES = "crates/dlm-models/tests/fixtures"
MASK_ID = 126
PAD_ID = 1
VOCAB = 128

LLADA_CONFIG = dict(
    block_type="llama",
    rope=True,
    rope_theta=10000.0,
    layer_norm_type="rms",
    rms_norm_eps=1e-5,
    # "silu", as in the released LLaDA-8B config.json: the llama block computes
    # ff_out(act(ff_proj(x)) * up_proj(x)), so "silu" IS the SwiGLU MLP (gate = ff_proj,
    # up = up_proj). "swiglu" would chunk ff_proj's output in half first and the llama block
    # fails with a shape error (48 vs 96) in the reference code.
    activation_type="silu",
    include_bias=False,
    include_qkv_bias=False,
    weight_tying=False,
    d_model=64,
    n_heads=4,
    n_kv_heads=4,
    n_layers=2,
    mlp_hidden_size=96,
    vocab_size=VOCAB,
    embedding_size=VOCAB,
    max_sequence_length=256,
    mask_token_id=MASK_ID,
    eos_token_id=1,
    pad_token_id=PAD_ID,
    attention_dropout=0.0,
    residual_dropout=0.0,
    embedding_dropout=0.0,
    flash_attention=False,
)

DREAM_CONFIG = dict(
    vocab_size=VOCAB,
    hidden_size=64,
    intermediate_size=96,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=256,
    rope_theta=10000.0,
    rms_norm_eps=1e-6,
    tie_word_embeddings=False,
    mask_token_id=MASK_ID,
    pad_token_id=PAD_ID,
    bos_token_id=0,
    eos_token_id=1,
    attention_dropout=0.0,
)

HOOK_RE = re.compile(r"^(\s*)x(\[[^\]]*\])?\[transfer_index\] = x0\[transfer_index\]\s*$")
HOOK_PRELUDE = (
    "\n# --- inserted by llada_dream_fixtures.py: records x after every step ---\n"
    "def _TRAJ_HOOK(x):\n    pass\n"
)


# ----------------------------------------------------------------------------------------
# Reference code: copy out of the mirrors, patch the generate loops, import.
# ----------------------------------------------------------------------------------------

def git_show(mirror, commit, path):
    return subprocess.run(
        ["git", "-C", mirror, "show", f"{commit}:{path}"],
        check=True, capture_output=True, text=True,
    ).stdout


def add_traj_hook(src, expected):
    """Insert `_TRAJ_HOOK(x)` after each in-place token commit; `expected` = how many."""
    out, n = [], 0
    for line in src.split("\n"):
        out.append(line)
        m = HOOK_RE.match(line)
        if m:
            out.append(f"{m.group(1)}_TRAJ_HOOK(x)")
            n += 1
    assert n == expected, f"expected {expected} token-commit lines, patched {n}"
    # The prelude goes after the imports (module globals are looked up at call time, so
    # position only matters for readability).
    return "\n".join(out) + HOOK_PRELUDE


def stage_reference(fast_mirror, llada_mirror, tmp):
    # LLaDA model + Fast-dLLM's generate.py: generate.py does `from model.modeling_llada
    # import ...`, so llada/model is importable as the top-level package `model`.
    d = os.path.join(tmp, "fastdllm_llada")
    os.makedirs(os.path.join(d, "model"))
    for f in ("__init__.py", "configuration_llada.py", "modeling_llada.py"):
        with open(os.path.join(d, "model", f), "w") as fh:
            fh.write(git_show(fast_mirror, FAST_DLLM_COMMIT, f"llada/model/{f}"))
    with open(os.path.join(d, "fastdllm_generate.py"), "w") as fh:
        # generate: 1 commit line; prefix cache: 2; dual cache: 2.
        fh.write(add_traj_hook(git_show(fast_mirror, FAST_DLLM_COMMIT, "llada/generate.py"), 5))
    # Dream's model package (relative imports) as `dream_model`.
    dd = os.path.join(d, "dream_model")
    os.makedirs(dd)
    for f in ("__init__.py", "configuration_dream.py", "modeling_dream.py", "generation_utils.py"):
        with open(os.path.join(dd, f), "w") as fh:
            fh.write(git_show(fast_mirror, FAST_DLLM_COMMIT, f"dream/model/{f}"))
    # The original LLaDA generate().
    with open(os.path.join(d, "llada_generate.py"), "w") as fh:
        fh.write(add_traj_hook(git_show(llada_mirror, LLADA_COMMIT, "generate.py"), 1))
    sys.path.insert(0, d)


# ----------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------

def r7(v):
    return float(f"{float(v):.7g}")


def rows(t):
    """2-D tensor -> list of lists of 7-significant-digit floats."""
    return [[r7(v) for v in row] for row in t.tolist()]


def flat(t):
    return [r7(v) for v in t.reshape(-1).tolist()]


def redraw_(model, seed, head, head_gain=3.0):
    """Re-draw every parameter (see the module docstring). `head` is the output Linear."""
    import torch
    import torch.nn as nn

    g = torch.Generator().manual_seed(seed)
    seen = set()
    with torch.no_grad():
        for name, mod in model.named_modules():
            if isinstance(mod, nn.Linear):
                gain = head_gain if mod is head else 1.0
                fan_in = mod.weight.shape[1]
                mod.weight.copy_(torch.randn(mod.weight.shape, generator=g) * (gain / math.sqrt(fan_in)))
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
        head.weight[MASK_ID].zero_()


def save_checkpoint(model, out_dir, tmp):
    """save_pretrained as users download it; keep config.json + model.safetensors only."""
    from safetensors import safe_open

    staging = os.path.join(tmp, "save_" + os.path.basename(out_dir))
    model.save_pretrained(staging, safe_serialization=True)
    written = sorted(os.listdir(staging))
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(staging, "config.json")) as fh:
        cfg = json.load(fh)
    removed = []
    if "auto_map" in cfg:  # points at remote-code modules users would not have
        del cfg["auto_map"]
        removed.append("auto_map")
        with open(os.path.join(staging, "config.json"), "w") as fh:
            json.dump(cfg, fh, indent=2, sort_keys=True)
            fh.write("\n")
    for f in ("config.json", "model.safetensors"):
        shutil.copyfile(os.path.join(staging, f), os.path.join(out_dir, f))
    with safe_open(os.path.join(out_dir, "model.safetensors"), "pt") as fh:
        names = sorted(fh.keys())
    return {"save_pretrained_wrote": written, "kept": ["config.json", "model.safetensors"],
            "config_keys_removed": removed, "tensor_names": names}


class Trajectory:
    """Collects x (batch row 0) after every step via the patched `_TRAJ_HOOK`."""

    def __init__(self, module, limit=1000):
        self.module, self.limit, self.steps = module, limit, []

    def __enter__(self):
        def hook(x):
            assert x.shape[0] == 1
            self.steps.append(x[0].tolist())
            if len(self.steps) > self.limit:
                raise RuntimeError("reference generate loop did not terminate")
        self.module._TRAJ_HOOK = hook
        return self

    def __exit__(self, *exc):
        self.module._TRAJ_HOOK = lambda x: None


def transfer_counts(start, traj, mask_id=MASK_ID):
    counts, prev = [], start
    for x in traj:
        counts.append(sum(1 for a, b in zip(prev, x) if a == mask_id and b != mask_id))
        prev = x
    return counts


def decision_margins(torch, case, logits_fn):
    """Smallest margins behind the case's decisions, recomputed with full forwards of each
    step's input (so only for loops without a KV cache): the top1-top2 logit gap at every
    candidate position, the gap between the lowest committed and the highest uncommitted
    candidate confidence, and |confidence - threshold|. Candidates: masked positions of the
    current block (LLaDA loops) or all masked positions (diffusion_generate)."""
    alg = case.get("alg", "maskgit_plus")
    P = len(case["prompt_ids"])
    x = case["prompt_ids"] + [MASK_ID] * case["gen_length"]
    arg_gap = rank_gap = th_gap = math.inf
    for nx in case["trajectory"]:
        lg = logits_fn(torch.tensor([x]))[0]
        p = torch.softmax(lg.double(), dim=-1)
        cand = [i for i, t in enumerate(x) if t == MASK_ID]
        if case["block_length"] is not None:
            bl = case["block_length"]
            blk = (cand[0] - P) // bl
            cand = [i for i in cand if (i - P) // bl == blk]

        def conf(i):
            ps = torch.sort(p[i], descending=True).values
            if alg == "topk_margin":
                return float(ps[0] - ps[1])
            if alg == "entropy":
                return float((p[i] * torch.log(p[i] + 1e-10)).sum())
            return float(ps[0])

        for i in cand:
            top2 = torch.topk(lg[i], 2).values
            arg_gap = min(arg_gap, float(top2[0] - top2[1]))
        done = [conf(i) for i in cand if nx[i] != MASK_ID]
        left = [conf(i) for i in cand if nx[i] == MASK_ID]
        if done and left:
            rank_gap = min(rank_gap, min(done) - max(left))
        if case["threshold"] is not None:
            th_gap = min([th_gap] + [abs(c - case["threshold"]) for c in done + left])
        x = nx
    fin = lambda v: None if v == math.inf else float(f"{v:.3g}")  # noqa: E731
    return {"min_top1_top2_logit_gap": fin(arg_gap), "min_confidence_rank_gap": fin(rank_gap),
            "min_abs_confidence_minus_threshold": fin(th_gap)}


# ----------------------------------------------------------------------------------------
# Sections
# ----------------------------------------------------------------------------------------

def logits_section(torch, model_fn, seqs, padded_call, note):
    out = {"note": note, "sequences": []}
    unpadded = []
    for ids in seqs:
        lg = model_fn(torch.tensor([ids]))[0]
        unpadded.append(lg)
        out["sequences"].append({"ids": ids, "logits": rows(lg)})
    L = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), L), PAD_ID, dtype=torch.long)
    am = torch.zeros((len(seqs), L), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s)
        am[i, : len(s)] = 1
    lg, how = padded_call(ids, am)
    real = [lg[i, : len(s)] for i, s in enumerate(seqs)]
    out["padded_batch"] = {
        "input_ids": ids.tolist(),
        "attention_mask": am.tolist(),
        "lengths": [len(s) for s in seqs],
        "how_the_mask_was_passed": how["passed"],
        "note": how["note"],
        "logits_real_positions": [rows(t) for t in real],
        "max_abs_diff_vs_unpadded": [r7((a - b).abs().max()) for a, b in zip(real, unpadded)],
        "any_nan_real_positions": bool(any(torch.isnan(t).any() for t in real)),
    }
    return out


def fill_mask_section(torch, dist_logits_fn, ids, how):
    lg = dist_logits_fn(torch.tensor([ids]))[0]
    probs = torch.softmax(lg.double(), dim=-1)
    pos = [i for i, t in enumerate(ids) if t == MASK_ID]
    entries = []
    for p in pos:
        pr = probs[p]
        top = torch.topk(pr, 5)
        entries.append({
            "position": p,
            "top5": [[int(i), r7(v)] for v, i in zip(top.values.tolist(), top.indices.tolist())],
            "argmax_is_mask_id": int(top.indices[0]) == MASK_ID,
            "probs": [r7(v) for v in pr.tolist()],
        })
    return {"ids": ids, "mask_positions": pos, "distribution": how, "positions": entries}


def sft_grad_section(torch, F, model, logits_fn, params, shifted):
    """LLaDA's SFT loss (GUIDELINES.md) on one example with a fixed mask pattern."""
    g = torch.Generator().manual_seed(1234)
    prompt_len, total = 5, 14
    ids = torch.randint(2, MASK_ID, (1, total), generator=g)
    ids[0, -2:] = 1  # padded <EOS> answer tokens count in the answer length, as in SFT
    eps, t = 1e-3, 0.55
    p_mask_val = (1 - eps) * t + eps
    pattern = (torch.rand((1, total), generator=g) < p_mask_val)
    pattern[:, :prompt_len] = False
    assert int(pattern.sum()) >= 3
    noisy = torch.where(pattern, torch.tensor(MASK_ID), ids)
    p_mask = torch.full((1, total), p_mask_val, dtype=torch.float32)
    answer_len = total - prompt_len
    masked = noisy == MASK_ID

    model.zero_grad(set_to_none=True)
    with torch.enable_grad():
        logits = logits_fn(noisy)
        if shifted:
            logits = torch.cat([logits[:, :1], logits[:, :-1]], dim=1)
        token_loss = F.cross_entropy(logits[masked], ids[masked], reduction="none") / p_mask[masked]
        loss = torch.sum(token_loss / answer_len) / ids.shape[0]
        loss.backward()
    named = dict(model.named_parameters())
    out = {
        "input_ids": ids[0].tolist(),
        "noisy_ids": noisy[0].tolist(),
        "prompt_length": prompt_len,
        "answer_length": answer_len,
        "mask_pattern": pattern[0].int().tolist(),
        "t": t,
        "eps": eps,
        "p_mask": r7(p_mask_val),
        "logits_shifted": shifted,
        "loss": float(f"{loss.item():.9g}"),
        "token_losses": flat(token_loss.detach()),
        "grads": {},
    }
    for p in params:
        gr = named[p].grad
        out["grads"][p] = {"shape": list(gr.shape), "values": flat(gr)}
    model.zero_grad(set_to_none=True)
    return out


# ----------------------------------------------------------------------------------------
# Main
# ----------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--fast-dllm-mirror", default="/work/.mirror/NVlabs+Fast-dLLM/repo")
    ap.add_argument("--llada-mirror", default="/work/.mirror/ML-GSAI+LLaDA/repo")
    args = ap.parse_args()

    tmp_ctx = tempfile.TemporaryDirectory(prefix="llada_dream_ref_")
    tmp = tmp_ctx.name
    stage_reference(args.fast_dllm_mirror, args.llada_mirror, tmp)

    import numpy
    import safetensors
    import torch
    import torch.nn.functional as F
    import transformers
    from types import SimpleNamespace

    torch.set_num_threads(1)
    torch.manual_seed(0)

    from model.configuration_llada import LLaDAConfig
    from model.modeling_llada import LLaDAModelLM
    import fastdllm_generate as fgen
    import llada_generate as ogen
    from dream_model.configuration_dream import DreamConfig
    from dream_model.modeling_dream import DreamModel

    # ------------------------------------------------------------------ models
    llada = LLaDAModelLM(LLaDAConfig(**LLADA_CONFIG)).float().eval()
    redraw_(llada, seed=0, head=llada.model.transformer.ff_out)
    dream = DreamModel(DreamConfig(**DREAM_CONFIG)).float().eval()
    assert dream.lm_head.weight is not dream.model.embed_tokens.weight
    redraw_(dream, seed=1, head=dream.lm_head)

    llada_dir = os.path.join(FIXTURES, "llada-tiny")
    dream_dir = os.path.join(FIXTURES, "dream-tiny")
    llada_ckpt = save_checkpoint(llada, llada_dir, tmp)
    dream_ckpt = save_checkpoint(dream, dream_dir, tmp)
    built_llada, built_dream = llada, dream

    # Reload the written files with the reference classes; everything below runs on the
    # reloaded models, so the fixtures describe exactly the committed checkpoints.
    # (DreamModel.from_pretrained would also insist on a generation_config.json, which the
    # fixture does not carry, so both are rebuilt from config.json + load_state_dict.)
    from safetensors.torch import load_file

    llada = LLaDAModelLM(LLaDAConfig.from_pretrained(llada_dir)).float().eval()
    llada.load_state_dict(load_file(os.path.join(llada_dir, "model.safetensors")), strict=True)
    dream = DreamModel(DreamConfig.from_pretrained(dream_dir)).float().eval()
    dream.load_state_dict(load_file(os.path.join(dream_dir, "model.safetensors")), strict=True)
    probe = torch.tensor([[5, 9, MASK_ID, 17, 33, 2, 125]])
    with torch.no_grad():
        assert torch.equal(built_llada(probe).logits, llada(probe).logits)
        assert torch.equal(built_dream(probe).logits, dream(probe).logits)
    del built_llada, built_dream

    def llada_logits(ids, **kw):
        with torch.no_grad():
            return llada(ids, **kw).logits

    def dream_logits(ids, **kw):
        with torch.no_grad():
            return dream(ids, **kw).logits

    def dream_shift(lg):  # Dream generation_utils `_sample`
        return torch.cat([lg[:, :1], lg[:, :-1]], dim=1)

    # ------------------------------------------------------------------ inputs
    g = torch.Generator().manual_seed(42)
    seq_a = torch.randint(2, MASK_ID, (7,), generator=g)
    seq_b = torch.randint(2, MASK_ID, (12,), generator=g)
    seq_a[3] = MASK_ID
    seq_b[[1, 6, 7]] = MASK_ID
    seqs = [seq_a.tolist(), seq_b.tolist()]
    fill_ids = torch.randint(2, MASK_ID, (10,), generator=g)
    fill_ids[[0, 4, 5, 9]] = MASK_ID
    fill_ids = fill_ids.tolist()
    prompt = torch.randint(2, MASK_ID, (1, 6), generator=g)

    logit_stats = {
        "llada_logits_std": r7(llada_logits(torch.tensor([seqs[1]])).std()),
        "dream_logits_std": r7(dream_logits(torch.tensor([seqs[1]])).std()),
    }

    # ------------------------------------------------------------------ logits
    def llada_padded(ids, am):
        return llada_logits(ids, attention_mask=am), {
            "passed": "2-D long [batch, seq] (1 = real, 0 = pad) as `model(ids, attention_mask=...)`",
            "note": "Fast-dLLM's modeling_llada turns the 2-D mask into an additive bias "
                    "(LLaDAModel.forward) but LLaDABlock.attention then calls SDPA with "
                    "attn_mask=None, so the mask (and any attention_bias) is IGNORED: real "
                    "positions of the shorter row attend to the pad tokens, hence "
                    "max_abs_diff_vs_unpadded > 0 for it. RoPE positions are always 0..L-1 "
                    "whatever the mask. These logits are what the reference computes.",
        }

    dream_2d_error = None
    try:
        dream_logits(torch.tensor([seqs[1], seqs[1]]), attention_mask=torch.ones((2, 12), dtype=torch.long))
    except Exception as e:  # noqa: BLE001 — recorded below
        dream_2d_error = f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"

    def dream_padded(ids, am):
        # As generation_utils `_sample` builds it for a mask with zeros.
        m4 = torch.logical_and(am.unsqueeze(1).unsqueeze(-2), am.unsqueeze(1).unsqueeze(-1))
        return dream_logits(ids, attention_mask=m4), {
            "passed": "4-D bool [batch, 1, seq, seq] = logical_and(m[:,None,None,:], m[:,None,:,None]) "
                      "built from the 2-D mask exactly as generation_utils `_sample` does, passed "
                      "as `model(ids, attention_mask=...)`",
            "note": "modeling_dream hands attention_mask straight to SDPA as attn_mask when it is "
                    "a tensor (a plain 2-D [batch, seq] mask is not usable: "
                    f"{dream_2d_error!r}). Pad query rows are fully masked. Position ids are "
                    "always arange(L): DreamBaseModel.forward overwrites the position_ids "
                    "argument (so `_sample`'s tok_idx is ignored in this Fast-dLLM copy); with "
                    "right padding that matches the unpadded positions. Logits are raw (unshifted).",
        }

    golden = {"llada": {}, "dream": {}}
    golden["llada"]["logits"] = logits_section(
        torch, llada_logits, seqs, llada_padded,
        "model(ids).logits of LLaDAModelLM, f32, [seq, vocab] per sequence")
    golden["dream"]["logits"] = logits_section(
        torch, dream_logits, seqs, dream_padded,
        "model(ids).logits of DreamModel, f32, raw = UNSHIFTED (row i is the output at position i; "
        "Dream's sampler uses row i-1 for position i)")

    # ------------------------------------------------------------------ fill-mask
    golden["llada"]["fill_mask"] = fill_mask_section(
        torch, llada_logits, fill_ids,
        "softmax (f64 of the f32 logits) over the full vocabulary of the logits at the masked position")
    golden["dream"]["fill_mask"] = fill_mask_section(
        torch, lambda ids: dream_shift(dream_logits(ids)), fill_ids,
        "softmax over the full vocabulary of the SHIFTED logits, "
        "cat([logits[:, :1], logits[:, :-1]], dim=1) as in generation_utils `_sample`: "
        "position i uses the raw logits of position i-1, position 0 its own")

    # ------------------------------------------------------------------ generate: LLaDA
    prompt_ids = prompt[0].tolist()
    P = len(prompt_ids)

    def run_case(module, fn_name, label, model, gen_length, steps, block_length, threshold,
                 extra=None):
        fn = getattr(module, fn_name)
        kw = dict(steps=steps, gen_length=gen_length, block_length=block_length,
                  temperature=0.0, remasking="low_confidence", mask_id=MASK_ID)
        if threshold is not None or module is fgen:
            kw["threshold"] = threshold
        with Trajectory(module) as tr:
            res = fn(model, prompt.clone(), **kw)
        x, nfe = (res if isinstance(res, tuple) else (res, None))
        final = x[0].tolist()
        assert tr.steps and tr.steps[-1] == final
        start = prompt_ids + [MASK_ID] * gen_length
        case = {
            "function": label,
            "prompt_ids": prompt_ids,
            "gen_length": gen_length,
            "steps": steps,
            "block_length": block_length,
            "remasking": "low_confidence",
            "threshold": threshold,
            "temperature": 0.0,
            "mask_id": MASK_ID,
            "generated_ids": final[P:],
            "final_x": final,
            "trajectory": tr.steps,
            "transfer_counts": transfer_counts(start, tr.steps),
            "nfe": nfe if nfe is not None else len(tr.steps),
        }
        case.update(extra or {})
        return case

    llada_cases = []
    orig_grid = [(16, 16, 8), (16, 8, 16), (12, 6, 4)]
    for gl, st, bl in orig_grid:
        llada_cases.append(run_case(ogen, "generate", "llada.generate", llada, gl, st, bl, None))
    for fn_name in ("generate", "generate_with_prefix_cache", "generate_with_dual_cache"):
        # 0.9: nothing but the top-1 clears it on this model; 0.8: mixed counts; 0.3 / 0.5: the
        # first step fills the whole first block (with a cache the loop then still runs one
        # more forward that commits nothing).
        ths = (None, 0.9, 0.8, 0.3) if fn_name == "generate" else (None, 0.9, 0.8, 0.5)
        for th in ths:
            llada_cases.append(run_case(fgen, fn_name, f"fast_dllm.{fn_name}", llada, 16, 16, 8, th))
    for c in llada_cases:
        if "cache" not in c["function"]:
            c["decision_margins"] = decision_margins(torch, c, llada_logits)
    golden["llada"]["generate"] = {
        "note": "llada.generate = ML-GSAI/LLaDA generate.py generate() (fixed `steps // num_blocks` "
                "iterations per block, softmax in the logits' dtype f32); fast_dllm.* = "
                "Fast-dLLM llada/generate.py (while-loop until the block has no mask; softmax in "
                "f64; with `threshold` all masked block positions are ranked, the top-confidence one "
                "is always committed, the others only if confidence >= threshold). Canvas = prompt + "
                "gen_length mask ids; each block gets get_num_transfer_tokens(masks_in_block, "
                "steps // num_blocks) = base+1 for the first `remainder` steps, base after; the "
                "argmax runs over the full vocabulary (mask id not excluded). Prefix cache: one "
                "full forward per block (it counts as a step), then forwards of x[block_start:] "
                "against the cached prefix K/V; dual cache: forwards of the block only, against "
                "the cached K/V of everything else (replaced in place at the block). Both cache "
                "variants enter their inner while-loop unconditionally after the block's first "
                "full forward, so if that forward already filled the block (low threshold) one "
                "more forward runs and commits 0 tokens (transfer_counts has a 0). "
                "trajectory[k] = the full x after step k; transfer_counts[k] = masks filled at step k.",
        "cases": llada_cases,
    }

    # ------------------------------------------------------------------ generate: Dream
    class ShiftedDream:
        """Dream behind LLaDA's generate(): `.logits` are the shifted logits."""
        device = dream.device

        def __call__(self, x, attention_mask=None, **kw):
            assert attention_mask is None and not kw
            return SimpleNamespace(logits=dream_shift(dream_logits(x)))

    dream_cases = []
    for gl, st, bl in orig_grid:
        dream_cases.append(run_case(
            ogen, "generate", "llada.generate", ShiftedDream(), gl, st, bl, None,
            extra={"logits": "shifted: the Dream model is wrapped so that .logits = "
                             "cat([logits[:, :1], logits[:, :-1]], dim=1)"}))

    for alg in ("maskgit_plus", "topk_margin", "entropy"):
        for st in (12, 6):
            max_new = 12
            with contextlib.redirect_stdout(io.StringIO()):  # _sample prints timings
                res = dream.diffusion_generate(
                    prompt.clone(), max_new_tokens=max_new, steps=st, temperature=0.0,
                    alg=alg, alg_temp=0.0, output_history=True, return_dict_in_generate=True)
            traj = [h[0].tolist() for h in res.history]
            final = res.sequences[0].tolist()
            assert traj[-1] == final and len(traj) == st
            start = prompt_ids + [MASK_ID] * max_new
            ts = torch.linspace(1, 1e-3, st + 1)
            dream_cases.append({
                "function": "diffusion_generate",
                "alg": alg,
                "alg_temp": 0.0,
                "temperature": 0.0,
                "top_p": None,
                "top_k": None,
                "eps": 1e-3,
                "prompt_ids": prompt_ids,
                "max_new_tokens": max_new,
                "gen_length": max_new,
                "steps": st,
                "block_length": None,
                "remasking": alg,
                "threshold": None,
                "mask_id": MASK_ID,
                "timesteps_f32": [float(v) for v in ts.tolist()],
                "generated_ids": final[P:],
                "final_x": final,
                "trajectory": traj,
                "transfer_counts": transfer_counts(start, traj),
            })
    for c in dream_cases:
        c["decision_margins"] = decision_margins(torch, c, lambda ids: dream_shift(dream_logits(ids)))
    golden["dream"]["generate"] = {
        "note": "llada.generate cases: ML-GSAI/LLaDA generate() unchanged, on Dream wrapped to return "
                "SHIFTED logits (position i scored by raw row i-1). diffusion_generate cases: "
                "Fast-dLLM dream/model/generation_utils.py, called as model.diffusion_generate("
                "prompt, max_new_tokens, steps, temperature=0, alg, alg_temp=0, output_history=True, "
                "return_dict_in_generate=True); trajectory = its `history` (x after every step).",
        "diffusion_generate_canvas": "x = F.pad(prompt, (0, max_new_tokens), value=mask_token_id), i.e. "
                "prompt + max_new_tokens mask ids, one forward of the whole canvas per step, logits "
                "shifted by one (cat([l[:, :1], l[:, :-1]])). attention_mask: None or all-ones -> "
                "the string 'full' -> SDPA attn_mask=None (bidirectional); with zeros it is padded "
                "with 1s over the new tokens and turned into a 4-D bool [B,1,N,N] "
                "logical_and(m_i, m_j), and tok_idx = cumsum(m)-1 is passed as position_ids but "
                "this Fast-dLLM modeling_dream ignores position_ids (always arange).",
        "diffusion_generate_schedule": "timesteps = torch.linspace(1, eps=1e-3, steps+1) (f32, listed "
                "as timesteps_f32). At step i (t = ts[i], s = ts[i+1]) with n = the CURRENT number of "
                "masks (a float, sum/batch): k = int(n * (1 - s/t)) (f32 math, truncation) for i < "
                "steps-1, k = int(n) at the last step; if k > 0 the k masked positions with the highest "
                "confidence (topk over the whole row, non-masks at -inf) are filled with their argmax "
                "(over the full vocabulary). Because eps > 0, 1 - s/t is slightly below 1/(steps-i), so "
                "e.g. 12 masks / 12 steps gives k = int(0.999) = 0 at step 0 and the last step fills "
                "the remainder. confidence: maskgit_plus = max prob; topk_margin = top1 - top2 prob; "
                "entropy = sum p*log(p+1e-10) (negative entropy, highest first).",
        "cases": dream_cases,
    }

    # ------------------------------------------------------------------ grad
    golden["llada"]["grad"] = sft_grad_section(
        torch, F, llada, lambda ids: llada(ids).logits,
        ["model.transformer.blocks.0.q_proj.weight", "model.transformer.ln_f.weight"], shifted=False)
    golden["dream"]["grad"] = sft_grad_section(
        torch, F, dream, lambda ids: dream(ids).logits,
        ["model.layers.0.self_attn.q_proj.weight", "model.layers.0.self_attn.q_proj.bias",
         "model.norm.weight"], shifted=True)
    for k in ("llada", "dream"):
        golden[k]["grad"]["loss_formula"] = (
            "LLaDA GUIDELINES.md SFT: noisy = ids with mask_pattern positions (response only) set to the "
            "mask id; token_loss = CE(logits[masked], ids[masked]) / p_mask; loss = sum(token_loss / "
            "answer_length) / batch (batch = 1); answer_length counts all response positions incl. the "
            "trailing EOS/pad ids. p_mask = (1-eps)*t + eps. Grads of the loss w.r.t. the listed "
            "parameters (PyTorch names, row-major flattened), model in eval mode (all dropouts are 0)."
            + (" Dream: logits shifted first, so CE at masked position i uses raw row i-1."
               if k == "dream" else ""))

    # ------------------------------------------------------------------ checkpoint / meta
    golden["llada"]["checkpoint"] = {
        "dir": llada_dir, "config": LLADA_CONFIG, **llada_ckpt,
        "activation_type_note": "activation_type is 'silu' as in the released LLaDA-8B config: the "
            "llama block computes ff_out(silu(ff_proj(x)) * up_proj(x)), i.e. a SwiGLU MLP with gate = "
            "ff_proj, up = up_proj, down = ff_out. 'swiglu' makes the reference's llama block fail "
            "(SwiGLU halves ff_proj's 96 outputs to 48, then multiplies by up_proj's 96).",
    }
    golden["dream"]["checkpoint"] = {"dir": dream_dir, "config": DREAM_CONFIG, **dream_ckpt}
    any_mask_argmax = any(
        e["argmax_is_mask_id"] for k in ("llada", "dream") for e in golden[k]["fill_mask"]["positions"])
    golden["weights"] = {
        "seeds": {"llada": 0, "dream": 1, "inputs": 42, "sft_example": 1234},
        "scheme": "embeddings ~ N(0,1); Linear weights ~ N(0, gain^2/fan_in), gain 3 for the output "
                  "head (LLaDA model.transformer.ff_out, Dream lm_head), 1 otherwise; biases ~ 0.1 N(0,1); "
                  "RMSNorm weights ~ 1 + 0.1 N(0,1); then the output-head row of the mask id is zeroed "
                  "(its logit is exactly 0). Drawn in named_modules() order from torch.Generator(seed).",
        **logit_stats,
        "argmax_is_mask_id_in_fill_mask": any_mask_argmax,
    }
    golden["reference"] = {
        "fast_dllm": {"repo": FAST_DLLM_REPO, "commit": FAST_DLLM_COMMIT,
                      "files": ["llada/model/configuration_llada.py", "llada/model/modeling_llada.py",
                                "llada/generate.py", "dream/model/configuration_dream.py",
                                "dream/model/modeling_dream.py", "dream/model/generation_utils.py"]},
        "llada": {"repo": LLADA_REPO, "commit": LLADA_COMMIT, "files": ["generate.py"]},
        "patch": "one `_TRAJ_HOOK(x)` line after every `x...[transfer_index] = x0[transfer_index]` "
                 "line of the two generate.py files (records x after each step); nothing else",
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "safetensors": safetensors.__version__,
        "numpy": numpy.__version__,
        "dtype": "float32",
        "device": "cpu",
        "script": "scripts/reference/llada_dream_fixtures.py",
    }
    golden["schema"] = SCHEMA

    path = os.path.join(FIXTURES, "llada_dream_golden.json")
    with open(path, "w") as fh:
        fh.write(dumps(golden))
        fh.write("\n")

    # ------------------------------------------------------------------ summary
    print(f"wrote {llada_dir}/{{config.json,model.safetensors}} ({len(llada_ckpt['tensor_names'])} tensors)")
    print(f"wrote {dream_dir}/{{config.json,model.safetensors}} ({len(dream_ckpt['tensor_names'])} tensors)")
    print(f"wrote {path} ({os.path.getsize(path) // 1024} KiB)")
    print(f"logit std: llada {logit_stats['llada_logits_std']}, dream {logit_stats['dream_logits_std']}")
    for k in ("llada", "dream"):
        pb = golden[k]["logits"]["padded_batch"]
        print(f"{k}: padded max|diff| vs unpadded {pb['max_abs_diff_vs_unpadded']}, nan {pb['any_nan_real_positions']}")
        for c in golden[k]["generate"]["cases"]:
            print(f"  {c['function']:<38} alg/th={c.get('alg', c['threshold'])!s:<12} "
                  f"gl={c['gen_length']} st={c['steps']} bl={c['block_length']} "
                  f"nsteps={len(c['trajectory'])} counts={c['transfer_counts']} gen={c['generated_ids']}")
        print(f"  grad loss {golden[k]['grad']['loss']}")
    tmp_ctx.cleanup()


SCHEMA = {
    "<model>": "'llada' or 'dream'",
    "<model>.logits.sequences[]": "{ids: [int], logits: [seq][vocab] f32 from model(ids).logits (Dream: raw, unshifted)}",
    "<model>.logits.padded_batch": "{input_ids [2][12] right-padded with pad id 1, attention_mask [2][12], lengths, "
                                   "how_the_mask_was_passed, note, logits_real_positions [2][len_i][vocab], "
                                   "max_abs_diff_vs_unpadded [2], any_nan_real_positions}",
    "<model>.fill_mask": "{ids, mask_positions, distribution (what the probabilities are), positions[]: "
                         "{position, top5 [[id, prob]] descending, argmax_is_mask_id, probs [vocab]}}",
    "<model>.generate": "{note, cases[]} (Dream also: diffusion_generate_canvas, diffusion_generate_schedule)",
    "<model>.generate.cases[]": "{function ('llada.generate' | 'fast_dllm.generate' | "
                                "'fast_dllm.generate_with_prefix_cache' | 'fast_dllm.generate_with_dual_cache' | "
                                "'diffusion_generate'), prompt_ids, gen_length, steps, block_length (null for "
                                "diffusion_generate), remasking, threshold (null or float), temperature, mask_id, "
                                "generated_ids (final x after the prompt), final_x, trajectory ([steps][len] full x "
                                "after every step), transfer_counts (masks filled per step), decision_margins (no-cache cases: "
                                "smallest top1-top2 logit gap / confidence-rank gap / |conf - threshold| behind "
                                "the decisions; null where not applicable); LLaDA-loop cases: nfe; "
                                "Dream llada.generate cases: logits; diffusion_generate cases: alg, alg_temp, top_p, "
                                "top_k, eps, max_new_tokens, timesteps_f32}",
    "<model>.grad": "{input_ids, noisy_ids, prompt_length, answer_length, mask_pattern [0/1], t, eps, p_mask, "
                    "logits_shifted, loss, token_losses, grads: {param_name: {shape, values (row-major)}}, loss_formula}",
    "<model>.checkpoint": "{dir, config (the constructor kwargs), save_pretrained_wrote, kept, "
                          "config_keys_removed, tensor_names}",
    "weights": "how the random weights were drawn, seeds, logit std",
    "reference": "repos, commits, files, patch, package versions",
    "floats": "7 significant digits (loss: 9)",
}


def dumps(obj, indent=0):
    """JSON with dicts indented and lists of scalars on one line."""
    pad = "  " * indent
    if isinstance(obj, dict):
        if not obj:
            return "{}"
        items = [f'{pad}  {json.dumps(k)}: {dumps(v, indent + 1)}' for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + f"\n{pad}}}"
    if isinstance(obj, list):
        if all(not isinstance(v, (dict, list)) for v in obj):
            return json.dumps(obj, separators=(",", ":"))
        if all(isinstance(v, list) and all(not isinstance(u, (dict, list)) for u in v) for v in obj):
            return "[\n" + ",\n".join(f"{pad}  {json.dumps(v, separators=(',', ':'))}" for v in obj) + f"\n{pad}]"
        return "[\n" + ",\n".join(f"{pad}  {dumps(v, indent + 1)}" for v in obj) + f"\n{pad}]"
    return json.dumps(obj)


if __name__ == "__main__":
    main()
