"""The one config guard of run directories: settings written once, refusals name
every differing field, safe changes appended with their step, damaged records
named with the way out, failed first starts never block a retry."""

import json
import os

import pytest
import tensorflow as tf

from cpc_tf import checkpoints, configs
from test_train import small_config


def save_checkpoint(directory, step):
  """A checkpoint (with its state file) at `step`, as a run leaves one."""
  checkpoint = tf.train.Checkpoint(step=tf.Variable(step, dtype=tf.int64))
  tf.train.CheckpointManager(checkpoint, str(directory), max_to_keep=None).save(
      checkpoint_number=step)


def started_run(tmp_path, step=4, **changes):
  config = small_config(**changes)
  checkpoints.check_resumable(config, str(tmp_path), write=True)
  save_checkpoint(tmp_path, step)
  return config


def saved_record(tmp_path):
  with open(tmp_path / checkpoints.CONFIG_FILE) as f:
    return json.load(f)


def test_resuming_other_settings_is_refused_with_every_differing_field(tmp_path):
  started_run(tmp_path)
  other = small_config(batch_size=16, **{"model.head.target_dim": 16,
                                         "optimizer.learning_rate": 1e-4})
  with pytest.raises(ValueError) as error:
    checkpoints.check_resumable(other, str(tmp_path), write=True)
  message = str(error.value)
  assert "model.head.target_dim: saved 8, now 16" in message
  assert "batch_size: saved 4, now 16" in message  # issue 9: was silently accepted
  assert "optimizer.learning_rate: saved 0.001, now 0.0001" in message
  assert "only train_steps, epochs, checkpoint_every" in message
  assert checkpoints.read_config(str(tmp_path)) == small_config()  # refused: untouched


def test_safe_changes_are_appended_with_their_step_and_the_record_kept(tmp_path):
  started_run(tmp_path, step=4)
  first = saved_record(tmp_path)
  checkpoints.check_resumable(small_config(train_steps=6, log_every=3), str(tmp_path),
                              write=True)
  save_checkpoint(tmp_path, 6)
  checkpoints.check_resumable(small_config(train_steps=9, log_every=3), str(tmp_path),
                              write=True)
  assert saved_record(tmp_path) == first  # written once, never overwritten
  with open(tmp_path / checkpoints.CHANGES_FILE) as f:
    changes = json.load(f)
  assert changes == [
      {"step": 4, "changes": {"train_steps": {"from": 4, "to": 6},
                              "log_every": {"from": 1, "to": 3}}},
      {"step": 6, "changes": {"train_steps": {"from": 6, "to": 9}}}]
  assert checkpoints.read_config(str(tmp_path)) == small_config(train_steps=9, log_every=3)
  # The same settings again: nothing to record.
  checkpoints.check_resumable(small_config(train_steps=9, log_every=3), str(tmp_path),
                              write=True)
  with open(tmp_path / checkpoints.CHANGES_FILE) as f:
    assert len(json.load(f)) == 2


def test_a_truncated_config_names_its_file_and_how_to_recover(tmp_path):
  started_run(tmp_path, step=4)
  path = tmp_path / checkpoints.CONFIG_FILE
  path.write_text(path.read_text()[:1024])  # as a full disk left it (issue 9)
  for call in (lambda: checkpoints.check_resumable(small_config(), str(tmp_path), True),
               lambda: checkpoints.read_config(str(tmp_path))):
    with pytest.raises(ValueError) as error:
      call()
    message = str(error.value)
    assert str(path) in message and "not valid JSON" in message
    assert "checkpoints are intact (steps 4)" in message
    assert f"mv {path} {path}.damaged" in message and "--train_steps=4" in message
  # The way out works: with the record moved aside the same settings resume.
  os.rename(path, str(path) + ".damaged")
  checkpoints.check_resumable(small_config(train_steps=4), str(tmp_path), write=True)
  assert checkpoints.read_config(str(tmp_path)) == small_config(train_steps=4)


def test_a_failed_first_start_does_not_block_a_corrected_retry(tmp_path):
  checkpoints.check_resumable(small_config(batch_size=6), str(tmp_path), write=True)
  # It failed before its first checkpoint; the corrected command must start.
  corrected = small_config(**{"model.head.target_dim": 16})
  checkpoints.check_resumable(corrected, str(tmp_path), write=True)
  assert checkpoints.read_config(str(tmp_path)) == corrected
  assert not (tmp_path / checkpoints.CHANGES_FILE).exists()
  # Even a damaged record of a start that saved nothing is simply replaced.
  (tmp_path / checkpoints.CONFIG_FILE).write_text('{"batch_size": 8,')
  checkpoints.check_resumable(small_config(), str(tmp_path), write=True)
  assert checkpoints.read_config(str(tmp_path)) == small_config()


def test_a_record_from_before_the_probe_resumes_with_the_probe_on_and_may_retune_it(tmp_path):
  started_run(tmp_path, step=4)
  record = saved_record(tmp_path)
  del record["probe"]  # config.json written before ProbeConfig existed
  with open(tmp_path / checkpoints.CONFIG_FILE, "w") as f:
    json.dump(record, f)
  assert checkpoints.read_config(str(tmp_path)) == small_config()  # probe off, the default
  probing = small_config(probe=configs.ProbeConfig(every_steps=2, k=5))
  checkpoints.check_resumable(probing, str(tmp_path), write=True)
  assert checkpoints.read_config(str(tmp_path)) == probing
  retuned = small_config(probe=configs.ProbeConfig(every_steps=3, k=5, split="test"))
  checkpoints.check_resumable(retuned, str(tmp_path), write=True)
  with open(tmp_path / checkpoints.CHANGES_FILE) as f:
    changes = json.load(f)
  assert list(changes[0]["changes"]) == ["probe"]
  assert changes[1]["changes"] == {"probe.every_steps": {"from": 2, "to": 3},
                                   "probe.split": {"from": "train", "to": "test"}}
  assert checkpoints.read_config(str(tmp_path)) == retuned
  # Everything else is still refused, and the hint names the probe once.
  with pytest.raises(ValueError, match=r"batch_size: saved 4, now 8\n.*probe\.\* may change"):
    checkpoints.check_resumable(small_config(batch_size=8), str(tmp_path))


def test_guard_config_writes_then_refuses_only_what_may_not_change(tmp_path):
  doc = {"a": 1, "b": {"c": [1, 2]}}
  guard = lambda d, write=True: checkpoints.guard_config(
      str(tmp_path), d, lambda name: name == "a", write=write, what="another run",
      hint="Use a new directory", step=3, started=True)
  guard(doc)
  assert json.load(open(tmp_path / checkpoints.CONFIG_FILE)) == doc
  guard({"a": 2, "b": {"c": (1, 2)}})  # "a" may change; tuples equal lists
  assert json.load(open(tmp_path / checkpoints.CONFIG_FILE)) == doc
  assert json.load(open(tmp_path / checkpoints.CHANGES_FILE)) == [
      {"step": 3, "changes": {"a": {"from": 1, "to": 2}}}]
  with pytest.raises(ValueError, match=r"holds another run:\n  b.c: saved \[1, 2\], now \[3\]"):
    guard({"a": 2, "b": {"c": [3]}}, write=False)


def test_guard_config_reads_a_field_missing_from_an_older_file_as_implied(tmp_path):
  guard = lambda d: checkpoints.guard_config(
      str(tmp_path), d, lambda name: False, write=True, what="another run",
      hint="Use a new directory", started=True,
      implied={"b.mode": "old", "b.absent": 1, "x.y": 2})
  checkpoints.guard_config(str(tmp_path), {"a": 1, "b": {"c": 2}}, lambda name: False,
                           write=True, what="", hint="")  # written before b.mode existed
  with pytest.raises(ValueError, match=r"b.mode: saved 'old' \(implied: the record predates "
                     r"this field\), now 'new'"):
    guard({"a": 1, "b": {"c": 2, "mode": "new"}})
  guard({"a": 1, "b": {"c": 2, "mode": "old"}})  # the old behaviour resumes
  # The settings are written once: the record still implies the old value.
  assert json.load(open(tmp_path / checkpoints.CONFIG_FILE)) == {"a": 1, "b": {"c": 2}}
  assert not (tmp_path / checkpoints.CHANGES_FILE).exists()


def test_a_missing_checkpoint_is_named_plainly_with_the_steps_there_are(tmp_path):
  with pytest.raises(FileNotFoundError) as error:
    checkpoints.checkpoint_path(str(tmp_path))
  assert f"{tmp_path} has no checkpoint; run python -m launch.pretrain" in str(error.value)
  save_checkpoint(tmp_path, 4)
  save_checkpoint(tmp_path, 8)
  with pytest.raises(FileNotFoundError) as error:
    checkpoints.checkpoint_path(str(tmp_path), 7)
  assert "has no checkpoint at step 7; its checkpoints are at steps 4, 8" in str(error.value)
  assert checkpoints.checkpoint_path(str(tmp_path), 8).endswith("ckpt-8")


def test_an_evaluation_directory_binds_once_a_checkpoint_exists_below_it(tmp_path):
  """Default `started`: any checkpoint under the directory (e.g. point-0/frozen)."""
  guard = lambda d: checkpoints.guard_config(str(tmp_path), d, lambda name: False,
                                             write=True, what="another run", hint="")
  guard({"a": 1})
  guard({"a": 2})  # no checkpoint yet: a failed start, replaced
  assert json.load(open(tmp_path / checkpoints.CONFIG_FILE)) == {"a": 2}
  save_checkpoint(tmp_path / "point-0" / "frozen", 3)
  with pytest.raises(ValueError, match="a: saved 2, now 3"):
    guard({"a": 3})
