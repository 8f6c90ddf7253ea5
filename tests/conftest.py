"""Shared models for the tests: built once per session, reset to "nothing frozen" for each test.

The suite runs in pytest-xdist workers, a test file (or notebook) each at a time (`-n auto --dist loadfile` in
pyproject.toml): the cores are shared out, so each worker, and every kernel or process it starts, computes on
cores / workers threads (torch's threads would otherwise fight over the cores).
"""

import contextlib
import os
import sys
import tempfile
import uuid
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForSequenceClassification, BertConfig, DistilBertConfig, ElectraConfig, RobertaConfig

import freezelab as fl

os.environ.setdefault("HF_HUB_OFFLINE", "1")
WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if WORKERS > 1:  # inherited by notebook kernels and subprocesses; torch here reads it too late, hence the call
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // WORKERS)))
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "teacher"))  # the solutions: not in the package
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "docs"))  # build_site: the site's renderer


TIERS = {  # marker -> what it needs; everything else is `core` (docs/testing.md says how to run each tier)
    "postgres": "the test PostgreSQL that .ci/postgres starts",
    "browser": "a real browser (Playwright's Chromium)",
    "notebooks": "notebook kernels: the course run top to bottom (nbval) or the teacher edition on another checkpoint",
    "site": "the built site (Sphinx, executed notebooks)",
    "benchmarks": "minutes: every benchmark run once at its smallest size (tests/test_benchmarks.py)",
    "core": "none of the above: the fast core",
}
NOTEBOOK_FILES = ("test_notebooks_any_checkpoint.py", "test_grading.py")


def pytest_configure(config):
    if not hasattr(config, "workerinput"):  # the controller, or a run without workers: one id for this run
        config.freezelab_run = os.environ.get("PYTEST_XDIST_TESTRUNUID") or uuid.uuid4().hex
    for marker, needs in TIERS.items():
        config.addinivalue_line("markers", f"{marker}: needs {needs}")
    config.addinivalue_line("markers", "restarts_postgres: restarts the test server; runs while no other test uses it")


def pytest_collection_modifyitems(items):
    """Each test's tier, read from what it uses (its fixtures, its file), so no list is kept by hand."""
    for item in items:
        names, path = set(getattr(item, "fixturenames", ())), Path(str(item.fspath))
        params = getattr(getattr(item, "callspec", None), "params", {})  # a fixture that asks for the server itself
        uses_postgres = any("postgres" in name for name in names) or any("postgres" in str(v) for v in params.values())
        tiers = {"postgres"} if uses_postgres else set()
        if "browser" in names:
            tiers.add("browser")
        if path.suffix == ".ipynb" or path.name in NOTEBOOK_FILES:
            tiers.add("notebooks")
        if path.name == "test_site.py":
            tiers.add("site")
        if path.name == "test_benchmarks.py" and "test_every_benchmark" not in item.name:
            tiers.add("benchmarks")
        for tier in tiers or {"core"}:
            item.add_marker(tier)
    # The order workers take files in (pyproject.toml: --no-loadscope-reorder): the longest first, the site
    # last, when every notebook has run under nbval and its outputs wait for the site (`executed_notebooks`).
    items.sort(key=lambda item: _FILE_ORDER.get(Path(str(item.fspath)).name,
                                                0 if Path(str(item.fspath)).suffix == ".ipynb" else 5))


_FILE_ORDER = {"test_notebooks_any_checkpoint.py": 1, "test_benchmarks.py": 2, "test_browser.py": 3,
               "test_grading.py": 4, "test_site.py": 9}


def _server_lock(exclusive: bool):
    """A lock on the test server shared by the xdist workers: held shared by every PostgreSQL test, alone by
    one that restarts the server (another worker's test would otherwise meet a server shutting down)."""
    import contextlib
    import fcntl
    import hashlib
    import tempfile

    url = os.environ.get("FREEZELAB_TEST_POSTGRES", "")
    path = Path(tempfile.gettempdir()) / f"freezelab-test-postgres-{hashlib.sha1(url.encode()).hexdigest()[:12]}.lock"

    @contextlib.contextmanager
    def held():
        with open(path, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
    return held()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """Setup, call and teardown of a PostgreSQL test (a module's database included) under the server lock. A
    notebook's cell under nbval: its kernel (started in the first cell's setup) draws figures as the site does,
    and after the last cell the notebook is kept with its outputs, for the site. (This hook sees the notebooks'
    items too: the per-item hooks of a conftest file only see items under its own folder.)"""
    if _is_nbval_cell(item):
        with _site_renderer(item.config):
            yield
        _keep_outputs(item, nextitem)
    elif item.get_closest_marker("postgres") is None:
        yield
    else:
        with _server_lock(exclusive=item.get_closest_marker("restarts_postgres") is not None):
            yield


# --- each notebook is executed once per run: nbval's run is the one the course site is built from ---------------

def executed_notebooks(config) -> Path:
    """Where this run keeps the notebooks nbval executed, with their outputs (`<stem>.ipynb`), or why one failed
    (`<stem>.failed`): a folder every xdist worker of the run shares."""
    run = config.workerinput["testrunuid"] if hasattr(config, "workerinput") else config.freezelab_run
    folder = Path(tempfile.gettempdir()) / f"freezelab-executed-{run}"
    folder.mkdir(exist_ok=True)
    return folder


def _is_nbval_cell(item) -> bool:
    return type(item).__name__ == "IPyNbCell"


_CELLS: dict[str, dict] = {}  # notebook path -> {id(cell): its outputs, None where it did not run}


@contextlib.contextmanager
def _site_renderer(config):
    """IPYTHONDIR with the site's plotly renderer (figures as HTML that the site's own plotly.js draws), for the
    kernel nbval starts while this is set."""
    import build_site

    startup = executed_notebooks(config) / "ipython" / "profile_default" / "startup"
    if not (startup / "00-plotly-for-the-site.py").exists():  # once per run, not once per cell
        startup.mkdir(parents=True, exist_ok=True)
        (startup / "00-plotly-for-the-site.py").write_text(build_site.PLOTLY_STARTUP)
    old = os.environ.get("IPYTHONDIR")
    os.environ["IPYTHONDIR"] = str(startup.parents[1])
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("IPYTHONDIR", None)
        else:
            os.environ["IPYTHONDIR"] = old


def _keep_outputs(item, nextitem) -> None:
    cells = _CELLS.setdefault(str(item.fspath), {})
    cells[id(item.cell)] = getattr(item, "test_outputs", None)
    if nextitem is None or nextitem.parent is not item.parent:
        _write_executed(item, _CELLS.pop(str(item.fspath)))


def _write_executed(item, outputs: dict) -> None:
    import copy

    import nbformat

    path = Path(str(item.fspath))
    folder = executed_notebooks(item.config)
    notebook, count, failed = copy.deepcopy(item.parent.nb), 0, None
    for source, cell in zip(item.parent.nb.cells, notebook.cells):
        if cell.cell_type != "code":
            continue
        count += 1
        cell.outputs, cell.execution_count = outputs.get(id(source)), count
        if cell.outputs is None or any(out.get("output_type") == "error" for out in cell.outputs):
            failed = f"cell {count} (code cell) did not run or raised"
            break
    if failed:
        (folder / f"{path.stem}.failed").write_text(failed)
        return
    scratch = folder / f".{path.stem}.ipynb"
    nbformat.write(notebook, scratch)
    os.replace(scratch, folder / f"{path.stem}.ipynb")  # whole or absent: the site waits for it


def pytest_terminal_summary(terminalreporter):
    """Where the run's time went, by tier: each test's setup, call and teardown, summed (over all workers)."""
    seconds, tests = dict.fromkeys(TIERS, 0.0), {tier: set() for tier in TIERS}
    for reports in terminalreporter.stats.values():
        for report in reports:
            for tier in TIERS.keys() & set(getattr(report, "keywords", {})):
                seconds[tier] += getattr(report, "duration", 0.0)
                tests[tier].add(report.nodeid)
    if any(tests.values()):
        terminalreporter.write_sep("=", "seconds by tier (summed over workers; a test in two tiers counts in both)")
        for tier in sorted((tier for tier in TIERS if tests[tier]), key=seconds.get, reverse=True):
            terminalreporter.write_line(f"{tier:>11}: {seconds[tier]:7.0f} s in {len(tests[tier]):4d} tests")


@pytest.hookimpl(optionalhook=True)  # .ci/lower-bounds runs without pytest-xdist
def pytest_xdist_auto_num_workers(config):
    """`-n auto`: a worker per core, at most four (each holds its own models and runs notebook kernels)."""
    return max(1, min(4, os.cpu_count() or 1))


@pytest.fixture
def offline_data(monkeypatch):
    """The offline data folder: FREEZELAB_DATA_DIR if set, else ../shared/data beside the checkout."""
    from freezelab.data import DATA_DIR_VARIABLE

    folder = os.environ.get(DATA_DIR_VARIABLE) or (str(SHARED_DATA) if SHARED_DATA.is_dir() else None)
    if folder is None:
        pytest.skip(f"no offline data: set {DATA_DIR_VARIABLE}")
    monkeypatch.setenv(DATA_DIR_VARIABLE, folder)
    return folder

TINY = dict(vocab_size=99, hidden_size=16, num_hidden_layers=3, num_attention_heads=2, intermediate_size=24,
            max_position_embeddings=40)
TINY_CONFIGS = {
    "bert": lambda: BertConfig(**TINY),
    "roberta": lambda: RobertaConfig(**TINY),
    "distilbert": lambda: DistilBertConfig(vocab_size=99, dim=16, n_layers=3, n_heads=2, hidden_dim=24,
                                           max_position_embeddings=40),
    "electra": lambda: ElectraConfig(embedding_size=8, **TINY),
}


def tiny_model(kind: str, num_labels: int = 2):
    torch.manual_seed(0)
    config = TINY_CONFIGS[kind]()
    config.num_labels = num_labels
    return AutoModelForSequenceClassification.from_config(config)


@pytest.fixture(params=sorted(TINY_CONFIGS))
def any_tiny(request):
    return tiny_model(request.param)


@pytest.fixture(scope="session")
def _bert_base():
    model, _ = fl.load_model("bert-base-uncased", random_weights=True)
    return model


@pytest.fixture
def bert_base(_bert_base):
    """bert-base-uncased's architecture, untrained, with nothing frozen."""
    for p in _bert_base.parameters():
        p.requires_grad_(True)
    return _bert_base


@pytest.fixture(scope="session")
def _minilm():
    return fl.load_model("minilm-l6")


@pytest.fixture
def minilm(_minilm):
    """The real pretrained all-MiniLM-L6-v2 with a fresh 2-way head, and its tokenizer."""
    from freezelab.caches import weights_digest

    model, tokenizer = _minilm
    for p in model.parameters():
        p.requires_grad_(True)
    before = weights_digest(model)
    yield model, tokenizer
    # One model serves the whole session: a test that trains it would change what later tests read.
    assert weights_digest(model) == before, "this test changed the shared MiniLM: change a copy (copy.deepcopy)"


@pytest.fixture
def postgres_database():
    """A fresh database on the test PostgreSQL that `.ci/postgres` starts, owned by its teacher role (which
    may create databases); the student role may log in to it. Dropped afterwards. Skipped without a server,
    unless FREEZELAB_REQUIRE_POSTGRES=1 (CI), where its absence fails."""
    import uuid
    from types import SimpleNamespace

    import sqlalchemy

    teacher, student = os.environ.get("FREEZELAB_TEST_POSTGRES"), os.environ.get("FREEZELAB_TEST_POSTGRES_STUDENT")
    if not teacher or not student:
        if os.environ.get("FREEZELAB_REQUIRE_POSTGRES") == "1":
            pytest.fail("FREEZELAB_REQUIRE_POSTGRES=1 but no test server: source .ci/postgres first")
        pytest.skip("no test PostgreSQL (source .ci/postgres to start one)")
    name = f"freezelab_test_{uuid.uuid4().hex[:10]}"
    admin = sqlalchemy.create_engine(teacher.replace("postgresql://", "postgresql+psycopg://"),
                                     isolation_level="AUTOCOMMIT", pool_pre_ping=True)  # a test may restart the server
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    other = os.environ.get("FREEZELAB_TEST_POSTGRES_STUDENT_B", student)
    # role: the students' group role (.ci/postgres makes each student's login role a member of it)
    yield SimpleNamespace(name=name, teacher=f"{teacher.rsplit('/', 1)[0]}/{name}",
                          student=f"{student.rsplit('/', 1)[0]}/{name}", student_b=f"{other.rsplit('/', 1)[0]}/{name}",
                          role="freezelab_students")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'DROP DATABASE "{name}" WITH (FORCE)')
    admin.dispose()
