"""freezelab: which BERT layers should I freeze? A teaching kit.

The package follows the course: anatomy (where parameters live) → plans
(what to freeze) → recipes (popular tutorial recipes, as printed and fixed)
→ plots and widgets (the heatmap and the FreezePicker) → data → training
(fine_tune on Trainer, schedules, the live dashboard; heads: which vector the
classifier reads) → probes (what survives) → results (tables and plots of sweeps).
`freezelab.course` chooses checkpoint, run size and device for the notebooks.
Sweeps (`freezelab.sweeps`, `python -m freezelab`) and class mode
(`freezelab.classroom`: a class's kernels filling one sweep on PostgreSQL) are
imported on demand: they need Optuna. Notebooks in `notebooks/` (the student
edition, built from `teacher/notebooks/`) import from here.
"""

from .anatomy import Anatomy, anatomy, find_blocks, frozen_names, parameter_grid, summary_line, trainable_summary
from .models import ModelNotAvailableError, OFFLINE_PRESET, is_untrained, load_model
from .plans import FreezePlan
from .plots import grid_heatmap, trainable_heatmap
from .widgets import FreezePicker, ScheduleReplay
from .data import load_task
from .schedules import Phase, Schedule
from .training import FineTuneResult, fine_tune
from . import course, probes
from .probes import retention
from . import results
from . import exercises
from .recipes import RECIPES, Recipe

__all__ = [
    "Anatomy", "FineTuneResult", "FreezePicker", "FreezePlan", "Phase", "Schedule", "ScheduleReplay", "ModelNotAvailableError", "OFFLINE_PRESET", "RECIPES", "Recipe",
    "anatomy", "course", "exercises", "results", "retention", "probes", "find_blocks", "fine_tune", "grid_heatmap", "load_task", "frozen_names", "is_untrained", "load_model", "parameter_grid",
    "summary_line", "trainable_heatmap", "trainable_summary",
]
__version__ = "0.1.0"
