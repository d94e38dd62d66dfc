"""The queue engine's helpers: the live state's description and the live reads the engine owns, the
wait estimate, the scrape-time queue figures, every Redis key name.

The engine itself is ``qtraq_live/queue_engine.py`` with its Lua in ``qtraq_live/lua/engine/``.
"""
