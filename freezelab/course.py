"""The course's runtime choices: which checkpoint, what run size, which device, which learning rates.

For: the first code cell of every notebook, `course = fl.course.setup()`, which prints what it chose, why,
and how to change it. There is one course model on every runtime, MiniLM-L6: the story, the shipped
results and the exercises are calibrated on it. A GPU buys size, not another model: runs are quick on a
CPU and full size on a GPU. Environment variables change either choice:

- `FREEZELAB_QUICK=1` or `0`: quick or full size, whatever the device (`FREEZELAB_SIZE=smoke` is the
  smallest size, for CI's pass over the notebooks);
- `FREEZELAB_LEAN=1` or `0`: lean memory or not (`course.memory`, which the notebooks pass to every
  fine-tune and sweep as `memory=course.memory`, `TrainConfig.memory`; default: lean where the kernel may
  use under 6 GB, as on Binder's 2 GB, so that a kernel stays under 1.3 GB; elsewhere the faster way);
- `FREEZELAB_CHECKPOINT`: another BERT-family checkpoint (a hub id such as `bert-base-uncased`, a local
  folder, or a random-weight preset such as `tiny-random-bert`). It is an opt-in: the notebooks then
  compute every model fact from the loaded model, probe retention the way that fits it, and draw the
  shipped MiniLM results only against MiniLM's own baseline.

Learning rates of the live grids are multiples of a stable rate per checkpoint (`STABLE_LR`), so a grid
tuned on MiniLM does not push another model past the rates the literature found stable for it.

Not for: loading models (`freezelab.models`), training (`freezelab.training`) or sweeps' presets
(`freezelab.sweeps`), which always describe the shipped MiniLM results.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .config import TrainConfig
from .models import OFFLINE_PRESET, CHECKPOINT_NAMES, RANDOM_CHECKPOINTS, pick_device

COURSE_MODEL = OFFLINE_PRESET
CHECKPOINT_VARIABLE, QUICK_VARIABLE, SIZE_VARIABLE = "FREEZELAB_CHECKPOINT", "FREEZELAB_QUICK", "FREEZELAB_SIZE"
LEAN_VARIABLE = "FREEZELAB_LEAN"


@dataclass(frozen=True)
class RunSize:
    """How much a notebook trains and measures at one size."""

    name: str
    train_size: int  # sentences a live fine-tune trains on
    dev_size: int | None  # dev sentences it is scored on (None: the whole dev set)
    sts_dev_size: int | None  # STS-B pairs of the retention probe (None: all 1,500)
    data_sizes: tuple[int, ...]  # notebook 06's live training-set sizes
    min_examples: int  # notebook 06: each of its runs sees at least this many examples

    def describe(self) -> str:
        dev = "the whole dev set" if self.dev_size is None else f"{self.dev_size:,} dev sentences"
        return f"{self.name}: {self.train_size:,} training sentences, {dev}"


SIZES = {
    "full": RunSize("full", 2000, None, None, (100, 1000), 2000),
    "quick": RunSize("quick", 500, 200, 300, (100, 1000), 1000),
    "smoke": RunSize("smoke", 64, 64, 64, (16, 64), 64),
}

# A learning rate at which full fine-tuning of the checkpoint is known to be stable, and where that is from.
# The live grids are stated as multiples of it (`Course.lr`).
STABLE_LR = {
    "minilm-l6": (1e-4, "the course's calibration: full fine-tuning at 1e-4 learns SST-2 in 2 epochs "
                        "on every seed of the shipped frontier"),
    "bert-base-uncased": (2e-5, "Devlin et al. (2019) fine-tune BERT at 2e-5 to 5e-5"),
    "bert-large-uncased": (2e-5, "Devlin et al. (2019) fine-tune BERT at 2e-5 to 5e-5"),
    "google/bert_uncased_L-4_H-512_A-8": (1e-4, "Turc et al. (2019) fine-tune the small BERTs at 3e-5 to 1e-4"),
    "tiny-random-bert": (1e-3, "a test preset, 64 wide and untrained: at smoke size it needs large steps to move"),
}
DEFAULT_STABLE_LR = (2e-5, "no calibration for this checkpoint: the low end of the range Devlin et al. (2019) "
                           "found stable for BERT (2e-5 to 5e-5)")


def canonical(checkpoint: str) -> str:
    """The name a preset stands for ("bert-base" → "bert-base-uncased"); other names unchanged."""
    return CHECKPOINT_NAMES.get(checkpoint, checkpoint)


def stable_lr(checkpoint: str) -> tuple[float, str]:
    """(learning rate, source) for full fine-tuning of `checkpoint`."""
    return STABLE_LR.get(canonical(checkpoint), DEFAULT_STABLE_LR)


def _device() -> str:
    return pick_device()  # one seam for the tests to choose a device


def _size(device: str) -> tuple[RunSize, str]:
    size, quick = os.environ.get(SIZE_VARIABLE, "").strip(), os.environ.get(QUICK_VARIABLE, "").strip()
    if size:
        if size not in SIZES:
            raise ValueError(f"{SIZE_VARIABLE}={size!r} is not a run size; sizes: {', '.join(SIZES)}")
        return SIZES[size], f"{SIZE_VARIABLE}={size}"
    if quick:
        if quick not in ("0", "1"):
            raise ValueError(f"{QUICK_VARIABLE}={quick!r}: use 1 (quick) or 0 (full size)")
        return SIZES["quick" if quick == "1" else "full"], f"{QUICK_VARIABLE}={quick}"
    if device == "cuda":
        return SIZES["full"], f"a GPU: full size ({QUICK_VARIABLE}=1 for quick)"
    return SIZES["quick"], f"no GPU: quick, so a laptop finishes in minutes ({QUICK_VARIABLE}=0 for full size)"


LEAN_BELOW_BYTES = 6 * 1024**3  # at quick size a kernel peaks at 2.0 GB without lean memory (08), 1.3 GB with it


def memory_limit() -> tuple[int | None, str]:
    """The memory this kernel may use, in bytes, and where that was read: Binder's `MEM_LIMIT`, else the
    container's limit (cgroup v2, then v1), else the machine's RAM; (None, why) where none can be read."""
    if os.environ.get("MEM_LIMIT", "").strip().isdigit() and int(os.environ["MEM_LIMIT"]) > 0:  # BinderHub sets it
        return int(os.environ["MEM_LIMIT"]), "MEM_LIMIT, the notebook server's limit"
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 2**60:  # "max", or v1's huge number: no limit there
            return int(text), "the container's limit"
    try:
        import psutil  # every Jupyter kernel has it (ipykernel needs it), on every system

        return psutil.virtual_memory().total, "the machine's memory"
    except ImportError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"), "the machine's memory"
    except (AttributeError, ValueError, OSError):  # Windows has no sysconf
        return None, "how much memory this machine has could not be read"


def _memory() -> tuple[str, str]:
    chosen = os.environ.get(LEAN_VARIABLE, "").strip()
    if chosen:
        if chosen not in ("0", "1"):
            raise ValueError(f"{LEAN_VARIABLE}={chosen!r}: use 1 (lean memory) or 0 (faster, more memory)")
        return ("lean" if chosen == "1" else "fast"), f"{LEAN_VARIABLE}={chosen}"
    limit, source = memory_limit()
    if limit is None:
        return "lean", f"{source}, so the safe way; {LEAN_VARIABLE}=0 for the faster way"
    gigabytes = f"{source}: {limit / 1024**3:.1f} GB"
    if limit < LEAN_BELOW_BYTES:
        return "lean", (f"{gigabytes}, under 6 GB, as on Binder: activations are recomputed so that a kernel fits "
                        f"beside JupyterLab, and fine-tunes that train blocks take about 1.4x the time on a CPU; "
                        f"{LEAN_VARIABLE}=0 for the faster way")
    return "fast", f"{gigabytes}, room for the faster way; {LEAN_VARIABLE}=1 for lean, as on Binder"


def _checkpoint() -> tuple[str, str]:
    chosen = os.environ.get(CHECKPOINT_VARIABLE, "").strip()
    if not chosen or canonical(chosen) == COURSE_MODEL:
        return COURSE_MODEL, "the course model: the story, the shipped results and the exercises are calibrated on it"
    if chosen.startswith(("/", ".", "~")) and not Path(chosen).expanduser().is_dir():
        raise ValueError(f"{CHECKPOINT_VARIABLE}={chosen!r}: no such folder. Give a folder with a saved model, a hub "
                         f"id such as 'bert-base-uncased', or a preset: {', '.join([COURSE_MODEL, *RANDOM_CHECKPOINTS])}")
    return chosen, (f"your choice ({CHECKPOINT_VARIABLE}); the course is calibrated on {COURSE_MODEL}: facts are "
                    f"computed from this model, and {COURSE_MODEL}'s shipped results are shown only against their own "
                    f"baseline")


@dataclass(frozen=True)
class Course:
    """What a notebook runs with. `lr(k)` is k times the checkpoint's stable full fine-tuning rate; `memory`
    ("lean" or "fast", `TrainConfig.memory`) is what the notebooks pass to every fine-tune and sweep."""

    checkpoint: str
    device: str
    size: RunSize
    stable_lr: float
    why: dict
    memory: str = "fast"

    @property
    def is_course_model(self) -> bool:
        return self.checkpoint == COURSE_MODEL

    @property
    def quick(self) -> bool:
        return self.size.name != "full"

    def lr(self, times: float = 1.0) -> float:
        """`times` x the stable rate, to three significant digits (5 x 2e-5 is 1e-4, not 1.0000000000000002e-4)."""
        return float(f"{self.stable_lr * times:.3g}")

    def how_it_trains(self) -> str:
        """fine_tune's defaults as they run on this device (`TrainConfig.on`)."""
        config = TrainConfig().on(self.device)
        size = config.micro_batch_size
        return f"{config.precision}, {f'length-sorted micro-batches of {size}' if size else 'whole batches'}"

    def __str__(self) -> str:
        how = (f"to change: run `%env {QUICK_VARIABLE}=0` (full size) or `%env {CHECKPOINT_VARIABLE}=bert-base-uncased`"
               f" (or a folder) in a cell, then this cell again; the same works on Colab. In a terminal: "
               f"`export {QUICK_VARIABLE}=0` before `jupyter lab`.")
        return "\n".join([
            f"checkpoint: {self.checkpoint} ({self.why['checkpoint']})",
            f"device:     {self.device} ({self.how_it_trains()})",
            f"run size:   {self.size.describe()} ({self.why['size']})",
            f"stable lr:  {self.stable_lr:g} for full fine-tuning ({self.why['lr']})",
            f"memory:     {'lean' if self.memory == 'lean' else 'as fast as it goes'} ({self.why.get('memory', '')})",
            how,
        ])


def setup(show: bool = True) -> Course:
    """Choose checkpoint, device, run size and memory use from the runtime and the environment, and print the
    choices unless show=False. Nothing here changes how the process trains: the notebooks pass the choices."""
    checkpoint, why_checkpoint = _checkpoint()
    device = _device()
    size, why_size = _size(device)
    lr, why_lr = stable_lr(checkpoint)
    memory, why_memory = _memory()
    course = Course(checkpoint, device, size, lr,
                    {"checkpoint": why_checkpoint, "size": why_size, "lr": why_lr, "memory": why_memory}, memory)
    if show:
        print(course)
    return course
