"""Maximum mean discrepancy between two samples (for checks and examples).

Unbiased ``MMD^2`` with a sum of Gaussian kernels at several bandwidths
(multiples of the pooled sample's median distance), so that both the
placement of modes and their widths count.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["mmd2"]


def mmd2(x, y, bandwidths=None) -> float:
    """Unbiased ``MMD^2`` between ``x`` ``(n, d)`` and ``y`` ``(m, d)``.

    ``bandwidths`` default to 0.2, 0.5, 1 and 2 times the median pairwise
    distance of the pooled points.
    """
    x = jnp.asarray(np.asarray(x, float).reshape(len(x), -1))
    y = jnp.asarray(np.asarray(y, float).reshape(len(y), -1))
    if bandwidths is None:
        pooled = np.concatenate([np.asarray(x), np.asarray(y)])[:1000]
        d = np.sqrt(((pooled[:, None] - pooled[None]) ** 2).sum(-1))
        med = float(np.median(d[np.triu_indices(len(pooled), 1)]))
        bandwidths = [f * med for f in (0.2, 0.5, 1.0, 2.0)]
    return float(_mmd2(x, y, jnp.asarray(bandwidths, x.dtype)))


@jax.jit
def _mmd2(x, y, bw):
    def gram(a, b):
        d2 = jnp.sum((a[:, None] - b[None]) ** 2, -1)
        return jnp.sum(jnp.exp(-d2[..., None] / (2 * bw**2)), -1)

    n, m = x.shape[0], y.shape[0]
    kxx, kyy, kxy = gram(x, x), gram(y, y), gram(x, y)
    sxx = (jnp.sum(kxx) - jnp.trace(kxx)) / (n * (n - 1))
    syy = (jnp.sum(kyy) - jnp.trace(kyy)) / (m * (m - 1))
    return sxx + syy - 2 * jnp.mean(kxy)
