"""A breach allocation in words, as staff read it on the governance report (and the episode page may): which trust
is accountable and the days that decided it, e.g. "Breach allocated to the referring trust, Norfolk … (RM1): the
transfer reached Cambridge … (RGT) on day 45, after day 38, and it was treated within 24 days of the transfer
(day 20)". Pure: the pathway, its allocation and a way to name organisations in; one sentence out.
"""

from __future__ import annotations

from collections.abc import Callable

from service.episodes.cwt_allocation import (
    NO_IPT_DATE,
    PATHWAY_TARGET_DAYS,
    PENDING,
    REFERRING,
    SHARED,
    SOLO,
    TRANSFER_TARGET_DAYS,
    TREATING,
    TREATING_TARGET_DAYS,
    Allocation,
    Pathway,
)

NameOf = Callable[[str], str]  # an ODS code -> the organisation's name (the code itself when unknown)


def describe_allocation(p: Pathway, a: Allocation, name_of: NameOf) -> str:
    """One sentence for any rule: pending, met or breached, one provider or two."""
    referring, treating = _named(p.referring, name_of), _named(p.treating, name_of)
    if a.rule == SOLO:
        return _solo(a, treating)
    if a.rule == PENDING:
        transfer = _transfer(a, treating) or "the transfer has not reached the centre"
        return f"Not treated yet; {transfer}"
    if a.rule == NO_IPT_DATE:
        return _no_ipt_date(a, referring, treating)
    return _two_providers(a, referring, treating)


def _solo(a: Allocation, treating: str) -> str:
    if a.d62 is None:
        return f"One provider, {treating}: not treated yet"
    days = f"treated on day {a.d62} against a target of {PATHWAY_TARGET_DAYS}"
    return (
        f"Breach of {treating}, the only provider: {days}" if not a.met_62_days else f"One provider, {treating}: {days}"
    )


def _no_ipt_date(a: Allocation, referring: str, treating: str) -> str:
    if a.met_62_days:
        return (
            f"Treated on day {a.d62}, within {PATHWAY_TARGET_DAYS} days; shared between {referring} and {treating}: "
            "no IPT received date is recorded"
        )
    return (
        f"Breach shared between {referring} and {treating}: no IPT received date is recorded; "
        f"treated on day {a.d62} against a target of {PATHWAY_TARGET_DAYS}"
    )


def _two_providers(a: Allocation, referring: str, treating: str) -> str:
    transfer = _transfer(a, treating)
    within = (
        f"within {TREATING_TARGET_DAYS} days of"
        if a.treated_within_24_days
        else f"more than {TREATING_TARGET_DAYS} days after"
    )
    treatment = f"{within} the transfer (day {a.d24})"
    if a.met_62_days:
        met = f"Treated on day {a.d62}, within {PATHWAY_TARGET_DAYS} days"
        if a.rule == TREATING:
            return f"{met}; allocated to the treating trust, {treating}: {transfer}, and it was treated {treatment}"
        return f"{met}; shared between {referring} and {treating}: {transfer}"
    by_whom = {
        REFERRING: f"Breach allocated to the referring trust, {referring}",
        TREATING: f"Breach allocated to the treating trust, {treating}",
        SHARED: f"Breach shared between {referring} and {treating}",
    }[a.rule]
    joined = "but" if a.rule == TREATING else "and"
    return f"{by_whom}: {transfer}, {joined} it was treated {treatment}"


def _transfer(a: Allocation, treating: str) -> str:
    if a.d38 is None:
        return ""
    when = "by" if a.transferred_by_day_38 else "after"
    return f"the transfer reached {treating} on day {a.d38}, {when} day {TRANSFER_TARGET_DAYS}"


def _named(ods: str, name_of: NameOf) -> str:
    name = name_of(ods)
    return f"{name} ({ods})" if name != ods else ods
