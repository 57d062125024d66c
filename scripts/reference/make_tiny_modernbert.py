"""Tiny random ModernBERT checkpoints and their transformers logits (golden fixtures).

Writes crates/dlm-models/tests/fixtures/<name>/{config.json, model.safetensors,
tokenizer files, golden.json}, in the layout of make_tiny_models.py (whose helpers it
uses): golden.json holds a padded batch (input_ids, attention_mask) and the f32 logits and
final hidden states (after `final_norm`) that `ModernBertForMaskedLM` computes with eager
attention. Sequences of 20 with local_attention=8 exercise the sliding window (|i-j| <= 4)
as well as the global layers; one row is padded on the right, one (second fixture) on the
left. The Rust tests must match to 1e-4.

- tiny-modernbert: ModernBERT's defaults: no biases but the decoder's, LayerNorm without
  bias, tied decoder, exact GELU, local theta 10000 / global theta 160000.
- tiny-modernbert-biased: every bias on (attention, MLP, norms, head dense) but no decoder
  bias, untied decoder, tanh GELU, no local theta (the global one is used).

Pinned: torch==2.15.0, transformers==4.57.1, safetensors (any). Run from the repo root:
    python scripts/reference/make_tiny_modernbert.py
"""
import os, sys
import torch
from transformers import ModernBertConfig, ModernBertForMaskedLM

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_tiny_models import batch, save_safetensors, save_word_tokenizer  # noqa: E402
import make_tiny_models  # noqa: E402

COMMON = dict(hidden_size=32, num_hidden_layers=3, num_attention_heads=4, intermediate_size=24,
              max_position_embeddings=64, global_attn_every_n_layers=2, local_attention=8,
              pad_token_id=1, bos_token_id=0, eos_token_id=2, cls_token_id=0, sep_token_id=2,
              attn_implementation="eager", reference_compile=False)


def randomize(model, seed):
    # Every parameter random, norms around 1, so a mistake in any tensor's role shows.
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            is_norm = name.rsplit(".", 2)[-2].endswith("norm")
            p.copy_(torch.randn(p.shape, generator=g) * (0.5 if is_norm else 0.2))
            if is_norm and name.endswith(".weight"):
                p.add_(1.0)


class WithFinalHidden(torch.nn.Module):
    """The MLM, reporting `last_hidden_state` (after final_norm) as its hidden states:
    `output_hidden_states` of ModernBERT stops before the final norm."""

    def __init__(self, mlm):
        super().__init__()
        self.mlm = mlm

    def save(self, d):
        save_safetensors(self.mlm, d)

    def eval(self):
        self.mlm.eval()
        return self

    def forward(self, input_ids, attention_mask, output_hidden_states):
        hidden = self.mlm.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        logits = self.mlm(input_ids=input_ids, attention_mask=attention_mask).logits
        return type("Out", (), dict(logits=logits, hidden_states=(hidden,)))


def write(name, mlm, ids, mask, vocab):
    wrapped = WithFinalHidden(mlm)
    make_tiny_models.write(name, wrapped, ids, mask, lambda m, d: m.save(d),
                           lambda d: save_word_tokenizer(d, vocab))


def main():
    torch.manual_seed(0)
    c = ModernBertConfig(vocab_size=72, **COMMON)
    m = ModernBertForMaskedLM(c); randomize(m, 5)
    ids, mask = batch(72, 1, 0, 2, [20, 13, 4], 20)
    write("tiny-modernbert", m, ids, mask, 72)

    c = ModernBertConfig(vocab_size=76, attention_bias=True, mlp_bias=True, norm_bias=True,
                         classifier_bias=True, decoder_bias=False, tie_word_embeddings=False,
                         hidden_activation="gelu_pytorch_tanh", classifier_activation="gelu_pytorch_tanh",
                         local_rope_theta=None, global_rope_theta=500.0, **COMMON)
    m = ModernBertForMaskedLM(c); randomize(m, 6)
    ids, mask = batch(76, 1, 0, 2, [20, 16, 9], 20, left_pad_row=2)
    write("tiny-modernbert-biased", m, ids, mask, 76)


if __name__ == "__main__":
    main()
