"""The one exception type of `cpc_tf.data`.

Every bad input the data package can detect (unknown dataset or split, empty or
corrupt image folder, bad label fraction, missing Fashion-MNIST files) raises a
`DataError` whose message names the offending file or value and says how to fix
it, instead of letting a TensorFlow stack trace surface mid-training.
"""


class DataError(ValueError):
  """Bad data or data configuration; the message names the culprit and the fix."""
