"""Answers over the platform's size limits (230025): where they are cut, and how big."""

from shared.results import Card, Post, Text
from worker.split import (
    BODY_OVERHEAD,
    CARD_BODY_LIMIT,
    TEXT_BODY_LIMIT,
    split_reply,
    split_text,
    text_body_size,
)


def test_short_text_is_one_part() -> None:
    assert split_text("hello") == ["hello"]


def test_cuts_fall_on_paragraphs_then_lines_and_stay_under_the_limit() -> None:
    paragraphs = [f"para {i}\n" + "line with \"quotes\" and 中文\n" * 300 for i in range(40)]
    text = "\n\n".join(p.rstrip("\n") for p in paragraphs)
    parts = split_text(text)
    assert len(parts) > 1
    assert all(text_body_size(p) <= TEXT_BODY_LIMIT - BODY_OVERHEAD for p in parts)
    assert all(p.startswith("para ") for p in parts), "each part starts a paragraph"
    assert "\n\n".join(parts) == text
    assert split_text(text) == parts, "the same text always splits the same way"


def test_one_huge_line_is_cut_inside_without_losing_a_character() -> None:
    line = "字" * 120_000  # 360 KB of UTF-8 on one line
    parts = split_text(line, 30 * 1024)
    assert "".join(parts) == line
    assert all(text_body_size(p) <= 30 * 1024 - BODY_OVERHEAD for p in parts)


def test_a_card_over_30_kb_becomes_text_parts_of_its_text() -> None:
    card = Card(card={"schema": "2.0", "body": {"elements": [
        {"tag": "markdown", "content": f"row {i} " + "y" * 300} for i in range(150)]}})
    parts = split_reply(card)
    assert all(isinstance(p, Text) for p in parts)
    assert "\n".join(p.text for p in parts).startswith("row 0 yyy")
    small = Card(card={"schema": "2.0", "body": {"elements": []}})
    assert split_reply(small) == [small]
    post = Post(post={"zh_cn": {"title": "T", "content": [[{"tag": "text",
                                                             "text": "z" * CARD_BODY_LIMIT}]]}})
    assert [type(p) for p in split_reply(post)] == [Text]
