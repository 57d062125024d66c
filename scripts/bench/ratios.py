"""Summary of forward.sh / train.sh: each side's best time over its rounds, per dtype, and
dlm's best over PyTorch's best. Usage: python3 ratios.py UNIT N PYTORCH_JSON×N DLM_JSON×N
(one JSON line per round and side, with f32_s and bf16_s)."""
import json, sys

unit, n = sys.argv[1], int(sys.argv[2])
runs = [json.loads(a) for a in sys.argv[3:]]
p, r = ({k: min(j[k] for j in side) for k in ("f32_s", "bf16_s")} for side in (runs[:n], runs[n:]))
if n > 1:
    print(f"best of {n} alternating rounds per side")
for k in ("f32_s", "bf16_s"):
    print(f"{k[:-2]}: pytorch {p[k]:.3f} {unit}, dlm {r[k]:.3f} {unit}, dlm/pytorch time ratio {r[k]/p[k]:.2f}")
print(f"dlm best / pytorch best (time): {min(r['f32_s'], r['bf16_s'])/min(p['f32_s'], p['bf16_s']):.2f}")
