"""The ``leadflow rules`` subcommands: ``check``, ``test`` and ``explain`` (arguments parsed by worker.cli)."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from worker.core import Engine
from worker.exceptions import ConfigError, RulesetError
from worker.rules import default_ruleset_path, load_ruleset
from worker.scoring import Model, default_model_path, load_model
from worker.tools.rules._casetest import cases_path_for, fixed_score, format_run, run_cases
from worker.tools.rules._explain import explain, format_explanation, read_event, read_lead, to_json
from worker.tools.rules._lint import check_text, read_sample
from worker.tools.rules._source import parse_for_tools

__all__ = ["run"]


def run(args: argparse.Namespace) -> int:
    """Dispatch ``leadflow rules <action>``; returns the exit code."""
    action: str = args.rules_action
    if action == "check":
        return _check(args)
    if action == "test":
        return _test(args)
    return _explain(args)


def _read(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        msg = f"cannot read the {what} {str(path)!r}: {getattr(exc, 'strerror', None) or exc}"
        raise ConfigError(msg) from exc


def _check(args: argparse.Namespace) -> int:
    path: Path = args.file
    sample = None if args.sample is None else read_sample(args.sample)
    report = check_text(_read(path, "ruleset file"), str(path), sample)
    code = report.exit_code(args.strict)
    if args.format == "json":
        print(json.dumps(report.to_dict(args.strict), indent=2, ensure_ascii=False))
        return code
    if not report.valid:
        print(RulesetError(report.problems))
        return code
    for finding in report.findings:
        print(finding)
    warnings = sum(1 for f in report.findings if f.severity == "warning")
    infos = len(report.findings) - warnings
    verdict = "ok" if code == 0 else "FAILED"
    print(f"{path}: valid; {warnings} warning{'s' * (warnings != 1)}, {infos} info ({verdict})")
    return code


def _model(path: Path | None) -> Model:
    return load_model(path or default_model_path())


def _test(args: argparse.Namespace) -> int:
    rules: Path = args.rules or default_ruleset_path()
    cases: Path = args.cases or cases_path_for(rules)
    try:
        ruleset = load_ruleset(rules)
    except RulesetError as exc:
        print(exc)
        return 2
    run = run_cases(_read(cases, "test case file"), str(cases), ruleset, _model(args.model))
    print(format_run(run))
    return run.exit_code()


def _explain(args: argparse.Namespace) -> int:
    rules: Path = args.rules or default_ruleset_path()
    parsed = parse_for_tools(_read(rules, "ruleset file"), str(rules))
    model = _model(args.model)
    if args.score is not None:
        if not 0 <= args.score <= 1:
            msg = f"--score needs a probability from 0 to 1, got {args.score!r}"
            raise ConfigError(msg)
        model = fixed_score(model, args.score)
    state, history = read_lead(args.lead)
    lead_id = str((state or {}).get("lead_id") or (history[0].lead_id if history else "explained-lead"))
    event = None if args.event is None else read_event(args.event, lead_id)
    one_lead = dataclasses.replace(parsed.ruleset, duplicates=None)  # one lead: no other lead to match it to
    data = explain(parsed, Engine(one_lead, model), state, history, event)
    print(to_json(data) if args.format == "json" else format_explanation(data))
    return 0
