"""The checks both HTTP servers make before answering: bearer tokens (and, below, request bodies)."""

from __future__ import annotations

import pytest

from josev_bridge.core.http_guard import bearer_matches


@pytest.mark.parametrize("expected", ["", " ", "\n", " \t\n"])
@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer ", "Bearer  ", "bearer \t", "Basic "])
def test_an_empty_expected_token_matches_nothing(expected, header):
    assert not bearer_matches(header, expected)


@pytest.mark.parametrize("header,ok", [("Bearer t0k", True), ("bearer t0k", True), ("BEARER  t0k ", True),
                                       ("Bearer t0k2", False), ("Bearer", False), ("Basic t0k", False),
                                       ("t0k", False), (None, False), ("Bearer tök", False)])
def test_bearer_scheme_is_case_insensitive_and_the_token_exact(header, ok):
    assert bearer_matches(header, "t0k\n") is ok
