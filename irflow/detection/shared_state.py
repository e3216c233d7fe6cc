"""State that several finding listeners share: detection windows, the "alerted" mark of a windowed rule, new-address
logins, alert groups, and which messages were dead-lettered.

Two implementations of one small interface (`SharedState`): `MemoryState`, one process's dictionaries, and
`DynamoState`, one DynamoDB table (IRFLOW_STATE_TABLE) that any number of listeners update atomically: per key a
string set grown with ADD, counters grown with ADD, and conditional writes where only one listener may win (the
alert of a window, the start of a group, the claim on a message). Every item carries `expires_at` (epoch seconds),
the table's TTL attribute, so the table forgets by itself; DynamoDB deletes expired items lazily, so every read
here judges time on its own and never relies on an item being gone.

The windowed rules keep their own in-memory state when no table is set (their fast path: the detection benchmark
measures it); they call this interface only when shared (see `irflow.detection.windowed`).
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

TTL_ATTRIBUTE = "expires_at"
KEY_ATTRIBUTE = "pk"

Claim = Literal["claimed", "done", "busy"]


class StateUnavailable(RuntimeError):
    """The shared state could not be read or written (throttled, unreachable, refused)."""


@dataclass(frozen=True)
class WindowView:
    """A window as all listeners recorded it: each entry's latest event time, and when it last alerted."""

    latest: dict[str, float]
    alerted_at: float | None
    stale: tuple[str, ...] = ()  # stored entries superseded or out of every window: worth forgetting


@dataclass(frozen=True)
class GroupView:
    finding_id: str
    first_seen: str | None
    count: int
    alerts: int


class SharedState(Protocol):
    def window_add(self, key: str, entries: Mapping[str, float], horizon: float, keep_until: float) -> WindowView:
        """Record `entries` (entry → event time) and return the whole window; entries older than `horizon` are
        reported as stale."""
        ...

    def window_forget(self, key: str, stored: Iterable[str]) -> None: ...

    def claim_alert(self, key: str, now: float, window: float) -> bool:
        """Mark the window alerted at `now` unless it alerted within `window` before `now`: True for one caller."""
        ...

    def note_login(
        self, key: str, address: str, at: float, event: Mapping[str, Any], keep_until: float, max_addresses: int
    ) -> bool:
        """Remember `address` for the principal; True when it was new (the login is then pending)."""
        ...

    def take_login(self, key: str, now: float, window: float) -> dict[str, Any] | None:
        """The pending login made within `window` before `now`, taken by one caller only."""
        ...

    def join_group(
        self,
        key: str,
        at: float,
        group_seconds: float,
        finding_id: str,
        first_seen: str | None,
        count: int,
        keep_until: float,
    ) -> GroupView:
        """Add an alert to the group started within `group_seconds` of `at`, or start a new group with it."""
        ...

    def claim_once(self, key: str, lease_seconds: float, keep_until: float) -> Claim:
        """ "claimed": the caller does the work and settles; "done": someone did it; "busy": someone is doing it."""
        ...

    def settle(self, key: str, done: bool, keep_until: float) -> None: ...


def _entry(digest: str, at: float) -> str:
    return f"{digest}@{at!r}"


def _view(stored: Iterable[str], horizon: float, alerted_at: float | None) -> WindowView:
    latest: dict[str, float] = {}
    best: dict[str, str] = {}
    stale: list[str] = []
    for item in stored:
        digest, _, text = item.rpartition("@")
        at = float(text)
        if at < horizon:
            stale.append(item)
            continue
        if digest in latest:
            if at <= latest[digest]:
                stale.append(item)
                continue
            stale.append(best[digest])
        latest[digest] = at
        best[digest] = item
    return WindowView(latest, alerted_at, tuple(stale))


class MemoryState:
    """One process's state, with the same meaning as the table's; thread-safe. Groups are LRU-capped."""

    def __init__(self, max_keys: int = 10_000) -> None:
        self.max_keys = max_keys
        self._lock = threading.Lock()
        self._items: OrderedDict[str, dict[str, Any]] = OrderedDict()

    def _item(self, key: str) -> dict[str, Any]:
        item = self._items.get(key)
        if item is None:
            item = self._items[key] = {}
            if len(self._items) > self.max_keys:
                self._items.popitem(last=False)  # the least recently used key
        else:
            self._items.move_to_end(key)
        return item

    def window_add(self, key: str, entries: Mapping[str, float], horizon: float, keep_until: float) -> WindowView:
        with self._lock:
            item = self._item(key)
            stored = item.setdefault("entries", set())
            stored.update(_entry(d, at) for d, at in entries.items())
            return _view(stored, horizon, item.get("alerted_at"))

    def window_forget(self, key: str, stored: Iterable[str]) -> None:
        with self._lock:
            self._item(key).get("entries", set()).difference_update(stored)

    def claim_alert(self, key: str, now: float, window: float) -> bool:
        with self._lock:
            item = self._item(key)
            last = item.get("alerted_at")
            if last is not None and 0 <= now - last < window:
                return False
            item["alerted_at"] = now
            return True

    def note_login(
        self, key: str, address: str, at: float, event: Mapping[str, Any], keep_until: float, max_addresses: int
    ) -> bool:
        with self._lock:
            item = self._item(key)
            addresses: OrderedDict[str, None] = item.setdefault("addresses", OrderedDict())
            new = address not in addresses
            addresses[address] = None
            addresses.move_to_end(address)
            if len(addresses) > max_addresses:
                addresses.popitem(last=False)
            if new:
                item["login"] = (at, dict(event))
            return new

    def take_login(self, key: str, now: float, window: float) -> dict[str, Any] | None:
        with self._lock:
            item = self._items.get(key)
            login = item.get("login") if item else None
            if login is None or not 0 <= now - login[0] <= window:
                return None
            item["login"] = None
            return login[1]

    def join_group(
        self,
        key: str,
        at: float,
        group_seconds: float,
        finding_id: str,
        first_seen: str | None,
        count: int,
        keep_until: float,
    ) -> GroupView:
        with self._lock:
            item = self._item(key)
            if not item or abs(at - item["started"]) >= group_seconds:
                item.update(started=at, finding_id=finding_id, first_seen=first_seen, count=0, alerts=0)
            item["count"] += count
            item["alerts"] += 1
            return GroupView(item["finding_id"], item["first_seen"], item["count"], item["alerts"])

    def claim_once(self, key: str, lease_seconds: float, keep_until: float) -> Claim:
        now = time.time()
        with self._lock:
            item = self._item(key)
            if item.get("done"):
                return "done"
            if item.get("lease_until", 0) > now:
                return "busy"
            item["lease_until"] = now + lease_seconds
            return "claimed"

    def settle(self, key: str, done: bool, keep_until: float) -> None:
        with self._lock:
            if done:
                self._item(key).update(done=True, lease_until=0)
            else:
                self._items.pop(key, None)


def _number(value: float) -> dict[str, str]:
    return {"N": repr(float(value)) if isinstance(value, float) else str(value)}


class DynamoState:
    """The state in one DynamoDB table (partition key `pk`, string; TTL attribute `expires_at`). Each method is
    one round trip, except when a race or a full window makes a second one worth it. `calls` counts them."""

    def __init__(self, table: str, client: Any = None) -> None:
        import boto3
        from botocore.config import Config

        self.table = table
        self.calls: Counter[str] = Counter()
        self._client = client or boto3.session.Session().client(
            "dynamodb", config=Config(retries={"mode": "standard", "max_attempts": 4}, max_pool_connections=32)
        )

    def _call(self, operation: str, **kwargs: Any) -> dict[str, Any] | None:
        """The response; {"Failed": old item or {}} when the condition failed; StateUnavailable otherwise."""
        from botocore.exceptions import BotoCoreError, ClientError

        self.calls[operation] += 1
        try:
            return getattr(self._client, operation)(TableName=self.table, **kwargs)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return {"Failed": error.response.get("Item") or {}}
            raise StateUnavailable(f"{operation} on {self.table}: {error}") from error
        except BotoCoreError as error:
            raise StateUnavailable(f"{operation} on {self.table}: {error}") from error

    def probe(self) -> None:
        """Raise unless the table answers (one GetItem, an action the listener holds anyway)."""
        self._client.get_item(TableName=self.table, Key=self._key("probe"))

    @staticmethod
    def _key(key: str) -> dict[str, Any]:
        return {KEY_ATTRIBUTE: {"S": key}}

    def window_add(self, key: str, entries: Mapping[str, float], horizon: float, keep_until: float) -> WindowView:
        if not entries:  # DynamoDB refuses an empty set: only read
            item = (self._call("get_item", Key=self._key(key), ConsistentRead=True) or {}).get("Item", {})
            alerted = item.get("alerted_at", {}).get("N")
            return _view(item.get("entries", {}).get("SS", []), horizon, float(alerted) if alerted else None)
        response = self._call(
            "update_item",
            Key=self._key(key),
            UpdateExpression="ADD entries :entries SET expires_at = :ttl",
            ExpressionAttributeValues={
                ":entries": {"SS": [_entry(d, at) for d, at in entries.items()]},
                ":ttl": _number(int(keep_until)),
            },
            ReturnValues="ALL_NEW",
        )
        item = (response or {}).get("Attributes", {})
        alerted = item.get("alerted_at", {}).get("N")
        return _view(item.get("entries", {}).get("SS", []), horizon, float(alerted) if alerted else None)

    def window_forget(self, key: str, stored: Iterable[str]) -> None:
        stored = list(stored)
        if stored:
            self._call(
                "update_item",
                Key=self._key(key),
                UpdateExpression="DELETE entries :gone",
                ExpressionAttributeValues={":gone": {"SS": stored}},
            )

    def claim_alert(self, key: str, now: float, window: float) -> bool:
        response = self._call(
            "update_item",
            Key=self._key(key),
            UpdateExpression="SET alerted_at = :now",
            # quiet while an alert lies within the window before `now` (as a lone listener's rule is)
            ConditionExpression="attribute_not_exists(alerted_at) OR alerted_at <= :edge OR alerted_at > :now",
            ExpressionAttributeValues={":now": _number(now), ":edge": _number(now - window)},
        )
        return "Failed" not in (response or {})

    def note_login(
        self, key: str, address: str, at: float, event: Mapping[str, Any], keep_until: float, max_addresses: int
    ) -> bool:
        response = self._call(
            "update_item",
            Key=self._key(key),
            UpdateExpression="ADD addresses :address SET login_at = :at, login_event = :event, expires_at = :ttl",
            ConditionExpression="NOT contains(addresses, :one)",
            ExpressionAttributeValues={
                ":address": {"SS": [address]},
                ":one": {"S": address},
                ":at": _number(at),
                ":event": {"S": json.dumps(event, default=str, separators=(",", ":"))},
                ":ttl": _number(int(keep_until)),
            },
            ReturnValues="UPDATED_NEW",
        )
        if response is None or "Failed" in response:
            # a known address: its memory lasts as long as the user keeps logging in from it
            self._call(
                "update_item",
                Key=self._key(key),
                UpdateExpression="SET expires_at = :ttl",
                ExpressionAttributeValues={":ttl": _number(int(keep_until))},
            )
            return False
        if len(response.get("Attributes", {}).get("addresses", {}).get("SS", [])) > max_addresses:
            # bounded like a lone listener's memory; which addresses it forgot is not recorded, so keep the newest
            self._call(
                "update_item",
                Key=self._key(key),
                UpdateExpression="SET addresses = :only",
                ExpressionAttributeValues={":only": {"SS": [address]}},
            )
        return True

    def take_login(self, key: str, now: float, window: float) -> dict[str, Any] | None:
        response = self._call(
            "update_item",
            Key=self._key(key),
            UpdateExpression="REMOVE login_at, login_event",
            ConditionExpression="login_at BETWEEN :earliest AND :now",
            ExpressionAttributeValues={":earliest": _number(now - window), ":now": _number(now)},
            ReturnValues="ALL_OLD",
        )
        if response is None or "Failed" in response:
            return None
        return json.loads(response["Attributes"]["login_event"]["S"])

    def join_group(
        self,
        key: str,
        at: float,
        group_seconds: float,
        finding_id: str,
        first_seen: str | None,
        count: int,
        keep_until: float,
    ) -> GroupView:
        bounds = {":low": _number(at - group_seconds), ":high": _number(at + group_seconds)}
        ttl = _number(int(keep_until))
        for _ in range(4):  # only a race with another listener starting the same group goes round again
            joined = self._call(
                "update_item",
                Key=self._key(key),
                UpdateExpression="ADD alerts :one, finding_count :count SET expires_at = :ttl",
                ConditionExpression="started > :low AND started < :high",
                ExpressionAttributeValues={**bounds, ":one": {"N": "1"}, ":count": {"N": str(count)}, ":ttl": ttl},
                ReturnValues="ALL_NEW",
            )
            if joined is not None and "Failed" not in joined:
                item = joined["Attributes"]
                return GroupView(
                    item["finding_id"]["S"],
                    item.get("first_seen", {}).get("S"),
                    int(item["finding_count"]["N"]),
                    int(item["alerts"]["N"]),
                )
            started = self._call(
                "put_item",
                Item={
                    **self._key(key),
                    "started": _number(at),
                    "finding_id": {"S": finding_id},
                    **({"first_seen": {"S": first_seen}} if first_seen else {}),
                    "finding_count": {"N": str(count)},
                    "alerts": {"N": "1"},
                    TTL_ATTRIBUTE: ttl,
                },
                ConditionExpression="attribute_not_exists(started) OR started <= :low OR started >= :high",
                ExpressionAttributeValues=bounds,
            )
            if started is not None and "Failed" not in started:
                return GroupView(finding_id, first_seen, count, 1)
        raise StateUnavailable(f"group {key}: no stable answer from {self.table}")

    def claim_once(self, key: str, lease_seconds: float, keep_until: float) -> Claim:
        now = time.time()
        response = self._call(
            "put_item",
            Item={
                **self._key(key),
                "state": {"S": "claimed"},
                "lease_until": _number(now + lease_seconds),
                TTL_ATTRIBUTE: _number(int(keep_until)),
            },
            # a claim whose holder died (its lease ran out) may be taken over
            ConditionExpression="attribute_not_exists(pk) OR (#state = :claimed AND lease_until < :now)",
            ExpressionAttributeNames={"#state": "state"},
            ExpressionAttributeValues={":claimed": {"S": "claimed"}, ":now": _number(now)},
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
        if response is None or "Failed" not in response:
            return "claimed"
        old = response["Failed"]
        if not old:  # an older DynamoDB answer without the item: read it
            old = (self._call("get_item", Key=self._key(key), ConsistentRead=True) or {}).get("Item", {})
        return "done" if old.get("state", {}).get("S") == "done" else "busy"

    def settle(self, key: str, done: bool, keep_until: float) -> None:
        if done:
            self._call(
                "update_item",
                Key=self._key(key),
                UpdateExpression="SET #state = :done, expires_at = :ttl REMOVE lease_until",
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues={":done": {"S": "done"}, ":ttl": _number(int(keep_until))},
            )
        else:
            self._call("delete_item", Key=self._key(key))
