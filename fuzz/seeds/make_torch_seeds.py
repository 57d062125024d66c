#!/usr/bin/env python3
"""Writes fuzz/seeds/*.pt: small torch.save zips (2 kB) for the torch_checkpoint target, whose
fixture seeds (90-145 kB) made every execution slow. Made with torch 2.15.0+cu132.
Run from the repository root:
python fuzz/seeds/make_torch_seeds.py; then python3 fuzz/seed_corpus.py copies them in.
"""
from pathlib import Path

import torch

OUT = Path(__file__).resolve().parent
torch.manual_seed(0)
small = {"embeddings.word_embeddings.weight": torch.randn(4, 2), "cls.predictions.bias": torch.zeros(4)}
torch.save(small, OUT / "small-state-dict.pt")
torch.save({"module": small, "global_steps": 3}, OUT / "small-mp_rank_00_model_states.pt")
torch.save({"w": torch.arange(6, dtype=torch.int64).reshape(2, 3), "h": torch.ones(2, dtype=torch.float16)},
           OUT / "small-dtypes.pt")
