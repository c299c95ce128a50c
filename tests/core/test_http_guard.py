"""The checks both HTTP servers make before answering: bearer tokens (and, below, request bodies)."""

from __future__ import annotations

from email.message import Message

import pytest

from josev_bridge.core.http_guard import BodyRefused, bearer_matches, body_length


@pytest.mark.parametrize("expected", ["", " ", "\n", " \t\n"])
@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer ", "Bearer  ", "bearer \t", "Basic "])
def test_an_empty_expected_token_matches_nothing(expected, header):
    assert not bearer_matches(header, expected)


@pytest.mark.parametrize("header,ok", [("Bearer t0k", True), ("bearer t0k", True), ("BEARER  t0k ", True),
                                       ("Bearer t0k2", False), ("Bearer", False), ("Basic t0k", False),
                                       ("t0k", False), (None, False), ("Bearer tök", False)])
def test_bearer_scheme_is_case_insensitive_and_the_token_exact(header, ok):
    assert bearer_matches(header, "t0k\n") is ok


def headers(*pairs: tuple[str, str]) -> Message:
    message = Message()
    for name, value in pairs:
        message[name] = value
    return message


@pytest.mark.parametrize("pairs,length", [((), 0), ((("Content-Length", "0"),), 0), ((("Content-Length", " 12 "),), 12),
                                          ((("Content-Length", "7"), ("Content-Length", "7")), 7),
                                          ((("Content-Length", "100"),), 100)])
def test_body_length(pairs, length):
    assert body_length(headers(*pairs), 100) == length


@pytest.mark.parametrize("pairs,status", [
    ((("Content-Length", "abc"),), 400), ((("Content-Length", "-1"),), 400), ((("Content-Length", "+1"),), 400),
    ((("Content-Length", "1_0"),), 400), ((("Content-Length", "١"),), 400), ((("Content-Length", ""),), 400),
    ((("Content-Length", "1"), ("Content-Length", "2")), 400), ((("Content-Length", "101"),), 413),
    ((("Transfer-Encoding", "chunked"),), 411), ((("Transfer-Encoding", "chunked"), ("Content-Length", "5")), 411),
])
def test_body_length_refusals(pairs, status):
    with pytest.raises(BodyRefused) as exc:
        body_length(headers(*pairs), 100)
    assert exc.value.status == status
