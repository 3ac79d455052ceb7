"""UiaSessions: sessions bound to an operation, bounded in number and lifetime."""

import pytest

from edgehs.errors import MatrixError
from edgehs.service.uia import Operation, UiaSessions


def op(path: str = "/devices/A", **body: object) -> Operation:
    return Operation.of("@a:x", "DELETE", path, dict(body), fields=body.keys())


def test_operation_digest_covers_only_the_named_fields() -> None:
    assert Operation.of("@a:x", "POST", "/p", {"x": 1, "auth": {}}, ["x"]) == \
        Operation.of("@a:x", "POST", "/p", {"x": 1, "other": 2}, ["x"])
    assert Operation.of("@a:x", "POST", "/p", {"x": 1}, ["x"]) != \
        Operation.of("@a:x", "POST", "/p", {"x": 2}, ["x"])


def test_resume_checks_the_operation() -> None:
    sessions = UiaSessions()
    session = sessions.start(op(), {"auth": {"type": "x"}, "k": 1})
    assert session.params == {"k": 1}
    assert sessions.resume(session.session_id, op()) is session
    with pytest.raises(MatrixError) as err:
        sessions.resume(session.session_id, op("/devices/B"))
    assert err.value.status == 403


def test_sessions_expire_and_are_bounded() -> None:
    sessions = UiaSessions(lifetime_s=0)
    expired = sessions.start(op(), {})
    with pytest.raises(MatrixError) as err:
        sessions.resume(expired.session_id, op())
    assert (err.value.status, str(err.value.errcode)) == (400, "M_UNKNOWN")
    sessions = UiaSessions(max_sessions=2)
    first, _, _ = (sessions.start(op(), {}) for _ in range(3))
    with pytest.raises(MatrixError):
        sessions.resume(first.session_id, op())
