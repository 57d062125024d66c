"""Summary of scripts/bench/cache.sh. Stdlib only.

    python3 cache_report.py llada TORCH_JSONL DLM_JSONL
        Part 1 (cache_torch.py / cache_dlm.py llada lines): per dtype and mode, seconds,
        generated tokens/s, forward passes (NFE) and generated tokens per forward for
        Fast-dLLM's loops and dlm, dlm ÷ Fast-dLLM throughput, whether the generated ids are
        identical; then dlm fast-dllm/dual ÷ dlm llada/none throughput (target ≥ 5) and dlm
        ÷ Fast-dLLM throughput with the dual cache (target ≥ 3).

    python3 cache_report.py reparam TORCH_JSON DLM_JSONL
        Part 2 (sample_torch.py line / cache_dlm.py reparam lines): the released sampler and
        dlm per --cache, seconds, tokens/s, ratios and identical outputs (and a warning where
        dlm eval's predictions differ from dlm generate's texts).
"""
import json
import sys


def lines(path):
    with open(path) as fh:
        return [json.loads(line) for line in fh if line.strip().startswith("{")]


def dtypes_of(j):
    return [d for d in ("f32", "bf16") if f"{d}_s" in j]


def same_ids(a, b):
    same = [x == y for x, y in zip(a, b)]
    first = next((i for i, s in enumerate(same) if not s), None)
    n = max(len(a), len(b))
    return f"{sum(same)}/{n}" + ("" if first is None and len(a) == len(b) else f" (first difference at {first})")


def llada(torch_jsonl, dlm_jsonl):
    ps, rs = lines(torch_jsonl), lines(dlm_jsonl)
    p0 = ps[0]
    rs = {r["mode"]: r for r in rs}
    print(f"part 1: LLaDA-shaped model, prompt {len(p0['prompt_ids'])}, {p0['tokens']} tokens, {p0['steps']} steps "
          f"(llada; fast-dllm: threshold {next((p['threshold'] for p in ps if p['threshold'] is not None), None)}), "
          f"block {p0['block_length']}, temperature 0, batch 1; torch {p0['torch']} ({p0['threads']} threads)")
    print("  Fast-dLLM: generate / generate_with_prefix_cache / generate_with_dual_cache (threshold=None for llada); "
          "seconds: best of the runs, dlm's end to end minus a load-only run")
    for p in ps:
        if p["mode"] in rs:
            print(f"  dlm {p['mode']}: {rs[p['mode']]['command']}")
    hdr = (f"  {'dtype':5} {'mode':16} | {'Fast-dLLM s':>11} {'tok/s':>8} {'NFE':>5} {'tok/fwd':>7} | "
           f"{'dlm s':>9} {'tok/s':>8} {'NFE':>5} {'tok/fwd':>7} | {'dlm/ref':>7} | ids identical")
    print(hdr)
    rate = {}
    for dtype in ("f32", "bf16"):
        for p in ps:
            if f"{dtype}_s" not in p:
                continue
            m, n = p["mode"], p["tokens"]
            r = rs.get(m)
            rate["pytorch", m, dtype] = n / p[f"{dtype}_s"]
            pn = p[f"{dtype}_nfe"]
            cells = f"{p[dtype + '_s']:11.3f} {rate['pytorch', m, dtype]:8.2f} {pn:5d} {n / pn:7.2f}"
            if r is None or f"{dtype}_s" not in r:
                print(f"  {dtype:5} {m:16} | {cells} | (no dlm run)")
                continue
            rate["dlm", m, dtype] = n / r[f"{dtype}_s"]
            rn = r.get(f"{dtype}_nfe")
            nfe = f"{rn:5d} {n / rn:7.2f}" if rn else f"{'-':>5} {'-':>7}"
            same = same_ids(p[f"{dtype}_ids"], r[f"{dtype}_ids"]) + ("" if dtype == "f32" else " (not expected)")
            print(f"  {dtype:5} {m:16} | {cells} | {r[dtype + '_s']:9.3f} {rate['dlm', m, dtype]:8.2f} {nfe} | "
                  f"{rate['dlm', m, dtype] / rate['pytorch', m, dtype]:7.2f} | {same}")
    print("  (dlm's NFE can be lower than Fast-dLLM's with a cache: when a block's first, full forward fills the "
          "block, the reference runs one more forward that transfers nothing; dlm does not)")
    for dtype in ("f32", "bf16"):
        a, b = ("dlm", "fast-dllm/dual", dtype), ("dlm", "llada/none", dtype)
        if a in rate and b in rate:
            print(f"  {dtype}: dlm fast-dllm/dual ÷ dlm llada/none throughput: {rate[a] / rate[b]:.2f} (target ≥ 5)")
        c = ("dlm", "fast-dllm/none", dtype)
        if a in rate and c in rate:
            print(f"  {dtype}: dlm fast-dllm/dual ÷ dlm fast-dllm/none throughput: {rate[a] / rate[c]:.2f}")
        for m in ("llada/dual", "fast-dllm/dual"):
            if ("dlm", m, dtype) in rate and ("pytorch", m, dtype) in rate:
                print(f"  {dtype}: dlm {m} ÷ Fast-dLLM {m} throughput: "
                      f"{rate['dlm', m, dtype] / rate['pytorch', m, dtype]:.2f} (target ≥ 3)")


def reparam(torch_json, dlm_jsonl):
    p, rs = lines(torch_json)[-1], lines(dlm_jsonl)
    n = p["tokens"]
    print(f"part 2: XLM-R-base-shaped model, {p['prompts']} prompts (oracle length), {n} generated tokens, "
          f"K = {p['steps']}, reparam-uncond, cosine, argmax, batch {p['batch']} (dlm: {rs[0]['batch'] if rs else '-'}); "
          f"torch {p['torch']} ({p['threads']} threads, {p['attention']} attention); seconds: median of the runs "
          f"(dlm: dlm eval's generation_seconds; ids from one dlm generate per prompt)")
    if any(r["tokens"] != n for r in rs):
        print("  WARNING: dlm generated another number of tokens than the released sampler: the canvases differ")
    none = next((r for r in rs if r["cache"] == "none"), None)
    for r in rs:
        print(f"  dlm --cache {r['cache']}: {r['command']}")
    for dtype in ("f32", "bf16"):
        ref = n / p[f"{dtype}_s"]
        print(f"  {dtype}: released sampler {p[dtype + '_s']:.3f} s ({ref:.1f} tokens/s)")
        for r in rs:
            if f"{dtype}_s" not in r:
                continue
            rate = n / r[f"{dtype}_s"]
            outs = r[f"{dtype}_outputs"]
            k = len(outs)
            same_ref = sum(a == b for a, b in zip(p[f"{dtype}_outputs"], outs))
            line = (f"  {dtype}: dlm --cache {r['cache']:<10} {r[dtype + '_s']:.3f} s (best {r[dtype + '_best_s']:.3f} s), "
                    f"{rate:.1f} tokens/s, ÷ released {rate / ref:.2f}")
            if none is not None and r is not none and f"{dtype}_s" in none:
                same_none = sum(a == b for a, b in zip(none[f"{dtype}_outputs"], outs))
                line += f", ÷ dlm none {none[dtype + '_s'] / r[dtype + '_s']:.2f}, outputs = dlm none: {same_none}/{k}"
            expected = " (expected all)" if dtype == "f32" and r["cache"] == "none" else ""
            match = r[f"{dtype}_eval_matches_generate"]
            check = "" if match == k else f"; only {match}/{k} eval predictions equal generate's text"
            print(line + f", outputs = released: {same_ref}/{k}{expected}{check}")


if __name__ == "__main__":
    {"llada": llada, "reparam": reparam}[sys.argv[1]](*sys.argv[2:4])
