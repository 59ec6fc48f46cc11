"""supp. C.1: a ResNet-v2 trained from pixels on the same subsets and sweep.

Glossary: S image side, D pooled feature depth, K classes.
Output directory: `cpc_tf.eval.sweep`. The tested weights, those of the best
sweep point (`best_weights`), can serve as a transfer backbone
(`cpc_tf.eval.encoders.load`, e.g. ICLR 4.3's supervised detection baseline).
"""

from __future__ import annotations

import os

import tensorflow as tf

from cpc_tf import resnet
from cpc_tf.configs import EncoderConfig, SupervisedConfig
from cpc_tf.eval import classifiers
from cpc_tf.eval import loop as loop_lib
from cpc_tf.eval import results, sweep

PROTOCOL = "supervised"  # config.json / results.json "protocol"
PHASE = "supervised"  # the one phase of each sweep point (its directory name)


def encoder_config(config: SupervisedConfig) -> EncoderConfig:
  """The encoder the baseline trains; a transfer protocol rebuilds it to load the weights."""
  # Zero padding: the standard ResNet-v2 of He et al. 2016 (supp. C.1), not the
  # CPC encoders' symmetric padding.
  return EncoderConfig(name=config.architecture, norm=config.norm, symmetric_padding=False)


def best_weights(output_dir: str, config: SupervisedConfig) -> str:
  """The checkpoint a finished baseline tested: its best sweep point's best weights.

  `point-<i>/supervised/best/ckpt` (`cpc_tf.eval.loop`), i the point
  `sweep.tested_point` picks from sweep.csv; its entries are model/encoder
  and model/head. FileNotFoundError (one line, naming the fix) for a baseline
  that has not finished.
  """
  rerun = ("rerun launch/supervised_baseline.py with its --output_dir and flags to "
           "finish it")
  if not tf.io.gfile.exists(os.path.join(output_dir, results.RESULTS_FILE)):
    raise FileNotFoundError(f"{output_dir} holds no {results.RESULTS_FILE}: the supervised "
                            f"baseline has not finished (no tested best point); {rerun}.")
  csv_path = os.path.join(output_dir, results.SWEEP_FILE)
  finished = {r["point"]: r for r in results.read_sweep(csv_path)}
  num_points = len(sweep.sweep_points(config.sweep, config.hparams))
  try:
    point = sweep.tested_point(finished, num_points)["point"]
  except KeyError:
    raise FileNotFoundError(
        f"{csv_path} records {len(finished)} of the {num_points} sweep points: no best "
        f"point yet; {rerun}.") from None
  path = loop_lib.best_path(sweep.point_dir(output_dir, point, PHASE))
  if not tf.io.gfile.exists(path + ".index"):
    raise FileNotFoundError(f"{path} (the best weights of sweep point {point}) is missing: "
                            f"the baseline's directory is incomplete; {rerun} in a fresh "
                            "--output_dir.")
  return path


def train_supervised(config: SupervisedConfig, output_dir: str,
                     strategy: tf.distribute.Strategy | None = None, *,
                     subset_file: str | None = None, stop_after_steps: int | None = None,
                     verbose: bool = True) -> dict:
  """supp. C.1: a ResNet-v2 from pixels with dropout before its last layer, SGD.

  Sweeps like phase 1 of `cpc_tf.eval.efficient`, tests the best point
  ("Supervised <architecture>"). Returns the results.json dict.
  """
  resnet.spec(config.architecture)  # unknown names fail before any data is read
  strategy = strategy or tf.distribute.get_strategy()
  run = sweep.few_labels(PROTOCOL, config, output_dir, strategy, config.architecture,
                         subset_file, stop_after_steps, verbose)

  def train_point(point, hp):
    classifiers.seed_initialisers(config.seed + point)  # the same network on a rerun
    with strategy.scope():
      encoder = resnet.build_encoder(encoder_config(config), name="encoder",
                                     bn_momentum=config.bn_momentum)
      model = classifiers.supervised_classifier(encoder, run.num_classes, hp.dropout,
                                                config.image_size)
      groups = [sweep.sgd(hp, config.momentum, config.weight_decay_mode,
                          model.trainable_variables)]
    loop = loop_lib.classification_loop(model, groups, train_encoder=True,
                                        strategy=strategy, xla_counts=config.xla_inference)
    steps, every = run.budget_steps(config.train_steps, config.train_epochs,
                                    config.eval_every, config.eval_every_epochs, hp)
    phase = loop_lib.Phase(run.point_dir(point, PHASE), PHASE, steps, every,
                           patience=config.patience, seed=config.seed, point=point)
    done = loop_lib.run_phase(loop, phase, run.train_fn(hp), validate=run.validate(loop),
                              budget=run.budget, log=run.log)
    return done, loop

  best, loop = sweep.run_sweep(run, sweep.sweep_points(config.sweep, config.hparams),
                               train_point)
  rows = run.rows(f"Supervised {config.architecture}", best, run.test(loop))
  return sweep.write_results(run.chief, output_dir, PROTOCOL, config.subset.data.source,
                             config.architecture, rows, config, run.test_summary)
