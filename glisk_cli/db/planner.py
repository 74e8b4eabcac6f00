"""Planner settings for one statement: the plan kinds it must not use, switched off while it is
planned and reset right after it (docs/architecture.md, "Plans that need no statistics").

A table that rows reached by plain SQL, or in one big drop, may never have been analysed; the
planner then guesses how many rows a condition matches, and for the queue's partial indexes it
guesses a handful, for which a sort of the whole queue looks as cheap as reading the index in
order. With the alternatives switched off, the plan reads the index whatever the statistics say.

The settings are made for the transaction only (`set_config(…, true)`, i.e. `SET LOCAL`), so
nothing is left on the session behind a transaction pooler, and are reset to the session's
values (`set_config(name, NULL, true)`, i.e. `SET LOCAL … TO DEFAULT`) after the statement, so
that nothing else in the caller's transaction is planned under them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.orm import Session


@dataclass(frozen=True)
class PlannerSettings:
    """The statements sent just before (`before`) and just after (`after`) a statement planned
    without some plan kinds."""

    before: str
    after: str


def without(*kinds: str) -> PlannerSettings:
    """Settings under which the planner uses none of `kinds` (seqscan, bitmapscan, sort, …)
    where any other plan exists."""
    names = [f"'enable_{kind}'" for kind in kinds]
    return PlannerSettings(
        before="SELECT " + ", ".join(f"set_config({name}, 'off', true)" for name in names),
        after="SELECT " + ", ".join(f"set_config({name}, NULL, true)" for name in names),
    )


@contextmanager
def planned(session: Session, settings: PlannerSettings) -> Iterator[None]:
    """`session`'s statements in the block planned under `settings` (a round trip before and
    one after: for the operators' statements, which the ORM sends)."""
    session.execute(text(settings.before))
    yield
    session.execute(text(settings.after))
