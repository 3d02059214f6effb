"""The two things a running worker can switch without a restart, a ruleset and a model, compiled from their text.

Both the control topic (:mod:`worker.stream.control`) and the hot reload (:mod:`worker.stream.reload`) handle them
the same way: compile the text (refusing it with every problem named), then swap it into a new
:class:`~worker.core.Engine`.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from worker.conditions import activity_part, check_field
from worker.core import Engine
from worker.exceptions import ModelError
from worker.rules import Ruleset, parse_ruleset
from worker.scoring import Model, model_from_text

__all__ = [
    "KINDS",
    "Artifact",
    "ArtifactKind",
    "check_servable",
    "compile_artifact",
    "parse_model",
    "swap",
    "version_in",
]

ArtifactKind = Literal["ruleset", "model"]
KINDS: tuple[ArtifactKind, ...] = ("ruleset", "model")
Artifact = Ruleset | Model


def compile_artifact(kind: ArtifactKind, text: str, name: str) -> Artifact:
    """A ruleset or model from its text; raises RulesetError or ModelError naming ``name`` and what is wrong."""
    if kind == "ruleset":
        return parse_ruleset(text, name)
    return parse_model(text, name)


def parse_model(text: str, name: str) -> Model:
    """A model from its JSON text, refused when it reads a fact that the worker's stream cannot provide."""
    return check_servable(model_from_text(text, name), name)


def check_servable(model: Model, name: str) -> Model:
    """``model``, or ModelError when one of its features reads a fact that the worker's stream cannot provide."""
    paths = [path for f in model.features for path in getattr(f, "paths", (f.path,))]  # a cross reads two facts
    problems = [p for p in (_unservable(path) for path in dict.fromkeys(paths)) if p is not None]
    if problems:
        msg = f"{name}: the worker cannot provide what this model reads: " + "; ".join(problems)
        raise ModelError(msg)
    return model


def _unservable(path: str) -> str | None:
    """Why the worker's facts never hold ``path``, or None when they can."""
    check = check_field(path)
    if check.kind is None:
        hint = f" (did you mean {check.suggestion!r}?)" if check.suggestion else ""
        return f"feature reads {path!r}: {check.message}{hint}"
    part = activity_part(path)
    if part is not None and part[1] not in ("count", "last_at"):
        return (
            f"feature reads {path!r}, which rules can compute but the model's facts do not carry;"
            f" train on 'activity.{part[0]}.count' or 'activity.{part[0]}.last_at' instead"
        )
    return None


def swap(engine: Engine, artifact: Artifact) -> Engine:
    """A new engine with ``artifact`` in place of the ruleset or model it replaces."""
    if isinstance(artifact, Ruleset):
        return dataclasses.replace(engine, ruleset=artifact)
    return dataclasses.replace(engine, model=artifact)


def version_in(engine: Engine, kind: ArtifactKind) -> str:
    """The version of the engine's ruleset or model."""
    return engine.ruleset.version if kind == "ruleset" else engine.model.version
