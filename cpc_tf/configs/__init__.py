"""Configs: frozen dataclasses (the single home of every default) and presets.

  schema.py      every dataclass, replace / to_dict / from_dict
  pretrain.py    pre-training presets (supp. A, the embedded data, tiny)
  ladder.py      the v1 -> v2 ladder of ICLR Figure 3 as presets, readings, axes
  evaluation.py  linear (supp. B), few-label (supp. C.2), supervised (supp. C.1)
  detection.py   Faster R-CNN transfer (ICLR 4.3)
  study.py       the claim study (ICLR Figure 1 / Table 5 on the embedded data)
  ablation.py    the small-scale Figure 3
  registry.py    PRESETS[kind][name] and DEFAULTS[kind], used by every binary

Every public name of these modules is importable from `cpc_tf.configs`. The
package imports nothing else of cpc_tf: it is the bottom layer.
"""

from cpc_tf.configs.schema import *  # noqa: F401,F403
from cpc_tf.configs.pretrain import *  # noqa: F401,F403
from cpc_tf.configs.ladder import *  # noqa: F401,F403
from cpc_tf.configs.evaluation import *  # noqa: F401,F403
from cpc_tf.configs.detection import *  # noqa: F401,F403
from cpc_tf.configs.study import *  # noqa: F401,F403
from cpc_tf.configs.ablation import *  # noqa: F401,F403
from cpc_tf.configs.registry import *  # noqa: F401,F403
