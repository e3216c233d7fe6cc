"""Reading CloudTrail input: JSON lines, CloudTrail log files (gzip or not), EventBridge events, bare records;
what a bad file raises (`intake.log_files` and `irflow detect` turn it into one line); `get_path`."""

from __future__ import annotations

import gzip
import json

import pytest

from irflow.detection.events import CLOUDTRAIL_DETAIL_TYPES, get_path, read_bytes


def record(name: str, event_id: str = "") -> dict:
    return {
        "eventVersion": "1.08",
        "eventSource": "iam.amazonaws.com",
        "eventName": name,
        "eventID": event_id or name,
        "userIdentity": {"type": "IAMUser", "userName": "alice"},
    }


def names(data: bytes) -> list[str]:
    return [r["eventName"] for r in read_bytes(data)]


def jsonl(*documents) -> bytes:
    return "".join(json.dumps(d) + "\n" for d in documents).encode()


def log_file(*records) -> bytes:
    return json.dumps({"Records": list(records)}).encode()


# -------------------------------------------------------------------------------------------- shapes


def test_json_lines_give_every_record_in_order_and_skip_blank_lines() -> None:
    data = jsonl(record("CreateUser")) + b"\n   \n" + jsonl(record("CreateAccessKey"), record("AttachUserPolicy"))
    assert names(data) == ["CreateUser", "CreateAccessKey", "AttachUserPolicy"]


def test_a_cloudtrail_log_file_gives_its_records() -> None:
    assert names(log_file(record("CreateUser"), record("CreateAccessKey"))) == ["CreateUser", "CreateAccessKey"]


def test_a_gzipped_log_file_reads_like_the_plain_one() -> None:
    plain = log_file(record("CreateUser"), record("CreateAccessKey"))
    assert list(read_bytes(gzip.compress(plain))) == list(read_bytes(plain))
    assert names(gzip.compress(jsonl(record("ListUsers"), record("ListRoles")))) == ["ListUsers", "ListRoles"]


def test_a_pretty_printed_log_file_over_several_lines_is_one_document() -> None:
    data = json.dumps({"Records": [record("CreateUser"), record("CreateAccessKey")]}, indent=2).encode()
    assert names(data) == ["CreateUser", "CreateAccessKey"]


def test_a_bare_record_and_a_json_array_of_records() -> None:
    assert names(json.dumps(record("StopLogging")).encode()) == ["StopLogging"]
    assert names(json.dumps([record("StopLogging"), record("DeleteTrail")]).encode()) == ["StopLogging", "DeleteTrail"]


def test_eventbridge_events_of_both_cloudtrail_detail_types_give_their_detail() -> None:
    detail_types = {"AWS API Call via CloudTrail", "AWS Console Sign In via CloudTrail"}
    assert detail_types == CLOUDTRAIL_DETAIL_TYPES
    api_call = {"detail-type": "AWS API Call via CloudTrail", "source": "aws.iam", "detail": record("CreateUser")}
    sign_in = {"detail-type": "AWS Console Sign In via CloudTrail", "source": "aws.signin", "detail": record("X")}
    sign_in["detail"].update(eventSource="signin.amazonaws.com", eventName="ConsoleLogin")
    assert names(jsonl(api_call, sign_in)) == ["CreateUser", "ConsoleLogin"]


def test_other_eventbridge_events_give_no_record() -> None:
    guardduty = {"detail-type": "GuardDuty Finding", "source": "aws.guardduty", "detail": record("CreateUser")}
    no_detail = {"detail-type": "AWS API Call via CloudTrail", "source": "aws.iam", "detail": "CreateUser"}
    assert names(jsonl(guardduty, no_detail)) == []


def test_labelled_corpus_lines_give_their_event() -> None:
    assert names(jsonl({"event": record("StopLogging"), "expected": True, "rule": "AWS.CloudTrail.Stopped"})) == [
        "StopLogging"
    ]


def test_mixed_shapes_in_one_json_lines_file() -> None:
    data = jsonl(
        record("CreateUser"),
        {"detail-type": "AWS API Call via CloudTrail", "detail": record("CreateAccessKey")},
        {"Records": [record("AttachUserPolicy")]},
    )
    assert names(data) == ["CreateUser", "CreateAccessKey", "AttachUserPolicy"]


def test_an_empty_file_has_no_records() -> None:
    assert list(read_bytes(b"")) == []
    assert list(read_bytes(b"\n\n")) == []


# ------------------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize("item", [42, "CreateUser", None, ["CreateUser"]], ids=repr)
def test_a_log_file_entry_that_is_not_a_record_is_skipped_and_the_others_kept(item) -> None:
    assert names(log_file(record("CreateUser"), item, record("DeleteUser"))) == ["CreateUser", "DeleteUser"]


def test_json_lines_that_are_not_records_are_skipped() -> None:
    assert names(b'42\n"text"\nnull\n{"hello": "world"}\n' + jsonl(record("CreateUser"))) == ["CreateUser"]


def test_text_that_is_not_json_raises_a_json_error() -> None:
    with pytest.raises(json.JSONDecodeError):
        list(read_bytes(b"this is not json\n"))


def test_one_bad_line_in_json_lines_refuses_the_file() -> None:
    with pytest.raises(ValueError, match="Expecting"):
        list(read_bytes(jsonl(record("CreateUser")) + b"{ truncated\n" + jsonl(record("DeleteUser"))))


def test_a_truncated_gzip_file_raises_eof() -> None:
    whole = gzip.compress(log_file(record("CreateUser"), record("DeleteUser")))
    with pytest.raises(EOFError):
        list(read_bytes(whole[: len(whole) // 2]))


def test_gzip_magic_followed_by_garbage_raises_bad_gzip_file() -> None:
    with pytest.raises(gzip.BadGzipFile):
        list(read_bytes(b"\x1f\x8b" + b"\x00" * 30))


def test_bytes_that_are_not_utf8_raise_a_decode_error() -> None:
    with pytest.raises(UnicodeDecodeError):
        list(read_bytes(b'{"eventName": "\xff\xfe"}'))


# ------------------------------------------------------------------------------------------- get_path


def test_get_path_follows_dotted_keys() -> None:
    event = {
        "userIdentity": {
            "type": "AssumedRole",
            "sessionContext": {"sessionIssuer": {"userName": "deployer"}},
        }
    }
    assert get_path(event, "userIdentity.sessionContext.sessionIssuer.userName") == "deployer"
    assert get_path(event, "userIdentity.type") == "AssumedRole"
    assert get_path(event, "userIdentity") == event["userIdentity"]


@pytest.mark.parametrize(
    "path",
    [
        "userIdentity.missing",
        "nothing.here",
        "userIdentity.type.more",  # through a string
        "requestParameters.items.0",  # through a list: no indexing
        "responseElements.anything",  # through null
    ],
)
def test_get_path_is_none_for_what_is_not_there(path) -> None:
    event = {
        "userIdentity": {"type": "IAMUser"},
        "requestParameters": {"items": [{"id": "a"}]},
        "responseElements": None,
    }
    assert get_path(event, path) is None


def test_get_path_on_something_that_is_not_a_record_is_none() -> None:
    assert get_path(None, "eventName") is None
    assert get_path(["eventName"], "eventName") is None
