"""Read-your-writes options of a request (``api.requests.wait_of``): ``?wait=true`` and
``Prefer: wait=N`` wait for the node's projection, on commands and reads alike
(docs/api.md, "Read your writes"); ``?after=P:O`` names the position."""

from __future__ import annotations

import pytest
from starlette.requests import Request

from api.errors import ApiError
from api.requests import MAX_WAIT_S, wait_of

DEFAULT = 10.0


def request(query: str = "", prefer: list[str] | None = None) -> Request:
    headers = [(b"prefer", value.encode()) for value in prefer or []]
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/process/p1/progress",
        "query_string": query.encode(),
        "headers": headers,
    }
    return Request(scope)


def test_without_query_or_prefer_nothing_waits() -> None:
    wait = wait_of(request(), DEFAULT)
    assert (wait.enabled, wait.timeout, wait.after, wait.respond_async) == (
        False,
        DEFAULT,
        None,
        False,
    )


@pytest.mark.parametrize("query", ["wait=true", "wait=1", "wait=TRUE"])
def test_wait_true_waits_with_the_default_limit(query: str) -> None:
    wait = wait_of(request(query), DEFAULT)
    assert (wait.enabled, wait.timeout) == (True, DEFAULT)


@pytest.mark.parametrize(
    ("prefer", "timeout"),
    [
        (["wait=5"], 5.0),
        (["Wait = 2.5"], 2.5),
        (["handling=lenient, wait=3"], 3.0),
        (["handling=lenient", "wait=4"], 4.0),  # the header sent twice
        (["wait=3600"], MAX_WAIT_S),
    ],
)
def test_prefer_wait_waits_up_to_n_seconds(prefer: list[str], timeout: float) -> None:
    wait = wait_of(request(prefer=prefer), DEFAULT)
    assert (wait.enabled, wait.timeout, wait.respond_async) == (True, timeout, False)


def test_after_names_the_position_and_waits() -> None:
    wait = wait_of(request("after=2:41"), DEFAULT)
    assert (wait.enabled, wait.after) == (True, (2, 41))


@pytest.mark.parametrize(
    ("query", "field"), [("wait=soon", "wait"), ("after=2", "after"), ("after=a:1", "after")]
)
def test_a_bad_wait_or_after_is_400(query: str, field: str) -> None:
    with pytest.raises(ApiError) as caught:
        wait_of(request(query), DEFAULT)
    assert (caught.value.status, caught.value.code, caught.value.field) == (
        400,
        "invalid_query",
        field,
    )
