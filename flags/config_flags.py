"""--config.PATH=VALUE: every leaf field of a binary's config from the command line.

A config binary builds its config in three layers, a later one winning:
  1. --preset, a function of `cpc_tf.configs.PRESETS[kind]`;
  2. its short flags (--batch_size, --learning_rate, ...): an alias table maps each
     flag to one dotted field (`define_aliases`, `alias_changes`); only the flags
     given apply;
  3. --config.PATH=VALUE, repeatable: any leaf field by its dotted path, e.g.
     --config.model.encoder.name=small --config.optimizer.learning_rate=1e-3; of
     two for one path the last wins.

VALUE is read by the field's annotation: int, float, bool (true, false, 1, 0),
str, None for an optional field, a tuple as comma-separated items ('' is the
empty tuple), one of the allowed values where the schema has a set of them
(CHOICES). Refused in one line each (ConfigFlagError, a ValueError, which
launch/entry.py prints as "Error: ..." with exit status 1): an unknown path
(the closest one is named), a group of fields, a value of another type or
outside the allowed ones, and a short flag and --config.PATH that give one
field two values.

absl knows no flag called `config.model.encoder.name`: `parse_flags`, each
config binary's absl `flags_parser`, rewrites --config.PATH=VALUE as
--config=PATH=VALUE (a repeatable string flag) before absl parses argv, so the
values live in the binary's FlagValues like any other flag. --config_help
prints every leaf path, its type and the --preset's value, then exits 0.

Alias table: {flag name: (dotted field, help)}.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import sys
import types
import typing
from typing import Any, Mapping, Sequence

from absl import app
from absl import flags

from cpc_tf import configs
from cpc_tf.patches import PRESET_GRIDS
from cpc_tf.resnet import SPECS

# The flags defined here belong to the module that calls define_*: a binary's --help
# lists them under that module, which it adopts.
flags.disclaim_key_flags()

CONFIG_FLAG = "config"
HELP_FLAG = "config_help"
SPELLING = "--config."
_NONE = ("None", "none")
_BOOLS = {"true": True, "1": True, "false": False, "0": False}

# (dataclass, field) -> the values it allows (for a tuple, its items'; for a union,
# its str member's): the sets the schema checks against, or the builders look up.
CHOICES = {
    (configs.EncoderConfig, "name"): tuple(sorted(SPECS)),
    (configs.EncoderConfig, "norm"): configs.NORMS,
    (configs.ClassifierConfig, "norm"): configs.NORMS,
    (configs.SupervisedConfig, "norm"): configs.NORMS,
    (configs.HeadConfig, "directions"): configs.DIRECTIONS,
    (configs.DataConfig, "pipeline"): configs.PIPELINES,
    (configs.OptimizerConfig, "decay"): configs.LR_DECAYS,
    (configs.PretrainConfig, "precision"): configs.PRECISIONS,
    (configs.LinearEvalConfig, "grid"): ("pretrain", *sorted(PRESET_GRIDS)),
    (configs.EfficientConfig, "weight_decay_mode"): configs.WEIGHT_DECAY_MODES,
    (configs.SupervisedConfig, "weight_decay_mode"): configs.WEIGHT_DECAY_MODES,
    (configs.SupervisedConfig, "architecture"): tuple(sorted(SPECS)),
    (configs.DetectionConfig, "architecture"): tuple(sorted(SPECS)),
    (configs.DetectionConfig, "backbone"): configs.DETECTION_BACKBONES,
    (configs.DetectorConfig, "head"): configs.HEADS,
    (configs.DetectorConfig, "roi_pool"): configs.ROI_POOLS,
    (configs.AblationConfig, "presets"): tuple(sorted(configs.PRETRAIN_PRESETS)),
    (configs.DynamicsConfig, "steps"): ("all",),
}
# (dataclass, field) -> (config type, values per entry) of a field that holds
# (PretrainConfig path, value, ...) entries, written PATH=VALUE;PATH=VALUE (one
# value: an override) or PATH=FROM:TO;... (two: a substitution).
ENTRY_FIELDS = {
    (configs.AblationConfig, "overrides"): (configs.PretrainConfig, 1),
    (configs.AblationConfig, "substitutions"): (configs.PretrainConfig, 2),
}


class ConfigFlagError(ValueError):
  """A --config.PATH=VALUE or a short flag that cannot be applied (one line)."""


@dataclasses.dataclass(frozen=True)
class Leaf:
  """One field a binary can set: its dotted path, its annotation, where it is declared."""

  path: str
  hint: Any
  owner: type
  name: str

  @property
  def choices(self) -> tuple | None:
    return CHOICES.get((self.owner, self.name))

  @property
  def entries(self) -> tuple[type, int] | None:
    return ENTRY_FIELDS.get((self.owner, self.name))

  def describe(self) -> str:
    """The type as --config_help and the errors name it."""
    if self.entries:
      kind, size = self.entries
      form = "PATH=VALUE" if size == 1 else "PATH=FROM:TO"
      return f"{form};{form};... with PATH a {kind.__name__} field"
    text = _describe(self.hint, self.choices)
    return text + ", comma-separated" if "tuple[" in text else text


@functools.cache
def _fields(cls: type) -> tuple[tuple[str, Any], ...]:
  """(name, resolved annotation) of every field of dataclass `cls`."""
  hints = typing.get_type_hints(cls)
  return tuple((f.name, hints[f.name]) for f in dataclasses.fields(cls))


def _is_group(hint) -> bool:
  return isinstance(hint, type) and dataclasses.is_dataclass(hint)


def leaves(config_type: type, prefix: str = "") -> list[Leaf]:
  """Every leaf field of `config_type`, depth first in field order."""
  found = []
  for name, hint in _fields(config_type):
    if _is_group(hint):
      found.extend(leaves(hint, f"{prefix}{name}."))
    else:
      found.append(Leaf(prefix + name, hint, config_type, name))
  return found


def resolve(config_type: type, path: str, spelled: str) -> Leaf:
  """The leaf at dotted `path`; ConfigFlagError (naming `spelled`) if there is none."""
  cls = config_type
  parts = path.split(".")
  for i, part in enumerate(parts):
    hints = dict(_fields(cls))
    if part not in hints or (i < len(parts) - 1 and not _is_group(hints[part])):
      close = difflib.get_close_matches(
          path, [leaf.path for leaf in leaves(config_type)], n=1, cutoff=0.0)
      raise ConfigFlagError(
          f"{spelled}: {config_type.__name__} has no field {path!r}; the closest is "
          f"{close[0]} (--{HELP_FLAG} lists every field).")
    if i == len(parts) - 1:
      if _is_group(hints[part]):
        names = ", ".join(f"{path}.{name}" + (".*" if _is_group(hint) else "")
                          for name, hint in _fields(hints[part]))
        raise ConfigFlagError(f"{spelled}: {path} is a group of fields, not one; set one "
                              f"of {names}.")
      return Leaf(path, hints[part], cls, part)
    cls = hints[part]
  raise AssertionError(path)  # the loop returns or raises


def value_at(config, path: str):
  """The value of dotted field `path` of `config`."""
  for part in path.split("."):
    config = getattr(config, part)
  return config


class _BadValue(Exception):
  """A text that does not read as the annotation asks."""


def _non_none(hint) -> tuple:
  return tuple(a for a in typing.get_args(hint) if a is not type(None))


def _is_union(hint) -> bool:
  return typing.get_origin(hint) in (typing.Union, types.UnionType)


def _parse(hint, raw: str, choices):
  """`raw` read as `hint` (a scalar, Literal, union or tuple annotation); _BadValue if not."""
  if hint is bool:
    if raw.lower() not in _BOOLS:
      raise _BadValue
    return _BOOLS[raw.lower()]
  if hint in (int, float):
    try:
      return hint(raw)
    except ValueError:
      raise _BadValue from None
  if hint is str:
    if choices is not None and raw not in choices:
      raise _BadValue
    return raw
  origin, args = typing.get_origin(hint), typing.get_args(hint)
  if origin is typing.Literal:
    for value in args:
      if format_value(value) == raw:
        return value
    raise _BadValue
  if _is_union(hint):
    if type(None) in args and raw in _NONE:
      return None
    for member in sorted(_non_none(hint), key=lambda m: m is str):  # str reads anything
      try:
        return _parse(member, raw, choices)
      except _BadValue:
        continue
    raise _BadValue
  if origin is tuple:
    items = [item.strip() for item in raw.split(",")] if raw.strip() else []
    if len(args) == 2 and args[1] is Ellipsis:
      kinds = [args[0]] * len(items)
    elif len(items) == len(args):
      kinds = list(args)
    else:
      raise _BadValue
    return tuple(_parse(kind, item, choices) for kind, item in zip(kinds, items))
  raise _BadValue


def _describe(hint, choices=None) -> str:
  if hint is str or typing.get_origin(hint) is typing.Literal:
    values = choices if hint is str else typing.get_args(hint)
    return "{" + ", ".join(format_value(v) for v in values) + "}" if values else "str"
  if _is_union(hint):
    return " | ".join("None" if a is type(None) else _describe(a, choices)
                      for a in typing.get_args(hint))
  if typing.get_origin(hint) is tuple:
    args = typing.get_args(hint)
    if len(args) == 2 and args[1] is Ellipsis:
      return f"tuple[{_describe(args[0], choices)}, ...]"
    return f"tuple[{', '.join(_describe(a, choices) for a in args)}]"
  return getattr(hint, "__name__", str(hint))


def format_value(value) -> str:
  """`value` as a command line writes it (parse_value reads it back)."""
  if value is None:
    return "None"
  if isinstance(value, bool):
    return "true" if value else "false"
  if isinstance(value, float):
    short = f"{value:g}"
    return short if float(short) == value else repr(value)
  if isinstance(value, tuple):
    return ",".join(format_value(v) for v in value)
  return str(value)


def format_leaf(leaf: Leaf, value) -> str:
  """format_value, and the PATH=VALUE;... form of entry fields."""
  if leaf.entries:
    return ";".join(f"{e[0]}=" + ":".join(format_value(v) for v in e[1:]) for e in value)
  return format_value(value)


def parse_value(leaf: Leaf, raw: str, spelled: str):
  """`raw` read as `leaf`'s type; ConfigFlagError naming `spelled` and the type if not."""
  if leaf.entries:
    kind, size = leaf.entries
    return tuple(parse_entry(kind, text.strip(), spelled, size)
                 for text in raw.split(";") if text.strip())
  try:
    return _parse(leaf.hint, raw, leaf.choices)
  except _BadValue:
    items = [raw] if leaf.hint is str else (
        [item.strip() for item in raw.split(",")] if leaf.hint == tuple[str, ...] else [])
    outside = [item for item in items if leaf.choices and item not in leaf.choices]
    got = (f"{', '.join(map(repr, outside))} is not one of them" if outside
           else f"got {raw!r}")
    raise ConfigFlagError(f"{spelled}: {leaf.path} takes {leaf.describe()}; {got}.") from None


def parse_entry(config_type: type, text: str, spelled: str, size: int = 1) -> tuple:
  """"PATH=VALUE" -> (PATH, typed VALUE); size 2: "PATH=FROM:TO" -> (PATH, FROM, TO)."""
  path, sep, raw = text.partition("=")
  form = "PATH=VALUE" if size == 1 else "PATH=FROM:TO"
  if not sep or not path:
    raise ConfigFlagError(f"{spelled}: write {form}, e.g. model.encoder.name="
                          f"{'small' if size == 1 else 'resnet161:small'}.")
  leaf = resolve(config_type, path, spelled)
  if size == 1:
    return path, parse_value(leaf, raw, spelled)
  old, sep, new = raw.partition(":")
  if not sep:
    raise ConfigFlagError(f"{spelled}: write {form}, e.g. model.encoder.name="
                          "resnet161:small.")
  return path, parse_value(leaf, old, spelled), parse_value(leaf, new, spelled)


# --- The command line: --config.PATH=VALUE, --config_help, parse_flags.


def rewrite(argv: Sequence[str]) -> list[str]:
  """argv with each --config.PATH=VALUE written --config=PATH=VALUE (up to a "--")."""
  out = list(argv[:1])
  for i, arg in enumerate(argv[1:], start=1):
    if arg == "--":
      out.extend(argv[i:])
      break
    for dashes in ("--", "-"):
      if arg.startswith(f"{dashes}{CONFIG_FLAG}."):
        arg = f"--{CONFIG_FLAG}=" + arg[len(dashes) + len(CONFIG_FLAG) + 1:]
        break
    out.append(arg)
  return out


def parse_flags(argv: Sequence[str]) -> list[str]:
  """The absl `flags_parser` of a config binary: app.run(main, flags_parser=parse_flags)."""
  return app.parse_flags_with_usage(rewrite(argv))


def help_text(config, preset: str | None = None) -> str:
  """Every leaf path of `config`'s type, its value in `config` and its type."""
  rows = [(leaf.path, format_leaf(leaf, value_at(config, leaf.path)) or "''",
           leaf.describe()) for leaf in leaves(type(config))]
  path_width = max(len(r[0]) for r in rows)
  value_width = min(max(len(r[1]) for r in rows), 24)
  whose = f" and --preset={preset}'s values" if preset else " and values"
  lines = [f"Fields of {type(config).__name__}, their types{whose}; set any with "
           f"{SPELLING}PATH=VALUE (after --preset and the other flags):"]
  lines += [f"  {p:<{path_width}}  {v:<{value_width}}  {t}" for p, v, t in rows]
  return "\n".join(lines)


class _ConfigHelpFlag(flags.BooleanFlag):
  """--config_help: prints help_text and exits 0, before the required flags are checked."""

  def __init__(self, config, preset: str | None):
    super().__init__(HELP_FLAG, False, "Print every field --config.PATH=VALUE can set, "
                     "its type and the --preset's value, then exit.")
    self._config, self._preset = config, preset

  def parse(self, argument):
    if self._parse(argument):
      print(help_text(self._config, self._preset), flush=True)
      sys.exit(0)


def define_config_flags(config, flag_values=flags.FLAGS, preset: str | None = None) -> None:
  """--config (written --config.PATH=VALUE) and --config_help for configs of `config`'s type.

  `config`: the --preset's config (what --config_help shows, as --help shows it).
  """
  flags.DEFINE_multi_string(
      CONFIG_FLAG, [], f"Set any {type(config).__name__} field by its dotted path, "
      f"written {SPELLING}PATH=VALUE (repeatable; after --preset and the other flags), "
      f"e.g. {SPELLING}{leaves(type(config))[0].path}=...; --{HELP_FLAG} lists them "
      "with their types.", flag_values=flag_values)
  flags.DEFINE_flag(_ConfigHelpFlag(config, preset), flag_values)


def config_texts(flag_values) -> list[str]:
  """The PATH=VALUE texts of --config.PATH=VALUE, in command-line order."""
  return list(flag_values[CONFIG_FLAG].value or [])


def given_paths(flag_values, extra: Sequence[tuple[str, str]] = ()) -> set[str]:
  """The paths --config sets (and `extra`'s): rules that fill a field leave these alone."""
  texts = config_texts(flag_values) + [text for _, text in extra]
  return {text.partition("=")[0] for text in texts}


def config_changes(config_type: type, texts: Sequence[tuple[str, str]]) -> dict:
  """{path: (as spelled, typed value)} of (spelling, "PATH=VALUE") texts; the last wins."""
  changes = {}
  for spelling, text in texts:
    path, sep, raw = text.partition("=")
    spelled = spelling + text
    if not sep or not path:
      raise ConfigFlagError(f"{spelled}: write {spelling}PATH=VALUE, e.g. "
                            f"{spelling}{leaves(config_type)[0].path}=...")
    changes[path] = (spelled, parse_value(resolve(config_type, path, spelled), raw, spelled))
  return changes


def apply(config, changes: Mapping[str, Any], flag_values, aliases: Mapping = None,
          extra: Sequence[tuple[str, str]] = ()):
  """`config` with the short flags' `changes` ({path: value}), then every --config.

  `extra`: more (spelling, "PATH=VALUE") texts applied after --config's (the
  study's --override). ConfigFlagError if one sets a field that `changes` sets to
  another value; `aliases` (the alias table) names the flag in the message.
  """
  given = config_changes(type(config), [(SPELLING, t) for t in config_texts(flag_values)]
                         + list(extra))
  for path, (spelled, value) in given.items():
    if path in changes and changes[path] != value:
      names = [f"--{name}" for name, (p, _) in (aliases or {}).items()
               if p == path and flag_values[name].present]
      source = names[0] if names else "another flag"
      raise ConfigFlagError(f"{source} sets {path} to {format_value(changes[path])} and "
                            f"{spelled} to {format_value(value)}: give one of them.")
  return configs.replace(config, **{**changes, **{p: v for p, (_, v) in given.items()}})


# --- Alias tables: the short flags.


def _string_hint(hint) -> bool:
  """str or an optional str: an absl string flag's value is the field's."""
  return hint is str or (_is_union(hint) and _non_none(hint) == (str,))


def define_aliases(table: Mapping[str, tuple[str, str]], config, flag_values=flags.FLAGS,
                   preset: str | None = None, exclude: Sequence[str] = ()) -> None:
  """A flag per entry of `table` but `exclude`, its type and default `config`'s field's.

  `preset`: the name of the preset `config` is, which the help of each flag names.
  """
  for name, (path, about) in table.items():
    if name in exclude:
      continue
    leaf = resolve(type(config), path, f"--{name}")
    default = value_at(config, path)
    text = about + (f" Overrides the preset; the default shown is --preset={preset}'s."
                    if preset else "")
    kwargs = {"flag_values": flag_values}
    if leaf.hint is bool:
      flags.DEFINE_bool(name, default, text, **kwargs)
    elif leaf.hint is int:
      flags.DEFINE_integer(name, default, text, **kwargs)
    elif leaf.hint is float:
      flags.DEFINE_float(name, default, text, **kwargs)
    elif leaf.hint is str and leaf.choices:
      flags.DEFINE_enum(name, default, leaf.choices, text, **kwargs)
    elif _string_hint(leaf.hint):
      flags.DEFINE_string(name, default, text, **kwargs)
    elif typing.get_origin(leaf.hint) is tuple and not leaf.entries:
      flags.DEFINE_list(name, [format_value(v) for v in default], text, **kwargs)
    else:  # read by the field's type in alias_changes
      flags.DEFINE_string(name, format_leaf(leaf, default), text, **kwargs)


def alias_changes(table: Mapping[str, tuple[str, str]], config_type: type, flag_values,
                  exclude: Sequence[str] = ()) -> dict:
  """{dotted field: typed value} of every flag of `table` (but `exclude`) the user set."""
  changes = {}
  for name, (path, _) in table.items():
    if name in exclude or not flag_values[name].present:
      continue
    leaf = resolve(config_type, path, f"--{name}")
    value = flag_values[name].value
    if isinstance(value, list):
      value = ",".join(value)
    if isinstance(value, str) and not _string_hint(leaf.hint):
      value = parse_value(leaf, value, f"--{name}={value}")
    changes[path] = value
  return changes
