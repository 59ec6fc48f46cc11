"""The supp. C.1 sweep and the output-directory guard of the classification protocols."""

import json

import pytest

from cpc_tf import configs
from cpc_tf.configs import HParams, SweepConfig
from cpc_tf.eval import sweep


def test_sweep_points():
  given = HParams(learning_rate=0.3)
  assert sweep.sweep_points(SweepConfig(size=1), given) == [given]
  grid = sweep.sweep_points(SweepConfig(size=0), given)
  assert len(grid) == 96 and len(set(grid)) == 96  # 3 lr x 4 wd x 4 dropout x 2 batch
  assert {p.learning_rate for p in grid} == {0.05, 0.1, 0.2}
  assert {p.weight_decay for p in grid} == {1e-5, 1e-4, 1e-3, 1e-2}
  assert {p.batch_per_replica for p in grid} == {16, 32}
  three = sweep.sweep_points(SweepConfig(size=3, seed=4), given)
  assert three == sweep.sweep_points(SweepConfig(size=3, seed=4), given)
  assert three != sweep.sweep_points(SweepConfig(size=3, seed=5), given)
  assert set(three) <= set(grid)
  with pytest.raises(ValueError, match="exceeds the 96 grid points"):
    sweep.sweep_points(SweepConfig(size=97), given)
  rows = [{"point": 0, "val_top1": 0.5}, {"point": 1, "val_top1": 0.7},
          {"point": 2, "val_top1": 0.7}]
  assert sweep.best_point(rows)["point"] == 1


def test_output_dir_of_another_run_is_refused(tmp_path):
  config = configs.efficient_tiny()
  sweep.check_run(str(tmp_path), "efficient", "/runs/a", config)
  longer = configs.replace(config, frozen_steps=40, **{"sweep.size": 3})
  sweep.check_run(str(tmp_path), "efficient", "/runs/a", longer)  # budgets may grow
  with pytest.raises(ValueError, match="encoder: saved '/runs/a', now '/runs/b'"):
    sweep.check_run(str(tmp_path), "efficient", "/runs/b", longer)
  with pytest.raises(ValueError, match="config.subset.label_fraction: saved 1.0, now 0.5"):
    sweep.check_run(str(tmp_path), "efficient", "/runs/a",
                        configs.replace(longer, **{"subset.label_fraction": 0.5}))
  assert json.load(open(tmp_path / "config.json"))["config"]["frozen_steps"] == 40
