"""What the notebook front end can show: are we in a Jupyter kernel, and does plotly's FigureWidget render there?

For: the two live views, the FreezePicker (`freezelab.widgets`) and the training dashboard
(`freezelab.dashboard`), which choose the same way between a FigureWidget and a redrawn figure.

Not for: drawing anything. Imports nothing heavy until asked.
"""

from __future__ import annotations

import sys


def in_notebook() -> bool:
    """True inside a Jupyter kernel (JupyterLab, Notebook, Colab, VS Code)."""
    try:
        from IPython import get_ipython
        from ipykernel.zmqshell import ZMQInteractiveShell
    except ImportError:
        return False
    return isinstance(get_ipython(), ZMQInteractiveShell)  # Colab's shell is a subclass


def figurewidget_works() -> bool:
    """True where plotly's FigureWidget can render: anywidget present, ipywidgets 8, not on Colab."""
    if "google.colab" in sys.modules:
        return False  # Colab ships ipywidgets 7 and has open FigureWidget reports
    try:
        import anywidget  # noqa: F401  (plotly's FigureWidget is built on it)
        import ipywidgets
    except ImportError:
        return False
    return int(ipywidgets.__version__.split(".")[0]) >= 8
