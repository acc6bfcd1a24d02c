"""Exceptions and warnings raised by energymc.

Wrong input is an exception raised before anything compiles; its message says
what was wrong and how to fix it. Numerical trouble during a run is data
(counted in the run's stats), never one of these.
"""

__all__ = ["EnergymcError", "EnergyError", "OptionError", "EnergymcWarning"]


class EnergymcError(ValueError):
    """Base class: a user input energymc cannot work with."""


class EnergyError(EnergymcError):
    """The energy function or its initial point cannot be used."""


class OptionError(EnergymcError):
    """An unknown method, an unknown option or an option of the wrong kind."""


class EnergymcWarning(UserWarning):
    """A result that is computed but should not be trusted without a look."""
