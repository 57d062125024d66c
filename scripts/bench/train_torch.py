"""PyTorch side of the training-throughput benchmark: one optimizer step of the SPEC §3
objective (coupled two-timestep masking, both copies in one 2B batch, CE at masked
positions weighted by T-(t-1), per-row normalisation, /2B) on a BERT-base-shaped
BertForMaskedLM (random weights, dropout on), batch B x (prompt P + response R) tokens,
AdamW(betas 0.9/0.98, wd 0.01). The vocabulary projection runs only at masked positions,
as dlm does. Prints one JSON line: median seconds per step and tokens/s, fp32 and bf16
autocast, on DEVICE (env: cpu, the default, or cuda). Usage: python train_torch.py [B P R REPEATS]"""
import contextlib, json, os, statistics, sys, time
import torch
from transformers import BertConfig, BertForMaskedLM

B, P, R, repeats = (int(x) for x in (sys.argv[1:5] if len(sys.argv) > 4 else (8, 64, 64, 5)))
T, MASK = 50, 103
torch.manual_seed(0)
device = torch.device(os.environ.get("DEVICE", "cpu"))
torch.set_default_device(device)
model = BertForMaskedLM(BertConfig()).train()
opt = torch.optim.AdamW(model.parameters(), lr=5e-5, betas=(0.9, 0.98), weight_decay=0.01)
x = torch.randint(1000, 30000, (B, P + R))
maskable = torch.zeros_like(x, dtype=torch.bool)
maskable[:, P:] = True


def objective():
    t1, t2 = torch.randint(1, T + 1, (B,)), torch.randint(1, T + 1, (B,))
    ta, tb = torch.maximum(t1, t2), torch.minimum(t1, t2)
    u = torch.rand(x.shape)
    a = (u < (ta / T)[:, None]) & maskable
    u2 = torch.rand(x.shape)
    nested = a & (u2 > ((ta - tb) / ta)[:, None])
    b = torch.where((ta == tb)[:, None], (torch.rand(x.shape) < (tb / T)[:, None]) & maskable, nested)
    masks = torch.cat([a, b])                                   # [2B, L]
    t = torch.cat([ta, tb])                                     # [2B]
    inp = torch.where(masks, torch.full_like(x, MASK).repeat(2, 1), x.repeat(2, 1))
    hidden = model.bert(input_ids=inp, attention_mask=torch.ones_like(inp)).last_hidden_state
    logits = model.cls(hidden[masks])                           # [n_masked, V]
    ce = torch.nn.functional.cross_entropy(logits.float(), x.repeat(2, 1)[masks], reduction="none")
    w = (T - (t - 1)).float()[:, None].expand_as(masks)[masks]
    rows = torch.arange(2 * B)[:, None].expand_as(masks)[masks]
    per_row = torch.zeros(2 * B).index_add(0, rows, ce * w) / maskable.repeat(2, 1).sum(1)
    return per_row.sum() / (2 * B)


def bench(ctx):
    times = []
    for i in range(repeats + 1):
        t = time.perf_counter()
        with ctx():
            loss = objective()
        loss.backward()
        opt.step()
        opt.zero_grad()
        loss.item()  # waits for the device
        if i:  # first step warms up
            times.append(time.perf_counter() - t)
    return statistics.median(times)


f32 = bench(contextlib.nullcontext)
bf16 = bench(lambda: torch.autocast(device.type, dtype=torch.bfloat16))
tokens = B * (P + R)
print(json.dumps({"impl": "pytorch", "torch": torch.__version__, "threads": torch.get_num_threads(),
                  "device": str(device), "batch": [B, P, R], "f32_s": f32, "bf16_s": bf16,
                  "f32_tokens_per_s": tokens / f32, "bf16_tokens_per_s": tokens / bf16}))
