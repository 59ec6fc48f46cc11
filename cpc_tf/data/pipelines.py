"""Sources -> batched tf.data pipelines for every protocol of the paper.

Glossary: B batch (per replica when an `input_context` is given), Gh/Gw grid
rows/columns, P patch size, S image side fed to a network, M boxes per image
(padded to the batch maximum), K classes. Images are float32 in [0, 1].

  pretrain_dataset        -> [B, Gh, Gw, P, P, 3]            (supp. A; arXiv v1 4.1)
  linear_{train,eval}_dataset     -> ([B, Gh, Gw, P, P, 3], [B] int64)   (supp. B)
  efficient_{train,eval}_dataset  -> ([B, S, S, 3], [B] int64)           (supp. C)
  detection_dataset       -> dict of image [B, S, S, 3], boxes [B, M, 4], ... (ICLR 4.3)

Determinism: every random choice is a stateless op seeded by
fold_in((seed, input pipeline id), position of the element in the shuffled,
repeated stream), and shuffles are seeded, so one seed gives one stream.
"""

from __future__ import annotations

import logging
from typing import Collection

import tensorflow as tf

from cpc_tf import augment as augment_lib
from cpc_tf.configs import (DETECTION_IMAGE_SIZE, EFFICIENT_IMAGE_SIZE, AugmentConfig,
                            DataConfig, GridConfig)
from cpc_tf.data import sources
from cpc_tf.data.errors import DataError
from cpc_tf.patches import extract_patches

log = logging.getLogger(__name__)

_V2_STEPS = ("randaugment", "elastic_p", "histogram_p", "inception_color_p", "grayscale_p")
_V1_STEPS = ("color_drop_p", "flip_p", "jitter_size")


# ----------------------------------------------------------------------------
# Public API

def pretrain_dataset(data: DataConfig, grid: GridConfig, augment: AugmentConfig,
                     batch_size: int, seed: int, repeat: bool = True,
                     input_context: tf.distribute.InputContext | None = None,
                     on_bad_file: str = "skip") -> tf.data.Dataset:
  """Unlabelled images -> augmented patch grids [B, Gh, Gw, P, P, 3], B static.

  supp. A (pipeline "v2"): resize to grid.resize_to^2, random grid.image_size^2
  crop, cut into the grid, augment every patch independently. arXiv v1 4.1
  (pipeline "v1"): the same geometry (256 px, 64 px patches, 7x7) with the v1
  per-patch ops; which ops run is the AugmentConfig's choice.
  """
  _check_pipeline(data, augment)
  source = sources.load(data, shuffle_files=True, seed=seed, input_context=input_context,
                        on_bad_file=on_bad_file, min_size=grid.image_size)
  batch = _batch_size(batch_size, input_context)
  salt = input_context.input_pipeline_id if input_context else 0

  def make(index, element):
    crop_seed, augment_seed = _seeds(seed, salt, index, 2)
    image = element["image"]
    return augment_grid(grid_patches(image, grid, crop_seed), augment, augment_seed)

  ds = _stream(source, data, shuffle=True, repeat=repeat, seed=seed,
               input_context=input_context)
  ds = ds.map(make, num_parallel_calls=tf.data.AUTOTUNE)
  return _finish(ds, batch, drop_remainder=True)


def linear_train_dataset(data: DataConfig, batch_size: int, seed: int = 0, *,
                         grid: GridConfig, augment: AugmentConfig,
                         keep_ids: Collection[str | int] | None = None,
                         input_context: tf.distribute.InputContext | None = None
                         ) -> tf.data.Dataset:
  """Labelled images -> (augmented patch grids [B, Gh, Gw, P, P, 3], labels [B] int64).

  supp. B: the pre-training pipeline (`grid`, `augment`; ICLR A.3's grid is
  PRESET_GRIDS["linear_iclr"]). Shuffles, repeats and drops the remainder.
  `keep_ids` keeps only these example ids (TFDS `tfds_id`, folder path relative
  to the folder, Fashion-MNIST index; see `example_ids`).
  """
  _check_pipeline(data, augment)

  def make(image, first, second):
    return augment_grid(grid_patches(image, grid, first), augment, second)

  return _labelled(data, make, batch_size, seed, training=True, min_size=grid.image_size,
                   keep_ids=keep_ids, input_context=input_context)


def linear_eval_dataset(data: DataConfig, batch_size: int, *, grid: GridConfig,
                        test_form: AugmentConfig | None = None,
                        keep_ids: Collection[str | int] | None = None,
                        input_context: tf.distribute.InputContext | None = None,
                        on_bad_file: str = "skip") -> tf.data.Dataset:
  """Labelled images -> (patch grids [B, Gh, Gw, P, P, 3], labels [B] int64), no augmentation.

  supp. B: resize to grid.resize_to, single centre grid.image_size crop; with
  `test_form` (the pre-training AugmentConfig) the deterministic form of its v1
  marks (`grid_patches`). Each example once, in order, keeping the last batch.
  """
  def make(image, first, second):
    del first, second
    return grid_patches(image, grid, test_form=test_form)

  return _labelled(data, make, batch_size, 0, training=False, min_size=grid.image_size,
                   keep_ids=keep_ids, input_context=input_context, on_bad_file=on_bad_file)


def efficient_train_dataset(data: DataConfig, batch_size: int, seed: int = 0, *,
                            augment: AugmentConfig, image_size: int = EFFICIENT_IMAGE_SIZE,
                            crop_min_area: float = 0.08,
                            keep_ids: Collection[str | int] | None = None,
                            input_context: tf.distribute.InputContext | None = None
                            ) -> tf.data.Dataset:
  """Labelled images -> (images [B, S, S, 3], labels [B] int64), S = image_size.

  supp. C: Inception random-sized crop (crop_min_area to all of the area) to S,
  then per-image steps 1-4 of supp. A (`augment`; probabilities 0 switch steps
  off). Shuffles, repeats and drops the remainder.
  """
  def make(image, first, second):
    image = augment_lib.inception_crop(image, image_size, first,
                                       area_range=(crop_min_area, 1.0))
    image.set_shape([image_size, image_size, 3])
    if _any_step(augment, _V2_STEPS + _V1_STEPS):
      image = augment_lib.augment_image(image, augment, second)
    return image

  return _labelled(data, make, batch_size, seed, training=True, min_size=image_size,
                   keep_ids=keep_ids, input_context=input_context)


def efficient_eval_dataset(data: DataConfig, batch_size: int, *,
                           image_size: int = EFFICIENT_IMAGE_SIZE,
                           keep_ids: Collection[str | int] | None = None,
                           input_context: tf.distribute.InputContext | None = None,
                           on_bad_file: str = "skip") -> tf.data.Dataset:
  """Labelled images -> (images [B, S, S, 3], labels [B] int64), S = image_size.

  supp. C: central square of 0.875 x the shorter side, resized to S
  (`cpc_tf.augment.center_crop`). Each example once, in order, keeping the last batch.
  """
  def make(image, first, second):
    del first, second
    return augment_lib.center_crop(image, image_size)

  return _labelled(data, make, batch_size, 0, training=False, min_size=image_size,
                   keep_ids=keep_ids, input_context=input_context, on_bad_file=on_bad_file)


# The deterministic evaluation inputs by name, for callers that hold the mode as a string;
# both take (data, batch_size, *, keep_ids, input_context, on_bad_file) and their own size
# (grid= / image_size=).
EVAL_DATASETS = {"linear_eval": linear_eval_dataset, "efficient_eval": efficient_eval_dataset}


def _labelled(data: DataConfig, make, batch_size: int, seed: int, *, training: bool,
              min_size: int, keep_ids, input_context, on_bad_file: str = "skip"
              ) -> tf.data.Dataset:
  """The stream shared by the four classification pipelines: make(image, seed, seed) maps
  one decoded image; training shuffles, repeats and drops the remainder."""
  source = sources.load(data, labelled=True, shuffle_files=training, seed=seed,
                        input_context=input_context, on_bad_file=on_bad_file,
                        min_size=min_size)
  batch = _batch_size(batch_size, input_context)
  salt = input_context.input_pipeline_id if input_context else 0

  def pair(index, element):
    first, second = _seeds(seed, salt, index, 2)
    return make(element["image"], first, second), element["label"]

  ds = _stream(source, data, shuffle=training, repeat=training, seed=seed,
               input_context=input_context, keep=id_filter(keep_ids))
  ds = ds.map(pair, num_parallel_calls=tf.data.AUTOTUNE)
  return _finish(ds, batch, drop_remainder=training)


def detection_dataset(
    data: DataConfig, batch_size: int, seed: int = 0, *, training: bool = True,
    augment: AugmentConfig | None = None, image_size: int = DETECTION_IMAGE_SIZE,
    scale_range: tuple[float, float] | None = None, repeat: bool | None = None,
    input_context: tf.distribute.InputContext | None = None) -> tf.data.Dataset:
  """TFDS detection data (e.g. "voc/2007") -> padded batches of dicts.

  Each image is resized so that its longer side is `image_size`, keeping its
  aspect ratio, and padded at the bottom / right to image_size^2. Training adds
  (ICLR 4.3) colour dropping with probability augment.color_drop_p, a
  horizontal flip and scale augmentation over `scale_range` (None: the default
  of `cpc_tf.augment.scale_with_boxes`), both of which move the boxes; boxes
  pushed out of the image by the zoom are dropped with their labels. Yields
    "image"      [B, S, S, 3] float32
    "image_size" [B, 2] int32, (height, width) of the unpadded image
    "boxes"      [B, M, 4] float32 (ymin, xmin, ymax, xmax) as fractions of S
    "labels"     [B, M] int64, -1 pads
    "difficult"  [B, M] bool (VOC "difficult"; False pads)
    "num_boxes"  [B] int32
    "id"         [B] string (tfds_id)
  """
  source = sources.load(data, shuffle_files=training, seed=seed,
                        input_context=input_context, with_objects=True)
  batch = _batch_size(batch_size, input_context)
  salt = input_context.input_pipeline_id if input_context else 0
  drop_p = augment.color_drop_p if (training and augment is not None) else 0.0

  def make(index, element):
    image = element["image"]
    objects = element["objects"]
    boxes = tf.clip_by_value(tf.cast(objects["bbox"], tf.float32), 0.0, 1.0)
    labels = tf.cast(objects["label"], tf.int64)
    difficult = (tf.cast(objects["is_difficult"], tf.bool) if "is_difficult" in objects
                 else tf.zeros_like(labels, tf.bool))
    if training:
      drop_seed, flip_seed, scale_seed = _seeds(seed, salt, index, 3)
      if drop_p > 0:
        image = augment_lib.color_drop(image, drop_seed, p=drop_p)
      image, boxes = augment_lib.flip_with_boxes(image, boxes, flip_seed)
      scale_args = {} if scale_range is None else {"scale_range": scale_range}
      image, boxes = augment_lib.scale_with_boxes(image, boxes, scale_seed, **scale_args)
      inside = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
      boxes, labels, difficult = (tf.boolean_mask(t, inside) for t in (boxes, labels, difficult))
    image, boxes, valid = _fit_and_pad(image, boxes, image_size)
    return {"image": image, "image_size": valid, "boxes": boxes, "labels": labels,
            "difficult": difficult, "num_boxes": tf.shape(labels)[0], "id": element["id"]}

  ds = _stream(source, data, shuffle=training, repeat=training if repeat is None else repeat,
               seed=seed, input_context=input_context)
  ds = ds.map(make, num_parallel_calls=tf.data.AUTOTUNE)
  return pad_detection_batches(ds, batch, drop_remainder=training)


def pad_detection_batches(ds: tf.data.Dataset, batch_size: int,
                          drop_remainder: bool) -> tf.data.Dataset:
  """Detection elements -> batches padded to the largest image and box count.

  Padded boxes carry label -1 and num_boxes says how many are real; every
  detection source (TFDS, VOC folders, the synthetic set) batches through here.
  """
  ds = ds.padded_batch(
      batch_size, drop_remainder=drop_remainder,
      padding_values={"image": 0.0, "image_size": 0, "boxes": 0.0,
                      "labels": tf.constant(-1, tf.int64), "difficult": False,
                      "num_boxes": 0, "id": ""})
  return ds.prefetch(tf.data.AUTOTUNE)


def num_examples(data: DataConfig, *, labelled: bool = False,
                 keep_ids: Collection[str | int] | None = None) -> int:
  """Examples in the source split (after `max_examples`), for epochs -> steps.

  With `keep_ids` the count is exact for folders and Fashion-MNIST; for TFDS
  it is len(keep_ids) (ids absent from the split are not subtracted).
  """
  source = sources.load(data, labelled=labelled)
  keep = id_filter(keep_ids)
  if keep is None:
    return source.num_examples
  if source.ids is not None:
    return int(tf.reduce_sum(tf.cast(keep(tf.constant(source.ids)), tf.int32)))
  return len({str(i) for i in keep_ids})


def class_names(data: DataConfig) -> tuple[str, ...]:
  """Names of the classes, index order; raises if the source has no labels."""
  names = sources.load(data, labelled=True).class_names
  if names is None:
    raise DataError(f"{data.source!r} has no class labels; classification needs a "
                    "labelled dataset or a class-per-sub-folder image folder.")
  return names


def num_classes(data: DataConfig) -> int:
  return len(class_names(data))


def ordered_examples(source: sources.Source, data: DataConfig) -> tf.data.Dataset:
  """Every example of `source` (from `sources.load(data, ...)`) once, in storage order,
  decoded: dicts with "image" [H, W, 3] float32, "label" int64 and "id" string.
  A folder's file that fails to decode is named and dropped (or raises), as in
  every pipeline, so ids stay with their images."""
  ds = _stream(source, data, shuffle=False, repeat=False, seed=0, input_context=None)
  return ds.map(lambda index, element: element)


def example_ids(data: DataConfig, labelled: bool = True) -> list[str]:
  """Every example id of the split, in storage order (reads TFDS records once)."""
  source = sources.load(data, labelled=labelled)
  if source.ids is not None:
    return list(source.ids)
  return [i.decode() for i in source.dataset.map(lambda e: e["id"]).as_numpy_iterator()]


# ----------------------------------------------------------------------------
# Image -> network input

def grid_patches(image: tf.Tensor, grid: GridConfig, seed: tf.Tensor | None = None,
                 test_form: AugmentConfig | None = None) -> tf.Tensor:
  """[H, W, 3] -> [Gh, Gw, P, P, 3]: resize to resize_to^2, crop image_size^2, cut.

  supp. A: the resize ignores the aspect ratio ("resize the image to 300x300").
  A random crop when `seed` is given, else the centre crop (single-crop
  evaluation, supp. B). Smaller images are upscaled by the resize. test_form:
  the pre-training AugmentConfig whose v1 marks on every patch the test
  patches get in deterministic form (`augment.test_form`: jitter frame, kept
  channel).
  """
  image = grid_crop(image, grid, seed)
  patches = extract_patches(image[None], grid.patch_size, grid.stride)[0]
  return augment_lib.test_form(patches, test_form) if test_form is not None else patches


def grid_crop(image: tf.Tensor, grid: GridConfig, seed: tf.Tensor | None = None) -> tf.Tensor:
  """[H, W, 3] -> [S, S, 3]: resize to resize_to^2, then the centre (or, with
  `seed`, a random) image_size^2 crop; the image `grid_patches` cuts."""
  r, s = grid.resize_to, grid.image_size
  if s > r:
    raise DataError(f"GridConfig image_size={s} > resize_to={r}: the crop must fit "
                    "in the resized image; set resize_to >= image_size.")
  image = tf.clip_by_value(tf.image.resize(image, [r, r], antialias=True), 0.0, 1.0)
  if seed is None:
    offset = (r - s) // 2
    image = image[offset:offset + s, offset:offset + s]
  else:
    image = tf.image.stateless_random_crop(image, [s, s, 3], seed)
  image.set_shape([s, s, 3])
  return image


def augment_grid(patches: tf.Tensor, augment: AugmentConfig, seed: tf.Tensor) -> tf.Tensor:
  """[Gh, Gw, P, P, 3] -> same, every patch augmented independently (supp. A)."""
  if not _any_step(augment, _V2_STEPS + _V1_STEPS):
    return patches  # every step off: skip building a no-op graph
  shape = patches.shape
  flat = tf.reshape(patches, [-1, shape[2], shape[3], shape[4]])
  flat = augment_lib.augment_patches(flat, augment, seed)
  return tf.reshape(flat, shape)


def _fit_and_pad(image, boxes, size):
  """Longer side -> size (aspect kept), pad to size^2; boxes re-expressed in it."""
  shape = tf.cast(tf.shape(image)[:2], tf.float32)
  scale = size / tf.reduce_max(shape)
  new = tf.minimum(tf.maximum(tf.cast(tf.round(shape * scale), tf.int32), 1), size)
  image = tf.clip_by_value(tf.image.resize(image, new, antialias=True), 0.0, 1.0)
  image = tf.image.pad_to_bounding_box(image, 0, 0, size, size)
  image.set_shape([size, size, 3])
  frac = tf.cast(new, tf.float32) / size  # [h/S, w/S]
  boxes = boxes * tf.concat([frac, frac], 0)
  return image, boxes, new


# ----------------------------------------------------------------------------
# Stream plumbing

def _stream(source, data, *, shuffle, repeat, seed, input_context,
            keep=None) -> tf.data.Dataset:
  """Source -> (index, decoded element): filter, shard, shuffle, repeat, decode."""
  ds = source.dataset
  if keep is not None:
    ds = ds.filter(lambda e: keep(e["id"]))
    if source.ids is not None:
      # In-memory sources: the kept, undecoded elements (at most what the source
      # holds) are read once; later epochs and passes skip the scan of the split.
      ds = ds.cache()
  if input_context is not None and not source.sharded:
    ds = ds.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
  if shuffle:
    # In-memory sources (folders: paths; Fashion-MNIST: 28x28) shuffle fully.
    buffer = source.num_examples if source.ids is not None else data.shuffle_buffer
    ds = ds.shuffle(max(1, min(buffer, source.num_examples)), seed=seed,
                    reshuffle_each_iteration=True)
  if repeat:
    ds = ds.repeat()

  ds = ds.enumerate()
  if source.checked_decode is None:
    def plain(index, element):
      return index, dict(element, image=source.decode(element["image"]))
    return ds.map(plain, num_parallel_calls=tf.data.AUTOTUNE)

  # Folders: a file that passed the pre-scan but fails to decode is named once
  # and dropped (or raises, on_bad_file="fail"); a source with nothing
  # decodable stops with a DataError (`decode_failures`). Indices keep their
  # stream positions, so the random streams of the other elements do not move.
  def decode(index, element):
    image, ok = source.checked_decode(element["image"], element["id"])
    return index, dict(element, image=image), ok

  def decoded(index, element, ok):
    del index, element
    return ok

  def without_flag(index, element, ok):
    del ok
    return index, element

  ds = ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE)
  return ds.filter(decoded).map(without_flag)


def _finish(ds, batch, drop_remainder) -> tf.data.Dataset:
  return ds.batch(batch, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)


def _batch_size(batch_size: int, input_context) -> int:
  if batch_size <= 0:
    raise DataError(f"batch_size={batch_size}: must be positive.")
  if input_context is None:
    return batch_size
  return input_context.get_per_replica_batch_size(batch_size)


def _seeds(seed: int, salt: int, index: tf.Tensor, num: int) -> list[tf.Tensor]:
  """`num` independent [2] int64 seeds for element `index` of the stream."""
  base = tf.constant([seed, salt], tf.int64)
  element = tf.random.experimental.stateless_fold_in(base, index)
  return list(tf.unstack(tf.random.experimental.stateless_split(element, num)))


def augments(augment: AugmentConfig) -> bool:
  """Whether any per-patch / per-image augmentation step of `augment` is on."""
  return _any_step(augment, _V2_STEPS + _V1_STEPS)


def _any_step(augment: AugmentConfig, names) -> bool:
  return any(bool(getattr(augment, n)) for n in names
             if not (n == "randaugment" and augment.randaugment_num_ops == 0))


def _check_pipeline(data: DataConfig, augment: AugmentConfig) -> None:
  other = _V2_STEPS if data.pipeline == "v1" else ()
  mixed = [n for n in other if _any_step(augment, [n])]
  if mixed:
    log.warning("pipeline='v1' (arXiv v1 4.1) with supp. A steps switched on: %s. "
                "They will run; set them to 0 / False for the v1 recipe.", mixed)


def id_filter(keep_ids: Collection[str | int] | None):
  """-> None (keep all) or a function ids [...] string -> [...] bool keeping `keep_ids`."""
  if keep_ids is None:
    return None
  if isinstance(keep_ids, (str, bytes)):
    raise DataError("keep_ids must be a collection of ids, not a single string.")
  if not len(keep_ids):
    raise DataError("keep_ids is empty: nothing would be kept.")
  keys = tf.constant(sorted({str(i) for i in keep_ids}), tf.string)
  table = tf.lookup.StaticHashTable(
      tf.lookup.KeyValueTensorInitializer(keys, tf.ones_like(keys, tf.int32)), 0)
  return lambda ids: table.lookup(ids) > 0
