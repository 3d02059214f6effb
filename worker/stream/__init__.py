"""The Faust shell: the only part of leadflow that talks to Kafka.

:mod:`.app` wires the agents; each step (lead, route, SLA, feedback) prepares a batch with the pure core and then
sends, stores and commits it. :mod:`.runner` starts a worker, :mod:`._transport` is the Kafka transport, and
:mod:`.accounts`, :mod:`.control`, :mod:`.reload`, :mod:`.reader`, :mod:`.topics` and :mod:`.metrics` are what it
reads, follows, creates and measures.
"""
