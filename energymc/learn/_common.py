"""Names that modules outside ``learn/`` import from here, kept while they move.

``energymc.diffusion`` and ``energymc.models.rbm`` import the learners' input
checks from this module; the checks live in :mod:`energymc.learn._checks`,
the state in :mod:`energymc.learn._state`, the base class in
:mod:`energymc.learn._learner`. New code imports from those.
"""

from energymc.learn._checks import check_data, check_int, check_positive
from energymc.learn._learner import LearnerBase
from energymc.learn._state import LearnResult, LearnState

__all__ = ["LearnResult", "LearnState", "LearnerBase", "check_data", "check_int",
           "check_positive"]
