"""Faster R-CNN hyper-parameters: DetectorConfig lives in cpc_tf.configs.schema.

Re-exported here for the detection modules that import it from this path; new
code imports from cpc_tf.configs.
"""

from cpc_tf.configs.detection import detector_paper as paper  # noqa: F401
from cpc_tf.configs.detection import detector_synthetic_small as synthetic_small  # noqa: F401
from cpc_tf.configs.schema import HEADS, ROI_POOLS, DetectorConfig  # noqa: F401
