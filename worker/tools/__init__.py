"""The command-line tools around the worker: backtests (:mod:`.backtest`), the ruleset tools (:mod:`.rules`:
check, test, explain), drift, route explain, the demo, produce, the embedded broker and the JSON Schemas.

Tools build on the core and on the stream shell's readers; nothing below imports them.
"""
