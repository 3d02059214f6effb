"""The ``leadflow`` command line: broker, run, produce, intake, backtest, drift, forecast, demo, train, export-training,
score, schema, route."""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from worker.exceptions import LeadflowError

if TYPE_CHECKING:
    from worker.settings import Settings

__all__ = ["main"]

logger = logging.getLogger(__name__)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``leadflow`` console script; returns the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=os.environ.get("LEADFLOW_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("kafka").setLevel(logging.WARNING)  # kafka-python narrates every connection at INFO
    try:
        return int(args.func(args))
    except LeadflowError as exc:
        print(f"leadflow: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="leadflow", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("broker", help="run the embedded Kafka-protocol broker (tansu) in the foreground")
    p.add_argument("--port", type=int, default=9092)
    p.add_argument(
        "--data", type=Path, metavar="DIR", help="keep the broker's data in DIR across restarts (default: in memory)"
    )
    p.set_defaults(func=_cmd_broker)

    p = sub.add_parser("run", help="run the worker (settings from LEADFLOW_* variables; flags override them)")
    p.add_argument("--broker", dest="broker_url", help="bootstrap servers (LEADFLOW_BROKER_URL)")
    p.add_argument("--rules", type=Path, help="ruleset YAML (LEADFLOW_RULES)")
    p.add_argument("--model", type=Path, help="model JSON (LEADFLOW_MODEL)")
    p.add_argument("--state-dir", type=Path, help="RocksDB directory (LEADFLOW_STATE_DIR)")
    p.add_argument("--store", choices=["rocksdb", "memory"], help="state store (LEADFLOW_STORE)")
    p.add_argument("--web-port", type=int, help="port of /metrics (LEADFLOW_WEB_PORT)")
    p.add_argument("--print-settings", action="store_true", help="print the settings (secrets hidden) and exit")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("produce", help="send JSON-lines lead events to the leads topic")
    p.add_argument("file", type=Path, help="JSON lines, one event per line ('-' for standard input)")
    p.add_argument("--broker", dest="broker_url")
    p.add_argument("--topic")
    p.set_defaults(func=_cmd_produce)

    p = sub.add_parser("intake", help="serve web-to-lead: POST /leads forms become lead events (LEADFLOW_INTAKE_*)")
    p.add_argument("--broker", dest="broker_url", help="bootstrap servers (LEADFLOW_BROKER_URL)")
    p.add_argument("--host", dest="intake_host", help="address to listen on (LEADFLOW_INTAKE_HOST)")
    p.add_argument("--port", dest="intake_port", type=int, help="port to listen on (LEADFLOW_INTAKE_PORT)")
    p.set_defaults(func=_cmd_intake)

    p = sub.add_parser("backtest", help="replay a history of lead events through a ruleset (and compare to another)")
    p.add_argument("--rules", type=Path, required=True, metavar="NEW", help="the ruleset to try (YAML)")
    p.add_argument("--against", type=Path, metavar="OLD", help="the ruleset to compare with, e.g. production's")
    _history_arguments(p)
    p.add_argument("--model", type=Path, help="model JSON (LEADFLOW_MODEL)")
    p.add_argument("--outcomes", type=Path, metavar="CSV", help="known outcomes: a lead id and a converted/won column")
    p.add_argument("--html", type=Path, metavar="REPORT.html", help="write a self-contained HTML report with charts")
    p.add_argument("--json", dest="json_out", type=Path, metavar="OUT.json", help="write every number as JSON")
    p.set_defaults(func=_cmd_backtest)

    p = sub.add_parser("drift", help="compare recent decisions' facts with the model's training data (PSI per feature)")
    p.add_argument("--model", type=Path, help="model JSON (LEADFLOW_MODEL; default: the shipped model)")
    _history_arguments(p)
    p.add_argument("--rules", type=Path, help="ruleset YAML (LEADFLOW_RULES); only rules' facts depend on it")
    p.add_argument("--last", type=int, default=10_000, metavar="N", help="the window: the last N decided events")
    p.add_argument("--json", dest="json_out", type=Path, metavar="OUT.json", help="write every number as JSON")
    p.add_argument("--html", type=Path, metavar="OUT.html", help="write the table as an HTML page")
    p.add_argument("--fail-on-drift", action="store_true", help="exit 1 when a feature's PSI is above 0.25")
    p.set_defaults(func=_cmd_drift)

    p = sub.add_parser(
        "forecast", help="the pipeline and forecast from the opportunities and their feedback (topics or files)"
    )
    p.add_argument("--broker", dest="broker_url", metavar="URL", help="read the topics here (LEADFLOW_BROKER_URL)")
    p.add_argument("--rules", type=Path, help="ruleset YAML, for its stages (LEADFLOW_RULES; default: shipped)")
    p.add_argument("--opportunities", type=Path, metavar="FILE", help="JSON lines instead of the topics")
    p.add_argument("--feedback", type=Path, metavar="FILE", help="with --opportunities: the feedback, JSON lines")
    p.add_argument("--decisions", type=Path, metavar="FILE", help="with --opportunities: decisions, for lead counts")
    p.add_argument("--leads", type=Path, metavar="FILE", help="with --decisions: lead events, for lead sources")
    p.add_argument("--json", dest="as_json", action="store_true", help="print the figures as JSON, not tables")
    p.add_argument("--html", type=Path, metavar="REPORT.html", help="write a self-contained HTML report with charts")
    p.set_defaults(func=_cmd_forecast)

    p = sub.add_parser("demo", help="embedded broker + worker + a realistic sample, end to end, with a summary")
    p.add_argument("--leads", type=int, default=2000)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--weeks", type=int, default=6)
    p.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for every decision")
    p.add_argument("--forecast-html", type=Path, metavar="REPORT.html", help="also write the forecast's HTML report")
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("train", help="train the scoring model and export it as JSON")
    p.add_argument("--synthetic", action="store_true", help="train on the seeded synthetic generator")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--leads", type=int, default=4000)
    p.add_argument("--data", type=Path, help="a CRM export of leads with their outcome (CSV, or Parquet)")
    p.add_argument("--mapping", type=Path, help="the export's column mapping (YAML; see docs/MODEL.md)")
    p.add_argument("--out", type=Path, required=True, help="with --synthetic: the model JSON; with --data: a directory")
    p.add_argument(
        "--splits",
        type=int,
        help="repeated stratified splits to evaluate on (default 10; with --data: the mapping's evaluation.splits; "
        "with --synthetic, 0 skips them)",
    )
    p.add_argument(
        "--allow-no-better",
        action="store_true",
        help="write the model and exit 0 even when a baseline does as well as the model",
    )
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser(
        "export-training",
        help="the facts the worker decided on, with the outcome sales reached: a CSV and mapping for train --data",
    )
    p.add_argument(
        "--out", type=Path, required=True, metavar="DIR", help="writes DIR/training.csv and DIR/mapping.yaml"
    )
    p.add_argument("--model", type=Path, help="the live model: its features are the columns (LEADFLOW_MODEL)")
    p.add_argument("--rules", type=Path, help="ruleset YAML, for its stages (LEADFLOW_RULES)")
    p.add_argument(
        "--cutoff",
        type=_moment,
        metavar="TIME",
        help="a lead never converted whose last event is before TIME is a negative (default: 30 days before the "
        "newest lead event)",
    )
    p.add_argument("--converted-only", action="store_true", help="leave out the leads that never converted")
    p.add_argument("--broker", dest="broker_url", metavar="URL", help="to read the topics (LEADFLOW_BROKER_URL)")
    for name, what in (
        ("leads", "lead events"),
        ("opportunities", "opportunity.created records"),
        ("feedback", "opportunity feedback"),
        ("decisions", "decisions (optional: for the live scores of leads never converted)"),
    ):
        p.add_argument(f"--{name}", type=Path, metavar="FILE", help=f"JSON lines of {what}, instead of the topic")
    p.set_defaults(func=_cmd_export_training)

    p = sub.add_parser("score", help="score one lead with a model and show the factors behind the score")
    p.add_argument("--lead", type=Path, required=True, help="JSON (fields, an event or a state) or JSON-lines events")
    p.add_argument("--model", type=Path, help="model JSON (default: the shipped model)")
    p.add_argument("--top", type=int, default=5, help="how many factors to show (default 5)")
    p.set_defaults(func=_cmd_score)

    p = sub.add_parser("schema", help="write the JSON Schemas of the event contract")
    p.add_argument("--out", type=Path, default=Path("schemas"))
    p.add_argument("--check", action="store_true", help="exit 1 if the files on disk differ")
    p.set_defaults(func=_cmd_schema)

    _rules_parser(sub)
    _model_parser(sub)
    _route_parser(sub)
    return parser


def _history_arguments(p: argparse.ArgumentParser) -> None:
    """``--events FILE`` or ``--topic T [--broker URL]``: the history ``backtest`` and ``drift`` replay."""
    history = p.add_mutually_exclusive_group(required=True)
    history.add_argument("--events", type=Path, metavar="FILE", help="JSON lines, one lead event per line")
    history.add_argument("--topic", help="a topic read from its beginning to its end, without a consumer group")
    p.add_argument("--broker", dest="broker_url", metavar="URL", help="for --topic (LEADFLOW_BROKER_URL)")


def _publish_parser(actions: argparse._SubParsersAction[argparse.ArgumentParser], kind: str, what: str) -> None:
    p = actions.add_parser(
        "publish", help=f"validate a {kind} and publish it on the control topic: every running worker switches to it"
    )
    p.add_argument("file", type=Path, help=what)
    p.add_argument("--broker", dest="broker_url", help="bootstrap servers (LEADFLOW_BROKER_URL)")
    p.add_argument("--control-topic", dest="topic_control", help="control topic (LEADFLOW_TOPIC_CONTROL)")
    p.set_defaults(func=_cmd_publish, kind=kind)


def _model_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``leadflow model publish``."""
    model = sub.add_parser("model", help="publish a model to running workers")
    _publish_parser(model.add_subparsers(dest="model_action", required=True), "model", "model JSON")


def _route_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``leadflow route explain``."""
    route = sub.add_parser("route", help="explain how leads were routed, from the routing-decisions topic")
    actions = route.add_subparsers(dest="route_action", required=True)
    p = actions.add_parser(
        "explain", help="read the routing-decisions topic and say why a lead's opportunity went where it went"
    )
    p.add_argument("--lead", metavar="LEAD_ID", help="the lead whose routing decisions to explain")
    p.add_argument("--opportunity", metavar="OPP_ID", help="the opportunity (alone, or to narrow --lead)")
    p.add_argument("--broker", dest="broker_url", metavar="URL", help="bootstrap servers (LEADFLOW_BROKER_URL)")
    p.add_argument("--json", dest="as_json", action="store_true", help="print the decisions as JSON")
    p.set_defaults(func=_cmd_route_explain)


def _rules_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``leadflow rules check|test|explain`` (docs/RULES-TOOLING.md)."""
    rules = sub.add_parser("rules", help="check, test and explain a ruleset (docs/RULES-TOOLING.md)")
    rules.set_defaults(func=_cmd_rules)
    actions = rules.add_subparsers(dest="rules_action", required=True)
    p = actions.add_parser("check", help="validate a ruleset, then lint it; exit 0 clean, 1 warnings, 2 invalid")
    p.add_argument("file", type=Path, help="ruleset YAML")
    p.add_argument("--sample", type=Path, help="JSON-lines lead events: report rule fields that none of them sets")
    p.add_argument("--format", choices=["text", "json"], default="text")
    p.add_argument("--strict", action="store_true", help="exit 1 on info findings too (overlaps, too complex)")
    p = actions.add_parser("test", help="run the YAML test cases of a ruleset; exit 1 on a failure, 2 if invalid")
    p.add_argument("rules", type=Path, nargs="?", help="ruleset YAML (default: the shipped default ruleset)")
    p.add_argument("--cases", type=Path, help="test cases YAML (default: <rules>.tests.yaml next to the ruleset)")
    p.add_argument("--model", type=Path, help="model JSON for cases without a fixed score (default: shipped model)")
    p = actions.add_parser("explain", help="show rule by rule why a lead got its points, status and action")
    p.add_argument(
        "--lead",
        type=Path,
        required=True,
        help="the lead: YAML/JSON (as in test cases, or a stored "
        "state) or JSON lines of its events (the last one is explained)",
    )
    p.add_argument("--rules", type=Path, help="ruleset YAML (default: the shipped default ruleset)")
    p.add_argument("--event", help="the event to decide: a file or inline YAML such as '{activity: demo_request}'")
    p.add_argument("--score", type=float, help="use this model score (0 to 1) instead of the model's")
    p.add_argument("--model", type=Path, help="model JSON (default: the shipped model)")
    p.add_argument("--format", choices=["text", "json"], default="text")
    _publish_parser(actions, "ruleset", "ruleset YAML")


def _cmd_broker(args: argparse.Namespace) -> int:
    """Run tansu until it exits (its code) or we are stopped by SIGINT or SIGTERM (0, tansu stopped first)."""
    from worker.tools.broker import start_broker  # keep `leadflow --help` fast

    for signum in (signal.SIGINT, signal.SIGTERM):  # SIGINT too: a background job inherits it ignored
        signal.signal(signum, _interrupt)  # either stops the broker, and leaves nothing running
    broker = None
    try:
        broker = start_broker(args.port, quiet=False, data_dir=args.data)
        where = f"data in {args.data}" if args.data is not None else "in memory"
        print(f"embedded broker ready: LEADFLOW_BROKER_URL={broker.url}  ({where}; Ctrl-C stops it)", flush=True)
        return broker.process.wait()
    except KeyboardInterrupt:
        return 0  # asked to stop (while starting too: start_broker stops what it started)
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, signal.SIG_IGN)  # a second signal must not cut the stop short
        if broker is not None:
            broker.stop()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _settings(args: argparse.Namespace) -> Settings:
    from worker.settings import settings_from

    overrides = {
        k: v
        for k in (
            "broker_url",
            "rules",
            "model",
            "state_dir",
            "store",
            "web_port",
            "topic",
            "topic_control",
            "intake_host",
            "intake_port",
        )
        if (v := getattr(args, k, None)) is not None
    }
    if "topic" in overrides:
        overrides["topic_leads"] = overrides.pop("topic")
    return settings_from(**overrides)


def _cmd_run(args: argparse.Namespace) -> int:
    from worker.stream.runner import run_worker

    settings = _settings(args)
    if args.print_settings:
        for key, value in settings.dump().items():
            print(f"{key} = {value!r}")
        return 0
    return run_worker(settings)


def _cmd_produce(args: argparse.Namespace) -> int:
    from worker.tools.produce import produce_file

    settings = _settings(args)
    sent = produce_file(settings, args.file)
    print(f"sent {sent:,} events to {settings.topic_leads!r}")
    return 0


def _cmd_intake(args: argparse.Namespace) -> int:
    from worker.tools.intake import run_intake

    return run_intake(_settings(args))


def _cmd_backtest(args: argparse.Namespace) -> int:
    from worker.engine import tune_gc
    from worker.tools.backtest import run_backtest

    settings = _settings(args)
    # as in the worker: a replay keeps every lead's state, which Python's default collector rescans over and over
    # (docs/PERFORMANCE.md, "Backtest of 10^6 events")
    tune_gc(settings.gc_threshold)
    run_backtest(
        settings=settings,
        rules=args.rules,
        against=args.against,
        events=args.events,
        topic=args.topic,
        model=args.model,
        outcomes=args.outcomes,
        html=args.html,
        json_out=args.json_out,
    )
    return 0


def _cmd_drift(args: argparse.Namespace) -> int:
    from worker.engine import tune_gc
    from worker.tools.drift import run_drift

    settings = _settings(args)
    tune_gc(settings.gc_threshold)  # a replay of the history, as in ``leadflow backtest``
    return run_drift(
        settings,
        events=args.events,
        topic=args.topic,
        last=args.last,
        json_out=args.json_out,
        html_out=args.html,
        fail_on_drift=args.fail_on_drift,
    )


def _cmd_forecast(args: argparse.Namespace) -> int:
    from worker.tools.forecast import ForecastFiles, run_forecast

    files = None
    if args.opportunities is not None:
        files = ForecastFiles(args.opportunities, args.feedback, args.decisions, args.leads)
    elif any(getattr(args, name) is not None for name in ("feedback", "decisions", "leads")):
        print("leadflow: error: --feedback, --decisions and --leads go with --opportunities FILE", file=sys.stderr)
        return 2
    run_forecast(_settings(args), files, as_json=args.as_json, html=args.html)
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from worker.tools.demo import run_demo

    return run_demo(
        leads=args.leads, seed=args.seed, weeks=args.weeks, timeout=args.timeout, forecast_html=args.forecast_html
    )


def _cmd_train(args: argparse.Namespace) -> int:
    from worker.scoring.training import DEFAULT_SPLITS, train_synthetic, train_table

    if args.synthetic == (args.data is not None):
        print("leadflow: error: train needs either --synthetic or --data FILE --mapping MAPPING.yaml", file=sys.stderr)
        return 2
    if args.data is not None:
        if args.mapping is None:
            print("leadflow: error: --data needs --mapping MAPPING.yaml (see docs/MODEL.md)", file=sys.stderr)
            return 2
        if args.splits is not None and args.splits < 1:
            print(f"leadflow: error: --splits must be at least 1, got {args.splits}", file=sys.stderr)
            return 2
        table = train_table(args.data, args.mapping, args.out, splits=args.splits, allow_no_better=args.allow_no_better)
        print(table)
        return 3 if table.withheld else 0
    if args.splits is not None and args.splits < 0:
        print(f"leadflow: error: --splits must be 0 or more with --synthetic, got {args.splits}", file=sys.stderr)
        return 2
    splits = DEFAULT_SPLITS if args.splits is None else args.splits
    report = train_synthetic(
        seed=args.seed, n_leads=args.leads, out=args.out, splits=splits, allow_no_better=args.allow_no_better
    )
    print(report)
    return 3 if report.withheld else 0


def _moment(text: str) -> dt.datetime:
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        msg = f"expected an ISO date or time such as 2026-10-01 or 2026-10-01T12:00:00+00:00, got {text!r}"
        raise argparse.ArgumentTypeError(msg) from None


def _cmd_export_training(args: argparse.Namespace) -> int:
    from worker.tools.export_training import Inputs, run_export

    run_export(
        _settings(args),
        out=args.out,
        inputs=Inputs(args.leads, args.opportunities, args.feedback, args.decisions),
        model_path=args.model,
        rules=args.rules,
        cutoff=args.cutoff,
        converted_only=args.converted_only,
    )
    return 0


def _cmd_score(args: argparse.Namespace) -> int:
    from worker.scoring import default_model_path, explain_lead

    print(explain_lead(args.lead, args.model or default_model_path(), top=args.top))
    return 0


def _cmd_schema(args: argparse.Namespace) -> int:
    from worker.tools.schema import write_schemas

    changed = write_schemas(args.out, check=args.check)
    if args.check and changed:
        print(f"leadflow: schemas out of date: {', '.join(changed)}; run 'leadflow schema --out {args.out}'")
        return 1
    return 0


def _cmd_rules(args: argparse.Namespace) -> int:
    from worker.tools.rules import run_cli

    return run_cli(args)


def _cmd_route_explain(args: argparse.Namespace) -> int:
    from worker.tools.route_explain import run_route_explain

    if args.lead is None and args.opportunity is None:
        print("leadflow: error: route explain needs --lead LEAD_ID or --opportunity OPP_ID", file=sys.stderr)
        return 2
    return run_route_explain(_settings(args), args.lead, args.opportunity, args.as_json, sys.stdout, sys.stderr)


def _cmd_publish(args: argparse.Namespace) -> int:
    from worker.stream.control import publish

    settings = _settings(args)
    version = publish(settings, args.kind, args.file)
    print(f"published {args.kind} {version} on {settings.topic_control!r}: running workers switch to it")
    return 0
