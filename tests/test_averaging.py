"""Polyak averaging (supp. A): the twin model follows the weights with decay."""

import keras
import numpy as np
import pytest

from cpc_tf.averaging import PolyakAverage
from tolerances import f32_atol

def test_polyak_average_follows_the_formula():
  model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
  twin = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
  average = PolyakAverage(model, twin, decay=0.9)
  average.reset()
  start = model.get_weights()
  np.testing.assert_array_equal(twin.get_weights()[0], start[0])
  model.set_weights([w + 1.0 for w in start])
  average.update()
  for got, w in zip(twin.get_weights(), start):
    # Three float32 roundings of terms of scale |w| + 1; the result can be near 0 (w ~ -0.1),
    # where a relative tolerance alone would fail.
    np.testing.assert_allclose(got, 0.9 * w + 0.1 * (w + 1.0), rtol=1e-6,
                               atol=f32_atol(np.abs(w) + 1.0, depth=3))



def test_decay_out_of_range_is_refused():
  model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
  with pytest.raises(ValueError, match="polyak_decay=1.0"):
    PolyakAverage(model, model, decay=1.0)
