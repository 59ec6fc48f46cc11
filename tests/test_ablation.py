"""cpc_tf/drivers/ablation.py: run configs, resume / reuse, output-dir checks, table and chart.

The pre-training loop and the linear protocol are replaced by fakes here (they
have their own tests); tests/test_ablation_binary.py runs the real thing.
"""

import csv
import dataclasses
import os

import pytest

from cpc_tf import configs, stop, train
from cpc_tf.drivers import ablation
from cpc_tf.eval import results


def tiny(**changes):
  return dataclasses.replace(configs.ablation_tiny(), **changes)


def test_rung_config_substitutes_then_sets_budget_data_and_overrides():
  c = tiny(overrides=configs.ablation_tiny().overrides + (("optimizer.learning_rate", 0.5),))
  v1 = ablation.rung_config(c, "cpc_v1")
  assert v1.model.encoder.name == "tiny"  # resnet101_cpc_v1 -> tiny
  assert (v1.model.grid.image_size, v1.model.grid.patch_size, v1.model.grid.stride) == (
      32, 8, 4)
  assert v1.augment.jitter_size == 7  # 56 of 64 px -> 7 of 8
  assert (v1.batch_size, v1.train_steps, v1.optimizer.learning_rate) == (4, 2, 0.5)
  assert v1.data.source == "fashion_mnist" and v1.data.max_examples == 64
  assert v1.data.pipeline == "v1"  # the rung's recipe, not the ablation's data default
  lp = ablation.rung_config(configs.ablation_fashion_mnist(), "ladder_lp")
  assert (lp.model.grid.image_size, lp.model.grid.patch_size, lp.model.grid.stride,
          lp.model.grid.resize_to, lp.model.grid.grid_size) == (30, 10, 4, 34, 6)
  assert lp.augment.jitter_size == 9 and lp.model.encoder.name == "small"
  # Axes the ladder does not name keep the preset's values.
  assert v1.model.head.directions == ("down",) and v1.model.encoder.norm == "none"


def test_every_ladder_rung_has_a_runnable_small_config():
  c = configs.ablation_fashion_mnist()
  names = [ablation.rung_config(c, p).model.encoder.name for p in c.presets]
  # Capacity still changes at small scale, at +MC and only there (blocks doubled).
  mc = c.presets.index("ladder_mc")
  assert set(names[:mc]) == {"compact"} and set(names[mc:]) == {"small"}


def test_bad_override_is_a_clear_error():
  with pytest.raises(ValueError, match="'model.encoder.width' is not a PretrainConfig"):
    ablation.rung_config(tiny(overrides=(("model.encoder.width", 3),)), "cpc_v1")
  with pytest.raises(ValueError, match="Preset 'cpc_v1' in this ablation: .*too small"):
    ablation.rung_config(tiny(overrides=(("model.grid.stride", 8),)), "cpc_v1")


class Fakes:
  """Stand-ins for train.pretrain and the linear protocol that count their calls."""

  def __init__(self, monkeypatch, accuracies, preempt=()):
    self.pretrained, self.evaluated = [], []
    self.accuracies, self.preempt = accuracies, preempt
    monkeypatch.setattr(train, "pretrain", self.pretrain)
    monkeypatch.setattr(ablation, "linear_protocol", self.linear)

  def pretrain(self, config, model_dir, strategy, verbose):
    name = os.path.basename(os.path.dirname(model_dir))
    self.pretrained.append(name)
    if name in self.preempt:
      raise stop.Stopped(f"Preempted at step {config.train_steps}: checkpoint saved. Rerun "
                         "the same command to continue.", 143)
    return train.Result(step=config.train_steps, metrics={}, trainer=None)

  def linear(self, model_dir, config, output_dir, strategy, verbose):
    name = os.path.basename(os.path.dirname(output_dir))
    self.evaluated.append(name)
    top1 = self.accuracies[name]
    os.makedirs(output_dir, exist_ok=True)
    return results.write_results(
        os.path.join(output_dir, results.RESULTS_FILE), "linear", "fashion_mnist", model_dir,
        [results.row("CPC v2 linear", 1.0, top1, min(1.0, 2 * top1), "test", 64)], {})


def test_run_resumes_and_reuses_identical_runs(tmp_path, monkeypatch):
  # Both encoders map to "tiny" in ablation_tiny, so +MC repeats +HP's run.
  presets = ("cpc_v1", "ladder_hp", "ladder_mc")
  fakes = Fakes(monkeypatch, {"cpc_v1": 0.2, "ladder_hp": 0.25})
  out = ablation.run(tiny(presets=presets[:2]), str(tmp_path), verbose=False)
  assert [r.top1 for r in out] == [0.2, 0.25]
  out = ablation.run(tiny(presets=presets), str(tmp_path), verbose=False)
  assert fakes.pretrained == fakes.evaluated == ["cpc_v1", "ladder_hp"]  # nothing twice
  assert [(r.preset, r.label, r.directions, r.top1, r.same_as) for r in out] == [
      ("cpc_v1", "CPC v1", 1, 0.2, ""), ("ladder_hp", "+HP", 4, 0.25, ""),
      ("ladder_mc", "+MC", 4, 0.25, "ladder_hp")]
  with open(tmp_path / ablation.CSV_FILE) as f:
    rows = list(csv.DictReader(f))
  assert [r["preset"] for r in rows] == list(presets)
  assert float(rows[1]["delta_top1"]) == pytest.approx(0.05) and rows[0]["delta_top1"] == ""
  text = (tmp_path / ablation.MARKDOWN_FILE).read_text()
  assert "| ladder_mc (= ladder_hp) | +MC | 4 | 25.0% | 50.0% | +0.0 |" in text
  assert (tmp_path / ablation.PLOT_FILE).read_bytes()[:4] == b"\x89PNG"


def test_preempted_pretraining_stops_the_ablation(tmp_path, monkeypatch):
  fakes = Fakes(monkeypatch, {"cpc_v1": 0.2}, preempt=("cpc_v1",))
  with pytest.raises(stop.Stopped, match="of cpc_v1: Preempted at step 2.*Rerun") as e:
    ablation.run(tiny(), str(tmp_path), verbose=False)
  assert e.value.status == 143 and fakes.evaluated == []


def test_output_dir_with_other_settings_is_refused(tmp_path, monkeypatch):
  Fakes(monkeypatch, {"cpc_v1": 0.2, "ladder_bu": 0.3})
  ablation.run(tiny(), str(tmp_path), verbose=False)
  with pytest.raises(ValueError, match="other settings \\(train_steps: 2 there, 3 now\\)"):
    ablation.run(tiny(train_steps=3), str(tmp_path), verbose=False)


def test_bars_are_coloured_by_directions_as_in_figure_3():
  assert [ablation.bar_colour(d) for d in (1, 2, 4, 3)] == [
      "tab:orange", "tab:green", "tab:blue", "tab:gray"]
  with pytest.raises(ValueError, match="no rungs"):
    ablation.plot([], "unused.png")
