"""A synthetic detection set generated on the fly: coloured shapes on textured ground.

Glossary: B batch, S image side, M boxes per image (padded to the batch maximum).
Each image holds 1..max_objects non-overlapping shapes; the class is the shape
("rectangle", "ellipse", "triangle"), never the colour, which is random but kept
away from the background's colour. Backgrounds are a random colour plus a few
random sinusoidal gratings and pixel noise, so edges alone do not give objects
away. Element `index` of split `split` with seed `seed` is always the same
image; "train" and "test" use disjoint random streams.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from cpc_tf import augment as augment_lib
from cpc_tf.data import pipelines
from cpc_tf.data.errors import DataError

CLASS_NAMES = ("rectangle", "ellipse", "triangle")
SPLITS = {"train": 1, "test": 2}


def make_example(index: int, seed: int = 0, split: str = "train", image_size: int = 128,
                 max_objects: int = 4, min_side: int = 16, max_side: int = 56) -> dict:
  """One image: "image" [S, S, 3] float32 in [0, 1], "boxes" [n, 4] fractions of S,
  "labels" [n] int64 (index into CLASS_NAMES)."""
  if split not in SPLITS:
    raise DataError(f"Unknown synthetic split {split!r}; choose one of {sorted(SPLITS)}.")
  if not 0 < min_side <= max_side < image_size:
    raise DataError(f"Object sides {min_side}..{max_side} px must satisfy "
                    f"0 < min_side <= max_side < image_size={image_size}.")
  rng = np.random.default_rng([seed, SPLITS[split], int(index)])
  s = image_size
  yy, xx = np.meshgrid(np.arange(s) + 0.5, np.arange(s) + 0.5, indexing="ij")
  base = rng.uniform(0.15, 0.85, 3)
  image = np.broadcast_to(base, (s, s, 3)).copy()
  for _ in range(3):  # gratings of random orientation, period and colour
    angle = rng.uniform(0, np.pi)
    period = rng.uniform(6, 40)
    phase = rng.uniform(0, 2 * np.pi)
    wave = np.sin(2 * np.pi * (np.cos(angle) * xx + np.sin(angle) * yy) / period + phase)
    image += 0.06 * wave[..., None] * rng.uniform(-1, 1, 3)
  image += rng.normal(0, 0.03, image.shape)
  boxes, labels = [], []
  for _ in range(int(rng.integers(1, max_objects + 1))):
    for _try in range(20):
      h = int(rng.integers(min_side, max_side + 1))
      w = int(np.clip(round(h * rng.uniform(0.6, 1.6)), min_side, max_side))
      y0 = int(rng.integers(0, s - h + 1))
      x0 = int(rng.integers(0, s - w + 1))
      box = (y0, x0, y0 + h, x0 + w)
      if all(box[2] <= b[0] or b[2] <= box[0] or box[3] <= b[1] or b[3] <= box[1]
             for b in boxes):
        break
    else:
      continue  # no free place: fewer objects in this image
    label = int(rng.integers(len(CLASS_NAMES)))
    colour = rng.uniform(0, 1, 3)
    while np.abs(colour - base).sum() < 0.6:
      colour = rng.uniform(0, 1, 3)
    # Pixel-centre masks; each shape touches all four sides of its box.
    u = (yy - y0) / h  # 0..1 inside the box
    v = (xx - x0) / w
    inside = (u >= 0) & (u < 1) & (v >= 0) & (v < 1)
    if label == 0:
      mask = inside
    elif label == 1:
      mask = inside & ((2 * u - 1) ** 2 + (2 * v - 1) ** 2 <= 1.0 + 2.0 / min(h, w))
    else:  # apex at the top centre, base along the bottom edge
      mask = inside & (np.abs(v - 0.5) <= 0.5 * u + 0.5 / w)
    image[mask] = colour + rng.normal(0, 0.02, (int(mask.sum()), 3))
    boxes.append(box)
    labels.append(label)
  image = np.clip(image, 0.0, 1.0).astype(np.float32)
  boxes = np.asarray(boxes, np.float32).reshape(-1, 4) / s
  return {"image": image, "boxes": boxes, "labels": np.asarray(labels, np.int64)}


def synthetic_detection_dataset(
    num_images: int, batch_size: int, seed: int = 0, *, split: str = "train",
    training: bool = True, image_size: int = 128, max_objects: int = 4,
    min_side: int = 16, max_side: int = 56, repeat: bool | None = None,
    order_seed: int | None = None) -> tf.data.Dataset:
  """The synthetic set as padded batches with the keys of `detection_dataset`:
  "image" [B, S, S, 3], "image_size" [B, 2] int32, "boxes" [B, M, 4] fractions of S,
  "labels" [B, M] int64 (-1 pads), "difficult" [B, M] bool, "num_boxes" [B] int32,
  "id" [B] string. Training shuffles, repeats, and flips left-right (boxes follow), seeded by
  the element's position in the stream. `order_seed` (default `seed`) seeds the
  shuffle and the flips alone, so a resumed run can reshuffle the same images.
  """
  order = seed if order_seed is None else order_seed
  if num_images <= 0 or batch_size <= 0:
    raise DataError(f"num_images={num_images}, batch_size={batch_size}: both must be positive.")
  make_example(0, seed, split, image_size, max_objects, min_side, max_side)  # checks arguments

  def generate(index):
    ex = make_example(int(index), seed, split, image_size, max_objects, min_side, max_side)
    return ex["image"], ex["boxes"], ex["labels"]

  def make(position, index):
    image, boxes, labels = tf.numpy_function(
        generate, [index], (tf.float32, tf.float32, tf.int64), stateful=False)
    image.set_shape([image_size, image_size, 3])
    boxes.set_shape([None, 4])
    labels.set_shape([None])
    if training:
      flip_seed = tf.random.experimental.stateless_fold_in(
          tf.constant([order, SPLITS[split]], tf.int64), position)
      image, boxes = augment_lib.flip_with_boxes(image, boxes, flip_seed)
    return {"image": image, "image_size": tf.constant([image_size, image_size], tf.int32),
            "boxes": boxes, "labels": labels,
            "difficult": tf.zeros_like(labels, tf.bool),
            "num_boxes": tf.shape(labels)[0],
            "id": tf.strings.join([split, "-", tf.strings.as_string(index)])}

  ds = tf.data.Dataset.range(num_images)
  if training:
    ds = ds.shuffle(num_images, seed=order, reshuffle_each_iteration=True)
  if training if repeat is None else repeat:
    ds = ds.repeat()
  # The flip is seeded by the position in the repeated stream, so epochs differ.
  ds = ds.enumerate().map(make, num_parallel_calls=tf.data.AUTOTUNE)
  return pipelines.pad_detection_batches(ds, batch_size, drop_remainder=training)
