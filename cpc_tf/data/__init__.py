"""Data sources and tf.data pipelines (see `pipelines` for shapes, `sources` for names)."""

from cpc_tf.data import decode_failures
from cpc_tf.data.errors import DataError
from cpc_tf.data.folders import FolderScan, scan as scan_folder
from cpc_tf.data.pipelines import (
    EVAL_DATASETS,
    augments,
    class_names,
    detection_dataset,
    efficient_eval_dataset,
    efficient_train_dataset,
    example_ids,
    grid_crop,
    grid_patches,
    id_filter,
    linear_eval_dataset,
    linear_train_dataset,
    num_classes,
    num_examples,
    ordered_examples,
    pretrain_dataset,
)
from cpc_tf.data.sources import Source, load as load_source
from cpc_tf.data.splits import SPLITS as FOLDER_SPLITS, FolderSplits, folder_splits

__all__ = [
    "DataError", "EVAL_DATASETS", "FOLDER_SPLITS", "FolderScan", "FolderSplits",
    "Source", "decode_failures", "folder_splits",
    "augments", "class_names", "detection_dataset", "efficient_eval_dataset",
    "efficient_train_dataset", "example_ids", "grid_crop", "grid_patches", "id_filter",
    "linear_eval_dataset", "linear_train_dataset", "load_source", "num_classes",
    "num_examples", "ordered_examples", "pretrain_dataset",
    "scan_folder",
]
