"""Specification of the package's surface: what `import freezelab` loads, and what it offers."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import freezelab as fl

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "transformers", "datasets", "ipywidgets", "IPython", "plotly", "optuna")


def modules_after(code: str) -> set[str]:
    """The modules a fresh interpreter has loaded after running `code`: the heavy ones and freezelab's own."""
    probe = (f"import sys\n{code}\n"
             f"print(' '.join(m for m in sys.modules if m in {HEAVY!r} or m.startswith('freezelab.')))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT)
    return set(out.stdout.split())


def loaded_after(code: str) -> set[str]:
    """The heavy modules a fresh interpreter has loaded after running `code`."""
    return modules_after(code) & set(HEAVY)


def test_importing_the_package_loads_nothing_heavy():
    assert loaded_after("import freezelab") == set()


def test_a_headless_sweep_worker_never_loads_the_widget_layer():
    loaded = loaded_after("import freezelab.__main__, freezelab.sweeps, freezelab.experiment, freezelab.training")
    assert {"torch", "transformers", "optuna"} <= loaded and not loaded & {"ipywidgets", "IPython", "plotly"}


def test_the_layers_import_downwards_only():
    """Training knows no UI (a live view is a callback the caller passes); the picker knows no sweep code."""
    ui = {"freezelab.dashboard", "freezelab.widgets", "freezelab.plots", "freezelab.run_plots", "freezelab.figure",
          "freezelab.frontend"}
    assert not modules_after("import freezelab.training, freezelab.experiment, freezelab.sweeps") & ui
    sweep_side = {"freezelab.grids", "freezelab.results", "freezelab.sweeps", "freezelab.training", "freezelab.run_plots",
                  "optuna"}
    assert not modules_after("import freezelab.widgets") & sweep_side


def test_every_public_name_resolves_and_anatomy_stays_the_function():
    for name in fl.__all__:
        assert getattr(fl, name) is not None
    import freezelab.anatomy  # noqa: F401  (a submodule import must not shadow the function)

    assert callable(fl.anatomy) and fl.anatomy.__module__ == "freezelab.anatomy"
    with pytest.raises(AttributeError, match="no attribute 'fine_tuen'"):
        fl.fine_tuen


def test_the_notebooks_use_only_the_public_surface():
    used = set()
    for path in (ROOT / "teacher" / "notebooks").glob("*.ipynb"):
        for cell in json.loads(path.read_text())["cells"]:
            if cell["cell_type"] == "code":
                used |= set(re.findall(r"\bfl\.([A-Za-z_]+)", "".join(cell["source"])))
    public = set(fl.__all__) | set(dir(fl))  # dir adds each registered method family's class (fl.LoRA, ...)
    assert used and used <= public | {"__version__"}, sorted(used - public)


def test_clear_caches_empties_every_cache(minilm):
    from freezelab import data, plots

    model, tokenizer = minilm
    data.tokenize(fl.load_task("sst2", train_size=8, seed=9)["train"], tokenizer, 32)
    plots.trainable_heatmap(model)
    assert data.TOKENIZED and data._course_task.cache_info().currsize and plots._static_parts.cache_info().currsize
    fl.clear_caches()
    assert not data.TOKENIZED and data._course_task.cache_info().currsize == 0
    assert plots._static_parts.cache_info().currsize == 0


COLLECT_TIERS = """
import json, pytest
TIERS = {"core", "notebooks", "browser", "postgres", "site", "benchmarks"}
class Tiers:
    def pytest_collection_finish(self, session):  # after conftest.py has marked each test
        self.found = {item.nodeid: sorted({mark.name for mark in item.iter_markers()} & TIERS) for item in session.items}
tiers = Tiers()
pytest.main(["--collect-only", "-q", "-p", "no:xdist", "-o", "addopts=", "-p", "no:cacheprovider", "tests"], plugins=[tiers])
print(json.dumps(tiers.found))
"""


def test_each_test_has_a_tier_and_the_core_needs_no_service():
    """docs/testing.md: every collected test is in a tier, and the fast core uses no server, browser or kernel."""
    out = subprocess.run([sys.executable, "-c", COLLECT_TIERS], capture_output=True, text=True, cwd=ROOT)
    tiers = json.loads(out.stdout.splitlines()[-1])  # one collection: test id -> its tiers
    assert len(tiers) > 500 and [test for test, found in tiers.items() if not found] == []
    core = [test for test, found in tiers.items() if "core" in found]
    assert len(core) > 300 and not [t for t in core if "postgres" in t or "browser" in t or "test_site" in t]
    assert all(found == ["core"] for test, found in tiers.items() if "core" in found)  # core means no service


def test_the_readme_is_a_two_minute_read_that_links_every_docs_page():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 130
    assert "pip install -r requirements.txt -e . && jupyter lab notebooks/" in readme
    assert "pip install -r requirements.txt -e . && python -m pytest" in readme
    for page in (ROOT / "docs").glob("*.md"):
        assert f"](docs/{page.name})" in readme, f"the README does not link docs/{page.name}"
    for notebook in (ROOT / "notebooks").glob("*.ipynb"):
        assert f"](notebooks/{notebook.name})" in readme, f"the course map lacks {notebook.name}"


def test_the_test_command_runs_the_tests_and_every_notebook_a_file_per_worker():
    """docs/testing.md: `python -m pytest` runs tests/ and notebooks/ (nbval, lax), a file per worker, at most four."""
    import tomllib

    options = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert options["testpaths"] == ["tests", "notebooks"]
    assert {"--nbval-lax", "-n", "auto", "--dist", "loadfile"} <= set(options["addopts"].split())
    sys.path.insert(0, str(ROOT / "tests"))
    import conftest
    assert 1 <= conftest.pytest_xdist_auto_num_workers(None) <= 4


def test_ci_installs_the_cpu_wheel_first_then_runs_the_readmes_command_then_the_lower_bounds():
    """docs/testing.md's account of `.ci/run` and `.ci/lower-bounds`, read from the scripts themselves."""
    run = (ROOT / ".ci" / "run").read_text()
    steps = ["python3 -m venv --clear", "pip install -q torch==2.13.0", "source .ci/postgres",
             "pip install -r requirements.txt -e . && python -m pytest", "bash .ci/lower-bounds"]
    assert [run.index(step) for step in steps] == sorted(run.index(step) for step in steps)
    for variable in ("HF_HUB_OFFLINE=1", "FREEZELAB_DATA_DIR=", "FREEZELAB_QUICK=1"):
        assert variable in run
    lower = (ROOT / ".ci" / "lower-bounds").read_text()
    assert "tests/test_plots_widgets.py tests/test_dashboard.py" in lower
    assert all(f"notebooks/0{n}_" in lower for n in (1, 2, 3)) and "notebooks/04_" not in lower


def test_the_run_ends_with_the_seconds_each_tier_took():
    """docs/testing.md: the summary sums each test's setup, call and teardown by tier, over all workers."""
    from types import SimpleNamespace

    sys.path.insert(0, str(ROOT / "tests"))
    import conftest

    def report(nodeid, tiers, seconds):
        return SimpleNamespace(nodeid=nodeid, keywords={**dict.fromkeys(tiers, 1), nodeid: 1}, duration=seconds)
    lines = []
    reporter = SimpleNamespace(stats={"passed": [report("a", ["core"], 2.0), report("a", ["core"], 1.0),
                                                 report("nb", ["notebooks", "postgres"], 30.0)],
                                      "": [SimpleNamespace(nodeid="warning without a duration")]},
                               write_sep=lambda sep, title: lines.append(title), write_line=lines.append)
    conftest.pytest_terminal_summary(reporter)
    assert lines[0].startswith("seconds by tier")
    assert set(lines[1:3]) == {"  notebooks:      30 s in    1 tests", "   postgres:      30 s in    1 tests"}
    assert lines[3:] == ["       core:       3 s in    1 tests"]  # the most first; a tier with no test left out
