"""Eval cases: seed tasks, user turns and the expected database outcome, loaded from YAML."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Literal

import yaml  # type: ignore[import-untyped]  # pyyaml ships no stubs

CASES_DIR = Path(__file__).parent / "cases"
CATEGORIES = (
    "create",
    "list",
    "update",
    "complete",
    "delete",
    "follow-up",
    "no-write",
    "ambiguous",
    "multi-item",
    "dates",
    "undo",
)
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
TASK_FIELDS = ("title", "description", "priority", "status", "due_date", "tags")

DueSpec = int | str | None
"""A due date relative to the day the case runs: days from today (`3`, `-2`), a weekday
(`fri`: the first Friday after today), a month and day (`12-30`: its next occurrence, today
included), or None for no due date."""


@dataclass(frozen=True)
class Seed:
    """A task that exists before the conversation starts, named by `key` in expectations."""

    key: str
    title: str
    priority: str = "normal"
    due: DueSpec = None
    tags: tuple[str, ...] = ()
    status: Literal["pending", "completed"] = "pending"


@dataclass(frozen=True)
class Turn:
    """One user turn: something said, or an answer to the pending approval."""

    say: str | None = None
    approve: bool | None = None


@dataclass(frozen=True)
class CreatedSpec:
    """What a task the conversation should create looks like (unlisted fields: any value)."""

    title_has: tuple[str, ...]
    title_lacks: tuple[str, ...] = ()
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Expect:
    """The exact set of changes to the user's tasks, and whether an approval is asked."""

    created: tuple[CreatedSpec, ...] = ()
    updated: dict[str, dict[str, Any]] = field(default_factory=dict)
    completed: tuple[str, ...] = ()
    deleted: tuple[str, ...] = ()
    approval: Literal["asked", "not_asked", "any"] = "not_asked"
    named: tuple[str, ...] = ()
    """Seeds the user asks about without a net change expected (an undone change): a wrong
    outcome on them fails the case but is not a silent wrong write."""

    @property
    def touched(self) -> set[str]:
        """Seed keys the case expects to change."""
        return {*self.updated, *self.completed, *self.deleted}


@dataclass(frozen=True)
class Case:
    """One conversation and its expected outcome."""

    id: str
    category: str
    seeds: tuple[Seed, ...]
    turns: tuple[Turn, ...]
    expect: Expect
    note: str = ""


def resolve_due(spec: DueSpec, today: date) -> str | None:
    """Return the ISO date a `DueSpec` means on `today`."""
    if spec is None:
        return None
    if isinstance(spec, int):
        return (today + timedelta(days=spec)).isoformat()
    text = str(spec).strip().lower()
    if text in WEEKDAYS:
        ahead = (WEEKDAYS.index(text) - today.weekday() - 1) % 7 + 1
        return (today + timedelta(days=ahead)).isoformat()
    month, day = (int(part) for part in text.split("-"))
    for year in (today.year, today.year + 1):
        candidate = date(year, month, day)
        if candidate >= today:
            return candidate.isoformat()
    raise ValueError(f"unreachable due spec {spec!r}")


def accepted_dues(value: Any, today: date) -> set[str | None]:
    """Return the due dates an expectation accepts (a spec, or a list of specs)."""
    specs = value if isinstance(value, list) else [value]
    return {resolve_due(spec, today) for spec in specs}


def _seed(raw: dict[str, Any]) -> Seed:
    return Seed(
        key=str(raw["key"]),
        title=str(raw["title"]),
        priority=str(raw.get("priority", "normal")),
        due=raw.get("due"),
        tags=tuple(raw.get("tags", ())),
        status=raw.get("status", "pending"),
    )


def _turn(raw: Any) -> Turn:
    if isinstance(raw, str):
        return Turn(say=raw)
    if "approve" in raw:
        return Turn(approve=bool(raw["approve"]))
    return Turn(say=str(raw["say"]))


def _created(raw: dict[str, Any]) -> CreatedSpec:
    has = raw.pop("title_has")
    lacks = raw.pop("title_lacks", [])
    unknown = set(raw) - set(TASK_FIELDS) - {"due"}
    if unknown:
        raise ValueError(f"unknown created fields {sorted(unknown)}")
    return CreatedSpec(
        title_has=tuple(has if isinstance(has, list) else [has]),
        title_lacks=tuple(lacks if isinstance(lacks, list) else [lacks]),
        fields=raw,
    )


def _expect(raw: dict[str, Any] | None, turns: tuple[Turn, ...]) -> Expect:
    raw = dict(raw or {})
    answered = any(t.approve is not None for t in turns)
    return Expect(
        created=tuple(_created(dict(c)) for c in raw.get("created", ())),
        updated={str(k): dict(v) for k, v in (raw.get("updated") or {}).items()},
        completed=tuple(raw.get("completed", ())),
        deleted=tuple(raw.get("deleted", ())),
        approval=raw.get("approval", "asked" if answered else "not_asked"),
        named=tuple(raw.get("named", ())),
    )


def parse_case(raw: dict[str, Any]) -> Case:
    """Build a Case from its YAML mapping, checking that it names only its own seeds."""
    turns = tuple(_turn(t) for t in raw["turns"])
    case = Case(
        id=str(raw["id"]),
        category=str(raw["category"]),
        seeds=tuple(_seed(s) for s in raw.get("seeds", ())),
        turns=turns,
        expect=_expect(raw.get("expect"), turns),
        note=str(raw.get("note", "")),
    )
    if case.category not in CATEGORIES:
        raise ValueError(f"case {case.id}: unknown category {case.category!r}")
    if not 1 <= len(case.turns) <= 3:
        raise ValueError(f"case {case.id}: 1 to 3 turns, not {len(case.turns)}")
    keys = {s.key for s in case.seeds}
    named = case.expect.touched | set(case.expect.named)
    if named - keys:
        raise ValueError(f"case {case.id}: unknown seeds {sorted(named - keys)}")
    return case


def load_cases(pattern: str = "*", directory: Path = CASES_DIR) -> list[Case]:
    """Return the cases whose id or category matches the glob `pattern`, in file order.

    Several globs may be given separated by commas: `create-milk,delete-*`.
    """
    cases: list[Case] = []
    for path in sorted(directory.glob("*.yaml")):
        for raw in yaml.safe_load(path.read_text()) or []:
            cases.append(parse_case(raw))
    ids = [c.id for c in cases]
    if len(ids) != len(set(ids)):
        raise ValueError("case ids must be unique")
    globs = [g.strip() for g in pattern.split(",") if g.strip()]
    return [
        c
        for c in cases
        if any(fnmatch.fnmatch(c.id, g) or fnmatch.fnmatch(c.category, g) for g in globs)
    ]
