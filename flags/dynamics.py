"""absl flags of launch/learning_dynamics.py, and flags -> DynamicsConfig.

A run's `efficient` config starts from `--preset` (a key of
`cpc_tf.configs.PRESETS["efficient"]`) and takes the few-label flags of
flags/evaluation.py but those of EXCLUDE; --steps and --label_fractions set the
grid of cells; --config.PATH=VALUE then sets any DynamicsConfig field, e.g.
--config.efficient.frozen_steps=300 (flags/config_flags.py).
"""

from __future__ import annotations

from typing import Sequence

from absl import flags

from cpc_tf import configs
from cpc_tf.configs import DynamicsConfig
from flags import common, config_flags, evaluation

# The efficient-classification flags that do not apply here: phase 2 does not
# run (its budgets and optimizer would do nothing), the label fraction and
# checkpoint are swept by this binary, --model_dir and --output_dir mean something
# else, and --config sets DynamicsConfig fields (all defined below).
EXCLUDE = ("label_fraction", "finetune", "finetune_steps", "finetune_epochs",
           "encoder_learning_rate", "encoder_beta_1", "encoder_beta_2", "encoder_epsilon",
           "patience", "checkpoint_step", "stop_after_steps", "subset_file", "model_dir",
           "output_dir", config_flags.CONFIG_FLAG, config_flags.HELP_FLAG)
# flag -> (dotted DynamicsConfig field, help): a flags/config_flags.py alias table.
DYNAMICS_ALIASES = {
    "steps": ("steps", "Pre-training steps to evaluate: 'all' (0 and every checkpoint of "
              "--model_dir) or a comma-separated list, e.g. 0,40000."),
    "label_fractions": ("label_fractions", "Label fractions in (0, 1] (supp. C: 1% ... "
                        "100%)."),
}
# The efficient flags, as DynamicsConfig fields.
_EFFICIENT = {name: (f"efficient.{path}", text)
              for name, (path, text) in evaluation.ALIASES["efficient"].items()
              if name not in EXCLUDE}


def preset_config(argv: Sequence[str] | None = None) -> DynamicsConfig:
  """The DynamicsConfig of the --preset in `argv` (default sys.argv): what --help shows."""
  return DynamicsConfig(configs.get("efficient", common.argv_preset("efficient", argv)))


def define_flags(flag_values=flags.FLAGS, argv: Sequence[str] | None = None) -> None:
  """The binary's flags; defaults those of the --preset in `argv` (default sys.argv)."""
  common.define_model_dir(flag_values, help_text="Pre-training directory "
                          "(launch/pretrain.py --model_dir) whose checkpoints are evaluated.")
  flags.DEFINE_string("output_dir", None, "Where the cells, tables and plot go. Rerunning "
                      "the same command resumes.", flag_values=flag_values)
  flags.mark_flag_as_required("output_dir", flag_values=flag_values)
  config = preset_config(argv)
  config_flags.define_aliases(DYNAMICS_ALIASES, config, flag_values)
  evaluation.define_flags("efficient", flag_values, exclude=EXCLUDE, argv=argv)
  flags.adopt_module_key_flags(evaluation, flag_values)  # listed by the binary's --help
  config_flags.define_config_flags(config, flag_values,
                                   common.argv_preset("efficient", argv))


def config_from_flags(flag_values=flags.FLAGS) -> DynamicsConfig:
  """The --preset with every set flag applied, --steps, --label_fractions, then --config."""
  efficient = configs.get("efficient", flag_values.preset)
  given = {p.removeprefix("efficient.") for p in config_flags.given_paths(flag_values)}
  changes = {f"efficient.{path}": value for path, value in evaluation.flag_changes(
      "efficient", efficient, flag_values, EXCLUDE, given).items()}
  changes.update(config_flags.alias_changes(DYNAMICS_ALIASES, DynamicsConfig, flag_values))
  return config_flags.apply(DynamicsConfig(efficient), changes, flag_values,
                            {**_EFFICIENT, **DYNAMICS_ALIASES})
