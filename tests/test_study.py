"""cpc_tf.drivers.study: cells, resume logic (protocols faked) and the report."""

import json
import os

import pytest

from cpc_tf import configs
from cpc_tf.drivers import study
from cpc_tf.eval import loop, results
from cpc_tf import stop


def test_every_seed_at_the_smallest_fraction_one_elsewhere():
  config = configs.StudyConfig(label_fractions=(1.0, 0.01, 0.1), seeds=(3, 4, 5))
  assert study.cells(config) == [(0.01, 3), (0.01, 4), (0.01, 5), (0.1, 3), (1.0, 3)]
  assert study.cell_name(0.01, 4) == "1%-seed4"


def test_cell_config_sets_fraction_and_seed_only():
  base = configs.efficient_fashion_mnist()
  cell = study.cell_config(base, 0.1, 2)
  assert (cell.subset.label_fraction, cell.subset.seed) == (0.1, 2)
  assert configs.replace(cell, **{"subset.label_fraction": base.subset.label_fraction,
                                  "subset.seed": base.subset.seed}) == base


@pytest.mark.parametrize("changes, match", [
    ({"label_fractions": ()}, "label_fractions"),
    ({"label_fractions": (0.0, 1.0)}, "label_fractions"),
    ({"label_fractions": (0.1, 0.1)}, "label_fractions"),
    ({"seeds": (1, 1)}, "seeds"),
])
def test_bad_study_configs_are_clear_errors(changes, match):
  with pytest.raises(ValueError, match=match):
    configs.StudyConfig(**changes)


class FakeProtocols:
  """Stands in for pre-training and the three protocols; records every call."""

  def __init__(self, monkeypatch, fail_at=None):
    self.calls, self.fail_at = [], fail_at
    monkeypatch.setattr(study.train, "pretrain", self.pretrain)
    monkeypatch.setattr(study.dynamics, "random_init_dir", lambda m, o, s: m + "-random")
    monkeypatch.setattr(study.linear, "train_linear", self.linear)
    monkeypatch.setattr(study.efficient, "train_efficient", self.efficient)
    monkeypatch.setattr(study.supervised, "train_supervised", self.supervised)
    monkeypatch.setattr(study.pixels, "run_cell", self.pixels)
    monkeypatch.setattr(study, "write_map", self.write_map)

  def write_map(self, config, path, encoders):
    self._maybe_fail("map")
    assert list(encoders) == [study.LINEAR_METHOD, study.RANDOM_METHOD]
    open(path, "wb").close()
    return "pca"

  def _maybe_fail(self, name):
    self.calls.append(name)
    if name == self.fail_at:
      self.fail_at = None
      raise stop.Stopped(f"SIGTERM in {name}", 143)

  def pretrain(self, config, model_dir, strategy, verbose):
    self._maybe_fail("pretrain")
    os.makedirs(model_dir, exist_ok=True)
    open(os.path.join(model_dir, f"ckpt-{config.train_steps}.index"), "w").close()
    return study.train.Result(config.train_steps, {}, None)

  def _write(self, output_dir, protocol, rows):
    results.write_results(os.path.join(output_dir, results.RESULTS_FILE), protocol,
                          "fashion_mnist", "x", rows, {})

  def linear(self, model_dir, config, output_dir, strategy, step=None, verbose=True,
             method="CPC v2 linear"):
    self._maybe_fail(f"linear:{method}")
    top1 = 0.6 if "random" in model_dir else 0.8
    self._write(output_dir, "linear",
                [results.row(method, 1.0, top1, 0.9, "test", 100)])

  def efficient(self, model_dir, config, output_dir, strategy, verbose=True):
    f, s = config.subset.label_fraction, config.subset.seed
    self._maybe_fail(f"efficient:{f}:{s}")
    self._write(output_dir, "efficient", [
        results.row("CPC v2 (frozen)", f, 0.5 + 0.1 * s, 0.9, "test", 10),
        results.row("CPC v2 (fine-tuned)", f, 0.55, 0.9, "test", 10)])

  def supervised(self, config, output_dir, strategy, verbose=True):
    f, s = config.subset.label_fraction, config.subset.seed
    self._maybe_fail(f"supervised:{f}:{s}")
    self._write(output_dir, "supervised",
                [results.row("Supervised small", f, 0.5, 0.8, "test", 10)])


  def pixels(self, config, subset, output_dir, subset_file=None, log=print):
    f, s = subset.label_fraction, subset.seed
    self._maybe_fail(f"pixels:{f}:{s}")
    self._write(output_dir, "pixels", [
        results.row(study.PIXEL_LR, f, 0.4, 0.8, "test", 10),
        results.row("kNN on pixels (cosine)", f, 0.3, 0.7, "test", 10)])


def small_study():
  return configs.replace(configs.study_tiny(), label_fractions=(0.5, 1.0), seeds=(0, 1))


def test_a_stopped_study_resumes_without_repeating_a_finished_stage(tmp_path, monkeypatch):
  fake = FakeProtocols(monkeypatch, fail_at="supervised:0.5:1")
  with pytest.raises(stop.Stopped):
    study.run(small_study(), str(tmp_path), verbose=False)
  first = list(fake.calls)
  assert first == ["pretrain", "linear:CPC v2 linear", "linear:Random init linear", "map",
                   "efficient:0.5:0", "supervised:0.5:0", "pixels:0.5:0",
                   "efficient:0.5:1", "supervised:0.5:1"]
  fake.calls.clear()
  summary = study.run(small_study(), str(tmp_path), verbose=False, setup_seconds=12.5)
  assert fake.calls == ["supervised:0.5:1", "pixels:0.5:1", "efficient:1.0:0",
                        "supervised:1.0:0", "pixels:1.0:0"]
  # Two seeds at 50%: mean 0.55, sample std 0.0707 (frozen 0.5 and 0.6).
  cell = summary["cells"]["CPC v2 (frozen)"]["50%"]
  assert cell["n"] == 2 and cell["top1"] == pytest.approx(0.55)
  assert cell["top1_std"] == pytest.approx(0.0707107, abs=1e-6)
  text = open(tmp_path / "study.md").read()
  assert "55.0 ± 7.1 (n=2)" in text
  assert "| Logistic regression on pixels | 40.0 ± 0.0 (n=2) | 40.0 |" in text
  assert "+20.0 points; target +12): met" in text
  assert ("CPC 80.0% vs Logistic regression on pixels with all labels 40.0% (+40.0 "
          "points; target: above): met") in text
  # Frozen 55.0 ± 7.1 beats the best baseline (supervised 50.0) by 5 points: less
  # than the seeds' std, so the target is missed although the mean is above.
  assert ("50% labels: best CPC phase (CPC v2 (frozen)) 55.0% vs the best baseline "
          "(Supervised small) 50.0% (+5.0 points; target: above every baseline by more "
          "than the seeds' std, 7.1): MISSED") in text
  assert ("+5.0 -> +5.0 points from the smallest to the largest fraction: CPC's lead "
          "narrows") in text
  assert os.path.getsize(tmp_path / "study.png") > 0
  timings = json.load(open(tmp_path / "timings.json"))
  assert set(timings["stages"]) == {
      "pretrain", "linear/cpc", "linear/random", "map", "efficient/50%-seed0",
      "supervised/50%-seed0", "pixels/50%-seed0", "efficient/50%-seed1",
      "supervised/50%-seed1", "pixels/50%-seed1", "efficient/100%-seed0",
      "supervised/100%-seed0", "pixels/100%-seed0"}
  assert timings["stages_total"] == pytest.approx(sum(timings["stages"].values()), abs=0.1)
  assert timings["setup"] == 12.5 and timings["this_invocation"] >= 0
  assert "- set-up before the study: 12 s" in text and "this invocation" in text
  assert "SMOKE RUN" not in text


def test_a_smoke_run_says_so_at_the_top_of_its_report(tmp_path, monkeypatch):
  FakeProtocols(monkeypatch)
  study.run(configs.replace(small_study(), smoke=True), str(tmp_path), verbose=False)
  assert open(tmp_path / "study.md").read().startswith("**SMOKE RUN**")
  assert json.load(open(tmp_path / "study.json"))["smoke"] is True
  assert configs.study_preset("study_fashion_mnist_quick").smoke
  assert not configs.study_preset("study_fashion_mnist").smoke


def test_a_missed_target_is_reported_as_missed(tmp_path, monkeypatch):
  fake = FakeProtocols(monkeypatch)
  monkeypatch.setattr(study.supervised, "train_supervised",
                      lambda config, output_dir, strategy, verbose=True: fake._write(
                          output_dir, "supervised", [results.row(
                              "Supervised small", config.subset.label_fraction, 0.9, 0.9,
                              "test", 10)]))
  study.run(small_study(), str(tmp_path), verbose=False)
  text = open(tmp_path / "study.md").read()
  assert ("best baseline (Supervised small) 90.0% (-35.0 points; target: above every "
          "baseline by more than the seeds' std, 7.1): MISSED") in text
  # Behind at every fraction is not a narrowing gap, however the numbers move.
  assert "-35.0 -> -35.0 points" in text and "NOT ICLR Figure 1's shape" in text


def test_preempted_pretraining_stops_the_study(tmp_path, monkeypatch):
  fake = FakeProtocols(monkeypatch)
  def pretrain(config, model_dir, strategy, verbose):
    raise stop.Stopped("Preempted at step 1: checkpoint saved. Rerun the same command to "
                       "continue.", 143)

  monkeypatch.setattr(study.train, "pretrain", pretrain)
  with pytest.raises(stop.Stopped, match="^Preempted at step 1: .*Rerun the same command"):
    study.run(small_study(), str(tmp_path), verbose=False)
  assert fake.calls == []


def test_other_settings_in_the_same_output_dir_are_refused(tmp_path, monkeypatch):
  FakeProtocols(monkeypatch)
  study.run(small_study(), str(tmp_path), verbose=False)
  with pytest.raises(ValueError, match="study.seeds"):
    study.run(configs.replace(small_study(), seeds=(0, 1, 2)), str(tmp_path), verbose=False)
