"""Build the course as a static site: the student edition, executed, as HTML pages (Sphinx + myst-nb).

For: readers who want the course without running it, as d2l.ai, fastbook and the Hugging Face course publish
theirs. The notebooks run at quick size on this machine while the site builds, so every output on a page is
one this code computed; plotly figures stay interactive, with plotly.js served by the site itself.
`tests/test_site.py` builds it and checks it in Chromium.

Not for: the repository's notebooks, which stay output-free; or the teacher edition (no solutions on the site).

    pip install -e ".[site]" && python docs/build_site.py            # -> build/site/index.html
    python docs/build_site.py --out /tmp/site
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from pathlib import Path

import nbformat
import plotly
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
SITE_SOURCES = ROOT / "docs" / "site"
GUIDE_EXCLUDED = {"teachers_guide.md"}  # the guide has the exercises' answers: teachers read it in the repository
# In the kernels that run the notebooks: figures as plain HTML that calls the page's own plotly.js.
PLOTLY_STARTUP = r"""import json
import uuid

import plotly.io as pio
from plotly.io.base_renderers import MimetypeRenderer


class SiteRenderer(MimetypeRenderer):
    # A div and the call that draws it once the page (and the plotly.js it loads at the end) is ready:
    # no CDN, no require.js, no MathJax.
    def to_mimebundle(self, fig_dict):
        figure = json.loads(pio.to_json(fig_dict, validate=False))
        layout = figure.setdefault("layout", {})
        layout.pop("width", None)  # fit the page's text column instead; the height stays as drawn
        height = layout.get("height") or 525
        div = f"fig-{uuid.uuid4().hex}"
        data = json.dumps(figure).replace("</", "<\/")
        return {"text/html": f'<div id="{div}" class="plotly-graph-div" style="height:{height}px; width:100%;"></div>'
                             f'<script>window.addEventListener("load", function () {{ var f = {data}; '
                             f'Plotly.newPlot("{div}", f.data, f.layout, {{responsive: true}}); }});</script>'}


pio.renderers["freezelab_site"] = SiteRenderer()
pio.renderers.default = "freezelab_site"
"""


def assemble(work: Path) -> Path:
    """A Sphinx source folder in `work`: conf.py, index.md, the student notebooks and plotly.js."""
    source = work / "source"
    shutil.rmtree(source, ignore_errors=True)
    shutil.copytree(SITE_SOURCES, source)
    shutil.copytree(ROOT / "notebooks", source / "notebooks",
                    ignore=shutil.ignore_patterns("runs", "naive-demo", ".ipynb_checkpoints"))
    # The documentation pages beside the notebooks (every docs/*.md but the teachers' guide, which holds answers),
    # in guide/: their links to ../notebooks/ and images/ then work on the site as they do on GitHub.
    guide = source / "guide"
    guide.mkdir()
    for page in sorted((ROOT / "docs").glob("*.md")):
        if page.name not in GUIDE_EXCLUDED:
            shutil.copy(page, guide / page.name)
    shutil.copytree(ROOT / "docs" / "images", guide / "images")
    (source / "_static").mkdir(exist_ok=True)
    shutil.copy(Path(plotly.__file__).parent / "package_data" / "plotly.min.js", source / "_static")
    startup = work / "ipython" / "profile_default" / "startup"
    startup.mkdir(parents=True, exist_ok=True)
    (startup / "00-plotly-for-the-site.py").write_text(PLOTLY_STARTUP)
    return source


@contextmanager
def _environment(**values):
    """Set environment variables for the kernels started inside, and put the old values back after."""
    old = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in old.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _execute_one(path: Path, cwd: Path) -> float:
    """Run one notebook top to bottom, in place, its kernel working in `cwd`; return the seconds it took."""
    notebook = nbformat.read(path, as_version=4)
    started = time.perf_counter()
    NotebookClient(notebook, timeout=900, kernel_name="python3", store_widget_state=False,
                   resources={"metadata": {"path": str(cwd)}}).execute()
    nbformat.write(notebook, path)
    return time.perf_counter() - started


def execute(folder: Path, kernels: Path, log=print, jobs: int = 1) -> dict[str, float]:
    """Run every notebook in `folder` top to bottom, in place; return seconds per notebook.

    Widget state is not stored: a widget needs a live kernel, so the pages show the figures and tables the
    notebooks draw, not dead controls (and stay small). An error in any cell stops the build.
    Each kernel works in a folder of its own, `kernels/<notebook>`: what a notebook writes (its runs database,
    a Trainer's output folder) stays out of the site's sources and apart from a notebook run beside it.
    jobs: notebooks run at once, in processes of their own, each kernel on cores // jobs threads.
    """
    paths = sorted(folder.glob("*.ipynb"))
    cwds = {path: kernels / path.stem for path in paths}
    for cwd in cwds.values():
        cwd.mkdir(parents=True, exist_ok=True)
    seconds = {}
    if jobs == 1:
        for path in paths:
            seconds[path.stem] = _execute_one(path, cwds[path])
            log(f"{path.stem}: {seconds[path.stem]:.0f} s")
        return seconds
    threads = {"OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // jobs))}  # two kernels on 2 cores: 1 each
    spawn = multiprocessing.get_context("spawn")  # not fork: the caller may hold torch's threads
    with _environment(**threads), ProcessPoolExecutor(jobs, mp_context=spawn) as pool:  # kernels inherit it
        running = {pool.submit(_execute_one, path, cwds[path]): path for path in paths}
        for done in as_completed(running):
            path = running[done]
            seconds[path.stem] = done.result()  # raises the notebook's error: the build stops
            log(f"{path.stem}: {seconds[path.stem]:.0f} s")
    return dict(sorted(seconds.items()))


def build(out: Path, work: Path | None = None, log=print, size: str = "quick", jobs: int = 1,
          executed: Path | None = None) -> dict[str, float]:
    """Build the site into `out`, the notebooks run at `size`, `jobs` at once; return seconds per notebook and
    "sphinx". Raises if a notebook fails. The published site is "quick".

    executed: a folder of the notebooks already executed, with outputs, by a kernel with `PLOTLY_STARTUP`'s
    renderer (the test suite's nbval run, `tests/conftest.py`): the pages are built from them, nothing runs again.
    """
    work = work or out.parent / f"{out.name}-work"
    source = assemble(work)
    if executed is not None:
        seconds = {}
        for page in sorted((source / "notebooks").glob("*.ipynb")):
            shutil.copy(executed / page.name, page)
            seconds[page.stem] = 0.0
    else:
        with _environment(IPYTHONDIR=str(work / "ipython"), FREEZELAB_SIZE=size):
            seconds = execute(source / "notebooks", work / "kernels", log, jobs)
    started = time.perf_counter()
    shutil.rmtree(out, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "sphinx", "-b", "html", "-q", "-d", str(work / "doctrees"),
                    str(source), str(out)], check=True)
    seconds["sphinx"] = time.perf_counter() - started
    return seconds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "site")
    parser.add_argument("--size", choices=["quick", "full", "smoke"], default="quick",
                        help="the notebooks' run size (quick: the published site)")
    parser.add_argument("--jobs", type=int, default=1, help="notebooks run at once (each on cores / jobs threads)")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f"--jobs must be a whole number >= 1, got {args.jobs}")
    seconds = build(args.out, size=args.size, jobs=args.jobs)
    size = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    print(f"site built in {sum(seconds.values()) / 60:.1f} min: {args.out / 'index.html'} ({size / 2**20:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
