"""A streamed answer shown as one card: sent at once ("thinking"), updated as text
arrives, then finalised.

Updates use the message PATCH API (im-v1/message/patch: a card the bot sent,
JSON 2.0 cards are always shared/updatable) and pass the chat's and the
app's windows like any send (worker/pacing.py). On top of that they are
coalesced: at most one update per UPDATE_INTERVAL_S, carrying all the text
written so far, so a fast model costs a bounded number of calls.

Crash safety: the card is sent with the position-0 uuid of its trigger and its
message id is stored in the spool before the first update. A retry after a
kill -9 finds it and writes into the same card (running the stream again,
or, when the stream had ended, only showing its stored final text); a
resend after a crash between send and store gets the same card back from
the platform by its uuid. So the user never sees a second card.

A stream that fails midway (the model errors, times out) ends the card with
what was written plus an error line; the event is then done, not retried:
the user already sees the outcome.
"""

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from shared.idempotency import send_uuid
from worker.content import neutralise_at_all
from worker.errors import EventError
from worker.outbox import TARGET_GONE_CODES, TERMINAL_CODES
from worker.replies import CallResult, Messenger, Target
from worker.spool import Spool

log = logging.getLogger(__name__)

UPDATE_INTERVAL_S = 0.5
"""Least time between two updates of a streaming card (so at most 2 per second)."""
MAX_CARD_TEXT_BYTES = 28 * 1024
"""A card's content must stay under 30 KB (im-v1 message limits); longer text is cut."""
THINKING = "Thinking…"


def stream_card(text: str, *, final: bool, error: str | None = None) -> dict[str, Any]:
    """The JSON 2.0 card showing `text`: "thinking" while empty, an error line when failed.

    A streamed text is mostly a model's, so `<at id=all>` in it is made harmless (an
    announcement to everyone is never the side effect of an answer).
    """
    shown = _fit(neutralise_at_all(text)) if text else ("" if final else THINKING)
    elements: list[dict[str, Any]] = []
    if shown:
        elements.append({"tag": "markdown", "content": shown, "element_id": "answer"})
    if error:
        elements.append({"tag": "markdown", "content": f"⚠️ {error}", "element_id": "error"})
    summary = (text or THINKING)[:60] if not final or text else "…"
    return {
        "schema": "2.0",
        "config": {"update_multi": True, "summary": {"content": summary}},
        "body": {"elements": elements or [{"tag": "markdown", "content": "…"}]},
    }


def _fit(text: str) -> str:
    data = text.encode()
    if len(data) <= MAX_CARD_TEXT_BYTES:
        return text
    return data[:MAX_CARD_TEXT_BYTES].decode(errors="ignore") + "\n\n…(cut: too long for a card)"


class StreamedCard:
    """Shows one event's text stream in one card; `show` returns the text the user saw."""

    def __init__(self, messenger: Messenger, spool: Spool, event_id: str, target: Target,
                 trigger: str = "", interval_s: float = UPDATE_INTERVAL_S) -> None:
        """`trigger` names the card's uuid (shared/idempotency.py): the message answered,
        as every reply to it; the event id when there is none."""
        self._messenger = messenger
        self._spool = spool
        self._event_id = event_id
        self._trigger = trigger or event_id
        self._target = target
        self._interval_s = interval_s
        self._message_id = ""
        self._updated_mono = 0.0
        self.updates = 0

    @property
    def message_id(self) -> str:
        """The card's message id (known once it was sent or found)."""
        return self._message_id

    async def show(self, pieces: AsyncIterator[str]) -> str:
        """Send (or find) the card, stream into it, finalise it; raise EventError when a
        send or update fails (the event is retried and resumes into the same card)."""
        state = self._spool.stream(self._event_id)
        if state is not None:
            self._message_id = state.message_id
            log.info("event %s: resuming its card %s", self._event_id, state.message_id)
            if state.final_text is not None:
                await aclose(pieces)
                await self._update(stream_card(state.final_text, final=True))
                return state.final_text
            await self._update(stream_card("", final=False))
        else:
            await self._send_card()
        text, error = await self._follow(pieces)
        self._spool.stream_finished(self._event_id, text)
        await self._update(stream_card(text, final=True, error=error))
        return text

    async def _send_card(self) -> None:
        card = stream_card("", final=False)
        result = await self._messenger.send(
            self._target, "interactive", _json(card), send_uuid(self._trigger, 0))
        if not result.ok or not result.message_id:
            raise _failure("streaming card send failed", result)
        self._message_id = result.message_id
        self._spool.stream_started(self._event_id, result.message_id)

    async def _follow(self, pieces: AsyncIterator[str]) -> tuple[str, str | None]:
        """Read the stream to its end, updating the card at a bounded rate; (text, error)."""
        written: list[str] = []
        changed = asyncio.Event()
        updater = asyncio.create_task(self._keep_updating(written, changed),
                                      name=f"stream-{self._event_id}")
        error: str | None = None
        try:
            async for piece in pieces:
                written.append(piece)
                changed.set()
        except EventError as exc:
            error = str(exc)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
        finally:
            updater.cancel()
            await asyncio.gather(updater, return_exceptions=True)
        if error is not None:
            log.warning("event %s: stream failed after %d chars: %s",
                        self._event_id, sum(map(len, written)), error)
        return "".join(written), error

    async def _keep_updating(self, written: list[str], changed: asyncio.Event) -> None:
        """Show the latest text whenever it changed, at most once per interval.

        An update that fails is logged and skipped: the next one (or the final
        one, which is checked) carries all the text anyway.
        """
        while True:
            await changed.wait()
            await self._pace()
            changed.clear()
            try:
                await self._update(stream_card("".join(written), final=False))
            except EventError as exc:
                log.warning("event %s: card update skipped: %s", self._event_id, exc)
            except Exception:
                log.exception("event %s: card update failed; skipped", self._event_id)

    async def _pace(self) -> None:
        """Wait until the interval since the last update has passed."""
        delay = self._updated_mono + self._interval_s - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)

    async def _update(self, card: dict[str, Any]) -> None:
        """One update, starting no sooner than the interval after the previous one ended."""
        await self._pace()
        try:
            result = await self._messenger.update_card(self._message_id, card,
                                                       self._target.chat_key)
        finally:
            self._updated_mono = time.monotonic()
        if not result.ok:
            raise _failure("card update failed", result)
        self.updates += 1


def _failure(what: str, result: CallResult) -> EventError:
    """A refused send or update: permanent when retrying cannot help (worker/outbox.py's
    terminal codes, or the message to answer is gone), else retried (longer for rate)."""
    permanent = result.code in TERMINAL_CODES or result.code in TARGET_GONE_CODES
    return EventError(f"{what}: code {result.code}: {result.error}", permanent=permanent,
                      rate_limited=result.rate_limited)


async def aclose(pieces: AsyncIterator[str]) -> None:
    """Close a stream that will not be read (an async generator's cleanup runs now)."""
    close = getattr(pieces, "aclose", None)
    if close is not None:
        await close()


def _json(card: dict[str, Any]) -> str:
    return json.dumps(card, ensure_ascii=False)
