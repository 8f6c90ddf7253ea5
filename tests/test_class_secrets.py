"""No secret in a notebook file, an output or a message: the class database's password stays out of all of them.

Specification: every message shows an address through `sweeps.masked`, which hides the secret in every form
libpq accepts; the student's cell of notebook 04, run as documented (the address set outside the notebook), leaves
no trace of the password in the saved notebook or its outputs. Against the real PostgreSQL of `.ci/postgres`.
"""

from pathlib import Path

import nbformat
import pytest

from freezelab import classroom, grids, sweeps

ROOT = Path(__file__).resolve().parents[1]

FORMS = {
    "URL user:password@": "postgresql://s:pa55word@db.example.org/lab",
    "URL, encoded password": "postgresql://s:pa55word%40x@db.example.org:5433/lab?sslmode=require",
    "URL ?password=": "postgresql://s@db.example.org/lab?password=pa55word",
    "URL ?sslpassword=": "postgresql://s@db.example.org/lab?sslmode=verify-full&sslpassword=pa55word",
    "driver URL": "postgresql+psycopg://s:pa55word@db.example.org/lab",
    "key=value": "host=db.example.org user=s password=pa55word dbname=lab",
    "key=value, quoted": "host=db.example.org password='pa55 word' dbname=lab",
    "key=value, spaced": "host=db.example.org password = pa55word",
    "several hosts": "postgresql://s:pa55word@h1:5432,h2:5433/lab",
}


@pytest.mark.parametrize("address", FORMS.values(), ids=FORMS.keys())
def test_masked_hides_the_password_in_every_libpq_form(address):
    shown = sweeps.masked(address)
    assert "pa55" not in shown
    assert "***" in shown or shown == "<not a database address>"
    with pytest.raises((ValueError, ImportError)) as caught:  # and the errors that quote an address
        sweeps.storage_url(address.replace("postgresql", "nosuchdb") if "://" in address else address)
    assert "pa55" not in str(caught.value)


def test_the_documented_student_cell_leaves_no_secret_in_the_notebook(postgres_database, offline_data, tmp_path):
    """Notebook 04's class cell, as a student runs it: the class's name typed in, the address set outside the
    notebook (the environment; the prompt and Colab's secret keep it out of the file the same way)."""
    from nbclient import NotebookClient

    settings = grids.SweepSettings(epochs=1, dev_size=16, probes=False)
    classroom.create_class("lab", postgres_database.teacher, grids.grid(["head"], [1e-3], [16], [0]), settings)
    classroom.grant_students("lab", postgres_database.teacher, postgres_database.role)
    source = nbformat.read(ROOT / "notebooks" / "04_forgetting_vs_underadaptation.ipynb", as_version=4)
    cells = [c for c in source.cells if c.get("id", "").startswith("04-class-")]
    assert "%env" not in "".join(c.source for c in cells)  # the docs no longer suggest it
    code = next(c for c in cells if c.cell_type == "code")
    setup = next(c for c in source.cells if c.cell_type == "code" and "fl.course.setup()" in c.source)
    cells = [setup, *cells]  # the notebook's first cell, which every student runs first (it defines `course`)
    assert 'CLASS = None' in code.source
    code.source = code.source.replace("CLASS = None", 'CLASS = "lab"')  # what the markdown asks the student to do
    notebook = nbformat.v4.new_notebook(cells=cells)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(classroom.ENV, postgres_database.student)
        NotebookClient(notebook, timeout=600, kernel_name="python3",
                       resources={"metadata": {"path": str(tmp_path)}}).execute()
    saved = tmp_path / "04-class.ipynb"
    nbformat.write(notebook, saved)
    text = saved.read_text()
    assert "joined 'lab'" in text and "finished 1 run(s)" in text  # it ran, and said so
    assert "student-secret" not in text and "***" in text
