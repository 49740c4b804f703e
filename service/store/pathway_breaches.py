"""THE definition of a cancer pathway's day-38 and day-62 breach, as SQL, for every reader that asks: the worklist
(worklist_reads.py), the staff pages' episode list (episode_list.py), the governance figures (governance_reads.py)
and the safety net's clock alerts (pathway_clocks.py). The Python mirror for one episode is
service/episodes/clocks.py; tests/episodes/test_pathway_breaches.py holds the two to the same answers.

The rules (CONTRACT section 9, "Breach allocation"; days are calendar-date differences, dates Europe/London):

- transfer target = clock start (`pathway_start`) + 38 + the referring trust's adjustment days;
  treatment target = clock start + 62 + both trusts' adjustment days. So `d38 > 38` exactly when the transfer
  came after the transfer target, and `d62 > 62` exactly when treatment came after the treatment target, as the
  breach allocation (service/episodes/cwt_allocation.py) counts them.
- The transfer is the IPT received date (the referral that completed the data set). Until there is one (the
  referral is not yet complete, e.g. after `more-information-needed`), day 38 is breached once today is past the
  transfer target.
- Treatment is the first definitive treatment date, and until one is recorded the Europe/London date on which the
  centre first accepted clinical responsibility (the patient admitted for surgery). Until either, day 62 is
  breached once today is past the treatment target.
- A clock still running (no date yet) stops when the episode closes without one (declined or withdrawn); dates
  already recorded stand whatever the state.
- `today` is the Europe/London date of the moment asked about.

Why a fragment here rather than a SQL function in a migration: the definition needs today (a view cannot take it)
and a correlated look-up of the responsibility ledger, and PostgreSQL inlines only sub-select-free SQL functions,
so a function would be called once per episode in the governance figures' whole-table aggregate. A fragment is
planned inline with each statement (the ledger look-up only for an untreated-by-date episode past the centre's
acceptance), and lives with the code that reads it, so a hub of another release sharing the database keeps its
own consistent definition.

Which breaches each reader shows is its own business (the worklist and the governance overdue figure: those still
needing someone; the episode list: all; the alerts: open episodes), never what a breach is.
"""

from __future__ import annotations

TRANSFER_TARGET_DAYS = 38
TREATMENT_TARGET_DAYS = 62

# States in which a clock without its date has stopped for good (the episode closed before the transfer or
# treatment), and the states in which the centre holds or has held clinical responsibility (the machine moves to
# at-centre only when the centre accepts the transfer of care; see service/episodes/machine.py).
STOPPED_STATES = ("declined-closed", "withdrawn")
AT_OR_PAST_CENTRE_STATES = ("at-centre", "discharge-summary-sent", "transfer-back-requested", "closed")


def _quoted(states: tuple[str, ...]) -> str:
    return ", ".join(f"'{s}'" for s in states)


def london_today(now: str) -> str:
    """The SQL for the Europe/London date of the instant `now` (an SQL expression of type timestamptz)."""
    return f"(({now})::timestamptz AT TIME ZONE 'Europe/London')::date"


def breach_columns(e: str, today: str) -> str:
    """Select-list columns for the episode row aliased `e`, as of `today` (an SQL expression of type date, the
    Europe/London date): `transfer_target`, `treatment_target`, `transferred_on` (NULL until the IPT received
    date), `treated_on` (NULL until treatment), `day_38_breached`, `day_62_breached` (false without a pathway
    start)."""
    transfer_target = f"({e}.pathway_start + {TRANSFER_TARGET_DAYS} + {e}.adjustment_days_referring)"
    treatment_target = (
        f"({e}.pathway_start + {TREATMENT_TARGET_DAYS} + {e}.adjustment_days_referring + {e}.adjustment_days_treating)"
    )
    treated_on = (
        f"coalesce({e}.treatment_date, CASE WHEN {e}.state IN ({_quoted(AT_OR_PAST_CENTRE_STATES)}) THEN"  # noqa: S608
        f" (SELECT (min(l.since) AT TIME ZONE 'Europe/London')::date FROM responsibility_ledger l"
        f" WHERE l.episode_id = {e}.id AND l.seq > 0 AND l.ods = {e}.centre_ods) END)"
    )
    running_today = f"CASE WHEN {e}.state NOT IN ({_quoted(STOPPED_STATES)}) THEN ({today})::date END"
    return (
        f"{transfer_target} AS transfer_target, {treatment_target} AS treatment_target,"
        f" {e}.ipt_received_date AS transferred_on, {treated_on} AS treated_on,"
        f" coalesce(coalesce({e}.ipt_received_date, {running_today}) > {transfer_target}, false) AS day_38_breached,"
        f" coalesce(coalesce({treated_on}, {running_today}) > {treatment_target}, false) AS day_62_breached"
    )
