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
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import plotly

ROOT = Path(__file__).resolve().parents[1]
SITE_SOURCES = ROOT / "docs" / "site"
# In the kernels that run the notebooks: figures as plain HTML that calls the page's own plotly.js.
PLOTLY_STARTUP = """import plotly.io as pio
pio.renderers["sphinx_gallery"].include_plotlyjs = False
pio.renderers.default = "sphinx_gallery"
"""


def assemble(work: Path) -> Path:
    """A Sphinx source folder in `work`: conf.py, index.md, the student notebooks and plotly.js."""
    source = work / "source"
    shutil.rmtree(source, ignore_errors=True)
    shutil.copytree(SITE_SOURCES, source)
    shutil.copytree(ROOT / "notebooks", source / "notebooks",
                    ignore=shutil.ignore_patterns("runs", "naive-demo", ".ipynb_checkpoints"))
    (source / "_static").mkdir(exist_ok=True)
    shutil.copy(Path(plotly.__file__).parent / "package_data" / "plotly.min.js", source / "_static")
    startup = work / "ipython" / "profile_default" / "startup"
    startup.mkdir(parents=True, exist_ok=True)
    (startup / "00-plotly-for-the-site.py").write_text(PLOTLY_STARTUP)
    return source


def build(out: Path, work: Path | None = None) -> float:
    """Build the site into `out`; return the seconds it took. Raises CalledProcessError if a notebook fails."""
    work = work or out.parent / f"{out.name}-work"
    source = assemble(work)
    env = {**os.environ, "IPYTHONDIR": str(work / "ipython"), "FREEZELAB_QUICK": os.environ.get("FREEZELAB_QUICK", "1")}
    started = time.perf_counter()
    shutil.rmtree(out, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "sphinx", "-b", "html", "-q", "-d", str(work / "doctrees"),
                    str(source), str(out)], env=env, check=True)
    return time.perf_counter() - started


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "site")
    args = parser.parse_args(argv)
    seconds = build(args.out)
    size = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    print(f"site built in {seconds / 60:.1f} min: {args.out / 'index.html'} ({size / 2**20:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
