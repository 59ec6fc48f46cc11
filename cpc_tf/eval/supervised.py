"""supp. C.1: a ResNet-v2 trained from pixels on the same subsets and sweep.

Glossary: S image side, D pooled feature depth, K classes.
Output directory: `cpc_tf.eval.sweep`.
"""

from __future__ import annotations

import tensorflow as tf

from cpc_tf import resnet
from cpc_tf.configs import EncoderConfig, SupervisedConfig
from cpc_tf.eval import classifiers
from cpc_tf.eval import loop as loop_lib
from cpc_tf.eval import sweep


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
  run = sweep.few_labels("supervised", config, output_dir, strategy, config.architecture,
                         subset_file, stop_after_steps, verbose)

  def train_point(point, hp):
    classifiers.seed_initialisers(config.seed + point)  # the same network on a rerun
    with strategy.scope():
      encoder = resnet.build_encoder(EncoderConfig(name=config.architecture,
                                                   norm=config.norm,
                                                   symmetric_padding=False),
                                     name="encoder")
      model = classifiers.supervised_classifier(encoder, run.num_classes, hp.dropout,
                                                config.image_size)
      groups = [sweep.sgd(hp, config.momentum, config.weight_decay_mode,
                          model.trainable_variables)]
    loop = loop_lib.classification_loop(model, groups, train_encoder=True,
                                        strategy=strategy)
    phase = loop_lib.Phase(run.point_dir(point, "supervised"), "supervised",
                           config.train_steps, config.eval_every, seed=config.seed,
                           point=point)
    done = loop_lib.run_phase(loop, phase, run.train_fn(hp), validate=run.validate(loop),
                              budget=run.budget, log=run.log)
    return done, loop

  best = sweep.run_sweep(run, sweep.sweep_points(config.sweep, config.hparams),
                         lambda i, hp: train_point(i, hp)[0])
  _, loop = train_point(best["point"], sweep.hparams(best))  # restores the best weights
  rows = run.rows(f"Supervised {config.architecture}", best, run.test(loop))
  return sweep.write_results(run.chief, output_dir, "supervised", config.subset.data.source,
                             config.architecture, rows, config, run.test_summary)
