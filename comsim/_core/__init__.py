"""comsim's sans-IO core: COM's rules as plain synchronous code.

Nothing in this package imports anyio, asyncio or threading, or reads a clock; time enters as
data. The runtime (``comsim._runtime``) feeds inputs and carries out the effects.
"""
