"""freezelab: which BERT layers should I freeze? A teaching kit.

The package follows the course: anatomy (where parameters live) → plans
(what to freeze) → recipes (popular tutorial recipes, as printed and fixed).
Notebooks in `notebooks/` import from here.
"""

from .anatomy import Anatomy, anatomy, find_blocks, frozen_names, parameter_grid, summary_line, trainable_summary
from .models import ModelNotAvailableError, OFFLINE_PRESET, is_untrained, load_model
from .plans import FreezePlan
from .recipes import RECIPES, Recipe

__all__ = [
    "Anatomy", "FreezePlan", "ModelNotAvailableError", "OFFLINE_PRESET", "RECIPES", "Recipe",
    "anatomy", "find_blocks", "frozen_names", "is_untrained", "load_model", "parameter_grid",
    "summary_line", "trainable_summary",
]
__version__ = "0.1.0"
