"""Regenerate the README's pictures in docs/images/ from the kit itself.

- frontier.png and data_size.png: the course's plots of the shipped results
  (`freezelab/precomputed/`), drawn by `freezelab.results` and rendered by
  the same headless Chromium that the browser tests use;
- picker.png and dashboard.png: the browser tests' screenshots of the live
  widgets in JupyterLab (`tests/test_browser.py` writes them to artifacts/;
  `--browser` runs it first);
- the results tables of docs/results.md, printed as Markdown (mean ± std over seeds), the advisor's validation, the remedies sweep's
  walks among them.

    FREEZELAB_DATA_DIR=../shared/data python docs/make_figures.py [--browser]
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT / "docs" / "images"
CHROMIUM = "/usr/bin/chromium"


def render(figure, path: Path) -> None:
    """Write a plotly figure to PNG through headless Chromium (no kaleido needed)."""
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as scratch:
        page_file = Path(scratch) / "figure.html"
        figure.write_html(page_file, include_plotlyjs=True, full_html=True, config={"displayModeBar": False})
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
                "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"])
            page = browser.new_page(viewport={"width": int(figure.layout.width or 1000) + 40,
                                              "height": int(figure.layout.height or 600) + 40})
            page.goto(page_file.as_uri())
            page.wait_for_selector(".js-plotly-plot .main-svg")
            page.locator(".js-plotly-plot").first.screenshot(path=str(path))
            browser.close()
    print(f"wrote {path} ({path.stat().st_size // 1024} KB)")


def print_tables(results) -> None:
    """The shipped sweeps as the README's Markdown tables."""
    table = results.summary(results.shipped("frontier"))
    print("\n| set-up | SST-2 dev accuracy | STS-B Spearman | CKA, top block |\n| --- | --- | --- | --- |")
    for row in table.to_dict(orient="records"):
        print(f"| {row['label']} | " + " | ".join(f"{row[m + ' mean']:.3f} ± {row[m + ' std']:.3f}"
                                                  for m in ("dev_metric", "sts_spearman", "cka_top")) + " |")
    sizes = results.summary(results.shipped("data-size"), by=("depth", "train_size"), metrics=("dev_metric",))
    columns = sorted(sizes["train_size"].unique())
    print("\n| frozen depth | " + " | ".join(f"{n:,} sentences" for n in columns) + " |")
    print("| --- |" + " --- |" * len(columns))
    for depth, part in sizes.groupby("depth", sort=False):
        cells = part.set_index("train_size")
        print(f"| {depth} | " + " | ".join(f"{cells.loc[n, 'dev_metric mean']:.3f} ± {cells.loc[n, 'dev_metric std']:.3f}"
                                           for n in columns) + " |")
    walks = results.summary(results.alpha_curves(results.shipped("remedies")), metrics=("dev_metric", "sts_spearman"))
    print("\n| set-up, walked back to α | SST-2 dev accuracy | STS-B Spearman |\n| --- | --- | --- |")
    for row in walks.to_dict(orient="records"):
        print(f"| {row['label']} | " + " | ".join(f"{row[m + ' mean']:.3f} ± {row[m + ' std']:.3f}"
                                                  for m in ("dev_metric", "sts_spearman")) + " |")
    print_advisor()
    print()


MARKER = "<!-- test: tests/test_advisor.py::test_docs_results_show_what_the_advisor_computes -->"


def print_advisor() -> None:
    """The advisor's leave-one-task-out validation, with no floor and at 80%, as docs/results.md shows it."""
    from freezelab import advisor

    for floor in (None, 0.8):
        check = advisor.validate(floor)
        print(f"\nRetention floor: {'none' if floor is None else f'{floor:.0%}'}\n")
        print("| held-out task | advised | best | regret (seed sd) | floor broken | score / retention covered |\n"
              "| --- | --- | --- | --- | --- | --- |")
        for row in check.to_dict(orient="records"):
            print(f"| {row['task']} | {row['advised']} | {row['best']} | {row['regret']:.2f} | "
                  f"{'yes' if row['broke floor'] else 'no'} | {row['score covered']:.0%} / "
                  f"{row['retention covered']:.0%} |")
        print("\n| rule | mean regret (seed sd) | floors broken |\n| --- | --- | --- |")
        print(f"| the advisor | {check['regret'].mean():.2f} | {int(check['broke floor'].sum())} |")
        for name in advisor.DEFAULTS:
            print(f"| {name} | {check[f'{name}: regret'].mean():.2f} | {int(check[f'{name}: broke floor'].sum())} |")
        print()
        for line in advisor.verdicts(check):
            print(f"- {line} {MARKER}")
        print("\n| signals (rule) | mean regret (seed sd) | tasks at most 1 sd | score covered | floors broken |\n"
              "| --- | --- | --- | --- | --- |")
        for row in advisor.compare_models(floor).to_dict(orient="records"):
            print(f"| {row['rule']} | {row['mean regret']:.2f} | {row['tasks at most 1 sd']:.0%} | "
                  f"{row['score covered']:.0%} | {row['floor broken']} |")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--browser", action="store_true", help="run tests/test_browser.py first for the widget pictures")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import freezelab as fl
    from freezelab import probes, results, run_plots

    IMAGES.mkdir(parents=True, exist_ok=True)
    model, tokenizer = fl.load_model("minilm-l6")
    chance = fl.data.majority_share(fl.load_task("sst2")["dev"])
    figure = run_plots.frontier_plot(results.shipped("frontier"), untouched=probes.sts_retention(model, tokenizer),
                                   chance=chance)
    render(figure, IMAGES / "frontier.png")
    render(run_plots.data_size_heatmap(results.shipped("data-size")), IMAGES / "data_size.png")

    print_tables(results)
    if args.browser:
        subprocess.run([sys.executable, "-m", "pytest", "-q", "tests/test_browser.py"], cwd=ROOT, check=True)
    for shot, name in (("picker_before.png", "picker.png"), ("dashboard.png", "dashboard.png")):
        source = ROOT / "artifacts" / shot
        if source.exists():
            shutil.copy(source, IMAGES / name)
            print(f"copied artifacts/{shot} -> docs/images/{name}")
        else:
            print(f"artifacts/{shot} is missing: run with --browser (or pytest tests/test_browser.py) first")


if __name__ == "__main__":
    main()
