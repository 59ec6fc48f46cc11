"""The one config guard of run directories: refusal names every differing field."""

import json

import pytest

from cpc_tf import checkpoints, configs
from test_train import small_config


def test_resuming_another_architecture_is_refused_with_the_differing_fields(tmp_path):
  checkpoints.write_config(small_config(), str(tmp_path))
  other = small_config(**{"model.head.target_dim": 16, "model.head.emb_scale": 0.5})
  with pytest.raises(ValueError) as error:
    checkpoints.check_resumable(other, str(tmp_path))
  message = str(error.value)
  assert "model.head.target_dim: saved 8, now 16" in message
  assert "model.head.emb_scale: saved 0.1, now 0.5" in message
  # Non-architecture changes (a longer run, another lr) are a legitimate resume.
  checkpoints.check_resumable(small_config(train_steps=100, **{
      "optimizer.learning_rate": 1e-4}), str(tmp_path))


def test_guard_config_writes_then_refuses_only_what_may_not_change(tmp_path):
  doc = {"a": 1, "b": {"c": [1, 2]}}
  guard = lambda d, write=True: checkpoints.guard_config(
      str(tmp_path), d, lambda name: name == "a", write=write, what="another run",
      hint="Use a new directory")
  guard(doc)
  assert json.load(open(tmp_path / checkpoints.CONFIG_FILE)) == doc
  guard({"a": 2, "b": {"c": (1, 2)}})  # "a" may change; tuples equal lists
  with pytest.raises(ValueError, match=r"holds another run:\n  b.c: saved \[1, 2\], now \[3\]"):
    guard({"a": 2, "b": {"c": [3]}}, write=False)
  assert json.load(open(tmp_path / checkpoints.CONFIG_FILE))["a"] == 2  # refused: untouched


def test_guard_config_reads_a_field_missing_from_an_older_file_as_implied(tmp_path):
  guard = lambda d: checkpoints.guard_config(
      str(tmp_path), d, lambda name: False, write=True, what="another run",
      hint="Use a new directory", implied={"b.mode": "old", "b.absent": 1, "x.y": 2})
  guard({"a": 1, "b": {"c": 2}})  # written before b.mode existed
  with pytest.raises(ValueError, match=r"b.mode: saved 'old' \(implied: the file predates "
                     r"this field\), now 'new'"):
    guard({"a": 1, "b": {"c": 2, "mode": "new"}})
  guard({"a": 1, "b": {"c": 2, "mode": "old"}})  # the old behaviour resumes, and is written
  assert json.load(open(tmp_path / checkpoints.CONFIG_FILE))["b"]["mode"] == "old"
  with pytest.raises(ValueError, match=r"b.mode: saved 'old', now 'new'\n"):
    guard({"a": 1, "b": {"c": 2, "mode": "new"}})  # now saved: no longer implied
