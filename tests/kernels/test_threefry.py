"""energymc._threefry.unrolled_threefry: the hash written out, the same bits, the rule put back.

On the CPU JAX lowers Threefry-2x32 as a rolled ``while`` loop; inside the
block it writes the rounds out. Checked on the compiled program (no loop left
inside the block; the loop there outside it, the negative control) and on its
outputs (identical bits), and that JAX's own rule is back after the block,
also after an error and after nested blocks.
"""

import jax
import numpy as np
import pytest

from energymc._random import uniform
from energymc._threefry import available, unrolled_threefry

pytestmark = pytest.mark.skipif(
    jax.default_backend() != "cpu" or not available(),
    reason="the rolled lowering is the CPU backend's; needs the JAX internals it swaps")


def _draws(key):
    # What a learner's update does: split a key, fold in, draw.
    a, b = jax.random.split(key)
    return jax.random.key_data(a), uniform(jax.random.fold_in(b, 3), (7, 5))


def _whiles(fn, *args) -> int:
    # A new function each time: JAX caches the lowering of a jitted function
    # (the block only acts on programs compiled inside it).
    return jax.jit(lambda *a: fn(*a)).lower(*args).compile().as_text().count(" while(")


def test_written_out_inside_the_block_rolled_outside():
    key = jax.random.key(20261204)
    with unrolled_threefry():
        inside = _whiles(_draws, key)
    assert inside == 0
    # Negative control: the same program compiled outside has the rolled loops
    # (one per hash: split, fold_in, uniform).
    assert _whiles(_draws, key) >= 3
    # and the rule is JAX's again after the block
    assert _whiles(lambda k: jax.random.split(k), key) >= 1


def test_same_bits_inside_and_outside():
    key = jax.random.key(7)
    outside = jax.jit(_draws)(key)
    with unrolled_threefry():
        inside = jax.jit(lambda k: _draws(k))(key)  # a new function, compiled in the block
    for x, y in zip(outside, inside, strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    assert not np.array_equal(np.asarray(outside[1]), np.asarray(jax.jit(_draws)(
        jax.random.key(8))[1]))  # the comparison can fail: another key, other draws


def test_rule_restored_after_nesting_and_errors():
    key = jax.random.key(1)
    with pytest.raises(ValueError, match="inside"):
        with unrolled_threefry():
            with unrolled_threefry():
                pass
            # still written out after the inner block closed
            assert _whiles(lambda k: jax.random.split(k, 3), key) == 0
            raise ValueError("inside")
    assert _whiles(lambda k: jax.random.split(k, 4), key) >= 1
