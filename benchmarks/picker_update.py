"""Benchmark: one FreezePicker toggle versus building the heatmap from scratch.

Target (issue 3): on bert-base-uncased's architecture (built from its config,
no download), a toggle updates the heatmap in at most 1/5 of the time of
building the figure from scratch, and in under 50 ms. Issue 12: switching the
method (LoRA rank or targets, or back to frozen layers) redraws as fast as a
toggle (ratio switch / toggle <= 1.5). All are measured here,
in one run, in the kernel (the browser's drawing time is not included).

    python benchmarks/picker_update.py
"""

import statistics
import time

import freezelab as fl
from freezelab import plots
from freezelab.widgets import FreezePicker


def median_ms(fn, repeats: int) -> float:
    times = []
    for i in range(repeats):
        start = time.perf_counter()
        fn(i)
        times.append(1000 * (time.perf_counter() - start))
    return statistics.median(times)


def main(repeats: int = 24) -> None:
    model, _ = fl.load_model("bert-base-uncased", random_weights=True)
    a = fl.anatomy(model)
    plan = fl.FreezePlan.freeze_bottom(a, 4)

    def build(_):
        plots._static_parts.cache_clear()  # from scratch: nothing cached but the model's anatomy
        plots.trainable_heatmap(a, plan, widget=True)

    picker = FreezePicker(model, live="figurewidget")
    rows = [f"block {i}" for i in range(a.num_blocks)]

    def toggle(i):
        button = picker.toggles[rows[i % len(rows)]]
        button.value = not button.value

    build_ms, toggle_ms = median_ms(build, repeats), median_ms(toggle, repeats)
    # One click each, in turn: to LoRA, another rank, other targets, back to frozen layers.
    lora = picker.choices["LoRA"]
    clicks = [(picker.method, "LoRA"), (lora["rank"], 64), (lora["targets"], "all-linear"), (lora["rank"], 8),
              (lora["targets"], "attention"), (picker.method, "freeze layers")]

    def switch(i):
        control, value = clicks[i % len(clicks)]
        control.value = value

    switch_ms = median_ms(switch, repeats)
    print(f"build figure from scratch: {build_ms:8.1f} ms (median of {repeats})")
    print(f"one toggle, heatmap updated: {toggle_ms:6.1f} ms (median of {repeats})")
    print(f"ratio toggle / build: {toggle_ms / build_ms:.3f}  (target <= 0.200)")
    print(f"toggle under 50 ms: {'yes' if toggle_ms < 50 else 'NO'}")
    print(f"method switch (LoRA rank/targets, back to layers): {switch_ms:6.1f} ms (median of {repeats})")
    print(f"ratio switch / toggle: {switch_ms / toggle_ms:.2f}  (target <= 1.5)")
    print(f"model weights touched: {'no' if all(p.requires_grad for p in model.parameters()) else 'YES'}")


if __name__ == "__main__":
    main()
