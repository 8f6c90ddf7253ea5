"""Specification of one experiment: a grid point in, a typed record out, in the shape the shipped files hold."""

import json

import pytest

from freezelab import experiment, grids, results

pytestmark = pytest.mark.usefixtures("offline_data")


def test_a_point_becomes_a_record_with_the_shipped_files_columns():
    settings = grids.SweepSettings(checkpoint="tiny-random-bert", dev_size=16, sts_dev_size=16, epochs=1)
    point = grids.grid(["top2"], [1e-3], [32], [1], warmup=0.0)[0]
    record = experiment.run_point(point, settings)
    assert isinstance(record, experiment.RunRecord)
    row = json.loads(json.dumps(record.to_dict()))  # what a sweep stores
    shipped = set(results.shipped("frontier").columns)
    assert set(row) - shipped == {"evaluations"}  # dropped by export
    assert shipped - set(row) == {"layer_decay"}  # an option this point did not set
    assert row["label"] == grids.describe(point) == "train top 2 + head, lr 0.001, no warm-up"
    assert (row["frozen_blocks"], row["num_blocks"], row["cache_prefix"], row["steps"]) == (2, 4, True, 1)
    assert set(row["retention"]) >= {"sts_spearman", "cka", "weight_drift"}


def test_without_probes_the_record_has_no_retention():
    settings = grids.SweepSettings(checkpoint="tiny-random-bert", dev_size=16, probes=False, epochs=1)
    record = experiment.run_point(grids.grid(["head"], [1e-2], [16], [0], pooling="mean")[0], settings)
    assert "retention" not in record.to_dict() and record.pooling == "mean"


def test_settings_with_alphas_walk_each_run_back_and_record_the_curve_a_results_table_reads():
    settings = grids.SweepSettings(checkpoint="tiny-random-bert", dev_size=16, sts_dev_size=16, epochs=1,
                                   probes=False, alphas=(1.0, 0.5, 0.0))
    point = grids.grid(["full"], [1e-3], [32], [0])[0]
    row = json.loads(json.dumps(experiment.run_point(point, settings).to_dict()))
    assert [line["alpha"] for line in row["interpolation"]] == [1.0, 0.5, 0.0]
    assert row["interpolation"][0]["dev_metric"] == pytest.approx(row["dev_metric"])  # alpha 1 is the run itself
    assert results.check_run(row)["interpolation"] == row["interpolation"]
    curves = results.alpha_curves(results.pd.DataFrame([results.check_run(row)]))
    assert list(curves.columns[:3]) == ["label", "seed", "alpha"] and len(curves) == 3
    assert curves["label"].iloc[1] == "full fine-tune, lr 0.001 · α 0.50"


def test_alphas_are_checked_and_stored_only_where_set():
    assert "alphas" not in grids.SweepSettings().to_dict()  # settings stored before walks read back the same
    assert grids.SweepSettings.from_dict(grids.SweepSettings(alphas=[1, 0.5]).to_dict()).alphas == (1.0, 0.5)
    for bad in ([], [1.5], [-0.1]):
        with pytest.raises(ValueError, match="alphas must be a non-empty list of numbers from 0 to 1"):
            grids.SweepSettings(alphas=bad)
    with pytest.raises(ValueError, match="on a classification task"):
        grids.SweepSettings(task="stsb", alphas=[0.5])
    with pytest.raises(ValueError, match="interpolation must be a list of tables"):
        results.check_run({"plan": "full", "lr": 1e-4, "train_size": 10, "seed": 0, "interpolation": [{"alpha": 1}]})


@pytest.mark.parametrize("lean", [False, True])
def test_with_lean_memory_a_run_without_the_frozen_prefix_cache_empties_it_first(lean):
    """Lean memory gives a full fine-tune the cache's room; otherwise the cache stays for later runs."""
    from freezelab.prefix_cache import STORE

    settings = grids.SweepSettings(checkpoint="tiny-random-bert", dev_size=16, probes=False, epochs=1,
                                   memory="lean" if lean else "fast")
    head, full = (grids.grid([plan], [1e-2], [16], [0])[0] for plan in ("head", "full"))
    experiment.run_point(head, settings)
    assert STORE.rows  # the head's run cached its sentences
    experiment.run_point(full, settings)
    assert bool(STORE.rows) is not lean
    experiment.run_point(head, settings)  # a run that uses the cache keeps it, lean or not
    assert STORE.rows
