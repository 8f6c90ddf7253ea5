"""How the kit colours and names things: one palette, one set of display names, used by every figure and table.

For: the Okabe-Ito colours (distinct for every common colour-vision
deficiency) and what each measure is called on an axis, in a table, or in a
sentence. Change a colour or a name here and every heatmap, frontier, curve,
dashboard and table follows.

Not for: drawing (`freezelab.plots`, `freezelab.dashboard`) or computing the measures (`freezelab.probes`).
"""

# The Okabe-Ito palette (Okabe & Ito 2008), by name.
BLUE, ORANGE, GREEN, VERMILLION = "#0072B2", "#E69F00", "#009E73", "#D55E00"
PURPLE, SKY_BLUE, YELLOW, BLACK = "#CC79A7", "#56B4E9", "#F0E442", "#000000"

# The anatomy heatmap: sky blue frozen, orange trainable, grey for a cell that is part of each;
# light enough for black cell labels.
FROZEN_COLOUR, TRAINABLE_COLOUR, HALF_COLOUR = SKY_BLUE, ORANGE, "#e6e6e6"
TRAINABLE_SCALE = [[0.0, FROZEN_COLOUR], [0.5, HALF_COLOUR], [1.0, TRAINABLE_COLOUR]]
# Weight change: white unchanged, vermillion the most change.
DRIFT_SCALE = [[0.0, "#ffffff"], [1.0, VERMILLION]]
# Runs by frozen depth: vermillion (nothing frozen) to blue (everything frozen); purple for schedules.
DEPTH_SCALE = [[0.0, VERMILLION], [1.0, BLUE]]
SCHEDULE_COLOUR = PURPLE
# The plans beyond freezing whole layers on the frontier: (colour, marker, words for the legend) by grid key
# prefix. Each method family (`freezelab.methods.Family.mark`) brings its own.
METHOD_MARKS = {"bitfit": (GREEN, "x", "green x BitFit"), "lnorm": (BLACK, "cross", "black + LayerNorm only")}
# Curves of several set-ups at once: one colour per set-up, in this order.
LINE_COLOURS = [BLUE, ORANGE, GREEN, VERMILLION, PURPLE, SKY_BLUE, YELLOW, BLACK]
# The training dashboard: loss and dev metric.
LOSS_COLOUR, METRIC_COLOUR = BLUE, ORANGE

# What each task is called in a title or a sentence.
TASK_NAMES = {"sst2": "SST-2", "subj": "SUBJ", "cola": "CoLA", "stsb": "STS-B", "word-order": "word order"}

# What each measure is called in a table, on an axis and in the course's sentences.
METRIC_NAMES = {
    "dev_metric": "task dev accuracy",
    "accuracy": "accuracy",
    "spearman": "Spearman ρ",
    "sts_spearman": "STS-B Spearman ρ",
    "mlm_accuracy": "masked-LM accuracy",
    "cka_top": "CKA of the top block",
    "first_before": "first task's dev accuracy before the second",
    "first_after": "first task's dev accuracy after the second",
    "cost": "first task's accuracy lost to the second",
}
# The retention probes (`freezelab.probes`), by the key of their score.
PROBES = {key: METRIC_NAMES[key] for key in ("sts_spearman", "mlm_accuracy")}
