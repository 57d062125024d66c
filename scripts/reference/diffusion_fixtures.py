"""Golden fixtures for crates/dlm-diffusion/tests (golden.rs): the SPEC §3 loss for fixed
masks and timesteps, full sampler trajectories (SPEC §4), the schedule's unmask counts,
and the length predictor (SPEC §5) with a length beam, all on the tiny random XLM-R
checkpoint of crates/dlm-models/tests/fixtures/tiny-xlmr.

Everything here is a plain PyTorch transcription of the released implementation (the
reparameterized sampler itself lives in released_sampler.py, shared with
scripts/bench/sample_torch.py)
(yegcjs/DiffusionLLM: trainer/dd_trainer.py `compute_loss`, dd_generator.py
`_reparam_decoding`/`topk_masking`, model/dd_model.py `forward_length` and
`initialize_decode_samples`; RDM's reparam_absorbing_diffusion.py `compute_loss`; LLaDA's
`generate` and Fast-dLLM's threshold `get_transfer_index`), written independently of the
Rust code. Logits use the full vocabulary at every position (no gathering), so the Rust
"project only where needed" path is checked against the plain one.

Pinned: torch==2.15.0, transformers==4.57.1, safetensors. Run from the repo root:
    /work/pyref/bin/python scripts/reference/diffusion_fixtures.py
Writes crates/dlm-diffusion/tests/fixtures/{golden.json, length-predictor/}.
"""
import json
import math
import os

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file
from transformers import XLMRobertaForMaskedLM

import released_sampler
from released_sampler import rate_of

MODEL = "crates/dlm-models/tests/fixtures/tiny-xlmr"
OUT = "crates/dlm-diffusion/tests/fixtures"
BOS, PAD, EOS, MASK = 0, 1, 2, 89  # the tiny vocabulary has 90 ids; 89 plays <mask>
T = 50

torch.manual_seed(0)
model = XLMRobertaForMaskedLM.from_pretrained(MODEL, attn_implementation="eager").eval()
VOCAB = model.config.vocab_size
MAX_POS = model.config.max_position_embeddings  # 34 → at most 32 tokens


def logits_of(tokens):
    with torch.no_grad():
        return model(input_ids=tokens, attention_mask=tokens.ne(PAD).long()).logits.float()


def pad_rows(rows):
    return released_sampler.pad_rows(rows, PAD)


# ---------------------------------------------------------------- schedule counts
def counts(schedule, n, max_step):
    out = []
    for t in range(1, max_step + 1):
        k = (torch.tensor([[n]]).type_as(torch.zeros(1)) * rate_of(schedule, t, max_step)).long()
        out.append(int(k))
    return out


schedule_k = {
    s: [[n, K, counts(s, n, K)] for n in range(1, 41) for K in (1, 2, 3, 4, 5, 7, 10, 16, 20, 25, 32, 50)]
    for s in ("cosine", "linear")
}

# ---------------------------------------------------------------- loss
g = torch.Generator().manual_seed(1)
prompts = [[BOS, 11, 12, 13], [BOS, 20, 21], [BOS, 30, 31, 32, 33, 34]]
responses = [[40, 41, 42, 43, 44, 45, EOS], [50, 51, 52, EOS], [60, 61, 62, 63, 64, 65, 66, 67, 68, EOS]]
rows = [p + r for p, r in zip(prompts, responses)]
fixed = [[True] * len(p) + [False] * len(r) for p, r in zip(prompts, responses)]
x0 = pad_rows(rows)
B, S = x0.shape
partial = torch.tensor([f + [True] * (S - len(f)) for f in fixed])
maskable = (~partial) & x0.ne(PAD)

# coupled masking (SPEC §3.1-3, dd_model.q_sample_coupled), with fixed timesteps that
# cover ta > tb and ta == tb
t1 = torch.tensor([37, 9, 25])
t2 = torch.tensor([12, 44, 25])
eq = t1 == t2
ta, tb = torch.maximum(t1, t2).float(), torch.minimum(t1, t2).float()
u = torch.rand(x0.shape, generator=g)
mask_a = (u < (ta / T)[:, None]) & maskable
u = torch.rand(x0.shape, generator=g)
mask_b = mask_a & (u > ((ta - tb) / ta)[:, None])
u = torch.rand(x0[eq].shape, generator=g)
mask_b[eq] = (u < (ta[eq] / T)[:, None]) & maskable[eq]
x_t = torch.cat([x0.masked_fill(mask_a, MASK), x0.masked_fill(mask_b, MASK)])
t = torch.cat([ta, tb])
loss_mask = torch.cat([mask_a, mask_b])
target = x0.repeat(2, 1)
logits = logits_of(x_t)  # [2B, S, V], every position


def dlm_loss(weighting, ls):
    w = {"linear": T - (t - 1), "constant": torch.ones_like(t)}[weighting][:, None].float()
    weight = w.expand(loss_mask.size())[loss_mask]
    cnt = maskable.repeat(2, 1).sum(-1)[:, None].expand(loss_mask.size())[loss_mask]
    lg = logits[loss_mask]
    ce = F.cross_entropy(lg, target[loss_mask], reduction="none").float()
    ce = (ce * weight / cnt).sum() / x_t.size(0)
    if ls > 0:
        logit_loss = -F.log_softmax(lg, dim=-1).mean(dim=-1).float()
        logit_loss = T * (logit_loss / cnt).sum() / x_t.size(0)
        return float((1 - ls) * ce + ls * logit_loss)
    return float(ce)


def rdm_loss(weighting, ls):
    t0 = t - 1
    x0_ignore = target.masked_fill(~loss_mask, -1)
    ce = F.cross_entropy(logits.transpose(-1, -2), x0_ignore, ignore_index=-1, reduction="none").mean(1)
    coeff = {"linear": 1 - t0 / T, "reciprocal": 1.0 / (t0 + 1.0), "none": torch.ones_like(t0)}[weighting]
    nll = (coeff * ce).mean()
    if ls > 0:
        logit_loss = (F.log_softmax(logits, dim=-1).mean(dim=-1).masked_fill(~loss_mask, 0.0).mean(1)).mean()
        return float(nll * (1 - ls) - logit_loss * ls)
    return float(nll)


loss_cases = [
    dict(form="dlm", weighting="linear", label_smoothing=0.0, loss=dlm_loss("linear", 0.0)),
    dict(form="dlm", weighting="linear", label_smoothing=0.1, loss=dlm_loss("linear", 0.1)),
    dict(form="dlm", weighting="constant", label_smoothing=0.0, loss=dlm_loss("constant", 0.0)),
    dict(form="rdm", weighting="linear", label_smoothing=0.1, loss=rdm_loss("linear", 0.1)),
    dict(form="rdm", weighting="reciprocal", label_smoothing=0.0, loss=rdm_loss("reciprocal", 0.0)),
    dict(form="rdm", weighting="none", label_smoothing=0.0, loss=rdm_loss("none", 0.0)),
]
loss_fixture = dict(
    timesteps=T,
    rows=rows,
    fixed=fixed,
    t=[int(v) for v in t.tolist()],
    masked=[[bool(v) for v in r[: len(rows[i % B])]] for i, r in enumerate(loss_mask.tolist())],
    cases=loss_cases,
)


# ---------------------------------------------------------------- reparameterized sampler
def reparam_generate(canvases, gen, max_step, schedule, condition):
    """canvases: padded [b, s] with <mask> at generation positions; gen: bool [b, s]."""
    return released_sampler.reparam_generate(logits_of, canvases, gen, max_step, schedule, condition, MASK)


def make_canvases(prefixes, lengths):
    rows = [p + [MASK] * n + [EOS] for p, n in zip(prefixes, lengths)]
    gens = [[False] * len(p) + [True] * n + [False] for p, n in zip(prefixes, lengths)]
    canv = pad_rows(rows)
    gen = torch.tensor([gg + [False] * (canv.shape[1] - len(gg)) for gg in gens])
    return rows, canv, gen


def unpad(tensor_row, n):
    return [int(v) for v in tensor_row[:n]]


# Random prompts (the tiny model is far from degenerate on these) whose cond and uncond
# trajectories part ways, so that the fixture tells the two updates apart.
gp = torch.Generator().manual_seed(2)
sample_prefixes = [[BOS] + torch.randint(3, MASK, (n,), generator=gp).tolist() for n in (3, 1, 6)]
sample_lengths = [12, 20, 8]
sample_steps = 10
rows_s, canv, gen = make_canvases(sample_prefixes, sample_lengths)
runs = []
for schedule in ("cosine", "linear"):
    for condition in ("uncond", "cond"):
        toks, scs, hist, preds = reparam_generate(canv, gen, sample_steps, schedule, condition)
        runs.append(dict(
            schedule=schedule,
            update=condition,
            trajectory=[[unpad(h[i], len(rows_s[i])) for h in hist] for i in range(len(rows_s))],
            scores=[[float(v) for v in scs[i][gen[i]]] for i in range(len(rows_s))],
            predictions=[[preds[s][i] for s in range(sample_steps)] for i in range(len(rows_s))],
        ))
for a, b in ((0, 1), (2, 3)):
    assert runs[a]["trajectory"] != runs[b]["trajectory"], "cond and uncond agree: pick other prompts"
sampler_fixture = dict(prefixes=sample_prefixes, lengths=sample_lengths, steps=sample_steps, runs=runs)


# ---------------------------------------------------------------- LLaDA and Fast-dLLM (argmax)
# As the references do, the argmax and the softmax range over the whole vocabulary: <mask>
# is not forbidden, and a position whose transferred prediction is <mask> stays masked (it
# competes again at the next step; the per-step counts stay those of the block's start).
def llada_generate(prefix, gen_length, steps, block_length):
    x = torch.tensor([prefix + [MASK] * gen_length + [EOS]])
    p = len(prefix)
    num_blocks = math.ceil(gen_length / block_length)
    spb = steps // num_blocks
    history = []
    for nb in range(num_blocks):
        start, end = p + nb * block_length, min(p + (nb + 1) * block_length, p + gen_length)
        m = int((x[:, start:end] == MASK).sum())
        base, rem = m // spb, m % spb
        num_transfer = [base + (1 if i < rem else 0) for i in range(spb)]
        for i in range(spb):
            mask_index = x == MASK
            lg = logits_of(x)
            x0 = lg.argmax(-1)
            prob = F.softmax(lg, dim=-1)
            x0_p = torch.gather(prob, -1, x0.unsqueeze(-1)).squeeze(-1)
            x0_p[:, end:] = -np.inf
            x0 = torch.where(mask_index, x0, x)
            conf = torch.where(mask_index, x0_p, torch.tensor(-np.inf))
            if num_transfer[i] > 0:
                _, sel = torch.topk(conf[0], k=num_transfer[i])
                x[0, sel] = x0[0, sel]
                history.append(unpad(x[0], x.shape[1]))
    return history


def fast_dllm_generate(prefix, gen_length, block_length, threshold):
    x = torch.tensor([prefix + [MASK] * gen_length + [EOS]])
    p = len(prefix)
    history = []
    for nb in range(math.ceil(gen_length / block_length)):
        start, end = p + nb * block_length, min(p + (nb + 1) * block_length, p + gen_length)
        while (x[:, start:end] == MASK).any():
            mask_index = x == MASK
            lg = logits_of(x)
            x0 = lg.argmax(-1)
            prob = F.softmax(lg.to(torch.float64), dim=-1)  # as Fast-dLLM's get_transfer_index
            x0_p = torch.gather(prob, -1, x0.unsqueeze(-1)).squeeze(-1)
            x0_p[:, end:] = -np.inf
            conf = torch.where(mask_index, x0_p, torch.tensor(-np.inf))
            n = int(mask_index.sum())
            _, sel = torch.topk(conf[0], k=n)
            transfer = torch.zeros_like(x[0], dtype=torch.bool)
            transfer[sel] = True
            for k in range(1, n):
                if conf[0, sel[k]] < threshold:
                    transfer[sel[k]] = False
            before = x.clone()
            x[0, transfer] = x0[0, transfer]
            if torch.equal(before, x):
                # Every transfer was <mask>: the reference would repeat this step forever;
                # dlm moves on to the next block (with nothing recorded).
                break
            history.append(unpad(x[0], x.shape[1]))
    return history


llada_fixture = dict(
    prefixes=sample_prefixes, lengths=[9, 8, 5], steps=6, block_length=4,
    trajectories=[llada_generate(p, n, 6, 4) for p, n in zip(sample_prefixes, [9, 8, 5])],
)
# A low threshold for the random model, whose distributions are flat.
fast_fixture = dict(
    prefixes=sample_prefixes, lengths=sample_lengths, block_length=4, threshold=0.05,
    trajectories=[fast_dllm_generate(p, n, 4, 0.05) for p, n in zip(sample_prefixes, sample_lengths)],
)


# ---------------------------------------------------------------- length predictor + beam
class LengthHead(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.length_trm = nn.TransformerEncoder(
            nn.TransformerEncoderLayer(d_model=config.hidden_size, nhead=config.num_attention_heads,
                                       dim_feedforward=config.intermediate_size, batch_first=True),
            num_layers=1)
        self.length_predictor = nn.Sequential(
            nn.Linear(config.hidden_size, config.intermediate_size), nn.Tanh(),
            nn.Linear(config.intermediate_size, config.max_position_embeddings))

    def forward_length(self, input_ids):
        attention_mask = input_ids.ne(PAD).int()
        with torch.no_grad():
            feature = model.roberta(input_ids, attention_mask=attention_mask)[0]
        feature = self.length_trm(feature, src_key_padding_mask=(1 - attention_mask).bool())
        length = attention_mask.sum(dim=-1)
        pooled = feature.masked_fill((attention_mask == 0)[:, :, None], 0).float().sum(1) / length[:, None]
        return self.length_predictor(pooled.to(feature))


torch.manual_seed(3)
head = LengthHead(model.config)
with torch.no_grad():  # larger biases so that the top classes are well separated
    head.length_predictor[2].bias.copy_(torch.randn(MAX_POS) * 2.0)
head.eval()
lp_dir = os.path.join(OUT, "length-predictor")
os.makedirs(lp_dir, exist_ok=True)
save_file({k: v.contiguous() for k, v in head.state_dict().items()}, os.path.join(lp_dir, "length_predictor.safetensors"))
with open(os.path.join(lp_dir, "length_predictor.json"), "w") as f:
    json.dump(dict(hidden_size=model.config.hidden_size, num_attention_heads=model.config.num_attention_heads,
                   intermediate_size=model.config.intermediate_size, num_classes=MAX_POS,
                   dropout=0.1, layer_norm_eps=1e-5), f, indent=2)
    f.write("\n")

beam_prefixes = [[BOS, 5, 6, 7], [BOS, 15], [BOS, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40]]
inputs = pad_rows(beam_prefixes)
with torch.no_grad():
    length_logits = head.forward_length(inputs)
src_length = inputs.ne(PAD).sum(-1)
BEAM, BEAM_STEPS = 3, 5
lengths = torch.min(length_logits.topk(BEAM, dim=-1).indices + 1, MAX_POS - 2 - src_length[:, None] - 1)
flat_prefixes = [p for p in beam_prefixes for _ in range(BEAM)]
flat_lengths = [int(n) for n in lengths.flatten()]
rows_b, canv_b, gen_b = make_canvases(flat_prefixes, flat_lengths)
toks, scs, _, _ = reparam_generate(canv_b, gen_b, BEAM_STEPS, "cosine", "uncond")
chosen, chosen_ids, mean_lp = [], [], []
for i in range(len(beam_prefixes)):
    hyp = []
    for b in range(BEAM):
        r = i * BEAM + b
        keep = gen_b[r] & toks[r].ne(PAD) & toks[r].ne(BOS) & toks[r].ne(EOS)
        hyp.append(float(scs[r][keep].mean()) if keep.any() else -math.inf)
    best = int(np.argmax(hyp))
    chosen.append(best)
    mean_lp.append(hyp)
    chosen_ids.append(unpad(toks[i * BEAM + best], len(rows_b[i * BEAM + best])))
length_fixture = dict(
    dir="length-predictor", prefixes=beam_prefixes, logits=length_logits.tolist(), beam=BEAM,
    steps=BEAM_STEPS, lengths=lengths.tolist(), chosen=chosen, chosen_ids=chosen_ids, mean_logprobs=mean_lp,
)

golden = dict(
    model=MODEL, special=dict(bos=BOS, eos=EOS, pad=PAD, mask=MASK), schedule_k=schedule_k, loss=loss_fixture,
    sampler=sampler_fixture, llada=llada_fixture, fast_dllm=fast_fixture, length=length_fixture,
)
with open(os.path.join(OUT, "golden.json"), "w") as f:
    json.dump(golden, f)
print("losses", [c["loss"] for c in loss_cases])
print("beam lengths", lengths.tolist(), "chosen", chosen)
