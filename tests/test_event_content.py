"""Message parsing: text, post, group mentions, other types, bad content."""

from __future__ import annotations

import json

import pytest

from tests.eventkit import event
from worker.content import MAX_CONTENT_BYTES, ContentError, Message, NotForBot, parse_event

BOT = {"key": "@_user_1", "name": "Bot", "id": {"open_id": "ou_bot"}}
ALICE = {"key": "@_user_2", "name": "Alice", "id": {"open_id": "ou_alice"}}


def test_text_message() -> None:
    msg = parse_event(event("hello", event_id="e1", chat_id="oc_1"), "Bot")
    assert isinstance(msg, Message)
    assert (msg.text, msg.chat_id, msg.chat_type, msg.open_id, msg.event_id) == (
        "hello", "oc_1", "p2p", "ou_sender", "e1",
    )


def test_post_is_flattened_to_text() -> None:
    post = {
        "title": "Title",
        "content": [
            [{"tag": "text", "text": "line "}, {"tag": "a", "text": "link", "href": "http://x"}],
            [{"tag": "img", "image_key": "k"}],
            [
                {"tag": "at", "user_id": "@_user_1", "user_name": "Bot"},
                {"tag": "text", "text": " q"},
            ],
        ],
    }
    payload = event(message_type="post", content=json.dumps(post), chat_type="group",
                    mentions=[BOT])
    assert parse_event(payload, "Bot").text == "Title\nline link\nq"
    wrapped = {"zh_cn": {"title": "", "content": [[{"tag": "text", "text": "hi"}]]}}
    assert parse_event(event(message_type="post", content=json.dumps(wrapped))).text == "hi"


def test_group_message_needs_a_mention_which_is_stripped() -> None:
    assert isinstance(parse_event(event("hi all", chat_type="group"), "Bot"), NotForBot)
    msg = parse_event(event("@_user_1 what  time?", chat_type="group", mentions=[BOT]), "Bot")
    assert msg.text == "what time?"


def test_bot_mention_found_by_name_others_kept_readable() -> None:
    payload = event("@_user_2 ping @_user_1 now", chat_type="group", mentions=[ALICE, BOT])
    assert parse_event(payload, "Bot").text == "@Alice ping now"
    assert parse_event(payload, "Other").text == "ping @Bot now", "first mention is the bot"


def test_other_types_pass_with_raw_content_and_no_text() -> None:
    content = json.dumps({"image_key": "img_1"})
    msg = parse_event(event(message_type="image", content=content))
    assert (msg.text, msg.content, msg.message_type) == (None, content, "image")


def test_non_message_events_are_not_for_the_bot() -> None:
    assert isinstance(parse_event(event(event_type="im.chat.updated_v1")), NotForBot)


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        event(content="{broken"),
        event(content=json.dumps({"text": 5})),
        event(content=json.dumps({"text": "x" * (MAX_CONTENT_BYTES + 1)})),
    ],
    ids=["payload", "content", "text-type", "oversized"],
)
def test_bad_content_raises_content_error(payload: bytes) -> None:
    with pytest.raises(ContentError):
        parse_event(payload)
