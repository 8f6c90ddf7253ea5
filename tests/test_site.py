"""The course site: built from the student edition by one command, every page present and whole in Chromium.

Builds the site with `docs/build_site.py` into `artifacts/site`, from the notebooks as nbval ran them in this
same test run (quick size, outputs kept by tests/conftest.py; this file runs last): each notebook is executed
once per run. Run alone (no nbval in the run), it executes them itself at smoke size. Then it opens each notebook's page in Debian's headless Chromium over file:// (no server,
no network) and checks that every plotly figure drew, that no cell failed, and that every link inside the site
leads to a file that exists; that every figure is followed by its text alternative (words and a data table); and
that axe-core finds nothing serious or critical on any page, the theme's chrome included. Skipped without Chromium unless FREEZELAB_REQUIRE_BROWSER=1 (CI).
FREEZELAB_SITE=folder checks a site built before instead of building one.
"""

import os
import sys
import time
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
SITE = ROOT / "artifacts" / "site"
NOTEBOOKS = sorted(p.stem for p in (ROOT / "notebooks").glob("*.ipynb"))  # from the folder, never typed

if not Path(CHROMIUM).exists() and os.environ.get("FREEZELAB_REQUIRE_BROWSER") != "1":
    pytest.skip("Debian's chromium is not installed (apt-get install chromium)", allow_module_level=True)

sys.path.insert(0, str(ROOT / "docs"))
import build_site  # noqa: E402  (docs/build_site.py: a script, not part of the package)
from a11y import blocking, counts, report, violations  # noqa: E402
from conftest import SHARED_DATA, executed_notebooks  # noqa: E402
from freezelab.data import DATA_DIR_VARIABLE  # noqa: E402


@pytest.fixture(scope="module")
def site(request):
    if os.environ.get("FREEZELAB_SITE"):
        return Path(os.environ["FREEZELAB_SITE"]).resolve()
    ran = {Path(str(item.fspath)).stem for item in request.session.items
           if Path(str(item.fspath)).parent == ROOT / "notebooks"}
    if set(NOTEBOOKS) <= ran:  # nbval runs every notebook in this run: build from its outputs (conftest.py)
        folder = executed_notebooks(request.config)
        waiting_since = time.monotonic()
        while not all((folder / f"{stem}.ipynb").exists() or (folder / f"{stem}.failed").exists()
                      for stem in NOTEBOOKS):  # this file runs last; another worker is finishing a notebook
            assert time.monotonic() - waiting_since < 3600, "no notebook outputs after an hour of waiting"
            time.sleep(5)
        failed = {stem: (folder / f"{stem}.failed").read_text() for stem in NOTEBOOKS
                  if (folder / f"{stem}.failed").exists()}
        assert not failed, f"the site is built from nbval's run, where these notebooks failed: {failed}"
        build_site.build(SITE, executed=folder)
        print(f"site built from nbval's outputs ({len(NOTEBOOKS)} notebooks, waited "
              f"{time.monotonic() - waiting_since:.0f} s for them)")
        return SITE
    with pytest.MonkeyPatch.context() as patch:  # the notebooks read the offline data, as in conftest
        if not os.environ.get(DATA_DIR_VARIABLE) and SHARED_DATA.is_dir():
            patch.setenv(DATA_DIR_VARIABLE, str(SHARED_DATA))
        seconds = build_site.build(SITE, size="smoke", jobs=2)  # two kernels at once, one thread each
    size = sum(p.stat().st_size for p in SITE.rglob("*") if p.is_file())
    print(f"site built in {sum(seconds.values()) / 60:.1f} min, {size / 2**20:.1f} MB: {seconds}")
    return SITE


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield chromium
        chromium.close()


def test_every_notebook_has_a_page_and_the_index_links_them_all(site):
    index = (site / "index.html").read_text()
    for stem in NOTEBOOKS:
        assert (site / "notebooks" / f"{stem}.html").is_file(), stem
        assert f"notebooks/{stem}.html" in index, stem


def test_no_page_shows_a_failed_cell_and_the_solutions_stay_out(site):
    for stem in NOTEBOOKS:
        page = (site / "notebooks" / f"{stem}.html").read_text()
        assert "output traceback" not in page, f"{stem}: a cell raised"
        assert "BEGIN SOLUTION" not in page, f"{stem}: the teacher edition leaked"


@pytest.fixture(scope="module")
def visited(site, browser):
    """Each page opened once in Chromium, and what the tests below read of it: script errors, requests that
    left the site, figures drawn, links, each figure's text alternative, and axe-core's findings."""
    seen = {}

    def visit(stem: str) -> dict:
        if stem not in seen:
            seen[stem] = _visit(browser, site / "index.html" if stem == "index" else site / "notebooks" / f"{stem}.html")
        return seen[stem]
    return visit


def _visit(browser, path: Path) -> dict:
    page = browser.new_page()
    errors, outside = [], []
    page.on("pageerror", lambda error: errors.append(str(error)))  # a script that threw
    page.on("requestfailed", lambda request: errors.append(f"failed: {request.url}")
            if request.url.startswith("file:") else None)  # a file the site should hold
    page.on("request", lambda request: outside.append((request.resource_type, request.url))
            if not request.url.startswith(("file:", "data:")) else None)
    page.goto(path.as_uri(), wait_until="load")
    figures = page.locator(".plotly-graph-div")
    drawn = figures.count()
    for i in range(drawn):  # plotly.js draws an svg into every figure's div
        figures.nth(i).locator("svg.main-svg").first.wait_for(state="attached", timeout=20_000)
    hrefs = page.eval_on_selector_all("a[href]", "links => links.map(a => a.href)")
    words = page.evaluate("""() => [...document.querySelectorAll('.plotly-graph-div')].map(div => {
        const output = div.closest('.cell_output');
        const text = output && output.querySelector('.freezelab-figure-text');
        return {title: div.layout && div.layout.title ? (div.layout.title.text || '') : '',
                words: text ? text.querySelector('p').textContent : null,
                caption: text && text.querySelector('table caption') ? text.querySelector('table caption').textContent : null,
                cells: text ? text.querySelectorAll('td').length : 0}; })""")
    page.wait_for_timeout(500)  # the page's own load handlers (figures, keyboard.js) run before axe reads it
    loaded = {"errors": list(errors), "outside": list(outside), "drawn": drawn, "hrefs": hrefs, "figures": words}
    found = violations(page)  # after the page's own requests: axe fetches the stylesheets again, and file:// says no
    page.close()
    return {**loaded, "axe": found}


@pytest.mark.parametrize("stem", NOTEBOOKS)
def test_page_in_chromium_figures_drawn_no_script_errors_links_whole(visited, stem):
    page = visited(stem)
    assert page["errors"] == [], f"{stem}: {page['errors']}"
    # Self-contained: scripts, styles and fonts come with the site; only badge images point outside.
    assert all(kind == "image" for kind, url in page["outside"]), f"{stem}: loads from outside the site: {page['outside']}"
    if stem not in ("00_start_here",):  # every other notebook draws at least one figure
        assert page["drawn"] > 0, f"{stem}: no plotly figure on the page"
    for href in page["hrefs"]:
        url = urlparse(href)
        if url.scheme == "file":
            assert Path(unquote(url.path)).exists(), f"{stem}: broken link {href}"


@pytest.mark.parametrize("stem", NOTEBOOKS)
def test_every_figure_on_the_page_is_followed_by_what_it_shows(visited, stem):
    """In the figure's own cell output: the words ('In words: Figure: <its title>. ...') and a captioned table."""
    for figure in visited(stem)["figures"]:
        assert figure["words"], f"{stem}: a figure without its words: {figure['title']!r}"
        assert figure["words"].startswith("In words: Figure: ") and figure["caption"].startswith("The numbers of"), figure
        assert figure["cells"] > 0, f"{stem}: an empty data table under {figure['title']!r}"


@pytest.mark.parametrize("stem", ["index", *NOTEBOOKS])
def test_axe_finds_nothing_serious_or_critical_on_the_page(visited, stem):
    found = visited(stem)["axe"]
    print(f"axe, site page {stem}: {counts(found)}\n{report(found)}")
    assert not blocking(found), f"{stem}: serious or critical axe violations:\n{report(blocking(found))}"
