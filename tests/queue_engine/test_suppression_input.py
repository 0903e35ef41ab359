"""Block-list uploads and API items: every input is answered, none crashes the parser."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from queue_engine.suppression import EntryError
from queue_engine.suppression_input import parse_block_csv, parse_item, parse_items

NOW = 1_790_000_000_000
API_USERS = {"au1", "au2"}


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_any_bytes_are_lines_or_a_clear_refusal(data: bytes) -> None:
    try:
        good, bad = parse_block_csv(data, own_api_user=None, api_users=API_USERS, now_ms=NOW)
    except EntryError as exc:
        assert exc.field == "file"
        return
    assert all(line >= 1 for line, _ in good)
    assert all(e.where >= 1 and e.message for e in bad)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.text(alphabet=st.sampled_from('ab@.,"\n\r\t\x00é-2099-01-01T#'), max_size=40),
        max_size=30,
    )
)
def test_any_text_lines_are_answered_line_by_line(lines: list[str]) -> None:
    data = "\n".join(lines).encode()
    try:
        good, bad = parse_block_csv(data, own_api_user="au1", api_users=API_USERS, now_ms=NOW)
    except EntryError:
        return
    # An API_USER's upload only ever makes its own entries.
    assert all(item.api_user == "au1" for _, item in good)
    assert len({line for line, _ in good} | {e.where for e in bad}) == len(good) + len(bad)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=10,
)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_any_json_item_is_an_item_or_a_named_field(raw: object) -> None:
    try:
        item = parse_item(
            raw, own_api_user=None, api_users=API_USERS, now_ms=NOW, with_details=True
        )
    except EntryError as exc:
        assert exc.field and str(exc)
    else:
        assert item.target.startswith("@") or "@" in item.target


def test_items_body_shapes() -> None:
    with pytest.raises(EntryError):
        parse_items(
            {"items": "x"}, own_api_user=None, api_users=API_USERS, now_ms=NOW, with_details=True
        )
    good, bad = parse_items(
        {"items": [{"address": "A@B.example"}, {"domain": "@C.example"}, 5]},
        own_api_user=None,
        api_users=API_USERS,
        now_ms=NOW,
        with_details=False,
    )
    assert [i.target for _, i in good] == ["a@b.example", "@c.example"]
    assert [(e.where, e.field) for e in bad] == [(2, "items[2].item")]
