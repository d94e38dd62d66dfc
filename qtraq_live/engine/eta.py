"""The wait a patient is shown: a point estimate and a range meant to hold 80 % of the time.

At each call the engine learns, per queue, the log of a counter's *cycle* (the time between two
calls, times the counters open: a consultation plus the changeover): a Kalman filter's level
and how unsure it is (its variance), the mean absolute deviation of log cycles, and how many
cycles this session has seen. The queue state carries them packed in its ``eta`` field
(``learn_gap`` in ``lua/engine/lib.lua``). From them this module derives, in constant time and
from the state alone (a view never depends on when it is read, so every copy of a view agrees):

- the wait of a patient with ``ahead`` people before them: ``ahead + 1`` cycles shared among the
  open counters (a patient moves up when somebody is called, and a consultation then starts).
  Cycles are log-normal; their sum is approximated by another log-normal (Fenton-Wilkinson),
  whose median is the point estimate (the median keeps the absolute error smallest);
- the range: the 10th to the 90th percentile of that sum, widened by how unsure the level is
  (the filter's variance: less as the session's cycles are seen, never nothing: doctors change
  pace).

``docs/eta.md`` explains the method; ``benchmarks/eta.py`` measures it on consultation logs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import lru_cache
from typing import Any, NamedTuple

from .live_schema import ETA_DEV_PRIOR

Z80 = 1.2816  # standard normal 90th percentile: 10th..90th percentile = an 80 % range
LEVEL_SPREAD = 0.45  # log-sd of the level when nothing is learnt (the configured service time)
RANGE_SPREAD = 0.1  # log-sd the range adds to the model's: what it leaves out (drift, the rare very long visit)
MIN_SIGMA = 0.1
DEFAULT_AVG_SERVICE_S = 300  # a new queue's average service time: the estimate until calls are timed


class Eta(NamedTuple):
    eta_s: int
    low_s: int
    high_s: int


NOTHING_LEARNT = (0.0, ETA_DEV_PRIOR, 0, LEVEL_SPREAD**2)
PACKED_FIELDS = 12  # fields of the ``eta`` layout eta_pack writes (an older one had 6)


@lru_cache(maxsize=1024)
def _learnt(packed: str) -> tuple[float, float, int, float]:
    """(log level, mean absolute deviation, cycles this session, variance of the level) from the
    queue's ``eta`` field, "level deviation cycles level_var ..." (``eta_pack`` in lib.lua)."""
    fields = packed.split(" ")
    if len(fields) != PACKED_FIELDS:  # an older layout: the engine learns afresh at the next call
        return NOTHING_LEARNT
    return float(fields[0]), float(fields[1]), int(fields[2]), float(fields[3])


class Estimator:
    """The waits of one queue's state: the per-queue part worked out once, then each position
    costs a few floating-point operations (a big OPD shows 2,000 of them per press)."""

    __slots__ = ("_base", "_c1", "_level_var", "_pause")

    def __init__(self, queue: Mapping[str, Any]) -> None:
        counters = max(int(queue.get("counters_open") or 1), 1)
        m, d, _, level_var = _learnt(queue["eta"]) if queue.get("eta") else NOTHING_LEARNT
        if m <= 0:  # nothing learnt yet: the average service time the engine keeps, or the configured one
            m = math.log(max(float(queue.get("ema_s") or queue.get("avg_service_s") or DEFAULT_AVG_SERVICE_S), 10.0))
            level_var = LEVEL_SPREAD**2
        sigma1 = max(1.25 * d, MIN_SIGMA)  # mean absolute deviation -> standard deviation
        v1 = sigma1 * sigma1
        self._base = math.exp(m + v1 / 2) / counters  # the mean cycle, shared among the counters
        self._c1 = math.expm1(v1)
        self._level_var = level_var + RANGE_SPREAD**2
        self._pause = float(queue.get("pause_left_s") or 0)

    def at(self, ahead: int) -> Eta:
        return Eta(*self._seconds(ahead))

    def fields(self, ahead: int) -> str:
        """A waiting patient's place and wait as JSON members (``"position":…,"eta_high_s":…``),
        as the patient view has them: the hub writes 2,000 of these per press of a big OPD."""
        eta, low, high = self._seconds(ahead)
        return f'"position":{ahead + 1},"ahead":{ahead},"eta_s":{eta},"eta_low_s":{low},"eta_high_s":{high}'

    def _seconds(self, ahead: int) -> tuple[int, int, int]:
        k = ahead + 1
        sum_var = math.log1p(self._c1 / k)
        median = k * self._base * math.exp(-sum_var / 2)
        spread = math.exp(Z80 * math.sqrt(sum_var + self._level_var))
        pause = self._pause
        return round(median + pause), round(median / spread + pause), round(median * spread + pause)


def estimate(ahead: int, queue: Mapping[str, Any]) -> Eta:
    """The wait, in seconds, of a waiting patient with ``ahead`` people before them."""
    return Estimator(queue).at(ahead)


def queue_wait_s(n_waiting: int, queue: Mapping[str, Any]) -> int:
    """What a patient joining now would wait (the TV's and join page's one number)."""
    return Estimator(queue).at(n_waiting).eta_s
