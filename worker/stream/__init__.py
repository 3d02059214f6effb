"""The Faust shell: the only part of leadflow that talks to Kafka.

:mod:`.app` wires the app, its topics and tables. Every step (the leads in :mod:`._lead_stage`; routing, the SLA
clock and feedback in :mod:`._route_stages`) is a :class:`~._stage.Stage`: it prepares a batch with the pure core,
then sends it (:mod:`._outbox`), stores its states (:mod:`._tables`) and lets the transport (:mod:`._transport`)
ack it. :mod:`.runner` starts a worker; :mod:`.accounts`, :mod:`.control`, :mod:`.reload`, :mod:`.reader`,
:mod:`.topics` and :mod:`.metrics` are what it follows, reloads, reads, creates and measures.
"""
