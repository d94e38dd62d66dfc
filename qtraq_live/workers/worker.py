"""``qtraq-live worker``: an RQ worker on ``notify-high`` then ``notify``, with RQ's scheduler.

The worker is RQ's :class:`SimpleWorker` (no fork per job): a send is one short network call,
and forking a work horse for each would cost more than the send itself. RQ still enforces the
job timeout (SIGALRM in the main thread). The scheduler (one per deployment, elected through a
Redis lock) moves retries whose backoff has passed back onto their queue.
"""

from __future__ import annotations

import logging

from rq import Queue, SimpleWorker
from rq.job import Job

from .. import webhooks
from ..abdm import jobs as abdm_jobs
from ..config import Settings
from ..runtime import fastpaths, redis_conn
from . import jobs, push_send  # push_send: pywebpush loaded at start, not at the first push
from .render import QUEUES

log = logging.getLogger(__name__)

# redis-py 8's PubSubWorkerThread.stop(timeout) and RQ 2-3's unsubscribe order (runtime/fastpaths.py)
RQ_STOP = fastpaths.enabled("rq_stop", ("redis", (8, 0), (9, 0)), ("rq", (2, 0), (4, 0)))


class NoticeWorker(SimpleWorker):
    """Declares a job abandoned ``notify.job_timeout_s`` after its timeout, not RQ's fixed 60 s,
    so a notice whose worker was killed is retried (and found "sending") sooner."""

    grace_s = 60

    def get_heartbeat_ttl(self, job: Job, working_time: float = 0.0) -> int:
        return int(job.timeout or self.grace_s) + self.grace_s

    def unsubscribe(self) -> None:
        """Stop listening for RQ's commands without waiting a minute.

        RQ unsubscribes first and then stops its listener thread, which redis-py 8 joins with
        no timeout; when the thread has already read the confirmation it sits in its next
        60 s read, and an idle worker took up to a minute to stop (``serve`` SIGKILLs it
        after 15 s). Clearing the thread's loop first lets the confirmation end it. With
        ``rq_stop`` off (another redis-py or RQ) RQ's own unsubscribe runs."""
        if not RQ_STOP:
            super().unsubscribe()
            return
        if self.pubsub_thread is None or self.pubsub is None:
            return
        log.info("worker %s: unsubscribing from %s", self.name, self.pubsub_channel_name)
        self.pubsub_thread.stop(timeout=0)  # ends the loop after its current read, waits not
        self.pubsub.unsubscribe()  # whose confirmation is that read's end
        self.pubsub_thread.join(timeout=1)
        self.pubsub.close()


def make_worker(settings: Settings) -> NoticeWorker:
    jobs.configure(settings)  # raises ConfigError for a bad channel URL, before any job runs
    abdm_jobs.configure(settings)
    conn = redis_conn.sync_client(settings, decode=False)
    names = (*QUEUES, webhooks.QUEUE)  # notices (and ABDM replies) first, then the hospital system's webhooks
    worker = NoticeWorker([Queue(name, connection=conn) for name in names], connection=conn)
    worker.grace_s = settings["notify.job_timeout_s"]
    return worker


def run_worker(settings: Settings, burst: bool = False) -> bool:
    """Work until SIGTERM (or, with ``burst``, until the queues are empty)."""
    worker = make_worker(settings)
    log.info("notice worker %s on %s", worker.name, ", ".join(q.name for q in worker.queues))
    try:
        return worker.work(burst=burst, with_scheduler=True, logging_level=settings["log_level"].upper())
    finally:
        worker.connection.close()
