"""dlm side of the LLaDA / Dream generation benchmark (scripts/bench/llada.sh): runs
`dlm generate` on the prompt the PyTorch side drew (read from its JSON line) with the same
settings, and prints one JSON line like llada_torch.py's.

    python3 llada_dlm.py DLM DIR ALG TORCH_JSON REPEATS DTYPES [THRESHOLD]

ALG (the PyTorch side's, see llada_torch.py):
    llada      dlm generate --strategy llada --block-length B --steps K --length L
    fast-dllm  dlm generate --strategy fast-dllm --threshold P --block-length B --steps K --length L
    dream      dlm generate --strategy dream --alg maskgit-plus --steps K --length L, plus
               --top-k / --top-p as diffusion_generate really applies them (the torch side
               reports them: top_k 50 with transformers 4.49, see llada_torch.py)
all with --prompt-ids (the torch side's), --mask-id (config.json's), --dtype, --json, and
argmax decoding (dlm's default; the reference runs at temperature 0).

`dlm generate` has no timer of its own, so the process is timed end to end; that includes
process start, loading and converting the checkpoint. To leave those out, the same command
with --length 1 --steps 1 (--strategy llada --block-length 1: load + one forward of
PROMPT+1 tokens + printing) is timed too, and its best time over max(3, REPEATS) runs is
subtracted from every generation run: {dtype}_s = best(total) - best(load). That charges dlm
one forward of PROMPT+1 tokens less than it ran (at the default 64 + 256 tokens and 256
steps, about 0.1% of the work). Raw times are in {dtype}_total_times / {dtype}_load_times.
A generate_bench example timing the sampler in-process would be better (not written yet).

Stdlib only (any python3). Env: DLM_NUM_THREADS / RAYON_NUM_THREADS as llada.sh sets them.
"""
import json
import subprocess
import sys
import time

dlm, path, alg, torch_json, repeats, dtypes = sys.argv[1:7]
repeats, dtypes = int(repeats), dtypes.split(",")
threshold = sys.argv[7] if len(sys.argv) > 7 else None
with open(torch_json) as fh:
    ref = json.loads(fh.read().strip().splitlines()[-1])
prompt = ",".join(str(i) for i in ref["prompt_ids"])
base = ["generate", "--model", path, "--prompt-ids", prompt, "--mask-id", str(ref["mask_id"]), "--json"]
gen, steps, block = ref["gen_length"], ref["steps"], ref["block_length"]
if alg == "llada":
    args = ["--strategy", "llada", "--block-length", str(block), "--steps", str(steps), "--length", str(gen)]
elif alg == "fast-dllm":
    args = ["--strategy", "fast-dllm", "--threshold", str(threshold), "--block-length", str(block),
            "--steps", str(steps), "--length", str(gen)]
elif alg == "dream":
    args = ["--strategy", "dream", "--alg", "maskgit-plus", "--steps", str(steps), "--length", str(gen)]
    # The filtering diffusion_generate really applies (llada_torch.py: top_k 50 with
    # transformers 4.49); top_p >= 1 filters nothing there (`top_p < 1` is its condition).
    if ref.get("top_k") is not None:
        args += ["--top-k", str(ref["top_k"])]
    if ref.get("top_p") is not None and ref["top_p"] < 1:
        args += ["--top-p", str(ref["top_p"])]
else:
    raise SystemExit(f"unknown ALG {alg!r}")
load_args = ["--strategy", "llada", "--block-length", "1", "--steps", "1", "--length", "1"]


def timed(cmd):
    t = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True)
    dt = time.perf_counter() - t
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:3])} ... failed ({p.returncode}):\n{p.stderr[-4000:]}")
    return dt, json.loads(p.stdout.strip().splitlines()[-1])


out = {"impl": "dlm", "model": ref["model"], "alg": alg, "command": " ".join([dlm] + base[:3] + ["..."] + args),
       "tokens": gen, "timing": "end to end minus a --length 1 --steps 1 run (load)"}
for dtype in dtypes:
    d = ["--dtype", dtype]
    loads = [timed([dlm] + base + load_args + d)[0] for _ in range(max(3, repeats))]
    totals, ids = [], None
    for _ in range(repeats):
        dt, res = timed([dlm] + base + args + d)
        totals.append(dt)
        assert ids is None or ids == res["generated_ids"], "two runs of dlm generated different ids"
        ids = res["generated_ids"]
    out[f"{dtype}_s"] = min(totals) - min(loads)
    out[f"{dtype}_total_times"], out[f"{dtype}_load_times"], out[f"{dtype}_ids"] = totals, loads, ids
print(json.dumps(out))
