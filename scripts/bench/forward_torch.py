"""PyTorch side of the forward benchmark: a BERT-base-shaped BertForMaskedLM (12 layers,
hidden 768, 12 heads, ffn 3072, vocab 30522, random weights), batch 8 x 128, MLM logits.
Saves the model to DIR (so the Rust side runs the very same weights) and prints one JSON
line with median seconds per forward in fp32 and bf16 autocast, on DEVICE (env: cpu, the
default, or cuda). Usage: python forward_torch.py DIR [REPEATS]"""
import json, os, statistics, sys, time
import torch
from transformers import BertConfig, BertForMaskedLM

out, repeats = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 5
torch.manual_seed(0)
model = BertForMaskedLM(BertConfig()).eval()
model.save_pretrained(out, safe_serialization=True)
device = torch.device(os.environ.get("DEVICE", "cpu"))
model.to(device)
ids = torch.randint(1000, 30000, (8, 128)).to(device)
mask = torch.ones_like(ids)


def bench(ctx):
    times = []
    with torch.no_grad(), ctx():
        model(input_ids=ids, attention_mask=mask)  # warm-up
        for _ in range(repeats):
            t = time.perf_counter()
            model(input_ids=ids, attention_mask=mask).logits.sum().item()
            times.append(time.perf_counter() - t)
    return statistics.median(times)


import contextlib
f32 = bench(contextlib.nullcontext)
bf16 = bench(lambda: torch.autocast(device.type, dtype=torch.bfloat16))
print(json.dumps({"impl": "pytorch", "torch": torch.__version__, "device": str(device), "threads": torch.get_num_threads(),
                  "f32_s": f32, "bf16_s": bf16}))
