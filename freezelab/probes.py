"""Retention probes: how much pre-trained knowledge survives a fine-tune. Probes never modify a model.

For: measuring catastrophic forgetting instead of asserting it.
- `sts_retention`: STS-B dev Spearman correlation between gold similarity and
  the cosine of mean-pooled encoder outputs (the untouched MiniLM-L6 scores about 0.87).
- `mlm_retention`: masked-token accuracy of the fine-tuned encoder read
  through the *original* masked-LM head (checkpoints that have one, e.g. bert-base-uncased).
- `cka_per_layer`: linear CKA between original and fine-tuned token representations,
  per layer (1.0 = unchanged).
- `weight_drift`: relative change ||dW|| / ||W|| per cell of the anatomy grid.
- `retention`: the probes that apply to the checkpoint, in one record.
- `sentence_features` / `linear_probe`: what a frozen encoder's [CLS] vector, pooler output or mean vector
  holds about a task, measured by a logistic regression fitted to convergence (no step-size budget).
- `layer_probes`: the same linear probe on every layer's mean token vector, and on the top layer's [CLS]
  and pooler output: where in the frozen encoder a task's information sits, and which vector a head reads best.
- `retention_probe` / `untouched`: which probe is the retention axis for a checkpoint (masked-LM accuracy
  through the original head where it has one, STS-B for sentence encoders), and the untouched model's score.

Probe scores are remembered per process (`SCORES`, the 256 most recent), keyed by a hash of the weights
each probe reads and of its inputs: a grid's head-only runs leave the encoder as it was loaded, so their
probes are computed once and then read back, the same numbers. `freezelab.clear_caches()` empties it.

A model holding adapters (LoRA, (IA)³: `freezelab.methods`) is read through
them by the probes that run it (STS-B, CKA) and with each adapter folded into
its matrix by the probes that copy weights (masked-LM, drift): the same function.

Not for: task accuracy (`freezelab.training` measures it) or plotting
(`freezelab.plots` draws drift on the anatomy grid).
"""

from __future__ import annotations

import copy
import hashlib
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from scipy.stats import spearmanr

from .anatomy import anatomy
from .caches import weights_digest
from .memory import trim_heap
from .style import PROBES
from .data import load_task
from .head_start import fit_logistic
from .models import _quiet_transformers, resolve


def _body(model):
    return model.base_model


SCORES: OrderedDict[tuple, object] = OrderedDict()  # probe results by (probe, weights read, inputs)
SCORES_MAX = 256


def _remembered(key: tuple, compute):
    """The probe's result for `key`, computed once per process (the most recent SCORES_MAX kept)."""
    if key in SCORES:
        SCORES.move_to_end(key)
    else:
        SCORES[key] = compute()
        while len(SCORES) > SCORES_MAX:
            SCORES.popitem(last=False)
    value = SCORES[key]
    return dict(value) if isinstance(value, dict) else value


def _reads(model, skip: tuple[str, ...] = ()) -> tuple:
    """What a probe's result depends on in `model`: its weights (hashed), class, attention code and device."""
    body = _body(model)
    return (weights_digest(model, skip=skip), type(model).__name__,
            getattr(body.config, "_attn_implementation", None), str(next(model.parameters()).device))


def _body_reads(model) -> tuple:
    """What the probes that run the encoder read: its weights, not the pooler's nor the head's."""
    return _reads(_body(model), skip=("pooler.",))


def _inputs_key(tokenizer, texts=()) -> tuple:
    digest = hashlib.blake2b("\x00".join(texts).encode(), digest_size=16).hexdigest()
    return type(tokenizer).__name__, tokenizer.name_or_path, len(tokenizer), len(texts), digest


def _weights(module) -> dict:
    """The module's weights by their plain names; adapters folded into their matrices (`methods.merged_state_dict`).
    Probes that copy weights read these; probes that run the model read it through its adapters."""
    from .anatomy import adapter_prefixes
    from .methods import merged_state_dict

    return merged_state_dict(module) if adapter_prefixes(module) else dict(module.state_dict(keep_vars=True))


@torch.no_grad()
def _encode(model, tokenizer, texts: list[str], batch_size: int = 32, max_length: int = 128) -> torch.Tensor:
    """Mean-pooled last hidden states, one row per text. Batches of 32 (here and in the other probes) keep a
    run's probes below its training in memory (`benchmarks/memory.py` prints both peaks)."""
    body, was_training = _body(model), model.training
    model.eval()
    device = next(model.parameters()).device
    # Sentences of similar length share a batch (little padding); rows go back to the texts' order.
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    pooled = [None] * len(texts)
    for start in range(0, len(texts), batch_size):
        chosen = order[start:start + batch_size]
        batch = tokenizer([texts[i] for i in chosen], padding=True, truncation=True, max_length=max_length,
                          return_tensors="pt").to(device)
        hidden = body(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).float()
        for row, vector in zip(chosen, ((hidden * mask).sum(1) / mask.sum(1)).float().cpu()):
            pooled[row] = vector
    model.train(was_training)
    return torch.stack(pooled)


def sts_retention(model, tokenizer, dev_size: int | None = None, seed: int = 0) -> float:
    """STS-B dev Spearman of cosine(mean-pooled encoder outputs) against the gold scores."""
    return _remembered(("sts", _body_reads(model), _inputs_key(tokenizer), dev_size, seed),
                       lambda: _sts_retention(model, tokenizer, dev_size, seed))


def _sts_retention(model, tokenizer, dev_size: int | None, seed: int) -> float:
    data = load_task("stsb", dev_size=dev_size, seed=seed)["dev"]
    a = _encode(model, tokenizer, data["text"])
    b = _encode(model, tokenizer, data["text_pair"])
    cosine = torch.nn.functional.cosine_similarity(a, b).numpy()
    trim_heap()  # thousands of forward passes leave the heap fragmented: hand the pages back
    return float(spearmanr(cosine, np.array(data["label"])).statistic)


def linear_cka(x: torch.Tensor, y: torch.Tensor) -> float:
    """Linear CKA (Kornblith et al. 2019) between two n x d representation matrices of the same n inputs."""
    x = x.double() - x.double().mean(0)
    y = y.double() - y.double().mean(0)
    cross = (y.T @ x).norm() ** 2
    return float(cross / ((x.T @ x).norm() * (y.T @ y).norm()))


class _CrossGram:
    """What linear CKA needs of two n x d matrices, summed batch by batch: n, the column sums, X'X, Y'Y, Y'X.
    No token vector is kept, so memory does not grow with the probe set."""

    def __init__(self):
        self.n, self.sx, self.sy, self.xx, self.yy, self.yx = 0, 0.0, 0.0, 0.0, 0.0, 0.0

    def add(self, x: torch.Tensor, y: torch.Tensor) -> None:
        x, y = x.double(), y.double()
        self.n += len(x)
        self.sx, self.sy = self.sx + x.sum(0), self.sy + y.sum(0)
        self.xx, self.yy, self.yx = self.xx + x.T @ x, self.yy + y.T @ y, self.yx + y.T @ x

    def cka(self) -> float:
        mx, my = self.sx / self.n, self.sy / self.n  # centring: Xc'Xc = X'X - n mx mx'
        xx = self.xx - self.n * torch.outer(mx, mx)
        yy = self.yy - self.n * torch.outer(my, my)
        yx = self.yx - self.n * torch.outer(my, mx)
        return float(yx.norm() ** 2 / (xx.norm() * yy.norm()))


def cka_per_layer(original, finetuned, tokenizer, texts: list[str], batch_size: int = 32,
                  max_length: int = 128) -> dict[str, float]:
    """Linear CKA per layer ("embeddings", "block 0", ...) on the token vectors of `texts` (padding dropped).

    Both models read each batch in turn and only running sums are kept (`_CrossGram`): the same number as
    `linear_cka` on every token vector stacked, without holding them (hundreds of MB for bert-base).
    """
    key = ("cka", _body_reads(original), _body_reads(finetuned), _inputs_key(tokenizer, texts), batch_size, max_length)
    return _remembered(key, lambda: _cka_per_layer(original, finetuned, tokenizer, texts, batch_size, max_length))


@torch.no_grad()
def _cka_per_layer(original, finetuned, tokenizer, texts: list[str], batch_size: int,
                   max_length: int) -> dict[str, float]:
    models = [original, finetuned]
    was_training = [m.training for m in models]
    for m in models:
        m.eval()
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    grams = None
    for start in range(0, len(texts), batch_size):
        batch = tokenizer([texts[i] for i in order[start:start + batch_size]], padding=True, truncation=True,
                          max_length=max_length, return_tensors="pt")
        keep = batch["attention_mask"].bool()
        states = [_body(m)(**batch.to(next(m.parameters()).device), output_hidden_states=True).hidden_states
                  for m in models]
        grams = grams or [_CrossGram() for _ in states[0]]
        for gram, x, y in zip(grams, *states):
            gram.add(x[keep.to(x.device)].cpu(), y[keep.to(y.device)].cpu())
    for m, training in zip(models, was_training):
        m.train(training)
    names = ["embeddings"] + [f"block {i}" for i in range(len(grams) - 1)]
    trim_heap()
    return {name: gram.cka() for name, gram in zip(names, grams)}


@torch.no_grad()
def weight_drift(original, finetuned) -> dict[tuple[str, str], float]:
    """||W_finetuned - W_original|| / ||W_original|| per (row, column) cell of the anatomy grid."""
    a = anatomy(original)
    before = dict(original.named_parameters())
    after = _weights(finetuned)
    change, size = {}, {}
    for p_info in a.params:
        cell = (p_info.row, p_info.column)
        w = before[p_info.name].detach().float().cpu()
        change[cell] = change.get(cell, 0.0) + float(((after[p_info.name].detach().float().cpu() - w) ** 2).sum())
        size[cell] = size.get(cell, 0.0) + float((w ** 2).sum())
    return {cell: (change[cell] ** 0.5) / (size[cell] ** 0.5) if size[cell] > 0 else float("nan") for cell in change}


def mlm_retention(mlm_model, finetuned, tokenizer, texts: list[str], mask_rate: float = 0.15, seed: int = 0) -> float:
    """Masked-token accuracy of the fine-tuned encoder read through the original MLM head.

    `mlm_model` is the original checkpoint loaded with AutoModelForMaskedLM. A
    copy of it gets the fine-tuned encoder's weights; neither model changes.
    """
    key = ("mlm", _reads(mlm_model), _body_reads(finetuned), _inputs_key(tokenizer, texts), mask_rate, seed)
    return _remembered(key, lambda: _mlm_retention(mlm_model, finetuned, tokenizer, texts, mask_rate, seed))


@torch.no_grad()
def _mlm_retention(mlm_model, finetuned, tokenizer, texts: list[str], mask_rate: float, seed: int) -> float:
    probe = copy.deepcopy(mlm_model)
    _body(probe).load_state_dict(_weights(_body(finetuned)), strict=False)
    probe.eval()
    generator = torch.Generator().manual_seed(seed)
    batch = tokenizer(texts, padding=True, truncation=True, max_length=128, return_tensors="pt")
    ids = batch["input_ids"].clone()
    special = torch.isin(ids, torch.tensor(tokenizer.all_special_ids))
    chosen = (torch.rand(ids.shape, generator=generator) < mask_rate) & ~special & batch["attention_mask"].bool()
    masked = ids.masked_fill(chosen, tokenizer.mask_token_id)
    device, head = next(probe.parameters()).device, _mlm_head(probe)
    right = 0
    for start in range(0, len(ids), 16):  # the logits of a whole batch over the vocabulary would take GBs
        rows = slice(start, start + 16)
        inputs = {"input_ids": masked[rows].to(device), "attention_mask": batch["attention_mask"][rows].to(device)}
        if head is None:
            guessed = probe(**inputs).logits.argmax(-1).cpu()[chosen[rows]]
        else:  # the head reads each position alone: the masked ones are all it needs (15% of the vocab products)
            hidden = _body(probe)(**inputs).last_hidden_state
            guessed = head(hidden[chosen[rows].to(device)]).argmax(-1).cpu()
        right += int((guessed == ids[rows][chosen[rows]]).sum())
    return right / int(chosen.sum())


def _mlm_head(mlm_model):
    """The module that turns each last hidden state into vocabulary logits, one position at a time, where the
    architecture keeps it in one piece (BERT's `cls`, RoBERTa's `lm_head`); None for the others (DistilBERT
    spreads it over four), which are read through the whole model's logits."""
    for name in ("cls", "lm_head"):
        head = getattr(mlm_model, name, None)
        if isinstance(head, torch.nn.Module):
            return head
    return None


def _weights_file(checkpoint: str) -> Path | None:
    """The checkpoint's model.safetensors: in a local folder, or in the Hugging Face cache (fetched if online)."""
    source = resolve(checkpoint)
    if Path(source).is_dir():
        path = Path(source) / "model.safetensors"
        return path if path.is_file() else None
    try:
        from huggingface_hub import hf_hub_download

        return Path(hf_hub_download(source, "model.safetensors"))
    except Exception:  # offline and not cached, or no safetensors file: no head to read
        return None


def has_mlm_head(checkpoint: str) -> bool:
    """Whether the checkpoint ships masked-LM head weights (bert-base-uncased does; all-MiniLM-L6-v2 does not)."""
    path = _weights_file(checkpoint)
    if path is None:
        return False
    with safe_open(str(path), "pt") as weights:
        return any(key.startswith("cls.predictions") for key in weights.keys())


def load_mlm_model(checkpoint: str):
    """The original checkpoint with its masked-LM head (safetensors only), for `mlm_retention`; None if it has none."""
    if not has_mlm_head(checkpoint):
        return None
    from transformers import AutoModelForMaskedLM

    with _quiet_transformers():  # no load report or progress bar in a notebook's output
        return AutoModelForMaskedLM.from_pretrained(resolve(checkpoint), use_safetensors=True, trust_remote_code=False)


def probe_texts(n: int = 200, seed: int = 0) -> list[str]:
    """A fixed probe set for CKA and masked-LM accuracy: SST-2 dev sentences (never trained on)."""
    return list(load_task("sst2", dev_size=n, seed=seed)["dev"]["text"])


def retention(original, finetuned, tokenizer, *, checkpoint: str | None = None, sts_dev_size: int | None = None,
              probe_size: int = 200, mlm_model=None) -> dict:
    """Every probe that applies, in one record: STS-B Spearman, CKA per layer, weight drift per cell, and
    masked-LM accuracy when the checkpoint has an MLM head (pass `checkpoint` to look, or the head as `mlm_model`)."""
    if mlm_model is None and checkpoint is not None:
        mlm_model = load_mlm_model(checkpoint)
    texts = probe_texts(probe_size)
    drift = weight_drift(original, finetuned)
    record = {
        "sts_spearman": sts_retention(finetuned, tokenizer, dev_size=sts_dev_size),
        "cka": cka_per_layer(original, finetuned, tokenizer, texts),
        "weight_drift": {f"{row}/{column}": value for (row, column), value in drift.items()},
    }
    if mlm_model is not None:
        record["mlm_accuracy"] = mlm_retention(mlm_model, finetuned, tokenizer, texts)
    return record




def retention_probe(checkpoint: str) -> str:
    """The retention axis that fits the checkpoint: "mlm_accuracy" where it ships a masked-LM head (what it
    was pre-trained to do), else "sts_spearman" (sentence encoders such as all-MiniLM-L6-v2)."""
    return "mlm_accuracy" if has_mlm_head(checkpoint) else "sts_spearman"


def untouched(model, tokenizer, checkpoint: str, probe: str, *, sts_dev_size: int | None = None,
              probe_size: int = 200) -> float:
    """The pre-trained model's own score on `probe`, measured as `retention` measures a fine-tuned one."""
    if probe == "sts_spearman":
        return sts_retention(model, tokenizer, dev_size=sts_dev_size)
    if probe == "mlm_accuracy":
        head = load_mlm_model(checkpoint)
        if head is None:
            raise ValueError(f"{checkpoint!r} has no masked-LM head: use the 'sts_spearman' probe")
        return mlm_retention(head, model, tokenizer, probe_texts(probe_size))
    raise ValueError(f"unknown probe {probe!r}; probes: {', '.join(PROBES)}")


@torch.no_grad()
def sentence_features(model, tokenizer, texts: list[str], read: str = "mean", batch_size: int = 32,
                      max_length: int = 64) -> torch.Tensor:
    """One vector per sentence from the encoder: "cls" (the [CLS] token's last hidden state), "pooler" (BERT's
    pooler over it, what the classifier reads) or "mean" (the mean of the real tokens' vectors)."""
    if read not in ("cls", "pooler", "mean"):
        raise ValueError(f"read must be 'cls', 'pooler' or 'mean', got {read!r}")
    if read == "mean":
        vectors = _encode(model, tokenizer, list(texts), batch_size=batch_size, max_length=max_length)
        trim_heap()
        return vectors
    body, was_training = _body(model), model.training
    model.eval()
    device = next(model.parameters()).device
    vectors = []
    for start in range(0, len(texts), batch_size):
        batch = tokenizer(list(texts[start:start + batch_size]), padding=True, truncation=True,
                          max_length=max_length, return_tensors="pt").to(device)
        hidden = body(**batch).last_hidden_state
        vectors.append(hidden[:, 0] if read == "cls" else body.pooler(hidden))
    model.train(was_training)
    trim_heap()
    return torch.cat(vectors).float().cpu()


def linear_probe(train_x: torch.Tensor, train_y, dev_x: torch.Tensor, dev_y, l2: float = 1e-4) -> float:
    """Dev accuracy of a logistic regression fitted to convergence (full-batch L-BFGS) on frozen features.

    It asks how much a linear head *could* read from the features, whatever their scale: unlike a short
    fine-tune, it has no learning rate or step budget to run out of.
    """
    train_y, dev_y = torch.as_tensor(list(train_y)), torch.as_tensor(list(dev_y))
    classes = int(max(train_y.max(), dev_y.max())) + 1
    head = fit_logistic(train_x, train_y, classes=classes, l2=l2)
    with torch.no_grad():
        return float((head(dev_x.float()).argmax(1) == dev_y).float().mean())


def layer_features(model, tokenizer, texts: list[str], batch_size: int = 32, max_length: int = 64) -> dict:
    """Vectors of every layer from one pass per batch: {"embeddings": mean token vectors, "block 0": ..., ...,
    "[CLS]": the top layer's [CLS] vector, "pooler": the pooler over it (where the model has one)}."""
    body, was_training = _body(model), model.training
    model.eval()
    device = next(model.parameters()).device
    names = ["embeddings"] + [f"block {i}" for i in range(model.config.num_hidden_layers)]
    rows = {name: [] for name in names + ["[CLS]"] + (["pooler"] if getattr(body, "pooler", None) else [])}
    with torch.no_grad():
        for start in range(0, len(texts), batch_size):
            batch = tokenizer(list(texts[start:start + batch_size]), padding=True, truncation=True,
                              max_length=max_length, return_tensors="pt").to(device)
            hidden = body(**batch, output_hidden_states=True).hidden_states
            mask = batch["attention_mask"].unsqueeze(-1).float()
            for name, layer in zip(names, hidden):
                rows[name].append(((layer * mask).sum(1) / mask.sum(1)).float().cpu())
            rows["[CLS]"].append(hidden[-1][:, 0].float().cpu())
            if "pooler" in rows:
                rows["pooler"].append(body.pooler(hidden[-1]).float().cpu())
    model.train(was_training)
    trim_heap()
    return {name: torch.cat(parts) for name, parts in rows.items()}


def layer_probes(model, tokenizer, data):
    """`linear_probe` dev accuracy on each vector of `layer_features` (train on data["train"], score on
    data["dev"]): one row per vector, with its mean norm (how large the features a head reads are)."""
    import pandas as pd

    text = "text" if "text" in data["train"].column_names else "sentence"
    train, dev = (layer_features(model, tokenizer, list(data[split][text])) for split in ("train", "dev"))
    return pd.DataFrame([{"vector": name, "mean norm": float(train[name].norm(dim=1).mean()),
                          "dev accuracy": linear_probe(train[name], data["train"]["label"], dev[name],
                                                       data["dev"]["label"])} for name in train])
