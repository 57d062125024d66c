"""PyTorch side of the KV-cache benchmark (scripts/bench/cache.sh, part 1): Fast-dLLM's own
generation loops (NVlabs/Fast-dLLM llada/generate.py @ 24cc59e: `generate`,
`generate_with_prefix_cache`, `generate_with_dual_cache`, copied unchanged out of the git
mirror with its modeling_llada by llada_dream_models.py) on a LLaDA checkpoint that
llada_dream_models.py wrote. Prints one JSON line per mode.

    python cache_torch.py DIR PROMPT GEN STEPS BLOCK REPEATS DTYPES MODES

MODES: comma list of ALG/CACHE, ALG llada (threshold=None: LLaDA's fixed counts,
get_num_transfer_tokens over STEPS / blocks steps per block) or fast-dllm (threshold =
the env THRESHOLD, default 0.9), CACHE none (`generate`), prefix
(`generate_with_prefix_cache`) or dual (`generate_with_dual_cache`); e.g.
llada/none,fast-dllm/dual. The prompt is llada_torch.py's (PROMPT seeded random ids below
every special id, seed 42), so the same as scripts/bench/llada.sh's; GEN generated tokens,
temperature 0, remasking low_confidence, batch 1. DTYPES: comma list of f32, bf16 (bf16 =
torch.autocast(cpu, bfloat16)). Per mode and dtype: one warm-up forward of the canvas and a
warm-up generation of one block (2 steps), then REPEATS whole generations; reports the best
(min) seconds ({dtype}_s), all times ({dtype}_times), the generated ids ({dtype}_ids) and
the number of forward passes the loop counts ({dtype}_nfe: Fast-dLLM's own `nfe`, every
call of the model, full or cached).

Env: THREADS (torch threads, default 2), DEVICE (cpu, the default, or cuda), THRESHOLD.
"""
import contextlib
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from llada_dream_models import load, stage_reference  # noqa: E402

_tmp = stage_reference()
import torch  # noqa: E402

import fastdllm_generate  # noqa: E402  (staged by stage_reference)

LOOPS = {"none": fastdllm_generate.generate, "prefix": fastdllm_generate.generate_with_prefix_cache,
         "dual": fastdllm_generate.generate_with_dual_cache}


def ctx(dtype, device):
    if dtype == "f32":
        return contextlib.nullcontext()
    assert dtype == "bf16", dtype
    return torch.autocast(device.type, dtype=torch.bfloat16)


def main():
    path, prompt_len, gen, steps, block, repeats, dtypes, modes = sys.argv[1:9]
    prompt_len, gen, steps, block, repeats = (int(v) for v in (prompt_len, gen, steps, block, repeats))
    dtypes, modes = dtypes.split(","), [m.split("/") for m in modes.split(",")]
    for m in modes:
        if len(m) != 2 or m[0] not in ("llada", "fast-dllm") or m[1] not in LOOPS:
            raise SystemExit(f"mode {'/'.join(m)!r}: ALG/CACHE with ALG llada|fast-dllm, CACHE none|prefix|dual")
    threshold = float(os.environ.get("THRESHOLD", "0.9"))
    torch.set_num_threads(int(os.environ.get("THREADS", "2")))
    device = torch.device(os.environ.get("DEVICE", "cpu"))
    model = load("llada", path).to(device)
    cfg = model.config
    mask_id = cfg.mask_token_id
    # The prompt exactly as llada_torch.py draws it.
    specials = [getattr(cfg, k, None) for k in ("mask_token_id", "bos_token_id", "eos_token_id", "pad_token_id")]
    hi = min(v for v in specials if v is not None)
    g = torch.Generator().manual_seed(42)
    prompt = torch.randint(100, hi, (1, prompt_len), generator=g).to(device)

    for alg, cache in modes:
        thr = threshold if alg == "fast-dllm" else None
        loop = LOOPS[cache]

        def run(gen=gen, steps=steps, block=block):
            return loop(model, prompt.clone(), steps=steps, gen_length=gen, block_length=block, temperature=0.0,
                        remasking="low_confidence", mask_id=mask_id, threshold=thr)

        ref = {"none": "generate", "prefix": "generate_with_prefix_cache", "dual": "generate_with_dual_cache"}[cache]
        out = {"impl": "pytorch", "model": "llada", "torch": torch.__version__, "device": str(device),
               "threads": torch.get_num_threads(), "alg": alg, "cache": cache, "mode": f"{alg}/{cache}",
               "reference": f"Fast-dLLM {ref}(threshold={thr})", "prompt_ids": prompt[0].tolist(),
               "gen_length": gen, "steps": steps, "block_length": block, "threshold": thr, "mask_id": mask_id,
               "tokens": gen}
        for dtype in dtypes:
            times, ids, nfe = [], None, None
            with torch.inference_mode(), ctx(dtype, device):
                canvas = torch.cat([prompt, torch.full((1, gen), mask_id, device=device)], dim=1)
                model(canvas).logits  # warm-up: the model at the canvas length,
                run(gen=block, steps=2, block=block)  # and the loop's code
                for _ in range(repeats):
                    t = time.perf_counter()
                    x, n = run()
                    times.append(time.perf_counter() - t)
                    new = x[0, prompt_len:].tolist()
                    assert ids is None or (ids, nfe) == (new, n), "two runs of the reference differ"
                    ids, nfe = new, n
            out[f"{dtype}_s"], out[f"{dtype}_times"] = min(times), times
            out[f"{dtype}_ids"], out[f"{dtype}_nfe"] = ids, nfe
        print(json.dumps(out), flush=True)


main()
_tmp.cleanup()
