"""Order tags: 16 characters that name the session and the order, whatever the names' lengths."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from qkt.brokers.tags import order_tag, run_stamp, session_of, session_tag


def test_orders_of_a_long_strategy_name_differ_within_16_characters() -> None:
    # Client ids share their first 16 characters; their tags must not.
    ids = [f"gold_breakout_london-{n:06d}" for n in range(1, 2001)]
    assert len({cid[:16] for cid in ids}) == 1
    tags = {order_tag("gold_breakout_london", cid) for cid in ids}
    assert len(tags) == len(ids)
    assert {len(t) for t in tags} == {16}


@given(st.text(min_size=1, max_size=60), st.text(min_size=1, max_size=60))
def test_a_tag_names_its_session(session: str, client_id: str) -> None:
    tag = order_tag(session, client_id)
    assert len(tag) == 16 and tag.isascii()
    assert session_of(tag) == session_tag(session)


def test_comments_qkt_did_not_write_belong_to_no_session() -> None:
    assert session_of("") is None
    assert session_of("manual trade") is None
    assert session_of("[sl 1.08000]") is None


def test_run_stamps_grow_and_never_repeat() -> None:
    stamps = [run_stamp() for _ in range(50)]
    assert len(set(stamps)) == 50
    assert stamps == sorted(stamps, key=lambda s: (len(s), s))
    assert run_stamp(36**3) == "1000"
