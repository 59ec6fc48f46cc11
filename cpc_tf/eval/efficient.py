"""supp. C.2: few-label classification with a pre-trained encoder.

Glossary: S image side, h/w the encoder's last-stack grid, D its depth, K classes.

Phase 1 sweeps the ResNet classifier's hyper-parameters on the frozen encoder
(SGD, `frozen_steps` or `frozen_epochs` each, best validation step kept); phase
2 fine-tunes encoder (Adam) and classifier (SGD) from the best point. Both
phases stop early after `patience` validations without a gain. Output directory: `cpc_tf.eval.sweep`.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from cpc_tf.configs import EfficientConfig
from cpc_tf.eval import classifiers, encoders
from cpc_tf.eval import loop as loop_lib
from cpc_tf.eval import sweep


def encoder_adam(config: EfficientConfig) -> keras.optimizers.Adam:
  """Phase 2's encoder optimizer: Adam at the smaller encoder rate (supp. C.2).

  Its betas and epsilon default to pre-training's (supp. A: 0.8, 0.999, 1e-8;
  `configs.OptimizerConfig`), as supp. C.2 keeps each component's optimizer.
  """
  return keras.optimizers.Adam(config.encoder_learning_rate, beta_1=config.encoder_beta_1,
                               beta_2=config.encoder_beta_2, epsilon=config.encoder_epsilon)


def train_efficient(model_dir: str, config: EfficientConfig, output_dir: str,
                    strategy: tf.distribute.Strategy | None = None, *,
                    step: int | None = None, subset_file: str | None = None,
                    stop_after_steps: int | None = None, verbose: bool = True) -> dict:
  """supp. C.2 with the encoder of model_dir (latest checkpoint, or `step`).

  model_dir may also be a SavedModel written by `cpc_tf.export` (no `step`).
  The best frozen point is tested ("CPC v2 (frozen)"); with config.finetune
  phase 2 runs and is tested ("CPC v2 (fine-tuned)"). Returns the results.json
  dict; rows hold the validation and test accuracy of both phases.
  """
  strategy = strategy or tf.distribute.get_strategy()
  with strategy.scope():
    # Loaded once: phase 1 never changes it; phase 2 fine-tunes it after the sweep.
    encoder = encoders.load(model_dir, step, config.encoder)
  # A supervised baseline's encoder is named as such ("Supervised <architecture>").
  method = encoder.method if encoder.supervised else "CPC v2"
  run = sweep.few_labels("efficient", config, output_dir, strategy, encoder.source,
                         subset_file, stop_after_steps, verbose)

  def frozen(point, hp):
    classifiers.seed_initialisers(config.seed + point)  # the same head on a rerun
    with strategy.scope():
      model = classifiers.efficient_classifier(encoder.model, config.classifier,
                                               run.num_classes, hp.dropout,
                                               config.image_size)
      groups = [sweep.sgd(hp, config.momentum, config.weight_decay_mode,
                          model.head.trainable_variables)]
    loop = loop_lib.classification_loop(model, groups, train_encoder=False,
                                        strategy=strategy, xla_counts=config.xla_inference)
    steps, every = run.budget_steps(config.frozen_steps, config.frozen_epochs,
                                    config.eval_every, config.eval_every_epochs, hp)
    phase = loop_lib.Phase(run.point_dir(point, "frozen"), "frozen", steps, every,
                           patience=config.patience, seed=config.seed, point=point)
    done = loop_lib.run_phase(loop, phase, run.train_fn(hp), validate=run.validate(loop),
                              track={"head": model.head}, budget=run.budget, log=run.log)
    return done, loop

  best, loop = sweep.run_sweep(run, sweep.sweep_points(config.sweep, config.hparams),
                               frozen)
  hp = sweep.hparams(best)
  rows = run.rows(f"{method} (frozen)", best, run.test(loop))
  if config.finetune:
    model = loop.model
    with strategy.scope():
      groups = [sweep.sgd(hp, config.momentum, config.weight_decay_mode,
                          model.head.trainable_variables),
                # supp. C.2: the encoder is fine-tuned with Adam, the head with SGD.
                loop_lib.Group(encoder_adam(config), model.encoder.trainable_variables)]
    loop = loop_lib.classification_loop(model, groups, train_encoder=True,
                                        strategy=strategy, xla_counts=config.xla_inference)
    steps, every = run.budget_steps(config.finetune_steps, config.finetune_epochs,
                                    config.eval_every, config.eval_every_epochs, hp)
    phase = loop_lib.Phase(run.point_dir(best["point"], "finetune"), "finetune", steps,
                           every, patience=config.patience, seed=config.seed + 1,
                           point=best["point"])
    done = loop_lib.run_phase(loop, phase, run.train_fn(hp), validate=run.validate(loop),
                              budget=run.budget, log=run.log)
    rows += run.rows(f"{method} (fine-tuned)", done, run.test(loop))
  return sweep.write_results(run.chief, output_dir, "efficient", config.subset.data.source,
                             encoder.source, rows, config, run.test_summary)
