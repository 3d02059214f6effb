"""The event contract: what producers send on ``leads`` and what leadflow emits.

These pydantic models are the source of truth; ``schemas/*.schema.json`` is generated from them
(``leadflow schema --out schemas``) and a test fails when the two drift apart.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
)
from pydantic_core import PydanticCustomError

from worker.exceptions import DeadLetterReason

__all__ = [
    "ACTIONS",
    "KNOWN_ACTIVITY_TYPES",
    "Account",
    "AccountRecord",
    "Activity",
    "Contact",
    "DeadLetterHeaders",
    "DeadLetterReason",
    "Decision",
    "Factor",
    "LeadActivity",
    "LeadErased",
    "LeadErasure",
    "LeadEvent",
    "LeadFields",
    "LeadMatched",
    "LeadMerged",
    "LeadUpserted",
    "LeadsRecord",
    "OpportunityAccepted",
    "OpportunityClosed",
    "OpportunityCreated",
    "OpportunityFeedback",
    "OpportunityUpdated",
    "RoutingCandidate",
    "RoutingDecision",
    "RoutingSummary",
]

SCHEMA_VERSION = 1

KNOWN_ACTIVITY_TYPES = (
    "page_view",
    "email_open",
    "email_click",
    "form_submit",
    "content_download",
    "webinar_attended",
    "demo_request",
    "chat",
    "call",
    "meeting",
    "email_bounced",
    "unsubscribe",
)
"""Activity types with a documented meaning; others matching ``ActivityType`` are accepted too."""

ACTIONS = ("none", "status_changed", "converted", "disqualified", "merged")

NO_CONTROLS = r"^[^\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]+$"
"""No control characters (C0, DEL, C1) and no bidirectional controls: an id must print as what it is."""
Id = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=NO_CONTROLS)]
ShortText = Annotated[str, StringConstraints(max_length=255)]
ACTIVITY_TYPE = r"^[a-z][a-z0-9_]{0,63}$"
"""An activity type: lower-case letters, digits and underscores, a letter first, at most 64."""
ActivityType = Annotated[str, StringConstraints(pattern=ACTIVITY_TYPE)]
Action = Literal["none", "status_changed", "converted", "disqualified", "merged"]

INT_RANGE = (-(2**63), 2**63 - 1)
"""Integers the contract accepts in ``custom`` (64-bit, what every JSON library and Kafka consumer can hold)."""
MAX_EMPLOYEES = 10**9
MAX_REVENUE = 1e18
MAX_CUSTOM_FIELDS = 200
"""``custom`` keys in one event."""
MAX_CUSTOM_TEXT = 2000
"""Characters in one ``custom`` text value."""


_CUSTOM_VALUE = "custom_value"  # the error type pydantic reports


def _custom_value(value: object, handler: ValidatorFunctionWrapHandler) -> object:
    """One ``custom`` value: a union whose every member failing would say four things; say one, precisely.

    An integer beyond 64 bits is refused rather than left to become a float (which would lose its digits).
    """
    if value.__class__ is int and not INT_RANGE[0] <= value <= INT_RANGE[1]:
        msg = f"integer out of the 64-bit range [{INT_RANGE[0]}, {INT_RANGE[1]}]"
        raise PydanticCustomError(_CUSTOM_VALUE, msg)
    try:
        return handler(value)
    except ValidationError as exc:
        kinds = {error["type"] for error in exc.errors(include_url=False, include_input=False)}
        if "string_too_long" in kinds:
            msg = f"text longer than {MAX_CUSTOM_TEXT} characters"
        elif "finite_number" in kinds:
            msg = "number is not finite (NaN or beyond the range of a double)"
        else:
            msg = f"{type(value).__name__} is not a scalar; expected a text, a number, true/false or null"
        raise PydanticCustomError(_CUSTOM_VALUE, msg) from None


Scalar = Annotated[
    Annotated[str, StringConstraints(max_length=MAX_CUSTOM_TEXT)]
    | Annotated[int, Field(ge=INT_RANGE[0], le=INT_RANGE[1])]
    | Annotated[float, Field(allow_inf_nan=False)]
    | bool
    | None,
    WrapValidator(_custom_value),
]


Time = Annotated[
    AwareDatetime,
    Field(ge=dt.datetime(1, 1, 1, tzinfo=dt.UTC), le=dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC)),
]
"""An RFC 3339 time whose UTC instant falls within the years 1 to 9999 (so that it converts and stores)."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LeadFields(_Model):
    """Salesforce-style lead fields in snake_case. Absent means unchanged, an explicit null clears."""

    first_name: ShortText | None = None
    last_name: ShortText | None = None
    company: ShortText | None = None
    email: ShortText | None = None
    phone: Annotated[str, StringConstraints(max_length=64)] | None = None
    title: ShortText | None = None
    status: ShortText | None = None
    lead_source: ShortText | None = None
    rating: ShortText | None = Field(default=None, description="Hot, Warm or Cold in most orgs")
    industry: ShortText | None = None
    annual_revenue: Annotated[float, Field(ge=0, le=MAX_REVENUE, allow_inf_nan=False)] | None = None
    number_of_employees: Annotated[int, Field(ge=0, le=MAX_EMPLOYEES)] | None = None
    country: ShortText | None = None
    state: ShortText | None = None
    city: ShortText | None = None
    website: ShortText | None = None
    owner_id: ShortText | None = None
    has_opted_out_of_email: bool | None = Field(default=None, description="The lead asked not to be emailed")
    do_not_call: bool | None = Field(default=None, description="The lead asked not to be called")
    custom: (
        Annotated[
            dict[Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=NO_CONTROLS)], Scalar],
            Field(max_length=MAX_CUSTOM_FIELDS),
        ]
        | None
    ) = Field(
        default=None,
        description=(
            "Org-specific scalar fields; merged key by key, a null value removes the key. At most"
            f" {MAX_CUSTOM_FIELDS} keys, texts of at most {MAX_CUSTOM_TEXT} characters, finite numbers, integers"
            " within 64 bits"
        ),
    )


class Activity(_Model):
    """One engagement: a page view, a form, a webinar, a meeting..."""

    type: ActivityType = Field(description=f"one of {', '.join(KNOWN_ACTIVITY_TYPES)}, or your own")
    detail: Annotated[str, StringConstraints(max_length=2000)] | None = None
    count: Annotated[int, Field(ge=1, le=1_000_000)] = 1


def _integer(value: object) -> object:
    """``true`` and ``1.0`` equal 1 to Python; the contract's version is the integer 1, nothing that equals it."""
    if value.__class__ is not int:
        msg = f"schema_version must be the integer 1, not {type(value).__name__} {value!r:.20}"
        raise ValueError(msg)
    return value


class _Envelope(_Model):
    schema_version: Annotated[Literal[1], BeforeValidator(_integer)] = 1
    event_id: Id = Field(description="Producer-chosen, unique; a replay with the same id is applied once")
    occurred_at: Time = Field(description="RFC 3339 with an offset; its UTC instant within the years 1 to 9999")
    lead_id: Id = Field(description="Also the record key on the leads topic")


class LeadUpserted(_Envelope):
    """A lead was created or some of its fields changed."""

    event_type: Literal["lead.upserted"]
    lead: LeadFields


class LeadActivity(_Envelope):
    """A lead engaged."""

    event_type: Literal["lead.activity"]
    activity: Activity


class LeadErased(_Envelope):
    """The lead asked to be forgotten (GDPR art. 17, CCPA): leadflow deletes everything it holds about it.

    Its state is deleted (a tombstone in the state's changelog), one :class:`LeadErasure` record goes to
    ``lead-decisions``, and the lead's later events start from nothing. See docs/PRIVACY.md.
    """

    event_type: Literal["lead.erased"]


MatchKey = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32}$")]


class LeadMatched(_Envelope):
    """Internal: the worker's match step answers a lead's claim of a match key (see docs/RULES.md, duplicates).

    Written by the worker only, on the partition of ``leads`` that holds the lead's own records (so the worker needs
    Write on ``leads``). ``survivor_id`` equal to ``lead_id``: the lead claimed the key first, it survives; another
    lead: this lead is its duplicate. The worker applies an answer only to a claim the lead made and that is still
    unanswered: a forged one can at most answer a pending claim early (see docs/RULES.md).
    """

    event_type: Literal["lead.matched"]
    match_key: MatchKey = Field(description="The claimed key (32 hex digits of a SHA-256; no plain personal data)")
    survivor_id: Id = Field(description="The lead that claimed the key first")
    survivor_partition: Annotated[int, Field(ge=0, le=1_000_000)] = Field(
        description="The partition of leads that holds the survivor's records (where its engagement is forwarded)"
    )


LeadEvent = Annotated[LeadUpserted | LeadActivity, Field(discriminator="event_type")]
"""An event that changes a lead (what the rules tools read)."""
LeadsRecord = Annotated[LeadUpserted | LeadActivity | LeadErased | LeadMatched, Field(discriminator="event_type")]
"""Anything the ``leads`` topic carries: a lead's events, its erasure, and the match step's answers (internal)."""


class Factor(_Model):
    """One signed contribution to the score's log-odds, in words a rep understands."""

    feature: str
    label: str = Field(description="e.g. 'lead_source = Reference (+1.20)'")
    contribution: float


class Decision(_Model):
    """What leadflow decided about one event (topic ``lead-decisions``, key = lead_id).

    One per event id and lead: an event whose id the lead's state already holds (a replay) gets none, since its
    decision was sent before the state that holds its id was stored. An event re-delivered after a crash before
    its state was stored is decided again: the same ``decision_id`` and the same content, but ``decided_at``.
    Likewise one per wake-up time and lead for a decision that time triggers (``trigger: time``).
    """

    schema_version: Literal[1] = 1
    decision_id: str = Field(description="Deterministic from lead_id and event_id: drop duplicates by it")
    event_id: str
    lead_id: str
    decided_at: AwareDatetime
    occurred_at: AwareDatetime
    status: str
    previous_status: str
    points: float
    score: float = Field(ge=0, le=1, description="Probability of conversion from the model")
    factors: list[Factor]
    matched_rules: list[str]
    action: Action
    opportunity_id: str | None = None
    duplicate_of: str | None = Field(
        default=None, description="The surviving lead when this lead is a duplicate (it never converts)"
    )
    trigger: Literal["event", "time"] = Field(
        default="event",
        description=(
            "What made leadflow decide: the event (event_id, occurred_at: the event's), or time reaching the lead's"
            " wake-up time with no event (a threshold of a rule that reads the time, such as days since the last"
            " activity: event_id is 'time:' and the wake-up time in epoch seconds, occurred_at that time)"
        ),
    )
    ruleset_version: str
    model_version: str


class LeadMerged(_Model):
    """A lead found to be a duplicate of another (topic ``lead-decisions``, key = the duplicate's lead_id): no
    personal data, only the two lead ids, the answer's event id and when. Its engagement counts on the survivor."""

    schema_version: Literal[1] = 1
    event_type: Literal["lead.merged"] = "lead.merged"
    lead_id: str = Field(description="The duplicate")
    survivor_id: str = Field(description="The lead it is a duplicate of")
    event_id: str = Field(description="The id of the match step's answer (lead.matched)")
    merged_at: AwareDatetime = Field(description="When the worker merged it")


class LeadErasure(_Model):
    """The audit record of an erasure (topic ``lead-decisions``, key = lead_id): no personal data, only which lead
    was erased, by which event, and when."""

    schema_version: Literal[1] = 1
    event_type: Literal["lead.erased"] = "lead.erased"
    lead_id: str
    event_id: str = Field(description="The lead.erased event's id")
    erased_at: AwareDatetime = Field(description="When the worker deleted the lead's state")


class Account(_Model):
    name: str
    industry: str | None = None
    annual_revenue: float | None = None
    number_of_employees: int | None = None
    country: str | None = None
    state: str | None = None
    website: str | None = None


class Contact(_Model):
    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None
    phone: str | None = None
    title: str | None = None


class RoutingCandidate(_Model):
    """One pool member as the pool saw them for one assignment."""

    member: str
    weight: int
    count: int = Field(description="Leads the member had received from the pool before this one")
    pointer: float = Field(description="(count + 1) / weight: the lowest pointer wins, ties go to the top")
    skipped: (
        Literal[
            "switched_off",
            "out_of_office",
            "outside_working_hours",
            "over_daily_cap",
            "over_window_cap",
            "already_tried",
        ]
        | None
    ) = Field(description="Why the member could not take it (None: available)")


RoutedVia = Literal["account", "rule", "territory", "default"]


class RoutingSummary(_Model):
    """What an opportunity carries of its routing decision (the whole decision is on ``routing-decisions``)."""

    routing_id: str = Field(description="The routing decision's id on the routing-decisions topic")
    attempt: int = Field(ge=1, description="1 at conversion; 2, 3, ... after SLA breaches")
    reason: Literal["converted", "sla_breach"]
    via: RoutedVia | None = Field(description="What chose the target: an account's owner, a rule, a territory")
    ref: str | None = Field(description="The account id, rule id or territory id behind the route")
    pool: str | None = Field(description="The pool that assigned it, if any")
    member: str | None = Field(description="The pool member who got it (None: not from a pool, or overflowed)")
    overflow: bool = Field(description="Every member was skipped and the pool's overflow target took it")
    candidates: list[RoutingCandidate] = Field(
        default_factory=list, description="Every pool member with its pointer and why it was skipped, as decided"
    )


class OpportunityCreated(_Model):
    """A converted lead (topic ``opportunities``, key = opportunity_id); again as ``opportunity.reassigned``, with
    its new owner, when it was not accepted within its pool's SLA."""

    schema_version: Literal[1] = 1
    event_type: Literal["opportunity.created", "opportunity.reassigned"] = "opportunity.created"
    opportunity_id: str = Field(description="Deterministic from lead_id: a replay yields the same id")
    lead_id: str
    event_id: str = Field(description="The lead event whose decision converted the lead")
    name: str
    account: Account
    contact: Contact
    stage_name: str
    probability: int = Field(ge=0, le=100)
    forecast_category: str
    amount: float | None
    expected_revenue: float | None = Field(description="amount × probability / 100")
    close_date: dt.date
    lead_source: str | None
    owner_id: str | None
    queue: str | None
    score: float = Field(ge=0, le=1)
    factors: list[Factor]
    matched_rules: list[str]
    converted_by_rule: str
    ruleset_version: str
    model_version: str
    converted_at: AwareDatetime
    lead_created_at: AwareDatetime | None = Field(
        default=None, description="The time of the lead's first event (for the days from lead to conversion)"
    )
    routing: RoutingSummary | None = Field(default=None, description="Present when the ruleset has routing")


class RoutingDecision(_Model):
    """How one opportunity (or a lead, with ``routing.lead_statuses``) was routed (topic ``routing-decisions``,
    key = opportunity_id, or lead_id for a lead)."""

    schema_version: Literal[1] = 1
    event_type: Literal["routing.decided"] = "routing.decided"
    routing_id: str = Field(description="Deterministic from the request: drop duplicates by it")
    request_id: str = Field(description="'<opportunity_id>#<attempt>', or 'lead:<lead_id>:<status>#1' for a lead")
    subject: Literal["opportunity", "lead"] = Field(description="What was routed")
    opportunity_id: str | None = Field(description="None when a lead was routed on entering a status")
    lead_id: str
    decided_at: AwareDatetime
    attempt: int = Field(ge=1)
    reason: Literal["converted", "sla_breach"]
    via: RoutedVia | None
    ref: str | None
    matched_by: Literal["email_domain", "website_domain", "company_name"] | None = Field(
        default=None, description="How the lead matched its account (for via = account)"
    )
    target: dict[str, str] = Field(
        description="{'user': id} or {'queue': name}: where it went; {'pool': name} when this pool overflowed or "
        "escalated to another pool, whose own decision follows"
    )
    pool: str | None
    member: str | None
    overflow: bool
    candidates: list[RoutingCandidate] = Field(description="Every pool member in pool order (empty outside a pool)")
    ruleset_version: str


class OpportunityAccepted(_Model):
    """Feedback from the sales side (topic ``opportunity-feedback``): the owner took the opportunity; stops its SLA."""

    event_type: Literal["opportunity.accepted"]
    opportunity_id: str
    accepted_by: str | None = None
    occurred_at: AwareDatetime | None = None


_FeedbackText = Annotated[str, StringConstraints(min_length=1, max_length=1000)]
_FeedbackId = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f-\x9f]+$")]
_Amount = Annotated[float, Field(ge=0, le=1e15, allow_inf_nan=False)]
ForecastCategory = Literal["Pipeline", "BestCase", "MostLikely", "Forecast", "Closed", "Omitted"]
"""Salesforce's forecast categories as its API spells them (``BestCase`` is shown as Best Case, ``Forecast`` as
Commit)."""


class OpportunityUpdated(_Model):
    """Feedback from the sales side (topic ``opportunity-feedback``, any key): the opportunity moved on. Only the
    fields given change; probability and forecast category follow the stage (the ruleset's ``stages:``, the
    Salesforce table by default) unless given too. A stage that closes (Closed Won, Closed Lost) closes it."""

    event_type: Literal["opportunity.updated"]
    opportunity_id: _FeedbackId
    event_id: _FeedbackId = Field(description="Unique per opportunity: a repeat of an applied id is ignored")
    occurred_at: Time
    stage_name: _FeedbackText | None = Field(default=None, description="One of the ruleset's stages")
    amount: _Amount | None = None
    close_date: dt.date | None = None
    owner_id: _FeedbackText | None = None
    probability: int | None = Field(default=None, ge=0, le=100)
    forecast_category: ForecastCategory | None = None


class OpportunityClosed(_Model):
    """Feedback from the sales side (topic ``opportunity-feedback``, any key): the opportunity was won or lost.
    It moves to the ruleset's won stage (Closed Won) or lost stage (Closed Lost); amount and close date, when
    given, replace the opportunity's."""

    event_type: Literal["opportunity.closed"]
    opportunity_id: _FeedbackId
    event_id: _FeedbackId = Field(description="Unique per opportunity: a repeat of an applied id is ignored")
    occurred_at: Time
    won: bool = Field(description="true: Closed Won; false: Closed Lost")
    amount: _Amount | None = None
    close_date: dt.date | None = Field(default=None, description="Default: the day of occurred_at, in UTC")


OpportunityFeedback = Annotated[OpportunityUpdated | OpportunityClosed, Field(discriminator="event_type")]
"""What ``opportunity-feedback`` carries besides ``opportunity.accepted``: an opportunity's life after routing."""


class AccountRecord(_Model):
    """A known account (compacted topic ``accounts``, key = account_id; a null value deletes it)."""

    model_config = ConfigDict(extra="allow")

    account_id: str | None = Field(default=None, description="Defaults to the record key")
    name: str | None = Field(default=None, description="Matched against leads' company names, normalised")
    owner_id: str | None = Field(default=None, description="Where the account's leads go")
    website: str | None = None
    domains: list[str] = Field(default_factory=list, description="More email/web domains of the account")


class DeadLetterHeaders(_Model):
    """Kafka headers on a ``leads-dlq`` record; its key and value are the original bytes, untouched."""

    reason: DeadLetterReason
    error_class: str
    error_message: str
    source_topic: str
    source_partition: int
    source_offset: int
    failed_at: AwareDatetime
