"""Escalation timeline as a pure function: re-notify at T1, township at T2, county at T3, stop on ack."""

from datetime import UTC, datetime, timedelta

from server.escalation import EscalationPolicy, StepMinutes, due_steps, next_step

OPENED = datetime(2026, 11, 26, 15, 0, tzinfo=UTC)
POLICY = EscalationPolicy()


def minutes(n: float) -> datetime:
    return OPENED + timedelta(minutes=n)


def names(steps) -> list[str]:
    return [s.name for s in steps]


def test_defaults_follow_the_directive_two_then_ten_minutes():
    assert names(due_steps(POLICY, "critical", OPENED, False, set(), minutes(1.99))) == []
    assert names(due_steps(POLICY, "critical", OPENED, False, set(), minutes(2))) == ["renotify"]
    assert names(due_steps(POLICY, "critical", OPENED, False, {"renotify"}, minutes(9.9))) == []
    assert names(due_steps(POLICY, "critical", OPENED, False, {"renotify"}, minutes(10))) == ["township"]
    assert names(due_steps(POLICY, "critical", OPENED, False, {"renotify", "township"}, minutes(20))) == ["county"]


def test_a_late_look_takes_every_missed_step_once_in_order():
    assert names(due_steps(POLICY, "high", OPENED, False, set(), minutes(60))) == ["renotify", "township", "county"]
    assert names(due_steps(POLICY, "high", OPENED, False, {"renotify", "township", "county"}, minutes(60))) == []


def test_acknowledged_stops_everything():
    assert due_steps(POLICY, "critical", OPENED, True, set(), minutes(60)) == []
    assert next_step(POLICY, "critical", OPENED, True, set()) is None


def test_countdown_target_is_the_next_unfired_step():
    step = next_step(POLICY, "critical", OPENED, False, {"renotify"})
    assert step is not None and (step.name, step.due_at) == ("township", minutes(10))
    assert next_step(POLICY, "critical", OPENED, False, {"renotify", "township", "county"}) is None


def test_times_are_configurable_per_severity_and_low_does_not_escalate():
    policy = EscalationPolicy(medium=StepMinutes(renotify=1, township=None, county=3))
    assert names(due_steps(policy, "medium", OPENED, False, set(), minutes(3))) == ["renotify", "county"]
    assert due_steps(POLICY, "low", OPENED, False, set(), minutes(600)) == []
    assert names(due_steps(POLICY, "medium", OPENED, False, set(), minutes(9))) == []
    assert names(due_steps(POLICY, "medium", OPENED, False, set(), minutes(10))) == ["renotify"]


def test_a_severity_given_in_part_keeps_its_own_defaults_for_the_rest():
    policy = EscalationPolicy.model_validate({"medium": {"renotify": 5}, "low": {"renotify": 30}})
    assert (policy.medium.renotify, policy.medium.township, policy.medium.county) == (5, 30, 60)
    assert (policy.low.renotify, policy.low.township, policy.low.county) == (30, None, None)
    assert names(due_steps(policy, "low", OPENED, False, set(), minutes(600))) == ["renotify"]
