"""Feature extraction: the same values for training and serving, whatever the CRM sends."""

from __future__ import annotations

import math

import pytest

from worker.exceptions import ModelError
from worker.scoring._features import (
    MISSING,
    OTHER,
    Categorical,
    FreeEmail,
    Keyword,
    Numeric,
    default_features,
    feature_from_dict,
)


@pytest.mark.parametrize(
    ("title", "level"),
    [
        ("Chief Technology Officer", "c-level"),
        ("Founder & CEO", "c-level"),
        ("Co-Founder", "c-level"),
        ("Owner", "c-level"),
        ("President", "c-level"),
        ("Vice President, Sales", "vp"),
        ("SVP Marketing", "vp"),
        ("VP of IT", "vp"),
        ("Director of Engineering", "director"),
        ("Head of Operations", "director"),
        ("Senior Marketing Manager", "manager"),
        ("Software Engineer", "other"),
        ("Conductor", "other"),  # contains "cto" but not as a word
        ("   ", MISSING),
        (None, MISSING),
    ],
)
def test_title_seniority(title: str | None, level: str) -> None:
    feature = Keyword("title_seniority", "title", "title seniority")
    assert feature.value({"title": title}) == level
    assert sum(feature.encode({"title": title})) == 1.0


def test_free_email_domains() -> None:
    feature = FreeEmail("free_email", "email", "free email domain")
    assert feature.value({"email": "Jane.Doe@Gmail.com "})
    assert not feature.value({"email": "jane@acme.com"})
    assert not feature.value({})
    assert feature.describe({}) == "free email domain: no email"


def test_categorical_normalises_and_groups_rare_values() -> None:
    feature = Categorical(
        "lead_source", "lead_source", "lead source", levels=("web", "referral"), display=("Web", "Referral")
    )
    assert feature.value({"lead_source": " WEB "}) == "web"
    assert feature.value({"lead_source": "Carrier Pigeon"}) == OTHER
    assert feature.value({"lead_source": ""}) == MISSING
    assert feature.value({}) == MISSING
    assert feature.encode({"lead_source": "referral"}) == [0.0, 1.0, 0.0, 0.0]
    assert feature.describe({"lead_source": "REFERRAL"}) == "lead source = Referral"
    assert feature.describe({"lead_source": "Carrier Pigeon "}) == "lead source = Carrier Pigeon"


def test_numeric_missing_clip_and_log() -> None:
    feature = Numeric(
        "n", "n", "employees", transform="log1p", clip=(0.0, 1000.0), missing=50.0, missing_indicator=True
    )
    assert feature.encode({"n": 9}) == [math.log1p(9), 0.0]
    assert feature.encode({"n": 10**6}) == [math.log1p(1000), 0.0]
    assert feature.encode({"n": -5}) == [0.0, 0.0]
    for missing in ({}, {"n": None}, {"n": "12"}, {"n": True}, {"n": float("nan")}):
        assert feature.encode(missing) == [math.log1p(50), 1.0]
    assert feature.describe({"n": 1200}) == "employees: 1,200"
    assert feature.describe({}) == "employees: unknown"


def test_default_features_are_small_and_round_trip() -> None:
    features = default_features()
    assert 15 <= len(features) <= 25
    assert len({f.name for f in features}) == len(features)
    for i, feature in enumerate(features):
        assert feature_from_dict(feature.to_dict(), f"features[{i}]") == feature


def test_bad_spec_names_the_feature() -> None:
    with pytest.raises(ModelError, match=r"features\[2\]: 'label' must be a non-empty string, got None"):
        feature_from_dict({"kind": "numeric", "name": "x", "path": "x", "clip": [0, 1]}, "features[2]")
    with pytest.raises(ModelError, match="log1p needs clip lo > -1"):
        feature_from_dict(
            {"kind": "numeric", "name": "x", "path": "x", "label": "x", "transform": "log1p", "clip": [-5, 1]},
            "features[0]",
        )


def test_factor_words_for_unknown_values_flags_and_inactivity() -> None:
    from worker.scoring._features import Flag

    source = Categorical(
        "lead_source", "lead_source", "lead source", levels=("web",), missing_values=frozenset({"select"})
    )
    assert source.describe({"lead_source": "Select"}) == "lead source: unknown"
    assert source.describe({"lead_source": "Fax"}) == "lead source = Fax"
    flag = Flag("custom.do_not_call", "custom.do_not_call", "do not call")
    assert [flag.describe({"custom.do_not_call": v}) for v in (True, "No", 1, "maybe")] == [
        "do not call: yes",
        "do not call: no",
        "do not call: yes",
        "do not call: unknown",
    ]
    idle = Numeric("idle", "days_since_last_activity", "days since last activity", clip=(0.0, 365.0))
    assert idle.describe({"days_since_last_activity": 30.4}) == "no activity in 30 days"
    assert idle.describe({"days_since_last_activity": 0.2}) == "active in the last day"
    assert idle.describe({"days_since_last_activity": None}) == "no activity yet"
