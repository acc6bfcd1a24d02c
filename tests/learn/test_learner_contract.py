"""The learners' contract: each method defines its loss and overrides only the
hooks listed, with their defaults, in ``energymc.learn._learner.LEARNER_HOOKS``.

Fast (no compilation): it reads the classes. It keeps the shared machinery
(the optimiser step, averaging, set-up, the loop) in one place, as
``kernels.register`` keeps every kernel to ``_base.KERNEL_HOOKS``.
"""

import inspect

import pytest

import energymc.learn  # noqa: F401  (imports every method module)
from energymc.learn._learner import LEARNER_HOOKS, LEARNER_REQUIRED, LearnerBase


def _methods(cls=LearnerBase):
    for sub in cls.__subclasses__():
        yield sub
        yield from _methods(sub)


def contract_breaches(cls) -> list[str]:
    """What ``cls`` does outside the learners' contract, as sentences.

    A method may define the hooks, and may extend a public front-end method
    (``init``, ``run``, ``get_params``: host code) by calling ``super()`` (JEM
    takes labels, NCE starts its log Z from the data). It may not replace any
    other shared machinery of :class:`LearnerBase` (the update, set-up,
    averaging), and it must define the required hooks. Its own new helpers
    (names LearnerBase does not have) are its business.
    """
    shared = {n for n in vars(LearnerBase) if not (n.startswith("__") and n.endswith("__"))}
    breaches = []
    for klass in cls.__mro__:
        if klass is LearnerBase or not issubclass(klass, LearnerBase):
            continue
        for n in sorted(shared & set(vars(klass))):
            if n in LEARNER_HOOKS:
                continue
            if not n.startswith("_"):
                if f"super().{n}(" not in inspect.getsource(vars(klass)[n]):
                    breaches.append(f"{klass.__name__}.{n} replaces the front-end instead of "
                                    "extending it with super()")
                continue
            breaches.append(f"{klass.__name__} overrides {n}, which is not a hook")
    breaches += [f"{cls.__name__} lacks the required hook {n}" for n in LEARNER_REQUIRED
                 if getattr(cls, n) is getattr(LearnerBase, n)]
    return breaches


def test_every_hook_has_its_default_on_the_base_class():
    assert set(LEARNER_REQUIRED) <= set(LEARNER_HOOKS)
    assert all(hasattr(LearnerBase, hook) for hook in LEARNER_HOOKS)
    with pytest.raises(NotImplementedError):
        LearnerBase._loss(None, None, None, None, None)


def test_every_learner_keeps_to_the_contract():
    methods = list(_methods())
    names = {m.__name__ for m in methods if m.__module__.startswith("energymc.")}
    # The scan found the learners (not an empty subclass list).
    assert {"CD", "NCE", "DSM", "SSM", "JEM"} <= names, names
    breaches = [b for m in methods if m.__module__.startswith("energymc.")
                for b in contract_breaches(m)]
    assert not breaches, ("a learner reaches outside its contract; add a hook to "
                          "LEARNER_HOOKS (with its default) or move the change into the "
                          "shared code:\n" + "\n".join(breaches))


def test_contract_check_finds_what_it_should():
    """Negative controls: a method that replaces the shared update, or has no loss."""
    class Rewrites(LearnerBase):
        def _loss(self, internal, extra, batch, key):
            return 0.0, (extra, {})

        def _update(self, state, batch):
            return state, {}

    class NoLoss(LearnerBase):
        def _extra_init(self, key, data, internal, batch_size):
            return {}

    class Replaces(Rewrites):
        def run(self, *args, **kwargs):
            return None

    class Fine(LearnerBase):
        _name = "fine"

        def run(self, *args, labels=None, **kwargs):  # extends the front-end
            return super().run(*args, **kwargs)

        def _loss(self, internal, extra, batch, key):
            return 0.0, (extra, {})

        def _helper(self):  # its own name: not an override
            return None

    assert contract_breaches(Rewrites) == ["Rewrites overrides _update, which is not a hook"]
    assert contract_breaches(NoLoss) == ["NoLoss lacks the required hook _loss"]
    assert contract_breaches(Replaces) == [
        "Replaces.run replaces the front-end instead of extending it with super()",
        "Rewrites overrides _update, which is not a hook"]
    assert contract_breaches(Fine) == []
