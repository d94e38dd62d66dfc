"""Processes and what they run on: the supervisor (``server``), the duties process, child
processes, embedded Redis, Redis clients, the stream-consumer runner, logging, the GC policy,
the fast-path switches, one-shot commands, seeding and the demo.
"""
