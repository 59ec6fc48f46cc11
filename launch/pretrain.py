r"""Pre-trains a CPC v2 model (supp. A) with a custom distributed training loop.

Command (the README's main command, a few minutes on 2 CPU cores):
  python -m launch.pretrain --preset=fashion_mnist_small \
    --model_dir=runs/fashion_mnist_small

Paper-size run on a TPU:
  python -m launch.pretrain --preset=cpc_v2_paper --dataset=imagenet2012 \
    --data_dir=gs://... --model_dir=gs://... --strategy=tpu --tpu=NAME \
    --precision=mixed_bfloat16 --steps_per_loop=100

The v1 -> v2 ladder of ICLR Figure 3 is a list of presets (cpc_v1, ladder_bu,
ladder_hf, ladder_ln, ladder_rc, ladder_tl, ladder_hp, ladder_mc, ladder_lp,
ladder_pa, cpc_v2_paper; plus cpc_v2_arxiv_v1), and every ablation axis is a
flag (flags/axes.py), e.g. one rung with the other layer-norm reading:
  python -m launch.pretrain --preset=ladder_ln --norm=layer_example ...
--prediction_lengths=pseudocode|text|original picks the offsets by reading.
--config.PATH=VALUE sets any PretrainConfig field (e.g.
--config.optimizer.beta_1=0.9); --config_help lists them with the preset's values.

Prints a start line (step, total steps, global and per-replica batch), the
run's cost (analytic FLOPs per step and for all steps left, cpc_tf.flops),
the projected wall time once ten steps are timed, a progress bar with ETA,
loss, mean InfoNCE accuracy over directions, the gradient norm before clipping
and, when the online kNN probe is on (--probe_every, cpc_tf.probe; on in the
Fashion-MNIST preset), its latest knn_top1; then the probe's cost share of the
run ("Probe: ...") and "Done: step N ..." with the final metrics.

Writes into --model_dir: config.json (the resolved config), ckpt-<step>
checkpoints (the model, its Polyak average, optimizer, step) every
--checkpoint_every steps and at the end, and TensorBoard scalars (loss and
InfoNCE accuracy per direction, learning rate, gradient norm, images/s,
patches/s, probe/knn_top1): `tensorboard --logdir=<model_dir>`.

Rerun the same command to resume from the latest checkpoint; only budgets,
cadence and the probe may change (checkpoints.RESUMABLE_CHANGES, recorded in
config_changes.json). SIGTERM saves a checkpoint and exits with status 143,
Ctrl-C (SIGINT) likewise with 130; a run whose step does not return within 60 s
of the signal (a stuck input pipeline) exits with that status without saving.
A non-finite loss or a failed write stops the run (status 1) without touching
the last good checkpoint.
"""

from __future__ import annotations

from absl import app
from absl import flags

from cpc_tf import records, stop, train
from flags import axes, common, config_flags
from launch import entry

common.define_pretrain_flags()
flags.adopt_module_key_flags(common)
flags.adopt_module_key_flags(axes)  # --prediction_lengths
FLAGS = flags.FLAGS


def build_config():
  records.check_writable(FLAGS.model_dir, "--model_dir")
  config = common.config_from_flags(FLAGS)
  common.check_strategy_flags(FLAGS)
  return config


def run(config) -> None:
  strategy = common.make_strategy(FLAGS)
  train.check_config(config, strategy.num_replicas_in_sync)
  result = train.pretrain(config, FLAGS.model_dir, strategy)  # stop.Stopped on SIGTERM
  shown = ", ".join(f"{k} {v:.4f}" for k, v in result.metrics.items())
  print(f"Done: step {result.step}, {shown}", flush=True)


main = entry.main(build_config, run)


if __name__ == "__main__":
  app.run(main, flags_parser=config_flags.parse_flags)
