"""SavedModel export: averaged weights, explicit signatures, identical outputs in a fresh process."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import tensorflow as tf

from cpc_tf import checkpoints, configs, export
from cpc_tf.model import build_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def fake_run(model_dir):
  """A model_dir whose checkpoint holds different raw and averaged weights."""
  config = configs.tiny()
  checkpoints.write_config(config, model_dir)
  raw, averaged = build_model(config.model), build_model(config.model)
  averaged.set_weights([w + 0.01 for w in raw.get_weights()])
  tf.train.Checkpoint(model=raw,
                      averaged_model=averaged).write(
      os.path.join(model_dir, "ckpt-7"))
  # The index file tf.train.latest_checkpoint reads (CheckpointManager's format).
  with open(os.path.join(model_dir, "checkpoint"), "w") as f:
    f.write('model_checkpoint_path: "ckpt-7"\nall_model_checkpoint_paths: "ckpt-7"\n')
  return config, raw, averaged


def export_run(model_dir, export_dir, step=None):
  """What launch/export.py does: the averaged encoder of a run -> SavedModel."""
  from cpc_tf import export
  from cpc_tf.eval import encoders
  encoder = encoders.load_encoder(model_dir, step)
  return export.export_encoder(encoder.model, encoder.pretrain.model.grid, export_dir)


def test_export_round_trip_in_a_fresh_process(tmp_path):
  model_dir, export_dir = str(tmp_path / "run"), str(tmp_path / "export")
  config, raw, averaged = fake_run(model_dir)
  export_run(model_dir, export_dir)

  size = config.model.grid.image_size
  images = np.random.default_rng(0).uniform(size=(2, size, size, 3)).astype(np.float32)
  whole = np.random.default_rng(1).uniform(size=(1, 48, 40, 3)).astype(np.float32)
  np.savez(tmp_path / "inputs.npz", images=images, whole=whole)
  script = f"""
    import numpy as np, tensorflow as tf
    loaded = tf.saved_model.load({export_dir!r})
    assert set(loaded.signatures) == {{"patched", "whole_image"}}, list(loaded.signatures)
    x = np.load({str(tmp_path / "inputs.npz")!r})
    p = loaded.signatures["patched"](images=tf.constant(x["images"]))
    w = loaded.signatures["whole_image"](images=tf.constant(x["whole"]))
    np.savez({str(tmp_path / "outputs.npz")!r}, latents=p["latents"].numpy(),
             **{{k: v.numpy() for k, v in w.items()}})
  """
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT)
  proc = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], env=env,
                        capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-4000:]
  got = np.load(tmp_path / "outputs.npz")

  g = config.model.grid.grid_size
  want_latents = averaged.latents(images).numpy()
  assert got["latents"].shape == (2, g, g, want_latents.shape[-1])
  np.testing.assert_allclose(got["latents"], want_latents, rtol=1e-5, atol=1e-6)
  out = averaged.encoder(whole)
  assert set(got) - {"latents"} == set(out)  # the encoder's named outputs
  for name in out:
    # Another graph (the SavedModel's fusions): float32 rounding over ~20 layers,
    # relative to the output's scale.
    atol = 1e-5 * max(1.0, float(np.abs(out[name]).max()))
    np.testing.assert_allclose(got[name], out[name], rtol=1e-5, atol=atol, err_msg=name)
  # The export carries the averaged weights, not the raw ones.
  assert not np.allclose(got["latents"], raw.latents(images).numpy(), atol=1e-4)


def test_patched_signature_rejects_the_wrong_image_size(tmp_path):
  config = configs.tiny()
  module = export.EncoderModule(build_model(config.model).encoder, config.model.grid)
  try:
    module.patched(tf.zeros([1, 40, 40, 3]))
  except (ValueError, TypeError) as e:
    assert "40" in str(e) or "shape" in str(e).lower()
  else:
    raise AssertionError("a 40 px image was accepted by a 32 px signature")


def test_export_holds_the_encoder_and_nothing_else(tmp_path):
  """The CPC head is pre-training machinery: no signature uses it, none is saved."""
  model = build_model(configs.tiny().model)
  export.export_encoder(model.encoder, model.config.grid, str(tmp_path))
  saved = [name for name, _ in tf.train.list_variables(str(tmp_path / "variables" /
                                                           "variables"))
           if name.endswith("VARIABLE_VALUE")]
  assert len(saved) == len(model.encoder.weights)
  assert not [name for name in saved if "head" in name]
