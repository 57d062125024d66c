"""The released reparameterized sampler (SPEC §4) as a plain, batched PyTorch transcription
of yegcjs/DiffusionLLM dd_generator.py `_reparam_decoding` / `topk_masking`: every step is
a full forward with vocabulary logits at every position, as released. Shared by
diffusion_fixtures.py (golden trajectories) and scripts/bench/sample_torch.py (the speed
baseline that dlm's sampler is measured against).

Written independently of the Rust code. Pinned: torch==2.15.0.
"""
import math

import numpy as np
import torch


def rate_of(schedule, t, max_step):
    """Fraction of generation positions still masked after step `t` of `max_step`."""
    return np.cos(t / max_step * np.pi * 0.5) if schedule == "cosine" else 1 - t / max_step


def pad_rows(rows, pad):
    """Lists of ids → a [b, longest] long tensor padded on the right with `pad`."""
    seq = max(len(r) for r in rows)
    return torch.tensor([r + [pad] * (seq - len(r)) for r in rows], dtype=torch.long)


def topk_masking(scores, cutoff_len):
    sorted_index = scores.sort(-1)[0]
    cutoff = sorted_index.gather(dim=-1, index=cutoff_len)
    return scores < cutoff


def reparam_generate(logits_of, canvases, gen, max_step, schedule, condition, mask, record=True):
    """Denoises padded `canvases` [b, s] with `<mask>` (id `mask`) at the generation
    positions `gen` (bool [b, s]); `logits_of(tokens)` → f32 logits [b, s, vocab].
    Returns the final tokens, their stored scores and, when `record`, the canvas after every
    step and every step's (token, score) predictions at the generation positions."""
    output_tokens = canvases.clone()
    output_scores = torch.zeros_like(output_tokens, dtype=torch.float)
    xt_neq_x0 = gen.clone()
    non_special = gen.clone()
    history, predictions = [], []
    for step in range(max_step):
        cur_step = step + 1
        lg = logits_of(output_tokens)
        lg[..., mask] = -math.inf
        scores = torch.log_softmax(lg, dim=-1)
        cur_scores, cur_tokens = scores.max(-1)
        if record:
            predictions.append([[[int(a), float(b)] for a, b in zip(cur_tokens[i][gen[i]], cur_scores[i][gen[i]])]
                                for i in range(len(gen))])
        rate = rate_of(schedule, cur_step, max_step)
        cutoff_len = (non_special.sum(1, keepdim=True).type_as(output_scores) * rate).long()
        scores_for_topk = cur_scores.masked_fill(~non_special, 1000.0)
        lowest_k_mask = topk_masking(scores_for_topk, cutoff_len)
        if condition == "cond":
            not_v1_t = (cur_tokens == output_tokens) & (cur_scores < output_scores) & lowest_k_mask
        else:
            not_v1_t = lowest_k_mask
        not_v2_t = lowest_k_mask
        masked_to_noise = (~xt_neq_x0 & not_v1_t) | (xt_neq_x0 & not_v2_t)
        output_tokens.masked_fill_(masked_to_noise, mask)
        output_scores.masked_fill_(masked_to_noise, -math.inf)
        masked_to_x0 = xt_neq_x0 & ~not_v2_t
        output_tokens.masked_scatter_(masked_to_x0, cur_tokens[masked_to_x0])
        output_scores.masked_scatter_(masked_to_x0, cur_scores[masked_to_x0])
        xt_neq_x0 = (xt_neq_x0 | not_v1_t) & not_v2_t
        if record:
            history.append(output_tokens.clone())
    return output_tokens, output_scores, history, predictions
