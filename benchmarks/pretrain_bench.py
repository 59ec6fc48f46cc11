r"""Pre-training step benchmark: time, images/s, FLOPs, utilisation, memory.

Glossary: B global batch, R replicas, G grid side, P patch size.

For a preset plus overrides, on whatever device TensorFlow sees, each variant
runs in its own worker process (so peak memory is its own) and the parent
interleaves their timed rounds, so a load change on a shared machine hits all
variants alike. Parts of a round, each `--steps` steps after a warm-up:
  train  the real input pipeline feeding the real distributed training loop
         (cpc_tf.train.Trainer: forward, backward, clipped Adam, Polyak average)
  step   the same loop on one fixed synthetic batch (the step alone: no data)
  input  the input pipeline alone (cpc_tf.data.pretrain_dataset), batches of B/R
The table gives per part the median wall time per step and its spread over
rounds (min-max), the process CPU time per step (a figure other jobs on the
machine disturb much less than wall time), images/s and patches/s, and for
train/step the analytic FLOPs of a step (cpc_tf.flops: encoder, context
networks, projections, InfoNCE logits, forward + backward), achieved FLOP/s and
the utilisation against a peak: on CPU the measured float32 (bfloat16 under
mixed_bfloat16) matmul rate of this machine, on accelerators `--peak_tflops`
or the datasheet table below. Peak host memory (ru_maxrss) and peak device
memory (where TensorFlow reports it) per variant.

A variant is NAME=SPEC: SPEC empty (this tree), `git:REF` (the package as of
commit REF, extracted with `git archive` into a temporary directory) or
comma-separated config overrides `model.encoder.remat=True,batch_size=8`, or
both: `git:REF;batch_size=8`.

Commands:
  python benchmarks/pretrain_bench.py --preset=fashion_mnist_small \
      --variant=before=git:882ea78 --variant=after=
  python benchmarks/pretrain_bench.py --preset=cpc_v2_paper --set=batch_size=1 \
      --parts=step --steps=1 --rounds=1 --warmup=0 \
      --variant=plain= --variant=remat=model.encoder.remat=True     # slow: paper size
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PARTS = ("train", "step", "input")
# Dense peak TFLOP/s from vendor datasheets, (float32, bfloat16/float16 matrix units),
# per device TensorFlow sees (a TPU core, not a chip). --peak_tflops overrides.
PEAKS = {
    "A100": (19.5, 312.0), "H100": (67.0, 989.0), "V100": (15.7, 125.0),
    "L4": (30.3, 121.0), "T4": (8.1, 65.0),
    "TPU v2": (None, 22.5), "TPU v3": (None, 61.5), "TPU v4": (None, 137.5),
}


# ----------------------------------------------------------------------------
# Worker: one variant, in its own process; sys.path[0] is its package tree.

def _parse_overrides(text: str) -> dict:
  out = {}
  for item in filter(None, (t.strip() for t in text.split(","))):
    key, _, value = item.partition("=")
    try:
      out[key] = ast.literal_eval(value)
    except (ValueError, SyntaxError):
      out[key] = value
  return out


def _distribute():
  """The strategy helpers: cpc_tf.distribute, or cpc_tf.train in commits before it."""
  try:
    from cpc_tf import distribute  # pylint: disable=import-outside-toplevel
    return distribute
  except ImportError:
    from cpc_tf import train  # pylint: disable=import-outside-toplevel
    return train


def _make_strategy(name: str):
  return _distribute().make_strategy(name)


def _matmul_peak(dtype_name: str, seconds: float = 2.0) -> float:
  """FLOP/s of a large square matmul on the default device (the machine's practical peak)."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  n = 2048
  dtype = getattr(tf, dtype_name)
  a = tf.random.uniform([n, n], dtype=tf.float32)
  a = tf.cast(a, dtype)

  @tf.function
  def mm(x):
    return tf.matmul(x, x)

  mm(a).numpy()
  count, start, cpu = 0, time.perf_counter(), time.process_time()
  while time.perf_counter() - start < seconds:
    mm(a).numpy()
    count += 1
  flops = 2.0 * n ** 3 * count
  return flops / (time.perf_counter() - start), flops / (time.process_time() - cpu)


def worker(args) -> None:
  """Builds one variant, warms up, then answers `round` / `quit` lines on stdin."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  from cpc_tf import configs, data, train  # pylint: disable=import-outside-toplevel

  def say(obj):
    print("BENCH " + json.dumps(obj), flush=True)

  config = configs.preset(args.preset)
  overrides = {**_parse_overrides(args.set), **_parse_overrides(args.overrides)}
  if args.precision:
    overrides["precision"] = args.precision
  config = configs.replace(config, **overrides)
  strategy = _make_strategy(args.strategy)
  r = strategy.num_replicas_in_sync
  train.check_config(config, r)
  _distribute().set_precision(config.precision)
  built = time.perf_counter()
  trainer = train.Trainer(config, strategy, max(config.train_steps, 1))
  g, p = config.model.grid.grid_size, config.model.grid.patch_size
  per_replica = config.batch_size // r
  parts = args.parts.split(",")
  iterators = {}
  if "train" in parts or "input" in parts:
    def dataset_fn(ctx, seed=config.seed):
      return data.pretrain_dataset(config.data, config.model.grid, config.augment,
                                   config.batch_size, seed=seed, repeat=True,
                                   input_context=ctx)
  if "train" in parts:
    iterators["train"] = iter(strategy.distribute_datasets_from_function(dataset_fn))
  if "step" in parts:
    fixed = tf.random.stateless_uniform([per_replica, g, g, p, p, 3], [1, 2])
    iterators["step"] = iter(strategy.distribute_datasets_from_function(
        lambda ctx: tf.data.Dataset.from_tensors(fixed).repeat()))
  if "input" in parts:
    iterators["input"] = iter(dataset_fn(tf.distribute.InputContext(1, 0, r), seed=1))

  def run(part, steps):
    it = iterators[part]
    wall, cpu = time.perf_counter(), time.process_time()
    if part == "input":
      for _ in range(steps):
        batch = next(it)
      batch.numpy()
    else:
      done = 0
      while done < steps:
        n = min(config.steps_per_loop, steps - done)
        if hasattr(trainer, "loop"):  # cpc_tf/loop.py (one loop for every protocol)
          steps_run = trainer.loop.train(it, n)
          metrics, ran = steps_run.metrics, steps_run.done
        else:  # trees before it (git variants): Trainer.train_loop
          metrics, ran, _ = trainer.train_loop(it, n)
        done += ran
        if ran < n:
          raise RuntimeError(f"non-finite loss {metrics['loss']}")
    return time.perf_counter() - wall, time.process_time() - cpu

  first = {}
  for part in parts:  # the first call traces and compiles
    first[part] = run(part, 1)[0]
    if args.warmup:
      run(part, args.warmup)
  peak_dtype = "bfloat16" if config.precision == "mixed_bfloat16" else (
      "float16" if config.precision == "mixed_float16" else "float32")
  devices = [d.device_type for d in tf.config.list_logical_devices()]
  accelerator = next((d for d in devices if d in ("GPU", "TPU")), None)
  device_name = ""
  if accelerator == "GPU":
    details = tf.config.experimental.get_device_details(tf.config.list_physical_devices("GPU")[0])
    device_name = details.get("device_name", "GPU")
  # The analytic count of the config this worker runs, with its own tree's cpc_tf
  # (a git:REF variant may run another preset than this tree's of the same name).
  try:
    from cpc_tf import flops as worker_flops
    cost = worker_flops.pretrain_cost(config, r)
    counted = {"step_flops": cost.train * r,
               "activation_bytes_per_image": cost.activation_bytes_per_image}
  except (ImportError, AttributeError):  # a tree from before cpc_tf.flops: the parent
    counted = {"config": configs.to_dict(config)}  # counts this config with its own
  say({"ready": True, "build_and_first_s": time.perf_counter() - built, "first_call_s": first,
       **counted,
       "replicas": r, "device": accelerator or "CPU", "device_name": device_name,
       "precision": config.precision, "peak_dtype": peak_dtype,
       "images_per_step": config.batch_size, "patches_per_image": g * g,
       "per_replica": per_replica})
  for line in sys.stdin:
    command = line.strip()
    if command == "round":
      say({"round": {part: run(part, args.steps if part != "input" else args.input_steps)
                     for part in parts}})
    elif command == "peak":
      say({"peak_flops": _matmul_peak(peak_dtype) if accelerator is None else (None, None)})
    elif command == "quit":
      memory = {"host_peak_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}
      if accelerator == "GPU":
        memory["device_peak_bytes"] = tf.config.experimental.get_memory_info("GPU:0")["peak"]
      say({"memory": memory})
      return


# ----------------------------------------------------------------------------
# Parent: spawn the variants, interleave rounds, print the table.

class Variant:
  def __init__(self, name: str, spec: str, args, tmp: str):
    self.name = name
    ref, overrides = "", spec
    if spec.startswith("git:"):
      ref, _, overrides = spec[4:].partition(";")
    tree = ROOT
    if ref:
      tree = os.path.join(tmp, name)
      os.makedirs(tree)
      archive = subprocess.run(["git", "-C", ROOT, "archive", ref, "cpc_tf"],
                               check=True, capture_output=True).stdout
      subprocess.run(["tar", "-x", "-C", tree], input=archive, check=True)
    self.label = f"{name} ({spec or 'this tree'})"
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", "--overrides", overrides,
           *args.passthrough]
    env = {**os.environ, "PYTHONPATH": tree + os.pathsep + ROOT}
    self.proc = subprocess.Popen(cmd, cwd=tree, env=env, stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, text=True)
    self.rounds: list[dict] = []
    self.info: dict = {}

  def ask(self, command: str | None = None) -> dict:
    if command:
      self.proc.stdin.write(command + "\n")
      self.proc.stdin.flush()
    for line in self.proc.stdout:
      if line.startswith("BENCH "):
        return json.loads(line[6:])
    raise RuntimeError(f"variant {self.name} exited with status {self.proc.wait()}")


def _fmt(x: float, unit: str = "") -> str:
  for scale, prefix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
    if abs(x) >= scale:
      return f"{x / scale:.3g} {prefix}{unit}"
  return f"{x:.3g} {unit}"


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--preset", default="fashion_mnist_small")
  parser.add_argument("--set", default="", help="overrides for every variant, a=1,b.c=x")
  parser.add_argument("--strategy", default="default")
  parser.add_argument("--precision", default="", help="float32, mixed_bfloat16, mixed_float16")
  parser.add_argument("--parts", default="train,step,input")
  parser.add_argument("--steps", type=int, default=10, help="timed steps per part per round")
  parser.add_argument("--input_steps", type=int, default=0, help="batches per input round (0: 2x steps)")
  parser.add_argument("--warmup", type=int, default=3, help="untimed steps after the first call")
  parser.add_argument("--rounds", type=int, default=5)
  parser.add_argument("--variant", action="append", default=[], help="NAME=SPEC, see above")
  parser.add_argument("--peak_tflops", type=float, default=0.0, help="accelerator peak")
  parser.add_argument("--json", default="", help="also write the results here")
  parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
  parser.add_argument("--overrides", default="", help=argparse.SUPPRESS)
  args = parser.parse_args()
  args.input_steps = args.input_steps or 2 * args.steps
  if args.worker:
    sys.path.insert(0, os.getcwd())
    worker(args)
    return
  for part in args.parts.split(","):
    if part not in PARTS:
      parser.error(f"--parts: unknown part {part!r}; choose from {PARTS}")
  args.passthrough = [f"--preset={args.preset}", f"--set={args.set}",
                      f"--strategy={args.strategy}", f"--precision={args.precision}",
                      f"--parts={args.parts}", f"--steps={args.steps}",
                      f"--input_steps={args.input_steps}", f"--warmup={args.warmup}"]
  sys.path.insert(0, ROOT)
  from cpc_tf import configs, flops  # pylint: disable=import-outside-toplevel

  specs = [v.partition("=")[::2] for v in (args.variant or ["this="])]
  tmp = tempfile.mkdtemp(prefix="pretrain_bench_")
  variants = []
  try:
    for name, spec in specs:  # built one after another: tracing is CPU-heavy
      v = Variant(name, spec, args, tmp)
      v.info = v.ask()
      variants.append(v)
      print(f"[{v.name}] built and warmed up in {v.info['build_and_first_s']:.1f} s "
            f"(first call: " + ", ".join(f"{k} {s:.1f} s" for k, s in
                                          v.info["first_call_s"].items()) + ")", flush=True)
    for i in range(args.rounds):
      for v in variants:
        v.rounds.append(v.ask("round")["round"])
      print(f"round {i + 1}/{args.rounds} done", flush=True)
    info = variants[0].info
    peak = args.peak_tflops * 1e12
    peak_cpu = None  # FLOP per CPU-second of the matmul (CPU only)
    if not peak and info["device"] == "CPU":
      peak, peak_cpu = variants[0].ask("peak")["peak_flops"]
      peak_source = f"measured {info['peak_dtype']} matmul"
    elif not peak:
      row = next((val for key, val in PEAKS.items()
                  if key in (info["device_name"] or "")), (None, None))
      value = row[0] if info["peak_dtype"] == "float32" else row[1]
      peak = (value or 0.0) * 1e12 * info["replicas"]
      peak_source = "datasheet table" if value else "unknown (pass --peak_tflops)"
    else:
      peak *= info["replicas"]
      peak_source = "--peak_tflops"
    for v in variants:
      v.memory = v.ask("quit")["memory"]
  finally:
    for v in variants:
      if v.proc.poll() is None:
        v.proc.kill()
    shutil.rmtree(tmp, ignore_errors=True)

  uptime = os.getloadavg()
  print(f"\npreset {args.preset} {args.set}; strategy {args.strategy} "
        f"({info['replicas']} replica(s) on {info['device']} {info['device_name']}), "
        f"precision {info['precision']}; {args.rounds} rounds x {args.steps} steps; "
        f"load average at the end {uptime[0]:.1f} / {uptime[1]:.1f} / {uptime[2]:.1f}; "
        f"peak {_fmt(peak, 'FLOP/s')} ({peak_source})"
        + (f", {_fmt(peak_cpu, 'FLOP')} per CPU-second" if peak_cpu else ""))
  results = []
  header = ("| variant | part | wall ms/step (median, min-max) | CPU ms/step | images/s "
            "| patches/s | FLOP/step | FLOP/s | util. | util. (CPU time) | host peak | device peak |")
  print(header)
  print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
  activations = {}
  for v in variants:
    name, spec = v.name, dict(specs)[v.name]
    overrides = {**_parse_overrides(args.set), **_parse_overrides(spec.partition(";")[2]
                                                                   if spec.startswith("git:")
                                                                   else spec)}
    if args.precision:
      overrides["precision"] = args.precision
    config = configs.replace(configs.preset(args.preset), **overrides)
    if "step_flops" in v.info:  # counted by the worker on the config it ran
      step_flops = v.info["step_flops"]
      activations[name] = v.info["activation_bytes_per_image"]
    else:  # a tree without cpc_tf.flops: this tree's count of the config it ran
      if "config" in v.info:
        config = configs.from_dict(configs.PretrainConfig, v.info["config"])
      cost = flops.pretrain_cost(config, v.info["replicas"])
      step_flops = cost.train * v.info["replicas"]
      activations[name] = cost.activation_bytes_per_image
    for part in args.parts.split(","):
      n = args.steps if part != "input" else args.input_steps
      walls = [r[part][0] / n for r in v.rounds]
      cpus = [r[part][1] / n for r in v.rounds]
      wall = statistics.median(walls)
      images = (v.info["per_replica"] if part == "input" else v.info["images_per_step"]) / wall
      row = {"variant": name, "part": part, "wall_s": wall, "wall_min_s": min(walls),
             "wall_max_s": max(walls), "cpu_s": statistics.median(cpus), "images_per_s": images,
             "patches_per_s": images * v.info["patches_per_image"],
             "host_peak_bytes": v.memory["host_peak_bytes"],
             "device_peak_bytes": v.memory.get("device_peak_bytes")}
      if part != "input":
        row.update(flops_per_step=step_flops, flops_per_s=step_flops / wall,
                   utilisation=step_flops / wall / peak if peak else None,
                   utilisation_cpu_time=(step_flops / row["cpu_s"] / peak_cpu
                                         if peak_cpu else None))
      results.append(row)
      util = f"{row['utilisation']:.1%}" if row.get("utilisation") else "-"
      util_cpu = f"{row['utilisation_cpu_time']:.1%}" if row.get("utilisation_cpu_time") else "-"
      dev = _fmt(row["device_peak_bytes"], "B") if row["device_peak_bytes"] else "-"
      print(f"| {name} | {part} | {wall * 1e3:.0f} ({min(walls) * 1e3:.0f}-{max(walls) * 1e3:.0f}) "
            f"| {row['cpu_s'] * 1e3:.0f} | {images:.1f} | {row['patches_per_s']:.0f} | "
            + (f"{_fmt(step_flops)} | {_fmt(row['flops_per_s'])} | {util} | {util_cpu} | "
               if part != "input" else "- | - | - | - | ")
            + f"{_fmt(row['host_peak_bytes'], 'B')} | {dev} |")
  if len(variants) > 1:
    base = variants[0].name
    print()
    for part in args.parts.split(","):
      ref = next(r for r in results if r["variant"] == base and r["part"] == part)
      for r in results:
        if r["variant"] != base and r["part"] == part:
          print(f"{part}: {r['variant']} vs {base}: images/s x{r['images_per_s'] / ref['images_per_s']:.2f}"
                f" (wall), x{ref['cpu_s'] / r['cpu_s']:.2f} (CPU time per step)")
  print()
  for name, act in activations.items():
    print(f"[{name}] activation memory per image (analytic, float32): {act / 2**20:.1f} MiB")
  if args.json:
    with open(args.json, "w") as f:
      json.dump({"args": vars(args), "peak_flops": peak, "peak_flops_per_cpu_s": peak_cpu,
                 "results": results}, f, indent=1)


if __name__ == "__main__":
  main()
