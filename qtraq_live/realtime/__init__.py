"""The real-time side: the hub's socket index and sending, its WebSocket endpoints, a clinic's in-
memory mirror and the WebSocket protocol uvicorn runs.

The fan-out itself is ``qtraq_live/hub.py``.
"""
