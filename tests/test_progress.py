"""cpc_tf/progress.py: the bar's counter, the one projection, the lines and the scalars."""

import os
import re

import pytest
import tensorflow as tf

from cpc_tf import progress


def test_the_bar_shows_the_step_once_as_its_integer_counter(capsys):
  shown = progress.Progress(4, log=print, bar=True, stateful_metrics=["loss"])
  for step in range(1, 5):
    shown.record(step, 1, 0.1, {"loss": 1.0 / step})
    shown.show(step, [("loss", 1.0 / step)])
  out = capsys.readouterr().out
  # The step is the bar's own counter, never also a float metric (issue 21 item 5).
  assert re.search(r"(?<!\d)4/4(?!\d)", out) and "step: " not in out
  assert "loss: 0.2500" in out  # a stateful metric is shown as given, not averaged
  assert "Projected" not in out  # 3 timed steps, and no projection at the end asked


def test_a_resumed_bar_counts_this_runs_steps(capsys):
  shown = progress.Progress(6, 4, log=print, bar=True)
  for step in (5, 6):
    shown.record(step, 1, 0.1)
    shown.show(step)
  out = capsys.readouterr().out
  assert re.search(r"(?<!\d)2/2(?!\d)", out) and "6/6" not in out
  assert shown.run_steps == 2


def test_nothing_is_shown_without_a_log(capsys):
  quiet = progress.Progress(20, bar=True)
  assert quiet.bar is None
  for step in range(1, 21):
    quiet.record(step, 1, 0.1)
    quiet.show(step)
  assert capsys.readouterr().out == ""
  assert quiet.timed_steps == 19 and quiet.projected


def test_the_projection_comes_once_after_ten_timed_steps_and_not_before():
  lines = []
  timed = progress.Progress(100, 20, label="frozen (point 0)", log=lines.append)
  timed.record(25, 5, 60.0)  # the warm-up call (it traces): not timed
  assert timed.timed_steps == 0 and timed.seconds_per_step is None
  step = 25
  for _ in range(9):
    step += 1
    timed.record(step, 1, 0.5)
  timed.record(step, 0, 3.0)  # a call that ran no step (the stop vote) counts for nothing
  assert lines == [] and timed.timed_steps == 9
  step += 1
  timed.record(step, 1, 0.5)
  assert lines == ["frozen (point 0): Projected: 0.5 s per step over 10 timed steps, "
                   "about 0.5 min for the 65 steps left"]
  for _ in range(30):
    step += 1
    timed.record(step, 1, 0.5)
  assert len(lines) == 1
  assert timed.run_steps == 45 and timed.seconds_per_step == pytest.approx(0.5)


def test_a_short_run_projects_at_its_end_only_when_asked():
  for at_end, want in ((False, 0), (True, 1)):
    lines = []
    short = progress.Progress(4, log=lines.append, project_at_end=at_end)
    for step in range(1, 5):
      short.record(step, 1, 0.25)
    assert len(lines) == want, lines
  assert lines == ["Projected: 0.25 s per step over 3 timed steps, about 0.0 min for the "
                   "0 steps left"]


def test_beside_a_bar_the_projection_starts_a_line_of_its_own():
  lines = []
  shown = progress.Progress(12, log=lines.append, bar=True)
  for step in range(1, 12):
    shown.record(step, 1, 0.5)
  assert lines == ["\nProjected: 0.5 s per step over 10 timed steps, about 0.0 min for the "
                   "1 steps left"]


def test_images_per_second_over_the_timed_steps():
  rate = progress.Progress(10, batch_size=8)
  assert rate.images_per_second is None
  rate.record(1, 1, 100.0)
  rate.record(3, 2, 0.5)
  assert rate.images_per_second == pytest.approx(32.0)


def test_phase_line():
  assert progress.phase_line("linear (point 0)", 40, 100, 0.69314) == (
      "linear (point 0) step 40/100: loss 0.6931")
  assert progress.phase_line("frozen (point 1)", 100, 100, 1.5,
                             {"top1": 0.5, "top5": 0.875}) == (
      "frozen (point 1) step 100/100: loss 1.5000, validation top-1 0.5000 top-5 0.8750")


def read_scalars(directory):
  """{(tag, step): value} and the plugin names, from the event files in directory."""
  values, plugins = {}, {}
  for name in tf.io.gfile.glob(os.path.join(directory, "events.out.tfevents.*")):
    for event in tf.compat.v1.train.summary_iterator(name):
      for v in event.summary.value:
        values[(v.tag, event.step)] = float(tf.make_ndarray(v.tensor))
        if v.metadata.plugin_data.plugin_name:
          plugins[v.tag] = v.metadata.plugin_data.plugin_name
  return values, plugins


def test_scalars_are_means_since_the_last_write_with_the_throughput(tmp_path):
  writer = tf.summary.create_file_writer(str(tmp_path))
  scalars = progress.Progress(4, writer=writer, batch_size=8, patches_per_image=49)
  scalars.record(1, 1, 9.0, {"loss": 4.0})  # warm-up: in the means, not in the throughput
  scalars.record(2, 1, 0.5, {"loss": 2.0})
  scalars.write_summaries(2, {"learning_rate": 0.1})
  scalars.record(4, 2, 0.25, {"loss": 1.0})
  scalars.write_summaries(4, {"learning_rate": 0.2})
  progress.write_scalar(writer, "probe/knn_top1", 0.5, 4)
  writer.flush()
  values, plugins = read_scalars(str(tmp_path))
  assert values == pytest.approx({
      ("loss", 2): 3.0, ("learning_rate", 2): 0.1,
      (progress.IMAGES_PER_SECOND, 2): 16.0, (progress.PATCHES_PER_SECOND, 2): 16.0 * 49,
      ("loss", 4): 1.0, ("learning_rate", 4): 0.2,
      (progress.IMAGES_PER_SECOND, 4): 64.0, (progress.PATCHES_PER_SECOND, 4): 64.0 * 49,
      ("probe/knn_top1", 4): 0.5})
  # TensorBoard shows them as scalars: the plugin tag is written with each name.
  assert set(plugins.values()) == {"scalars"} and len(plugins) == 5


def test_without_a_batch_size_no_throughput_is_written(tmp_path):
  writer = tf.summary.create_file_writer(str(tmp_path))
  scalars = progress.Progress(3, writer=writer)
  for step in range(1, 4):
    scalars.record(step, 1, 0.1, {"loss": 1.0})
  scalars.write_summaries(3)
  writer.flush()
  values, _ = read_scalars(str(tmp_path))
  assert values == pytest.approx({("loss", 3): 1.0})
