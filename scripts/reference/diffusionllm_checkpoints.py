"""Checkpoints in the layout of the DiffusionLLM authors' released code, and what their code
computes with them (golden fixtures for `dlm import diffusionllm`).

The authors' model (src/model/dd_model.py, `DiscreteDiffusionXLMRModel`) wraps an HF
`XLMRobertaForMaskedLM` as `model.*`, ties `model.lm_head.decoder.weight` to the word
embeddings when the config says so, and adds a length predictor:
`length_trm` = `nn.TransformerEncoder(nn.TransformerEncoderLayer(d=hidden, heads,
ff=intermediate, batch_first=True), num_layers=1)` and `length_predictor` =
`Linear(hidden, intermediate) → Tanh → Linear(intermediate, max_position_embeddings)`.
Task checkpoints are vocabulary-pruned by `remove_redundant_embeddings(dictionary)` with a
fairseq `Dictionary.load(dict.txt)`: model id i = dictionary index i, whose rows are the
rows of `tokenizer.get_vocab()[dictionary[i]]` (or `<unk>`'s when the token is unknown).
The classes below transcribe exactly those parts (fairseq itself is not installed).

Written into crates/dlm-train/tests/fixtures/diffusionllm/:
- tied-bin/pytorch_model.bin: tied decoder saved as an EMPTY tensor (the authors' `load_ckpt`
  ties it back), plus the `position_ids` buffer older transformers saved;
- untied-zero/: a DeepSpeed ZeRO-2 folder (`global_step12/mp_rank_00_model_states.pt`, the
  state dict under key `module`, in bf16, beside DeepSpeed's other keys) and a decoy
  `global_step3` that is not a checkpoint (the latest step must be chosen by number);
- pruned-bin/pytorch_model.bin + dict.txt: pruned with a shuffled dictionary holding
  `<mask>` mid-list and a token the tokenizer lacks (it maps to `<unk>`'s row); the stale
  full-size `lm_head.bias` stays in the state dict, as in the authors' pruned models.
Each variant's golden.json: MLM logits of an unpadded batch, fill-mask top-5 of the mask
positions, the length predictor's top-B lengths (capped as the authors do) for prompts
given as text, and for the pruned variant the authors' ids of a text.

The base model directory is the tiny XLM-R fixture (config.json + tokenizer.json) of
crates/dlm-models/tests/fixtures/tiny-xlmr. Pinned: torch==2.15.0, transformers==4.57.1,
tokenizers. Run from the repository root:
    python scripts/reference/diffusionllm_checkpoints.py
"""
import collections, json, os, random, shutil
import torch
import torch.nn as nn
from tokenizers import Tokenizer
from transformers import XLMRobertaConfig, XLMRobertaForMaskedLM

BASE = "crates/dlm-models/tests/fixtures/tiny-xlmr"
OUT = "crates/dlm-train/tests/fixtures/diffusionllm"
BEAM = 3
PROMPTS = ["the people of this world", "what do you think about it ?"]
TEXT = "i think that the world is very big ."


class Dictionary:
    """fairseq.data.Dictionary: the parts `load` and `remove_redundant_embeddings` use."""

    def __init__(self):
        self.bos_word, self.pad_word, self.eos_word, self.unk_word = "<s>", "<pad>", "</s>", "<unk>"
        self.symbols, self.count, self.indices = [], [], {}
        self.bos_index = self.add_symbol(self.bos_word)
        self.pad_index = self.add_symbol(self.pad_word)
        self.eos_index = self.add_symbol(self.eos_word)
        self.unk_index = self.add_symbol(self.unk_word)

    def add_symbol(self, word, n=1, overwrite=False):
        if word in self.indices and not overwrite:
            idx = self.indices[word]
            self.count[idx] += n
            return idx
        idx = len(self.symbols)
        self.indices[word] = idx
        self.symbols.append(word)
        self.count.append(n)
        return idx

    def __len__(self):
        return len(self.symbols)

    def __getitem__(self, i):
        return self.symbols[i]

    def index(self, sym):
        return self.indices.get(sym, self.unk_index)

    @classmethod
    def load(cls, path):
        d = cls()
        for line in open(path, encoding="utf-8").readlines():
            line, field = line.rstrip().rsplit(" ", 1)
            overwrite = field == "#fairseq:overwrite"
            if overwrite:
                line, field = line.rsplit(" ", 1)
            count = int(field)
            if line in d.indices and not overwrite:
                raise RuntimeError(f"Duplicate word found when loading Dictionary: '{line}'")
            d.add_symbol(line, n=count, overwrite=overwrite)
        d.mask_index = d.index("<mask>")
        return d


class DiscreteDiffusionXLMRModel(nn.Module):
    def __init__(self, model, vocab):
        super().__init__()
        if model.config.tie_word_embeddings:
            model.lm_head.decoder.weight = model.roberta.embeddings.word_embeddings.weight
        self.model, self.config, self.vocab = model, model.config, vocab
        self.pad_id = model.config.pad_token_id
        self.length_trm = nn.TransformerEncoder(
            nn.TransformerEncoderLayer(d_model=self.config.hidden_size, nhead=self.config.num_attention_heads,
                                       dim_feedforward=self.config.intermediate_size, batch_first=True),
            num_layers=1)
        self.length_predictor = nn.Sequential(
            nn.Linear(self.config.hidden_size, self.config.intermediate_size), nn.Tanh(),
            nn.Linear(self.config.intermediate_size, self.config.max_position_embeddings))

    def remove_redundant_embeddings(self, dictionary):
        vocab = dict(self.vocab)
        vocab[dictionary.bos_word], vocab[dictionary.pad_word] = 0, 1
        vocab[dictionary.eos_word], vocab[dictionary.unk_word] = 2, 3
        sub = [vocab.get(dictionary[i], 3) for i in range(len(dictionary))]
        emb = self.model.roberta.embeddings.word_embeddings.weight
        w, b = self.model.lm_head.decoder.weight, self.model.lm_head.decoder.bias
        self.model.roberta.embeddings.word_embeddings = nn.Embedding.from_pretrained(
            torch.stack([emb[j] for j in sub]), freeze=False, padding_idx=dictionary.pad_index)
        out = nn.Linear(w.size(0), w.size(1))  # the authors' (swapped) sizes; the data replaces them
        out.weight.data = torch.stack([w[j] for j in sub])
        out.bias.data = torch.stack([b[j] for j in sub])
        self.model.lm_head.decoder = out
        return sub

    def forward(self, input_ids):
        attention_mask = input_ids.ne(self.pad_id).int()
        embeddings = self.model.roberta.embeddings.word_embeddings(input_ids)
        outputs = self.model.roberta(inputs_embeds=embeddings, attention_mask=attention_mask)[0]
        return self.model.lm_head(outputs)

    def forward_length(self, input_ids):
        attention_mask = input_ids.ne(self.pad_id).int()
        with torch.no_grad():
            _feature = self.model.roberta(input_ids, attention_mask=attention_mask)[0]
        feature = self.length_trm(_feature, src_key_padding_mask=(1 - attention_mask).bool())
        length = attention_mask.sum(dim=-1)
        pooled = feature.masked_fill((attention_mask == 0)[:, :, None], 0).float().sum(1) / length[:, None]
        return self.length_predictor(pooled.to(feature))

    def top_lengths(self, prefixes, beam):
        # initialize_decode_samples: topk(beam) + 1, capped at max_positions - 2 - src_len - 1.
        width = max(len(p) for p in prefixes)
        ids = torch.tensor([p + [self.pad_id] * (width - len(p)) for p in prefixes])
        logits = self.forward_length(ids)
        top = logits.topk(beam + 1, dim=-1)
        assert (top.values[:, beam - 1] - top.values[:, beam]).min() > 1e-3, "near-tie in the top lengths"
        src_length = ids.ne(self.pad_id).sum(-1)
        cap = self.config.max_position_embeddings - 2 - src_length[:, None] - 1
        return torch.min(top.indices[:, :beam] + 1, cap).tolist()


def randomize(dd, seed):
    # Every parameter random (LayerNorms around 1); the length logits spread widely.
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in dd.named_parameters():
            norm = "LayerNorm" in name or "layer_norm" in name or ".norm" in name
            p.copy_(torch.randn(p.shape, generator=g) * (0.5 if norm else 0.2))
            if norm and name.endswith("weight"):
                p.add_(1.0)
        dd.length_predictor[2].weight.mul_(8.0)  # lengths that depend on the prompt
        dd.length_predictor[2].bias.copy_(torch.randn(dd.length_predictor[2].bias.shape, generator=g) * 0.5)
    dd.eval()


def build(tie, seed):
    cfg = json.load(open(os.path.join(BASE, "config.json")))
    cfg.update(tie_word_embeddings=tie, attn_implementation="eager")
    for k in ("architectures", "dtype", "transformers_version", "model_type"):
        cfg.pop(k, None)
    model = XLMRobertaForMaskedLM(XLMRobertaConfig(**cfg))
    vocab = Tokenizer.from_file(os.path.join(BASE, "tokenizer.json")).get_vocab(with_added_tokens=True)
    dd = DiscreteDiffusionXLMRModel(model, vocab)
    randomize(dd, seed)
    return dd


def golden(dd, to_model, mask_id, vocab_size):
    tok = Tokenizer.from_file(os.path.join(BASE, "tokenizer.json"))
    encode = lambda text: [to_model(i) for i in tok.encode(text).ids]
    g = torch.Generator().manual_seed(7)
    ids = torch.randint(4, vocab_size, (2, 9), generator=g)
    ids[:, 0], ids[:, -1] = 0, 2
    ids[ids == mask_id] = 5
    ids[0, 3], ids[1, 5] = mask_id, mask_id
    with torch.no_grad():
        logits = dd(ids)
        probs = logits.softmax(-1)
        fill = []
        for r, c in [(0, 3), (1, 5)]:
            top = probs[r, c].topk(5)
            fill.append([dict(token_id=int(i), score=float(s)) for s, i in zip(top.values, top.indices)])
        prefixes = [encode(p)[:-1] for p in PROMPTS]  # <s> prompt (SPEC §2: src[:-1])
        lengths = dd.top_lengths(prefixes, BEAM)
    return dict(input_ids=ids.tolist(), logits=logits.tolist(), fill_mask=fill, mask_id=mask_id,
                prompts=PROMPTS, prefixes=prefixes, beam=BEAM, length_candidates=lengths)


def write_golden(d, data):
    with open(os.path.join(d, "golden.json"), "w") as f:
        json.dump(data, f)
    print(d, sorted(os.listdir(d)))


def fresh(name):
    d = os.path.join(OUT, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    return d


def tied_bin():
    dd = build(tie=True, seed=11)
    d = fresh("tied-bin")
    sd = collections.OrderedDict((k, v.clone()) for k, v in dd.state_dict().items())
    sd["model.lm_head.decoder.weight"] = torch.empty(0)
    sd["model.roberta.embeddings.position_ids"] = torch.arange(dd.config.max_position_embeddings).expand((1, -1))
    torch.save(sd, os.path.join(d, "pytorch_model.bin"))
    write_golden(d, golden(dd, lambda i: i, 89, 90))


def untied_zero():
    dd = build(tie=False, seed=12)
    d = fresh("untied-zero")
    sd = collections.OrderedDict((k, v.to(torch.bfloat16)) for k, v in dd.state_dict().items())
    dd.load_state_dict(sd)  # the computation below uses the stored (bf16-rounded) weights
    step = os.path.join(d, "global_step12")
    os.makedirs(step)
    state = dict(
        module=sd, buffer_names=[], optimizer=None,
        param_shapes=[collections.OrderedDict((k, v.shape) for k, v in sd.items())],
        frozen_param_shapes=None, shared_params={}, frozen_param_fragments=None, lr_scheduler=None,
        data_sampler=None, random_ltd=None, sparse_tensor_module_names=set(), skipped_steps=0,
        global_steps=12, global_samples=96, dp_world_size=1, mp_world_size=1,
        ds_config={"bf16": {"enabled": True}, "zero_optimization": {"stage": 2}}, ds_version="0.9.5")
    torch.save(state, os.path.join(step, "mp_rank_00_model_states.pt"))
    decoy = os.path.join(d, "global_step3")
    os.makedirs(decoy)
    open(os.path.join(decoy, "mp_rank_00_model_states.pt"), "w").write("not a checkpoint\n")
    write_golden(d, golden(dd, lambda i: i, 89, 90))


def pruned_bin():
    dd = build(tie=True, seed=13)
    d = fresh("pruned-bin")
    words = [w for w, i in sorted(dd.vocab.items(), key=lambda x: x[1]) if 4 <= i < 89]
    random.Random(5).shuffle(words)
    kept = words[:40]
    lines = kept[:20] + ["<mask>", "zzz-not-in-the-vocabulary"] + kept[20:]
    # every vocabulary word of TEXT and PROMPTS is in the dictionary ("big" is in neither)
    needed = set((TEXT + " " + " ".join(PROMPTS)).split()) & set(words)
    lines += sorted(needed - set(kept))
    with open(os.path.join(d, "dict.txt"), "w", encoding="utf-8") as f:
        for n, w in enumerate(lines):
            f.write(f"{w} {1000 - n}\n")
    dictionary = Dictionary.load(os.path.join(d, "dict.txt"))
    sub = dd.remove_redundant_embeddings(dictionary)
    with torch.no_grad():  # as finetuning would, move the (now untied) decoder off the embeddings
        dd.model.lm_head.decoder.weight.add_(torch.randn(dd.model.lm_head.decoder.weight.shape,
                                                         generator=torch.Generator().manual_seed(6)) * 0.05)
    dd.eval()
    sd = collections.OrderedDict((k, v.clone()) for k, v in dd.state_dict().items())
    assert sd["model.lm_head.bias"].shape[0] == 90 and sd["model.lm_head.decoder.bias"].shape[0] == len(dictionary)
    torch.save(sd, os.path.join(d, "pytorch_model.bin"))
    to_model = {}
    for i, j in enumerate(sub):
        to_model.setdefault(j, i)
    g = golden(dd, lambda i: to_model.get(i, dictionary.unk_index), dictionary.mask_index, len(dictionary))
    g.update(kept=sub, text=TEXT,
             text_ids=[dictionary.bos_index] + [dictionary.index(w) for w in TEXT.split()] + [dictionary.eos_index])
    write_golden(d, g)


if __name__ == "__main__":
    torch.manual_seed(0)
    tied_bin()
    untied_zero()
    pruned_bin()
