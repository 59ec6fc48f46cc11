"""launch/embed.py end to end on a folder: files, the map, reruns, refusals."""

import os
import subprocess
import sys


from cpc_tf import embed
from cpc_tf.eval import embedding_map
from test_export import fake_run
from test_held_out import make_folder

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(*args):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  return subprocess.run([sys.executable, "-m", "launch.embed", *args], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=600)


def test_embed_binary_writes_embeddings_and_the_map_and_reruns_alike(tmp_path):
  model_dir, out = str(tmp_path / "run"), str(tmp_path / "out")
  fake_run(model_dir)
  folder = make_folder(tmp_path / "images", per_class=4)
  args = (f"--model_dir={model_dir}", f"--dataset=folder:{folder}", f"--output_dir={out}",
          "--map", "--batch_size=5")
  proc = run(*args)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert f"Embedding the images of {folder} split train with {model_dir} (32 px crops)" \
      in proc.stdout
  assert "embedded 12/12 images" in proc.stdout
  assert "Wrote 12 embeddings of dimension " in proc.stdout
  assert f"Wrote the t-SNE map of 12 images to {out}/embedding_map.png" in proc.stdout
  result = embed.read(out)
  assert result.embeddings.shape[0] == 12 and result.class_names == ("ant", "bee", "cat")
  assert embedding_map.is_map(os.path.join(out, embed.MAP))
  before = open(os.path.join(out, embed.NPZ), "rb").read()
  proc = run(*args)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert open(os.path.join(out, embed.NPZ), "rb").read() == before


def test_embed_binary_refuses_in_one_line(tmp_path):
  model_dir, out = str(tmp_path / "run"), tmp_path / "out"
  fake_run(model_dir)
  folder = make_folder(tmp_path / "images", per_class=2)
  out.mkdir()
  (out / embed.MAP).write_bytes(b"my picture")
  proc = run(f"--model_dir={model_dir}", f"--dataset=folder:{folder}",
             f"--output_dir={out}", "--map")
  assert proc.returncode == 1
  assert proc.stderr.strip().splitlines()[-1] == (
      f"Error: {out}/embedding_map.png exists and was not written by cpc_tf.embed: pass "
      "--overwrite (overwrite=True) to replace it, or choose another output directory.")
  assert (out / embed.MAP).read_bytes() == b"my picture"
  # Bad sources and folders: tests/test_embed.py (the same EmbedError lines).
