"""The listeners' shared state: one meaning in memory and in DynamoDB (moto in-process), conditional writes that
exactly one caller wins, and every table item expiring."""

from __future__ import annotations

import time

import boto3
import pytest

from irflow.detection.shared_state import DynamoState, MemoryState, StateUnavailable


def make_table(name: str = "listener-state") -> str:
    boto3.client("dynamodb", region_name="us-east-1").create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return name


@pytest.fixture(params=["memory", "dynamodb"])
def state(request):
    if request.param == "memory":
        return MemoryState()
    request.getfixturevalue("aws")
    return DynamoState(make_table())


def test_a_window_counts_each_value_once_at_its_latest_time_and_reports_old_entries_stale(state):
    state.window_add("w", {"a": 100.0, "b": 110.0}, horizon=0, keep_until=time.time() + 60)
    view = state.window_add("w", {"a": 200.0, "c": 205.0}, horizon=150, keep_until=time.time() + 60)
    assert view.latest == {"a": 200.0, "c": 205.0}, "b fell out of the window; a counts once, at its latest"
    assert sorted(view.stale) == ["a@100.0", "b@110.0"]
    assert view.alerted_at is None
    state.window_forget("w", view.stale)
    assert state.window_add("w", {}, horizon=0, keep_until=time.time() + 60).stale == ()


def test_a_window_alerts_once_per_window_whoever_asks(state):
    state.window_add("w", {"a": 100.0}, horizon=0, keep_until=time.time() + 60)
    assert state.claim_alert("w", 100.0, window=600) is True
    assert state.claim_alert("w", 100.0, window=600) is False, "a second listener at the same moment"
    assert state.claim_alert("w", 699.0, window=600) is False
    assert state.window_add("w", {"b": 650.0}, horizon=50, keep_until=time.time() + 60).alerted_at == 100.0
    assert state.claim_alert("w", 700.0, window=600) is True, "a window later it may alert again"


def test_a_login_from_a_new_address_is_taken_once_within_the_window(state):
    login = {"eventName": "ConsoleLogin", "eventID": "login-1"}
    keep = time.time() + 60
    assert state.note_login("l", "203.0.113.7", 100.0, login, keep, max_addresses=4) is True
    assert state.note_login("l", "203.0.113.7", 150.0, {"eventID": "login-2"}, keep, max_addresses=4) is False
    assert state.take_login("l", 5000.0, window=3600) is None, "too late"
    assert state.take_login("l", 200.0, window=3600) == login
    assert state.take_login("l", 201.0, window=3600) is None, "taken by the first caller"


def test_alerts_about_one_subject_group_until_the_period_ends(state):
    keep = time.time() + 60
    first = state.join_group("g", 1000.0, 3600, "f1", "2024-01-01T00:00:00+00:00", 2, keep)
    second = state.join_group("g", 1100.0, 3600, "f2", "2024-01-01T00:01:00+00:00", 3, keep)
    assert (first.finding_id, first.alerts, first.count) == ("f1", 1, 2)
    assert (second.finding_id, second.first_seen, second.alerts, second.count) == (
        "f1",
        "2024-01-01T00:00:00+00:00",
        2,
        5,
    )
    later = state.join_group("g", 1000.0 + 3600, 3600, "f3", None, 1, keep)
    assert (later.finding_id, later.alerts, later.count) == ("f3", 1, 1)


def test_a_claim_is_won_once_released_on_failure_and_done_for_good(state):
    keep = time.time() + 60
    assert state.claim_once("m", 60, keep) == "claimed"
    assert state.claim_once("m", 60, keep) == "busy"
    state.settle("m", False, keep)
    assert state.claim_once("m", 60, keep) == "claimed", "a failed send lets the next delivery try"
    state.settle("m", True, keep)
    assert state.claim_once("m", 60, keep) == "done"


def test_a_claim_whose_holder_died_may_be_taken_over(state):
    assert state.claim_once("m", -1, time.time() + 60) == "claimed"  # its lease already over
    assert state.claim_once("m", 60, time.time() + 60) == "claimed"


def test_every_table_item_carries_its_expiry(aws):
    table = make_table()
    state = DynamoState(table)
    keep = time.time() + 600
    state.window_add("w", {"a": 1.0}, horizon=0, keep_until=keep)
    state.note_login("l", "198.51.100.1", 1.0, {"eventID": "x"}, keep, max_addresses=4)
    state.join_group("g", 1.0, 60, "f", None, 1, keep)
    state.claim_once("m", 60, keep)
    items = boto3.client("dynamodb", region_name="us-east-1").scan(TableName=table)["Items"]
    assert sorted(i["pk"]["S"] for i in items) == ["g", "l", "m", "w"]
    assert all(int(i["expires_at"]["N"]) == int(keep) for i in items)


def test_new_addresses_beyond_the_cap_start_the_users_memory_afresh(aws):
    table = make_table()
    state = DynamoState(table)
    for n in range(3):
        state.note_login("l", f"198.51.100.{n}", 1.0, {}, time.time() + 60, max_addresses=2)
    item = boto3.client("dynamodb", region_name="us-east-1").get_item(TableName=table, Key={"pk": {"S": "l"}})
    assert item["Item"]["addresses"]["SS"] == ["198.51.100.2"]


def test_a_missing_table_is_unavailable_not_a_crash(aws):
    state = DynamoState("no-such-table")
    with pytest.raises(StateUnavailable, match="no-such-table"):
        state.claim_alert("w", 1.0, 60)
    with pytest.raises(Exception, match="ResourceNotFound"):
        state.probe()
