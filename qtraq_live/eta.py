"""The wait a patient is shown: a point estimate and a range meant to hold 80 % of the time.

The engine learns, per queue, the log of a counter's *cycle* (the time between two calls, times
the counters open: a consultation plus the changeover) as a clipped moving average ``eta_m``,
with the mean absolute deviation of log cycles ``eta_d`` and the number of cycles seen this
session ``eta_n`` (see ``learn_gap`` in ``lua/engine/lib.lua``). From these this module derives,
in constant time and from the state alone (a view never depends on when it is read, so every
copy of a view agrees):

- the wait of a patient with ``ahead`` people before them: ``ahead + 1`` cycles shared among the
  open counters (a patient moves up when somebody is called, and a consultation then starts). Cycles are log-normal; their sum is approximated by another
  log-normal (Fenton-Wilkinson), whose median is the point estimate (the median is what keeps
  the absolute error smallest);
- the range: the 10th to the 90th percentile of that sum, widened by how unsure the level is
  (less as the session's cycles are seen, never nothing: doctors change pace).

``docs/eta.md`` explains the method; ``benchmarks/eta.py`` measures it on consultation logs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, NamedTuple

Z80 = 1.2816  # standard normal 90th percentile: 10th..90th percentile = an 80 % range
LEVEL_SPREAD = 0.45  # log-sd of a level learnt from no cycle of this session
LEVEL_DRIFT = 0.2  # log-sd a level keeps however many cycles were seen (pace changes)
MIN_SIGMA = 0.1


class Eta(NamedTuple):
    eta_s: int
    low_s: int
    high_s: int


def estimate(ahead: int, queue: Mapping[str, Any]) -> Eta:
    """The wait, in seconds, of a waiting patient with ``ahead`` people before them."""
    counters = max(int(queue.get("counters_open") or 1), 1)
    pause = float(queue.get("pause_left_s") or 0)
    m = float(queue.get("eta_m") or 0)
    if m <= 0:  # nothing learnt yet: the configured (or averaged) service time
        m = math.log(max(float(queue.get("ema_s") or queue.get("avg_service_s") or 300), 10.0))
    d = float(queue.get("eta_d") or 0) or 0.45
    n = int(queue.get("eta_n") or 0)
    k = ahead + 1
    sigma1 = max(1.25 * d, MIN_SIGMA)  # mean absolute deviation -> standard deviation
    v1 = sigma1 * sigma1
    sum_var = math.log1p(math.expm1(v1) / k)
    median = k * math.exp(m + v1 / 2 - sum_var / 2) / counters
    spread = Z80 * math.sqrt(sum_var + LEVEL_SPREAD**2 / (n + 1) + LEVEL_DRIFT**2)
    return Eta(round(median + pause), round(median * math.exp(-spread) + pause),
               round(median * math.exp(spread) + pause))


def queue_wait_s(n_waiting: int, queue: Mapping[str, Any]) -> int:
    """What a patient joining now would wait (the TV's and join page's one number)."""
    return estimate(n_waiting, queue).eta_s
