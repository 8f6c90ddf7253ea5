"""axe-core in a Playwright page: the accessibility check shared by the site test and the JupyterLab test.

For: `violations(page, scope)` injects axe-core (from npm, installed by `.ci/run` into `.axe/`, gitignored) into
a page that is already drawn and returns its violations inside `scope`; `blocking` keeps those of impact
"serious" or "critical" (what the tests forbid) and `report` writes them as one line per rule.

Not for: judging what axe cannot see (whether a description says something true: tests/test_plots_widgets.py
checks that), nor JupyterLab's own chrome (the tests scope axe to the kit's own content).

    npm install --no-save --no-package-lock --prefix .axe axe-core@4.14.1
"""

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
AXE = Path(os.environ.get("FREEZELAB_AXE", ROOT / ".axe" / "node_modules" / "axe-core" / "axe.min.js"))
BLOCKING = ("serious", "critical")


def axe_path() -> Path:
    """axe.min.js; skips without it, unless FREEZELAB_REQUIRE_BROWSER=1 (CI installs it), where it fails."""
    if not AXE.is_file():
        message = f"axe-core is not installed at {AXE} (npm install --prefix .axe axe-core)"
        if os.environ.get("FREEZELAB_REQUIRE_BROWSER") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return AXE


def violations(page, scope: str | None = None) -> list[dict]:
    """axe-core's violations on `page`, within the elements matching the CSS selector `scope` (whole page: None)."""
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=str(axe_path()))
    result = page.evaluate(
        """async scope => {
             if (scope && !document.querySelector(scope)) return {missing: scope};
             return await axe.run(scope ? {include: [[scope]]} : document, {resultTypes: ['violations']});
           }""", scope)
    assert "missing" not in result, f"no element matches {scope!r}: nothing for axe to check"
    return [{"id": v["id"], "impact": v["impact"], "help": v["help"], "nodes": len(v["nodes"]),
             "targets": [" ".join(map(str, n["target"])) for n in v["nodes"][:3]]} for v in result["violations"]]


def blocking(found: list[dict]) -> list[dict]:
    return [v for v in found if v["impact"] in BLOCKING]


def report(found: list[dict]) -> str:
    """One line per rule: impact, id, elements hit, what to fix and where (the first three elements)."""
    return "\n".join(f"  {v['impact']:8} {v['id']} x{v['nodes']}: {v['help']} at {v['targets']}" for v in found) or "  none"


def counts(found: list[dict]) -> str:
    """'2 rules (1 serious or critical), 14 elements': the line the tests print for the record."""
    worst = blocking(found)
    return (f"{len(found)} rules ({len(worst)} serious or critical), {sum(v['nodes'] for v in found)} elements "
            f"({sum(v['nodes'] for v in worst)} serious or critical)")
