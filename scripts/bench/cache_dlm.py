"""dlm side of the KV-cache benchmark (scripts/bench/cache.sh): `dlm generate` / `dlm eval`
with `--cache`, on the prompts the PyTorch side used (read from its JSON output). Prints one
JSON line per mode. Stdlib only (any python3).

    python3 cache_dlm.py llada DLM DIR TORCH_JSONL REPEATS DTYPES
        Part 1. One mode per line of cache_torch.py's output (its alg/cache), same prompt,
        GEN, STEPS, BLOCK and mask id:
          llada/C      dlm generate --strategy llada --block-length B --steps K --length L --cache C
          fast-dllm/C  dlm generate --strategy fast-dllm --threshold P --block-length B --steps K
                       --length L --cache C
        plus --prompt-ids, --mask-id, --dtype, --json; argmax decoding (the reference runs at
        temperature 0). `dlm generate` has no timer of its own, so the process is timed end
        to end and the best of max(3, REPEATS) load-only runs (same model, prompt and dtype,
        --strategy llada --block-length 1 --length 1 --steps 1) is subtracted, as
        llada_dlm.py does: {dtype}_s = best(total) - best(load) over REPEATS runs (raw times
        in {dtype}_total_times / {dtype}_load_times). Forward passes ({dtype}_nfe): the number
        of canvases of `--trajectory` (the sampler records one after every step, and every
        step of a batch-1 run is one forward, full or cached). NFE=separate (default): from
        one extra untimed run per mode and dtype with --trajectory (its ids must equal the
        timed runs'); NFE=timed: the timed runs carry --trajectory themselves (no extra run;
        they then also copy the canvas after every step and print every canvas); NFE=off.

    python3 cache_dlm.py reparam DLM DIR TORCH_JSON REPEATS DTYPES CACHES DATA BATCH
        Part 2. sample_torch.py's setting: the first PROMPTS rows of DATA (a prompted JSONL)
        at oracle length, reparam-uncond, cosine, argmax, K steps (PROMPTS and K from
        TORCH_JSON); for each C of the comma list CACHES (none, refresh:2, ...) and dtype:
          timing  REPEATS runs of `dlm eval --task EVAL_TASK (env, default iwslt14-deen)
                  --data DATA --limit PROMPTS --oracle-length --batch-size BATCH --steps K
                  --strategy reparam-uncond --schedule cosine --cache C --dtype D --out ...`;
                  {dtype}_s is the median of its report's timing.generation_seconds (in
                  process, loading excluded; the first batch is not a warm-up, so one-time
                  work of the first forward is included), {dtype}_best_s the best;
          ids     (eval writes text only) one untimed `dlm generate --prompt-ids (the canvas
                  up to its first mask) --length L` per canvas of TORCH_JSON, same sampler
                  and cache, whose canvas is checked against the torch one outside the masks
                  ({dtype}_outputs); {dtype}_eval_matches_generate counts the prompts whose
                  eval prediction equals generate's text (eval and generate ran the same).

Env: DLM_NUM_THREADS / RAYON_NUM_THREADS as cache.sh sets them; NFE (part 1), EVAL_TASK (part 2).
"""
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time


def timed(cmd, parse=True):
    t = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True)
    dt = time.perf_counter() - t
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:3])} ... failed ({p.returncode}):\n{p.stderr[-4000:]}")
    return dt, (json.loads(p.stdout.strip().splitlines()[-1]) if parse else None)


def loads(cmd, repeats):
    return [timed(cmd)[0] for _ in range(max(3, repeats))]


def llada(dlm, path, torch_jsonl, repeats, dtypes):
    with open(torch_jsonl) as fh:
        refs = [json.loads(line) for line in fh if line.strip().startswith("{")]
    if not refs:
        raise SystemExit(f"{torch_jsonl}: no JSON line")
    nfe_mode = os.environ.get("NFE", "separate")
    if nfe_mode not in ("separate", "timed", "off"):
        raise SystemExit(f"NFE={nfe_mode}: separate, timed or off")
    first = refs[0]
    prompt = ",".join(str(i) for i in first["prompt_ids"])
    base = ["generate", "--model", path, "--prompt-ids", prompt, "--mask-id", str(first["mask_id"]), "--json"]
    load_args = ["--strategy", "llada", "--block-length", "1", "--steps", "1", "--length", "1"]
    load_times = {d: loads([dlm] + base + load_args + ["--dtype", d], repeats) for d in dtypes}
    for ref in refs:
        assert (ref["prompt_ids"], ref["mask_id"]) == (first["prompt_ids"], first["mask_id"]), "prompts differ"
        gen, steps, block, alg, cache = ref["gen_length"], ref["steps"], ref["block_length"], ref["alg"], ref["cache"]
        if alg == "llada":
            args = ["--strategy", "llada"]
        elif alg == "fast-dllm":
            args = ["--strategy", "fast-dllm", "--threshold", str(ref["threshold"])]
        else:
            raise SystemExit(f"unknown alg {alg!r}")
        args += ["--block-length", str(block), "--steps", str(steps), "--length", str(gen), "--cache", cache]
        out = {"impl": "dlm", "model": "llada", "alg": alg, "cache": cache, "mode": ref["mode"], "tokens": gen,
               "command": " ".join([dlm] + base[:3] + ["..."] + args),
               "timing": "end to end minus a --length 1 --steps 1 run (load)", "nfe_from": nfe_mode}
        for dtype in dtypes:
            d = ["--dtype", dtype] + (["--trajectory"] if nfe_mode == "timed" else [])
            totals, ids, nfe = [], None, None
            for _ in range(repeats):
                dt, res = timed([dlm] + base + args + d)
                totals.append(dt)
                assert ids is None or ids == res["generated_ids"], "two runs of dlm generated different ids"
                ids = res["generated_ids"]
                if nfe_mode == "timed":
                    nfe = len(res["trajectory"])
            if nfe_mode == "separate":
                _, res = timed([dlm] + base + args + ["--dtype", dtype, "--trajectory"])
                assert res["generated_ids"] == ids, "the --trajectory run generated other ids than the timed runs"
                nfe = len(res["trajectory"])
            out[f"{dtype}_s"] = min(totals) - min(load_times[dtype])
            out[f"{dtype}_total_times"], out[f"{dtype}_load_times"] = totals, load_times[dtype]
            out[f"{dtype}_ids"], out[f"{dtype}_nfe"] = ids, nfe
        print(json.dumps(out), flush=True)


def mask_id_of(path):
    """The id of `<mask>` in the model folder's tokenizer.json (XLM-R: 250001)."""
    with open(os.path.join(path, "tokenizer.json")) as fh:
        tok = json.load(fh)
    for t in tok.get("added_tokens", []):
        if t["content"] == "<mask>":
            return t["id"]
    raise SystemExit(f"{path}/tokenizer.json: no <mask> token")


def reparam(dlm, path, torch_json, repeats, dtypes, caches, data, batch):
    with open(torch_json) as fh:
        ref = json.loads(fh.read().strip().splitlines()[-1])
    mask = mask_id_of(path)
    jobs = []  # (prompt ids, number of masks, canvas)
    for i, c in enumerate(ref["canvases"]):
        m = c.index(mask)
        n = c.count(mask)
        if c[m:m + n] != [mask] * n or len(c) != m + n + 1:
            raise SystemExit(f"canvas {i} is not `prompt <mask>×L </s>`: dlm generate cannot build it")
        jobs.append((",".join(map(str, c[:m])), n, c))
    steps, prompts = ref["steps"], len(jobs)
    sampler = ["--strategy", "reparam-uncond", "--schedule", "cosine", "--steps", str(steps), "--seed", "0"]
    task = os.environ.get("EVAL_TASK", "iwslt14-deen")
    ev = ["eval", "--model", path, "--task", task, "--data", data, "--limit", str(prompts), "--oracle-length",
          "--batch-size", str(batch)] + sampler
    gen = ["generate", "--model", path, "--json"] + sampler
    tmp = tempfile.mkdtemp(prefix="cache_dlm_eval_")
    try:
        for cache in caches:
            out = {"impl": "dlm", "model": "xlmr", "cache": cache, "prompts": prompts, "steps": steps, "batch": batch,
                   "tokens": sum(n for _, n, _ in jobs),
                   "command": " ".join([dlm] + ev + ["--cache", cache]),
                   "timing": "dlm eval's generation_seconds (in process, without loading; no warm-up batch)"}
            for dtype in dtypes:
                secs, preds = [], None
                for _ in range(repeats):
                    report = os.path.join(tmp, "report.json")
                    timed([dlm] + ev + ["--cache", cache, "--dtype", dtype, "--out", report], parse=False)
                    with open(report) as fh:
                        secs.append(json.load(fh)["timing"]["generation_seconds"])
                    with open(os.path.join(tmp, "report.predictions.jsonl")) as fh:
                        p = {j["index"]: j["prediction"] for j in map(json.loads, fh) if j}
                    new = [p.get(i) for i in range(prompts)]
                    assert preds is None or preds == new, "two runs of dlm eval predicted different texts"
                    preds = new
                # The ids, untimed: one dlm generate per canvas (eval writes text only).
                outputs, texts = [], []
                for prompt, n, canvas in jobs:
                    _, res = timed([dlm] + gen + ["--prompt-ids", prompt, "--length", str(n), "--cache", cache,
                                                  "--dtype", dtype])
                    fixed = [(t, c) for t, c in zip(res["ids"], canvas) if c != mask]
                    if len(res["ids"]) != len(canvas) or any(t != c for t, c in fixed):
                        raise SystemExit(f"dlm's canvas differs from the torch canvas outside the masks:\n"
                                         f"{res['ids']}\n{canvas}")
                    outputs.append(res["generated_ids"])
                    texts.append((res.get("text") or "").strip())
                out[f"{dtype}_s"], out[f"{dtype}_best_s"], out[f"{dtype}_times"] = statistics.median(secs), min(secs), secs
                out[f"{dtype}_outputs"], out[f"{dtype}_eval_predictions"] = outputs, preds
                out[f"{dtype}_eval_matches_generate"] = sum(a == b for a, b in zip(preds, texts))
            print(json.dumps(out), flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    what, a = sys.argv[1], sys.argv[2:]
    if what == "llada" and len(a) == 5:
        llada(a[0], a[1], a[2], int(a[3]), a[4].split(","))
    elif what == "reparam" and len(a) == 8:
        reparam(a[0], a[1], a[2], int(a[3]), a[4].split(","), a[5].split(","), a[6], int(a[7]))
    else:
        raise SystemExit(__doc__)
