"""Former home of the non-finite guard; it lives in :mod:`energymc._util` now.

Kept so that ``from energymc._numerics import nonfinite_to_neginf`` still works.
"""

from energymc._util import nonfinite_to_neginf

__all__ = ["nonfinite_to_neginf"]
