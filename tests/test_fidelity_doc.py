"""docs/fidelity.md (issue 11 item 10) can never drift from the shipped profiles.

The document holds one markdown table, a row per item of the papers, with the columns ``paper | item | paper's value |
key | smoke | default | full | full holds | why they differ``. For every row with a profile key, each shipped
profile's value at that key, resolved through its stage's config dataclass (so a dataclass default counts when the
profile leaves the key out), must equal the row's cell for that profile (cells parsed with ``yaml.safe_load``); for
every row marked ``full holds: yes``, the ``full`` profile's value must equal the paper's value.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from medadv.attacks.robustness import AttackConfig
from medadv.config import PROFILE_NAMES, Profile, load_profile
from medadv.explain.study import ExplainConfig
from medadv.reader_app.config import ReaderConfig
from medadv.train.gan import GanConfig
from medadv.train.loop import ClassifierConfig

DOC = Path(__file__).resolve().parents[1] / "docs" / "fidelity.md"
COLUMNS = (
    "paper",
    "item",
    "paper's value",
    "key",
    "smoke",
    "default",
    "full",
    "workshop",
    "full holds",
    "why they differ",
)

#: How each section of a profile is resolved: the same dataclass the stage's notebook builds.
RESOLVERS: dict[str, Callable[[Profile], Any]] = {
    "data": lambda p: p.data,
    "classifier": ClassifierConfig.from_profile,
    "gan": GanConfig.from_profile,
    "attacks": AttackConfig.from_profile,
    "explain": ExplainConfig.from_profile,
    "reader": ReaderConfig.from_profile,
}


def table_rows(text: str) -> list[dict[str, str]]:
    """The rows of the document's one table as {column: cell text}; raises AssertionError on a malformed table."""
    lines = [line.strip() for line in text.splitlines() if line.strip().startswith("|")]
    assert lines, f"{DOC} holds no table"
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines]
    assert tuple(cells[0]) == COLUMNS, f"{DOC}: header {cells[0]}; expected {list(COLUMNS)}"
    assert all(set(c) <= set("-: ") for c in cells[1]), f"{DOC}: the second line must be the header rule"
    rows = []
    for n, row in enumerate(cells[2:], start=3):
        assert len(row) == len(COLUMNS), f"{DOC}: table line {n} has {len(row)} cells, expected {len(COLUMNS)}: {row}"
        rows.append(dict(zip(COLUMNS, row, strict=True)))
    return rows


def plain(value: Any) -> Any:
    """Tuples as lists, dataclasses as dicts: the shapes ``yaml.safe_load`` gives."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return plain(dataclasses.asdict(value))
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


def same(a: Any, b: Any) -> bool:
    """Equality of parsed values, floats to 1e-9 relative (2/255 is written with 15-16 digits)."""
    a, b = plain(a), plain(b)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    numbers = (int, float)
    if isinstance(a, numbers) and isinstance(b, numbers) and not isinstance(a, bool) and not isinstance(b, bool):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-15)
    return type(a) is type(b) and a == b


def resolved(profile: Profile, key: str) -> Any:
    """The value at the dotted ``key`` (``section.field``) of ``profile``, through the section's dataclass."""
    section, _, field = key.partition(".")
    assert section in RESOLVERS, f"{DOC}: key {key!r} names section {section!r}; known sections {sorted(RESOLVERS)}"
    config = RESOLVERS[section](profile)
    assert hasattr(config, field), f"{DOC}: key {key!r}: {type(config).__name__} has no field {field!r}"
    return getattr(config, field)


def mismatches(rows: list[dict[str, str]], profiles: dict[str, Profile]) -> list[str]:
    """Every disagreement between the table and ``profiles``, one sentence each (empty when none)."""
    out = []
    for row in rows:
        if row["key"] == "-":
            continue
        for name, profile in profiles.items():
            value, cell = resolved(profile, row["key"]), yaml.safe_load(row[name])
            if not same(value, cell):
                out.append(
                    f"{row['key']} ({row['item']}): the {name} profile holds {plain(value)!r}, the table says {cell!r}"
                )
        paper = row["paper's value"]
        if row["full holds"] == "yes" and not same(resolved(profiles["full"], row["key"]), yaml.safe_load(paper)):
            out.append(
                f"{row['key']} ({row['item']}): marked 'full holds: yes' but full differs from the paper's {paper!r}"
            )
    return out


@pytest.fixture(scope="module")
def rows() -> list[dict[str, str]]:
    return table_rows(DOC.read_text(encoding="utf-8"))


def test_the_table_follows_the_shared_format(rows: list[dict[str, str]]) -> None:
    assert len(rows) >= 20
    for row in rows:
        assert row["paper"] in {"000", "001", "002", "003", "004"}, row
        assert row["item"] and row["paper's value"] and row["why they differ"], row
        assert row["full holds"] in {"yes", "no"}, row
        assert row["key"] == "-" or row["key"].count(".") == 1, row
    keyed = [(r["paper"], r["item"]) for r in rows]
    assert len(set(keyed)) == len(keyed), "an item appears twice"
    assert any(r["full holds"] == "yes" and r["key"] != "-" for r in rows)


def test_every_profile_value_is_the_tables(rows: list[dict[str, str]]) -> None:
    profiles = {name: load_profile(name) for name in PROFILE_NAMES}
    assert mismatches(rows, profiles) == []


def test_a_drifted_profile_is_caught(rows: list[dict[str, str]]) -> None:
    """The check itself can fail: the full profile asking for a confidence rating, or taking 24 FGSM steps, breaks
    both the profile column and the paper's value."""
    profiles = {name: load_profile(name) for name in PROFILE_NAMES}
    profiles["full"] = load_profile("full", {"reader": {"ask_confidence": True}, "explain": {"fgsm_steps": 24}})
    found = mismatches(rows, profiles)
    assert sum("reader.ask_confidence" in m for m in found) == 2
    assert sum("explain.fgsm_steps" in m for m in found) == 2
    assert same(2 / 255, 0.00784313725490196) and not same(1, True) and not same([1, 2], [1, 2, 3])
