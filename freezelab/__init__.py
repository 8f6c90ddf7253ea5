"""freezelab: which BERT layers should I freeze? A teaching kit.

The package follows the course, one module per idea:

    anatomy     where a model's parameters live (the grid every picture uses)
    plans       what to freeze: FreezePlan and the common recipes (BitFit, LayerNorm-only among them)
    methods     what every way of choosing what trains provides, and the registry of method families
    lora        LoRA adapters through peft, a method on the same grid
    ...         each further method family registered in methods.REGISTERED ((IA)³ is the worked example)
    recipes     popular tutorial recipes, as printed and as fixed
    schedules   plans that change during training (gradual unfreezing)
    style       one palette and one set of names
    figure      a plotly figure that says what it shows, in words and as a table
    plots       the anatomy grid's figures: the trainable-parameter heatmap, weight drift
    widgets     the FreezePicker, ScheduleReplay and InterpolationSlider (ipywidgets)
    models      loading checkpoints (offline MiniLM-L6, bert-base, local folders)
    heads       which vector the classifier reads ([CLS] pooler or mean)
    data        the course's tasks and your own files
    config      TrainConfig: every training setting, checked
    head_start  where the task head starts: at random, or fitted first as a linear probe (LP-FT)
    batching    batches of similar length, and micro-batches that sum to one step
    training    fine_tune on Hugging Face Trainer, and its result record
    prefix_cache the frozen-prefix cache (train only what is not frozen)
    memory      handing freed memory back to the system
    dashboard   live loss and metric curves while training
    probes      what a fine-tuned model kept of its pre-trained knowledge
    interpolation  weight interpolation (WiSE-FT): back from the fine-tuned weights towards the pre-trained
    lr_range    a learning-rate range test that watches retention as well as the loss
    grids       what a sweep runs: named set-ups, grids of points, presets
    experiment  one run of a grid point, as a typed record
    sweeps      the queue of runs on SQLite or PostgreSQL (Optuna)
    results     tables of runs: mean ± std over seeds, comparisons
    run_plots   figures of runs: the frontier, data sizes, layer probes, sequences of tasks
    advisor     what to freeze for your data: predicted score and retention, validated on tasks it never saw
    classroom   class mode: a class's kernels filling one sweep
    course      checkpoint, run size and device for the notebooks
    exercises   checks for the notebooks' exercises

`import freezelab` loads none of them: each loads when first used (`fl.fine_tune` loads
training, `fl.FreezePicker` the widgets), so a headless sweep worker never imports
ipywidgets or IPython. The names below are the public surface the notebooks use.
"""

from __future__ import annotations

import importlib

# `anatomy` is a module and its main function; the package's name is the function. Importing it here
# (numpy only) binds the function after the submodule, so a later `import freezelab.anatomy` cannot shadow it.
from .anatomy import anatomy

__version__ = "0.1.0"

# public name -> the module that defines it
_NAMES = {
    "Anatomy": "anatomy", "find_blocks": "anatomy", "frozen_names": "anatomy",
    "parameter_grid": "anatomy", "summary_line": "anatomy", "trainable_summary": "anatomy",
    "FreezePlan": "plans", "NothingTrainableError": "plans", "Method": "methods",
    "RECIPES": "recipes", "Recipe": "recipes",
    "Phase": "schedules", "Schedule": "schedules",
    "grid_heatmap": "plots", "trainable_heatmap": "plots",
    "FreezePicker": "widgets", "ScheduleReplay": "widgets", "InterpolationSlider": "widgets",
    "ModelNotAvailableError": "models", "OFFLINE_PRESET": "models", "is_untrained": "models", "load_model": "models",
    "DataNotAvailableError": "data", "load_task": "data",
    "TrainConfig": "config",
    "FineTuneResult": "training", "fine_tune": "training",
    "retention": "probes", "Dashboard": "dashboard",
    "interpolate": "interpolation", "alpha_curve": "interpolation", "range_test": "lr_range",
    "clear_caches": "caches", "advise": "advisor",
}
_MODULES = ("anatomy", "plans", "methods", "lora", "recipes", "schedules", "style", "figure", "plots", "run_plots", "widgets", "models", "heads", "data", "config",
            "training", "prefix_cache", "dashboard", "probes", "grids", "experiment", "sweeps", "results", "classroom",
            "course", "exercises", "caches", "memory", "batching", "head_start", "interpolation", "lr_range", "advisor")

__all__ = sorted([*_NAMES, "anatomy"]) + ["advisor", "course", "data", "exercises", "grids", "models", "plots", "probes", "results", "run_plots", "sweeps"]


def __getattr__(name: str):
    if name in _NAMES:
        value = getattr(importlib.import_module(f".{_NAMES[name]}", __name__), name)
    elif name in _MODULES:
        value = importlib.import_module(f".{name}", __name__)
    elif name in _method_classes():  # each registered method family's class: fl.LoRA, fl.IA3, ...
        value = _method_classes()[name]
    else:
        raise AttributeError(f"module 'freezelab' has no attribute {name!r}")
    globals()[name] = value  # the next lookup is a plain attribute
    return value


def _method_classes() -> dict:
    from .methods import families

    return {family.make.__name__: family.make for family in families()}


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_NAMES) | set(_MODULES) | set(_method_classes()))
