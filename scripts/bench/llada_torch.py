"""PyTorch side of the LLaDA / Dream benchmark (scripts/bench/llada.sh): the authors' own
reference code (Fast-dLLM's modeling_llada / modeling_dream, the original LLaDA generate(),
Fast-dLLM's generate(), Dream's diffusion_generate; copied unchanged out of the git mirrors by
llada_dream_models.py) on a checkpoint llada_dream_models.py wrote. Prints one JSON line.

    python llada_torch.py KIND DIR forward SHAPE REPEATS
        KIND llada|dream; SHAPE BxS (e.g. 1x320). Ids as dlm's forward_bench example makes
        them (1000 + (i * 7919 % 29000), row-major), logits of every position. After one
        warm-up, REPEATS forwards in f32 and in bf16 autocast; prints the median seconds per
        forward (f32_s, bf16_s; as forward_torch.py and forward_bench) and the best (*_best_s).

    python llada_torch.py KIND DIR generate ALG PROMPT GEN STEPS BLOCK REPEATS DTYPES [THRESHOLD]
        One prompt of PROMPT seeded random ids (below every special id), GEN generated tokens,
        temperature 0, no cache, batch 1. ALG:
          llada      ML-GSAI/LLaDA generate.py generate(steps, gen_length, block_length,
                     remasking='low_confidence'); on Dream over the SHIFTED logits
                     (cat([l[:, :1], l[:, :-1]]), as Dream's sampler reads them)
          fast-dllm  Fast-dLLM llada/generate.py generate(..., threshold=THRESHOLD) (same
                     wrapping on Dream)
          dream      Dream's model.diffusion_generate(max_new_tokens=GEN, steps=STEPS,
                     temperature=0, alg='maskgit_plus', alg_temp=0) (Dream only; BLOCK unused)
        DTYPES: comma list of f32, bf16 (bf16 = torch.autocast(cpu, bfloat16)). Per dtype one
        warm-up forward of the canvas and a 2-step warm-up generation, then REPEATS whole
        generations; reports the best (min) seconds ({dtype}_s), all times ({dtype}_times) and
        the generated ids ({dtype}_ids). ALG dream also reports the top_k / top_p that
        diffusion_generate really applies (with transformers 4.49: 50 / 1.0, from the global
        generation defaults the model config carries; see generate()).

Env: THREADS (torch threads, default 2), DEVICE (cpu, the default, or cuda).
"""
import contextlib
import io
import json
import os
import statistics
import sys
import time
from types import SimpleNamespace

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from llada_dream_models import load, stage_reference  # noqa: E402

_tmp = stage_reference()
import torch  # noqa: E402

torch.set_num_threads(int(os.environ.get("THREADS", "2")))
device = torch.device(os.environ.get("DEVICE", "cpu"))
kind, path, what = sys.argv[1:4]
assert kind in ("llada", "dream"), kind
model = load(kind, path).to(device)
cfg = model.config
mask_id = cfg.mask_token_id


def ctx(dtype):
    if dtype == "f32":
        return contextlib.nullcontext()
    assert dtype == "bf16", dtype
    return torch.autocast(device.type, dtype=torch.bfloat16)


def head():
    return {"impl": "pytorch", "model": kind, "torch": torch.__version__, "device": str(device),
            "threads": torch.get_num_threads()}


def forward(shape, repeats):
    b, s = (int(v) for v in shape.split("x"))
    ids = torch.tensor([1000 + (i * 7919 % 29000) for i in range(b * s)]).reshape(b, s).to(device)
    out = {**head(), "shape": shape}
    for dtype in ("f32", "bf16"):
        times = []
        with torch.inference_mode(), ctx(dtype):
            model(ids).logits  # warm-up
            for _ in range(repeats):
                t = time.perf_counter()
                model(ids).logits.float().sum().item()
                times.append(time.perf_counter() - t)
        out[f"{dtype}_s"] = statistics.median(times)
        out[f"{dtype}_best_s"] = min(times)
    return out


class Shifted:
    """Dream behind the LLaDA loops: `.logits` are the shifted logits."""

    def __init__(self, m):
        self.m, self.device = m, m.device

    def __call__(self, x, attention_mask=None, **kw):
        assert attention_mask is None and not kw
        lg = self.m(x).logits
        return SimpleNamespace(logits=torch.cat([lg[:, :1], lg[:, :-1]], dim=1))


def generate(alg, prompt_len, gen, steps, block, repeats, dtypes, threshold):
    import fastdllm_generate
    import llada_generate

    specials = [getattr(cfg, k, None) for k in ("mask_token_id", "bos_token_id", "eos_token_id", "pad_token_id")]
    hi = min(v for v in specials if v is not None)
    g = torch.Generator().manual_seed(42)
    prompt = torch.randint(100, hi, (1, prompt_len), generator=g).to(device)
    lm = model if kind == "llada" else Shifted(model)
    extra = {}

    dream_kw = dict(temperature=0.0, alg="maskgit_plus", alg_temp=0.0)

    def run(gen=gen, steps=steps, block=block):
        if alg == "llada":
            return llada_generate.generate(lm, prompt.clone(), steps=steps, gen_length=gen, block_length=block,
                                           temperature=0.0, remasking="low_confidence", mask_id=mask_id)
        if alg == "fast-dllm":
            x, nfe = fastdllm_generate.generate(lm, prompt.clone(), steps=steps, gen_length=gen, block_length=block,
                                                temperature=0.0, remasking="low_confidence", mask_id=mask_id,
                                                threshold=threshold)
            extra["nfe"] = nfe
            return x
        if alg == "dream":
            assert kind == "dream", "alg dream needs the Dream model"
            with contextlib.redirect_stdout(io.StringIO()):  # _sample prints its own timing
                return model.diffusion_generate(prompt.clone(), max_new_tokens=gen, steps=steps, **dream_kw)
        raise SystemExit(f"unknown ALG {alg!r}")

    out = {**head(), "alg": alg, "prompt_ids": prompt[0].tolist(), "gen_length": gen, "steps": steps,
           "block_length": None if alg == "dream" else block, "threshold": threshold, "mask_id": mask_id,
           "tokens": gen}
    if alg == "dream":
        # The settings diffusion_generate really runs with. With transformers 4.49 the model
        # config carries PretrainedConfig's global generation defaults (top_k 50, top_p 1.0),
        # and DreamGenerationConfig.from_model_config picks them up: Dream's sampler keeps
        # only the 50 most likely tokens of each position before reading tokens and
        # confidences (top_p 1.0 filters nothing). dlm gets the same --top-k.
        gc = model._prepare_generation_config(None, max_new_tokens=gen, steps=steps, **dream_kw)
        out.update(top_k=gc.top_k, top_p=gc.top_p, eps=gc.eps)
    for dtype in dtypes:
        times, ids = [], None
        with torch.inference_mode(), ctx(dtype):
            canvas = torch.cat([prompt, torch.full((1, gen), mask_id, device=device)], dim=1)
            model(canvas).logits  # warm-up: the model at the canvas length,
            run(gen=block, steps=2, block=block) if alg != "dream" else run(gen=8, steps=2)  # and the loop's code
            for _ in range(repeats):
                t = time.perf_counter()
                x = run()
                times.append(time.perf_counter() - t)
                new = x[0, prompt_len:].tolist()
                assert ids is None or ids == new, "two runs of the reference generated different ids"
                ids = new
        out[f"{dtype}_s"], out[f"{dtype}_times"], out[f"{dtype}_ids"] = min(times), times, ids
        if "nfe" in extra:
            out[f"{dtype}_nfe"] = extra["nfe"]
    return out


if what == "forward":
    result = forward(sys.argv[4], int(sys.argv[5]))
elif what == "generate":
    a = sys.argv[4:]
    result = generate(a[0], int(a[1]), int(a[2]), int(a[3]), int(a[4]), int(a[5]), a[6].split(","),
                      float(a[7]) if len(a) > 7 else None)
else:
    raise SystemExit(f"unknown mode {what!r}: forward or generate")
print(json.dumps(result))
_tmp.cleanup()
