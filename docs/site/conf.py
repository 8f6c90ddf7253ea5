"""Sphinx configuration of the course site (built by `python docs/build_site.py`, which says what goes in)."""

project = "freezelab"
author = "the freezelab authors"
html_title = "freezelab: which BERT layers should I freeze?"
extensions = ["myst_nb"]
html_theme = "furo"
exclude_patterns = ["_build", "**/runs", "**/naive-demo", "**/.ipynb_checkpoints"]

# docs/build_site.py has already run every notebook (an error in any cell stops it there).
nb_execution_mode = "off"
nb_merge_streams = True

# plotly.js comes with the site, so figures draw without a CDN (the build sets plotly's renderer to match).
html_static_path = ["_static"]
html_js_files = ["plotly.min.js", "keyboard.js"]  # keyboard.js: docs/site/_static, scrolling from the keyboard
