"""A progress object for the log Z tests: counts finished replicates and can interrupt.

``log_partition(progress=meter)`` calls ``start``/``update``/``close`` as it calls a
tqdm bar's; an ``update`` whose postfix shows a ``log_z`` is a finished replicate.
Passing a meter also compiles the stage ticks into every run, so the tests that use
one share one compiled program.
"""


class Interrupted(Exception):
    """Raised by :class:`CountingMeter` where a test stops a call, as a Ctrl-C would."""


class CountingMeter:
    """Records each bar (``total``, ``description``, units ``moved``), counts the finished
    replicates, and raises ``interrupt`` at the ``stop_at``-th one (never if ``None``)."""

    def __init__(self, stop_at=None, interrupt=Interrupted):
        self.bars, self.finished, self.stop_at, self.interrupt = [], 0, stop_at, interrupt

    def start(self, total, description):
        self.bars.append({"total": total, "description": description, "moved": 0})

    def update(self, n, postfix):
        self.bars[-1]["moved"] += n
        if "log_z" in postfix:
            self.finished += 1
            if self.finished == self.stop_at:
                raise self.interrupt

    def close(self):
        pass
