"""Canonical JSON: https://spec.matrix.org/v1.19/appendices/#canonical-json"""

import json

import pytest

from edgehs.errors import Codes, MatrixError
from edgehs.protocol.canonical_json import (
    MAX_SAFE_INTEGER,
    MIN_SAFE_INTEGER,
    check_canonical_json,
    encode_canonical_json,
    json_size,
)

# The appendix's "Examples" section, verbatim: (given JSON text, expected canonical JSON).
SPEC_EXAMPLES = [
    ("{}", "{}"),
    (
        """{
    "one": 1,
    "two": "Two"
}""",
        '{"one":1,"two":"Two"}',
    ),
    (
        """{
    "b": "2",
    "a": "1"
}""",
        '{"a":"1","b":"2"}',
    ),
    ('{"b":"2","a":"1"}', '{"a":"1","b":"2"}'),
    (
        """{
    "auth": {
        "success": true,
        "mxid": "@john.doe:example.com",
        "profile": {
            "display_name": "John Doe",
            "three_pids": [
                {
                    "medium": "email",
                    "address": "john.doe@example.org"
                },
                {
                    "medium": "msisdn",
                    "address": "123456789"
                }
            ]
        }
    }
}""",
        '{"auth":{"mxid":"@john.doe:example.com","profile":{"display_name":"John Doe",'
        '"three_pids":[{"address":"john.doe@example.org","medium":"email"},'
        '{"address":"123456789","medium":"msisdn"}]},"success":true}}',
    ),
    (
        """{
    "a": "日本語"
}""",
        '{"a":"日本語"}',
    ),
    (
        """{
    "本": 2,
    "日": 1
}""",
        '{"日":1,"本":2}',
    ),
    (
        """{
    "a": "\\u65E5"
}""",
        '{"a":"日"}',
    ),
    (
        """{
    "a": null
}""",
        '{"a":null}',
    ),
    (
        """{
    "a": -0,
    "b": 1e10
}""",
        '{"a":0,"b":10000000000}',
    ),
]


def _integral_number(text: str) -> int | float:
    """Read ``1e10`` as the integer it denotes, as the appendix's last example expects.

    Python's parser returns a float for any number written with an exponent; edgehs itself
    rejects floats (see ``check_canonical_json``), so this only serves to replay the example.
    """
    value = float(text)
    return int(value) if value.is_integer() else value


@pytest.mark.parametrize(("given", "expected"), SPEC_EXAMPLES)
def test_spec_appendix_examples(given: str, expected: str) -> None:
    obj = json.loads(given, parse_float=_integral_number)
    assert encode_canonical_json(obj) == expected.encode("utf-8")


def test_output_is_utf8_not_ascii_escapes() -> None:
    assert encode_canonical_json({"a": "日"}) == '{"a":"日"}'.encode()
    assert encode_canonical_json({"a": "日"}) == b'{"a":"\xe6\x97\xa5"}'


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        ("\n", b'"\\n"'),
        ("\t", b'"\\t"'),
        ("\x08", b'"\\b"'),
        ("\x0c", b'"\\f"'),
        ("\r", b'"\\r"'),
        ('"', b'"\\""'),
        ("\\", b'"\\\\"'),
        # Other control characters use \u00XX with lower-case hex digits (the spec grammar).
        ("\x01", b'"\\u0001"'),
        ("\x1f", b'"\\u001f"'),
        # Everything from U+0020 up is emitted as is (no redundant escapes).
        ("/", b'"/"'),
        ("\x7f", b'"\x7f"'),
        ("\u2028", '"\u2028"'.encode()),
    ],
)
def test_string_escapes_follow_the_grammar(value: str, encoded: bytes) -> None:
    assert encode_canonical_json(value) == encoded


def test_keys_sort_by_code_point() -> None:
    obj = {"b": 1, "a": 2, "B": 3, "é": 4, "aa": 5, "": 6}
    assert encode_canonical_json(obj) == '{"":6,"B":3,"a":2,"aa":5,"b":1,"é":4}'.encode()


def test_nested_structures_and_literals() -> None:
    obj = {"z": [3, {"y": True, "x": False}], "n": None, "neg": -5}
    assert encode_canonical_json(obj) == b'{"n":null,"neg":-5,"z":[3,{"x":false,"y":true}]}'


def test_nan_is_rejected() -> None:
    with pytest.raises(ValueError):
        encode_canonical_json({"a": float("nan")})


def test_json_size_counts_utf8_bytes() -> None:
    assert json_size({}) == 2
    assert json_size({"one": 1, "two": "Two"}) == len(b'{"one":1,"two":"Two"}')
    # Three 3-byte characters: {"a":"日本語"} is 8 ASCII bytes + 9.
    assert json_size({"a": "日本語"}) == 17


@pytest.mark.parametrize(
    "value",
    [
        {},
        {"a": [1, "x", None, True, False, {"b": []}]},
        {"max": MAX_SAFE_INTEGER, "min": MIN_SAFE_INTEGER},
        [0, -1, 2**53 - 1],
        "text",
        None,
    ],
)
def test_check_accepts_canonical_values(value: object) -> None:
    check_canonical_json(value)


@pytest.mark.parametrize(
    ("value", "where"),
    [
        ({"a": 1.5}, ".a"),
        ({"a": 1.0}, ".a"),
        ({"a": {"b": [1, 2, 0.1]}}, ".a.b[2]"),
        ({"big": 2**53}, ".big"),
        ({"small": -(2**53)}, ".small"),
        ({"a": [10**20]}, ".a[0]"),
        ({1: "x"}, "."),
        ({"s": {1, 2}}, ".s"),
    ],
)
def test_check_rejects_non_canonical_values(value: object, where: str) -> None:
    with pytest.raises(MatrixError) as exc:
        check_canonical_json(value)
    assert exc.value.status == 400
    assert exc.value.errcode == Codes.BAD_JSON
    assert f"at {where}:" in exc.value.msg
