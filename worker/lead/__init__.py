"""The lead contract and per-lead state: the events leadflow reads and writes (:mod:`.events`), the strict parser
(:mod:`.parse`), the state kept per lead and the facts built from it (:mod:`.state`), and stable ids (:mod:`.ids`).

Everything above builds on this package; it imports nothing of leadflow but :mod:`worker.exceptions`.
"""
