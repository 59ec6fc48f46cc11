"""flags/config_flags.py: --config.PATH=VALUE reaches every field of every binary's config,
the alias flags, --config_help, and the one-line refusals."""

import dataclasses
import os
import pathlib
import re
import subprocess
import sys

import pytest
from absl import flags as absl_flags

from cpc_tf import configs
from flags import ablation as ablation_flags
from flags import common, config_flags, evaluation
from flags import dynamics as dynamics_flags
from flags import study as study_flags

ROOT = pathlib.Path(__file__).resolve().parents[1]


@dataclasses.dataclass(frozen=True)
class Binary:
  """How launch/<name>.py defines its flags and builds its config."""

  define: object  # (flag_values, argv) -> None
  build: object  # flag_values -> config
  required: tuple  # the required flags
  kind: str  # its presets: configs.PRESETS[kind]
  other_preset: str  # a preset other than the default
  wrap: object = None  # preset config -> the binary's config (learning_dynamics)

  def preset_config(self, name=None):
    config = configs.get(self.kind, name or configs.DEFAULTS[self.kind])
    return self.wrap(config) if self.wrap else config


def _evaluation(protocol, required, other):
  return Binary(lambda fv, argv: evaluation.define_flags(protocol, fv, argv=argv),
                lambda fv: evaluation.config_from_flags(protocol, fv), required, protocol,
                other)


BINARIES = {
    "pretrain": Binary(lambda fv, argv: common.define_pretrain_flags(fv, argv),
                       common.config_from_flags, ("--model_dir=m",), "pretrain", "tiny"),
    "linear_eval": _evaluation("linear", ("--model_dir=m", "--output_dir=o"),
                               "linear_eval_paper"),
    "efficient_classification": _evaluation(
        "efficient", ("--model_dir=m", "--output_dir=o"), "efficient_paper"),
    "supervised_baseline": _evaluation("supervised", ("--output_dir=o",),
                                       "supervised_paper"),
    "detection_transfer": _evaluation("detection", ("--output_dir=o",), "detection_paper"),
    "learning_dynamics": Binary(dynamics_flags.define_flags, dynamics_flags.config_from_flags,
                                ("--model_dir=m", "--output_dir=o"), "efficient",
                                "efficient_paper", configs.DynamicsConfig),
    "study": Binary(study_flags.define_flags, study_flags.config_from_flags,
                    ("--output_dir=o",), "study", "study_tiny"),
    "ablation": Binary(ablation_flags.define_flags, ablation_flags.config_from_flags,
                       ("--output_dir=o",), "ablation", "ablation_tiny"),
}
# The binaries as processes (bazel reads their names here).
MODULES = {"pretrain": "launch.pretrain", "linear_eval": "launch.linear_eval",
           "efficient_classification": "launch.efficient_classification",
           "supervised_baseline": "launch.supervised_baseline",
           "detection_transfer": "launch.detection_transfer",
           "learning_dynamics": "launch.learning_dynamics", "study": "launch.study",
           "ablation": "launch.ablation"}
# Fields that only change together with another (a path needs its source).
COMPANIONS = {"probe.path": "probe.source=folder"}


def defined(name, preset=None):
  values = absl_flags.FlagValues()
  BINARIES[name].define(values, [f"--preset={preset}"] if preset else [])
  return values


def parse(name, *args, values=None):
  values = values or defined(name)
  values(config_flags.rewrite(["prog", *BINARIES[name].required, *args]))
  return values


def build(name, *args):
  return BINARIES[name].build(parse(name, *args))


def test_every_config_binary_parses_config_flags():
  """The binaries that build a config are those above, and each reads --config.PATH."""
  parsing = {p.stem for p in (ROOT / "launch").glob("*.py")
             if "flags_parser=config_flags.parse_flags" in p.read_text()}
  assert parsing == set(BINARIES) == set(MODULES)


def _candidates(leaf, value):
  """Command-line texts for `leaf` that should give a value other than `value`."""
  if leaf.entries:
    extra = ("optimizer.learning_rate=0.5" if leaf.entries[1] == 1
             else "augment.jitter_size=3:2")
    return [";".join(filter(None, [config_flags.format_leaf(leaf, value), extra]))]
  if isinstance(value, bool):
    return [config_flags.format_value(not value)]
  if isinstance(value, int) and not isinstance(value, bool):
    return [str(v) for v in (value + 1, value - 1, value + 2, value - 2, value + 4,
                             value - 4, value * 2, value // 2, 1)]
  if isinstance(value, float):
    return [config_flags.format_value(v) for v in (value / 2, value * 2, 0.5, 0.25)]
  if isinstance(value, tuple):
    found = []
    if len(value) > 1:
      found.append(value[:-1])
    if value and isinstance(value[0], (int, float)):
      found += [(value[0] / 2 if isinstance(value[0], float) else value[0] + 1, *value[1:])]
    if leaf.choices:
      found += [value + (c,) for c in leaf.choices if c not in value]
    found.append(("0", "5") if "int" in leaf.describe() else ())
    return [config_flags.format_value(v) for v in found]
  if value is None:
    return ["/tmp/elsewhere"]
  if leaf.choices:
    return [c for c in leaf.choices if c != value] + ["0,5"]
  return ["other", "None"]


def _diff(a, b, config_type):
  return {leaf.path for leaf in config_flags.leaves(config_type)
          if config_flags.value_at(a, leaf.path) != config_flags.value_at(b, leaf.path)}


@pytest.mark.parametrize("name", sorted(BINARIES))
def test_every_leaf_field_is_reachable_from_the_command_line(name):
  """Each leaf, set alone by --config.PATH=VALUE, changes that field and no other."""
  binary = BINARIES[name]
  base = binary.preset_config()
  config_type = type(base)
  values = defined(name)
  unreachable = []
  for leaf in config_flags.leaves(config_type):
    value = config_flags.value_at(base, leaf.path)
    companion = [f"--config.{p}{COMPANIONS[s]}" for s in COMPANIONS
                 if leaf.path.endswith(s) for p in [leaf.path[:-len(s)]]]
    for raw in _candidates(leaf, value):
      values.unparse_flags()
      try:
        config = binary.build(parse(name, *companion, f"--config.{leaf.path}={raw}",
                                    values=values))
      except ValueError:  # the value does not fit the others; try the next
        continue
      want = {leaf.path} | {c.split("=")[0][len("--config."):] for c in companion}
      if config_flags.value_at(config, leaf.path) != value:
        assert _diff(config, base, config_type) == want, leaf.path
        assert config_flags.value_at(config, leaf.path) == config_flags.parse_value(
            leaf, raw, "")
        break
    else:
      unreachable.append(leaf.path)
  assert not unreachable


@pytest.mark.parametrize("kind", sorted(configs.PRESETS))
def test_every_presets_values_read_back_as_written(kind):
  """format_leaf and parse_value are inverses on every field of every preset."""
  for preset in configs.PRESETS[kind]:
    config = configs.get(kind, preset)
    for leaf in config_flags.leaves(type(config)):
      value = config_flags.value_at(config, leaf.path)
      text = config_flags.format_leaf(leaf, value)
      assert config_flags.parse_value(leaf, text, "") == value, (preset, leaf.path, text)


@pytest.mark.parametrize("args, message", [
    (["--config.model.encoder.nme=small"],
     "--config.model.encoder.nme=small: PretrainConfig has no field 'model.encoder.nme'; "
     "the closest is model.encoder.name (--config_help lists every field)."),
    (["--config.learning_rate=0.1"], "the closest is optimizer.learning_rate"),
    (["--config.model.grid=3"],
     "--config.model.grid=3: model.grid is a group of fields, not one; set one of "
     "model.grid.image_size, model.grid.patch_size, model.grid.stride, "
     "model.grid.resize_to."),
    (["--config.model=3"], "set one of model.grid.*, model.encoder.*, model.head.*."),
    (["--config.batch_size.x=3"], "has no field 'batch_size.x'"),
    (["--config.batch_size=big"], "--config.batch_size=big: batch_size takes int; got 'big'."),
    (["--config.batch_size=8.5"], "batch_size takes int; got '8.5'."),
    (["--config.optimizer.learning_rate=fast"], "takes float; got 'fast'."),
    (["--config.model.encoder.remat=maybe"], "takes bool; got 'maybe'."),
    (["--config.model.encoder.norm=group"],
     "--config.model.encoder.norm=group: model.encoder.norm takes {layer, layer_example, "
     "batch, none}; 'group' is not one of them."),
    (["--config.model.head.directions=down,sideways"],
     "'sideways' is not one of them"),
    (["--config.precision=float16"], "takes {float32, mixed_bfloat16, mixed_float16}"),
    (["--batch_size=8", "--config.batch_size=16"],
     "--batch_size sets batch_size to 8 and --config.batch_size=16 to 16: give one of them."),
    (["--directions=down", "--config.model.head.directions=up"],
     "--directions sets model.head.directions to down and "
     "--config.model.head.directions=up to up"),
    (["--dataset=stl10", "--config.data.source=imagenet2012"],
     "another flag sets data.source to stl10"),
    (["--config.batch_size"], "--config.batch_size: write --config.PATH=VALUE"),
])
def test_bad_config_flags_are_one_line_errors(args, message):
  with pytest.raises(config_flags.ConfigFlagError) as e:
    build("pretrain", *args)
  assert message in str(e.value) and "\n" not in str(e.value)


def test_an_error_ends_the_binary_with_one_line(tmp_path):
  proc = _run("launch.pretrain", f"--model_dir={tmp_path}", "--config.model.encoder.nme=x")
  assert proc.returncode == 1 and "Traceback" not in proc.stderr
  lines = [line for line in proc.stderr.splitlines() if line.startswith("Error:")]
  assert lines == ["Error: --config.model.encoder.nme=x: PretrainConfig has no field "
                   "'model.encoder.nme'; the closest is model.encoder.name (--config_help "
                   "lists every field)."]


def test_config_sets_fields_after_the_preset_and_the_short_flags():
  config = build("pretrain", "--preset=tiny", "--batch_size=8", "--config.batch_size=8",
                 "--learning_rate=0.5", "--config.optimizer.beta_1=0.5",
                 "--config.model.head.directions=down,up", "--config.data.path=None")
  assert config == configs.replace(configs.tiny(), batch_size=8, **{
      "optimizer.learning_rate": 0.5, "optimizer.beta_1": 0.5, "data.path": None,
      "model.head.directions": ("down", "up")})


def test_config_beats_the_rules_the_short_flags_apply():
  """A rule that fills a field when a short flag is set leaves a --config field alone."""
  # Other pre-training data switches the preset's probe off, unless --config sets it.
  config = build("pretrain", "--dataset=stl10", "--config.probe.every_steps=7")
  assert config.probe.every_steps == 7 and config.data.source == "stl10"
  # An image folder tests on its "test" split, unless --config names another.
  config = build("linear_eval", "--dataset=folder:/data", "--config.test_split=validation")
  assert config.test_split == "validation"
  config = build("efficient_classification", "--dataset=folder:/data",
                 "--config.subset.test_split=held")
  assert config.subset.test_split == "held"
  config = build("detection_transfer", "--dataset=folder:/data/VOCdevkit")
  assert config.test_split == "test"
  # The study's --dataset rewrites every stage first; --config still wins.
  config = build("study", "--preset=study_tiny", "--dataset=folder:/data",
                 "--config.linear.data.path=/elsewhere")
  assert config.linear.data.path == "/elsewhere" and config.efficient.subset.data.path == (
      "/data")


def test_config_repeats_and_the_last_for_a_path_wins():
  config = build("pretrain", "--config.batch_size=8", "--config.seed=3",
                 "--config.batch_size=16")
  assert (config.batch_size, config.seed) == (16, 3)
  assert config_flags.rewrite(["p", "--config.a=1", "-config.b=x=y", "--", "--config.c=2"]) == [
      "p", "--config=a=1", "--config=b=x=y", "--", "--config.c=2"]


def test_entry_fields_take_pretraining_paths():
  config = build("ablation", "--preset=ablation_tiny",
                 "--config.overrides=model.encoder.name=small;optimizer.learning_rate=0.01",
                 "--config.substitutions=model.grid.stride=36:4")
  assert config.overrides == (("model.encoder.name", "small"),
                              ("optimizer.learning_rate", 0.01))
  assert config.substitutions == (("model.grid.stride", 36, 4),)
  with pytest.raises(ValueError, match="write PATH=FROM:TO"):
    build("ablation", "--config.substitutions=model.grid.stride=36")
  with pytest.raises(ValueError, match="model.grid.stride takes int; got 'x'"):
    build("ablation", "--config.overrides=model.grid.stride=x")


@pytest.mark.parametrize("name", sorted(BINARIES))
def test_config_help_lists_every_field_with_the_presets_value(name, capsys):
  binary = BINARIES[name]
  values = defined(name, binary.other_preset)
  with pytest.raises(SystemExit) as e:
    values(["prog", "--config_help"])  # before the required flags are checked
  assert e.value.code == 0
  text = capsys.readouterr().out
  config = binary.preset_config(binary.other_preset)
  assert f"--preset={binary.other_preset}'s values" in text.splitlines()[0]
  rows = {line.split()[0]: line for line in text.splitlines()[1:]}
  leaves = config_flags.leaves(type(config))
  assert list(rows) == [leaf.path for leaf in leaves]
  for leaf in leaves:
    shown = config_flags.format_leaf(leaf, config_flags.value_at(config, leaf.path)) or "''"
    assert re.search(rf"^  {re.escape(leaf.path)} +{re.escape(shown)} +"
                     rf"{re.escape(leaf.describe())}$", rows[leaf.path]), rows[leaf.path]


@pytest.mark.parametrize("name", sorted(BINARIES))
def test_help_shows_the_chosen_presets_values(name):
  binary = BINARIES[name]
  values = defined(name, binary.other_preset)
  config = binary.preset_config(binary.other_preset)
  aliased = {flag: path for flag, path in _aliases(name).items() if flag in values}
  assert aliased
  for flag, path in aliased.items():
    default = values[flag].default
    want = config_flags.value_at(config, path)
    if isinstance(default, list):
      default = ",".join(default)
      want = config_flags.format_value(want)
    assert default == want, flag
    assert f"--preset={binary.other_preset}'s" in values[flag].help, flag


def _aliases(name):
  if name == "pretrain":
    return {k: p for k, (p, _) in common.PRETRAIN_ALIASES.items()}
  if name == "study":
    return {k: p for k, (p, _) in study_flags.STUDY_ALIASES.items()}
  if name == "ablation":
    return {k: p for k, (p, _) in ablation_flags.ABLATION_ALIASES.items()}
  if name == "learning_dynamics":
    return {k: f"efficient.{p}" for k, (p, _) in evaluation.ALIASES["efficient"].items()}
  return {k: p for k, (p, _) in evaluation.ALIASES[BINARIES[name].kind].items()}


def test_alias_flags_are_typed_by_their_fields():
  values = defined("pretrain")
  assert isinstance(values["batch_size"], absl_flags.Flag) and values["batch_size"].value == (
      configs.fashion_mnist_small().batch_size)
  assert isinstance(values["norm"], absl_flags.EnumFlag) and values["remat"].boolean
  with pytest.raises(config_flags.ConfigFlagError, match="--seeds=a,b: seeds takes tuple"):
    build("study", "--seeds=a,b")
  assert build("study", "--seeds=4, 5").seeds == (4, 5)


def test_learning_dynamics_defines_no_flag_that_does_nothing():
  values = defined("learning_dynamics")
  for name in ("finetune", "finetune_steps", "finetune_epochs", "encoder_learning_rate",
               "patience", "label_fraction"):
    assert name not in values, name
  config = build("learning_dynamics", "--steps=0,5", "--label_fractions=0.5,1",
                 "--frozen_steps=3", "--config.efficient.classifier.blocks=2")
  assert config == configs.DynamicsConfig(
      configs.replace(configs.efficient_tiny(), frozen_steps=3,
                      **{"classifier.blocks": 2}), (0, 5), (0.5, 1.0))
  with pytest.raises(ValueError, match="steps=\\(-1,\\): give 'all' or non-negative"):
    build("learning_dynamics", "--steps=-1")


def _run(module, *args):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(ROOT))
  return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=300)


def test_a_binary_prints_config_help_without_its_required_flags():
  proc = _run("launch.linear_eval", "--preset=linear_eval_paper", "--config_help")
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "--preset=linear_eval_paper's values" in proc.stdout
  assert re.search(r"^  batch_size +512 +int$", proc.stdout, re.M), proc.stdout[:3000]


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(BINARIES))
def test_every_binary_prints_config_help_and_help(name):
  binary = BINARIES[name]
  proc = _run(MODULES[name], f"--preset={binary.other_preset}", "--config_help")
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert f"--preset={binary.other_preset}'s values" in proc.stdout
  proc = _run(MODULES[name], f"--preset={binary.other_preset}", "--help")
  assert f"--preset={binary.other_preset}'s" in proc.stdout and "--config_help" in proc.stdout
