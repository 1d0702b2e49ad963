"""Detection between the pure core and the outside world, with no faust import.

``tables`` says how detection rows become store rows and topic records; ``queries`` reads
what the store holds (an account's interactions for a rebuild, a woken thread, the stored
detection rows, the per-minute rollup); ``engine`` keeps the per-account states of one
worker and turns batches and sweeps into writes. The faust wiring is
``streams/agents/detect.py``.
"""
