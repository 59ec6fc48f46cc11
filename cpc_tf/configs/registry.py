"""The one registry of presets: PRESETS[kind][name] is a function returning a config.

Every binary and the claim study look presets up here, by the kind of config
they run:

  kind         config            binary
  pretrain     PretrainConfig    launch/pretrain.py (the ladder's rungs too)
  linear       LinearEvalConfig  launch/linear_eval.py
  efficient    EfficientConfig   launch/efficient_classification.py (and dynamics)
  supervised   SupervisedConfig  launch/supervised_baseline.py
  detection    DetectionConfig   launch/detection_transfer.py
  study        StudyConfig       launch/study.py
  ablation     AblationConfig    launch/ablation.py

DEFAULTS[kind] is what a binary runs without --preset.
"""

from __future__ import annotations

from cpc_tf.configs import ablation, detection, evaluation, pretrain, study

PRESETS = {
    "pretrain": pretrain.PRETRAIN_PRESETS,
    "linear": {"linear_eval_paper": evaluation.linear_eval_paper,
               "linear_eval_tiny": evaluation.linear_eval_tiny,
               "linear_eval_fashion_mnist": evaluation.linear_eval_fashion_mnist},
    "efficient": {"efficient_paper": evaluation.efficient_paper,
                  "efficient_tiny": evaluation.efficient_tiny,
                  "efficient_fashion_mnist": evaluation.efficient_fashion_mnist},
    "supervised": {"supervised_paper": evaluation.supervised_paper,
                   "supervised_tiny": evaluation.supervised_tiny,
                   "supervised_fashion_mnist": evaluation.supervised_fashion_mnist},
    "detection": {"detection_paper": detection.detection_paper,
                  "detection_synthetic": detection.detection_synthetic,
                  "detection_tiny": detection.detection_tiny},
    "study": {"study_fashion_mnist": study.study_fashion_mnist,
              "study_fashion_mnist_quick": study.study_fashion_mnist_quick,
              "study_fashion_mnist_uncapped": study.study_fashion_mnist_uncapped,
              "study_tiny": study.study_tiny},
    "ablation": {"ablation_fashion_mnist": ablation.ablation_fashion_mnist,
                 "ablation_tiny": ablation.ablation_tiny},
}

# What each binary runs without --preset.
DEFAULTS = {"pretrain": "fashion_mnist_small", "linear": "linear_eval_tiny",
            "efficient": "efficient_tiny", "supervised": "supervised_tiny",
            "detection": "detection_synthetic", "study": "study_fashion_mnist",
            "ablation": "ablation_fashion_mnist"}

EVAL_KINDS = ("linear", "efficient", "supervised", "detection")

# Former preset names -> what to use instead (get() refuses them by name).
REMOVED_PRESETS = {
    "cpc_v1_paper": "it matched neither model it was named after; use 'cpc_v1' (the "
                    "original CPC, ICLR 4.1) or 'cpc_v2_arxiv_v1' (arXiv v1 4.1-4.2)",
}


def get(kind: str, name: str):
  """The config of preset `name` of `kind`; ValueError naming the choices if unknown."""
  if kind not in PRESETS:
    raise ValueError(f"Unknown protocol {kind!r}; choose one of {sorted(PRESETS)}.")
  if kind == "pretrain" and name in REMOVED_PRESETS:
    raise ValueError(f"Preset {name!r} was removed: {REMOVED_PRESETS[name]}.")
  presets = PRESETS[kind]
  if name not in presets:
    what = "preset" if kind == "pretrain" else f"{kind} preset"
    raise ValueError(f"Unknown {what} {name!r}; choose one of {sorted(presets)}.")
  return presets[name]()


# The lookups of earlier versions, for the library and the scripts that use them.
DEFAULT_PRESET = DEFAULTS["pretrain"]
DEFAULT_EVAL_PRESETS = {kind: DEFAULTS[kind] for kind in EVAL_KINDS}
EVAL_PRESETS = {kind: PRESETS[kind] for kind in EVAL_KINDS}
STUDY_PRESETS = PRESETS["study"]
ABLATION_PRESETS = PRESETS["ablation"]


def preset(name: str):
  """A pre-training preset (PretrainConfig)."""
  return get("pretrain", name)


def eval_preset(protocol: str, name: str):
  """The preset `name` of protocol "linear", "efficient", "supervised" or "detection"."""
  if protocol not in EVAL_KINDS:
    raise ValueError(f"Unknown protocol {protocol!r}; choose one of {sorted(EVAL_KINDS)}.")
  return get(protocol, name)


def study_preset(name: str):
  return get("study", name)


def ablation_preset(name: str):
  return get("ablation", name)
