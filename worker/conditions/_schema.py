"""The pieces of the YAML models that rules and routing share: constrained names and ids, and the strict base model."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints

__all__ = ["PATTERN_HINTS", "Name", "RuleId", "StrictDoc", "Text"]

Name = Annotated[str, StringConstraints(min_length=1, max_length=100)]
RuleId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$")]
Text = Annotated[str, StringConstraints(max_length=2000)]

PATTERN_HINTS = {
    "version": 'a version like "1.0" (letters, digits, ".", "-" and "_"; quote it)',
    "id": "an id of letters, digits, '-', '_', '.' or ':' (at most 100)",
    "activity_types": "an activity type in lower case like 'trial_signup'",
    "name": "a pool name of letters, digits, '_', '.' or '-' starting with a letter or digit (at most 64)",
}
"""What a value that fails a pattern should look like, by key (for error messages)."""


class StrictDoc(BaseModel):
    """One mapping of the YAML: unknown keys, loose types and non-finite numbers are errors."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)
