"""CPC v2 (Hénaff et al.) in TensorFlow 2 / Keras 3; see the README for the map.

`import cpc_tf` stays light (no TensorFlow): `cpc_tf.embed(images, source)`
(`cpc_tf/embed.py`) imports it on first use.
"""

import sys


def __getattr__(name):
  if name == "embed":  # a callable module: cpc_tf.embed(images, source) -> [B, D]
    import cpc_tf.embed  # pylint: disable=import-outside-toplevel,redefined-outer-name
    return sys.modules["cpc_tf.embed"]
  raise AttributeError(f"module 'cpc_tf' has no attribute {name!r}")
