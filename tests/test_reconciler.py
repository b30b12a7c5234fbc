"""The supervisor's policy over a fake OS: every phase x event, boot, shutdown and delete.

Real Supervisor code, real SQLite store; processes, control channel and clock
are the fakes of tests/ctlkit.py, so each case runs in milliseconds and can
place an event exactly where a race would put it.
"""

import asyncio
from pathlib import Path

import pytest

from shared import exitcodes
from shared.changes import ChangeKind, Subscription
from shared.states import ConnState
from shared.status import BotStatus
from store import NotFound
from supervisor.lifecycle import Phase
from tests.ctlkit import Rig, run


def test_a_connect_during_the_warm_up_is_recorded_and_started_once_ready(tmp_path: Path) -> None:
    """Item 1: boot walked the desired bots and started one the API had started: crash."""

    async def main() -> None:
        rig = Rig(tmp_path)
        sup = rig.supervisor
        wanted = rig.create(connected=True)
        starting = asyncio.create_task(sup.start())
        await rig.settle()
        early = rig.create()
        hook = rig.create(webhook=True)
        await sup.connect(wanted)
        await sup.connect(early)
        await sup.bot_added(hook)
        await rig.settle()
        assert rig.processes.workers == [], "nothing forks before the zygote is warm"
        assert not sup.ready()
        rig.processes.ready.set()
        await asyncio.wait_for(starting, 1)
        await rig.settle()
        for bot_id in (wanted, early, hook):
            assert len(rig.processes.of(bot_id)) == 1, bot_id
            assert rig.phase(bot_id) == Phase.STARTING
        await rig.shutdown()
        rig.close()

    asyncio.run(main())


def test_desired_bots_come_back_at_boot(tmp_path: Path) -> None:
    async def case(rig: Rig) -> None:
        assert {w.spec.bot.id for w in rig.processes.workers} == {rig.wanted}

    async def main() -> None:
        rig = Rig(tmp_path)
        rig.wanted = rig.create(connected=True)  # type: ignore[attr-defined]
        rig.create()
        rig.processes.ready.set()
        await rig.supervisor.start()
        await rig.settle()
        await case(rig)
        await rig.shutdown()
        rig.close()

    asyncio.run(main())


def test_connect_hello_report_is_connected_and_announced_once_each(tmp_path: Path) -> None:
    async def case(rig: Rig) -> None:
        bot_id = await rig.add()
        with rig.supervisor.subscribe() as changes:
            worker = await rig.connect_and_report(bot_id)
            rig.report(worker)  # the same again: no new record
            states = []
            while (change := await changes.get(0)) is not None:
                states.append((change.kind, change.to_state, change.phase))
        assert states == [
            (ChangeKind.STATE, ConnState.CONNECTING, Phase.STARTING),
            (ChangeKind.STATE, ConnState.CONNECTING, Phase.RUNNING),
            (ChangeKind.STATE, ConnState.CONNECTED, Phase.RUNNING),
        ]
        assert rig.state(bot_id) == "connected"

    run(case, tmp_path)


def test_a_worker_that_connects_before_its_fork_returns_is_announced_with_its_pid(
    tmp_path: Path,
) -> None:
    """Under load the zygote's answer to a fork can come after the worker's hello and its
    first reports (50 workers killed at once among 1,000): the record announcing
    `connected` must carry the pid the hello gave, as the status does, or a client that
    follows the events stream sees a connected bot without a pid until its next change."""
    async def case(rig: Rig) -> None:
        bot_id = await rig.add()
        rig.processes.hold_spawns = asyncio.Event()
        with rig.supervisor.subscribe() as changes:
            worker = await rig.connect_and_report(bot_id)
            records = []
            while (change := await changes.get(0)) is not None:
                records.append((change.to_state, change.status.pid))
            assert records[-1] == (ConnState.CONNECTED, worker.pid), records
            assert rig.supervisor.status(bot_id).pid == worker.pid
            rig.processes.hold_spawns.set()
            await rig.settle()
            assert rig.supervisor.status(bot_id).pid == worker.pid
            worker.exit(exitcodes.TRANSIENT)
            await rig.settle()
            assert rig.supervisor.status(bot_id).pid != worker.pid, "its pid went with it"

    run(case, tmp_path)


def test_a_killed_worker_is_replaced_at_once_then_backs_off(tmp_path: Path) -> None:
    """The first death after connecting is news, not a loop: restarted at once; the next
    one waits its jittered backoff (supervisor/backoff.py)."""
    async def case(rig: Rig) -> None:
        bot_id = await rig.add(connected=True)
        first = rig.worker(bot_id)
        rig.connected(first)
        first.exit(-9)
        await rig.settle()
        second = rig.worker(bot_id)
        assert second is not first and second.spec.incarnation > first.spec.incarnation
        status = rig.supervisor.status(bot_id)
        assert (status.state, status.restarts, status.attempt) == ("connecting", 1, 1)
        rig.connected(second)
        second.exit(-9)
        await rig.settle()
        status = rig.supervisor.status(bot_id)
        assert (status.state, status.restarts, status.attempt) == ("reconnecting", 2, 2)
        assert status.next_retry_at and not status.flapping
        await rig.advance(2.01)
        third = rig.worker(bot_id)
        assert third is not second and third.spec.incarnation > second.spec.incarnation

    run(case, tmp_path)


def test_silence_past_the_heartbeat_timeout_is_a_hang_killed_at_once(tmp_path: Path) -> None:
    async def case(rig: Rig) -> None:
        bot_id = await rig.add(connected=True)
        worker = rig.worker(bot_id)
        rig.connected(worker)
        await rig.advance(2.9)
        assert not worker.killed
        await rig.advance(0.2)
        assert worker.killed and worker.exited
        assert rig.worker(bot_id) is not worker, "the first death after connecting: at once"
        # Review: "no heartbeat for 5 s" was the bound, read by a user as the silence measured.
        assert rig.supervisor.status(bot_id).error == "no heartbeat for 3.1 s (timeout 3 s)"

    run(case, tmp_path)


def test_no_hello_within_the_start_timeout_is_killed(tmp_path: Path) -> None:
    async def case(rig: Rig) -> None:
        bot_id = await rig.add(connected=True)
        worker = rig.worker(bot_id)
        await rig.advance(10.1)
        assert worker.killed and rig.phase(bot_id) == Phase.BACKOFF

    run(case, tmp_path)


def test_a_failed_fork_backs_off_like_a_crash(tmp_path: Path) -> None:
    async def case(rig: Rig) -> None:
        rig.processes.fail_spawns = 1
        bot_id = await rig.add(connected=True)
        await rig.settle()
        assert rig.phase(bot_id) == Phase.BACKOFF
        assert "fork failed" in (rig.supervisor.status(bot_id).error or "")
        await rig.advance(1.01)
        assert len(rig.processes.live(bot_id)) == 1

    run(case, tmp_path)


def test_disconnect_returns_once_the_worker_is_gone_and_clears_the_old_trouble(
    tmp_path: Path,
) -> None:
    async def case(rig: Rig) -> None:
        bot_id = await rig.add(connected=True)
        worker = rig.worker(bot_id)
        rig.hello(worker)
        rig.report(worker, private_bytes=123_456)
        bot = rig.supervisor._bots[bot_id]
        bot.error = "old trouble"
        for t in range(5):
            bot.backoff.failed(float(t), after_connecting=True)
        with rig.supervisor.subscribe() as changes:
            disconnect = asyncio.create_task(rig.supervisor.disconnect(bot_id))
            await rig.settle()
            assert rig.channel.stops_to(worker) == 1 and not disconnect.done()
            worker.exit(exitcodes.STOPPED)
            await asyncio.wait_for(disconnect, 1)
            status = rig.supervisor.status(bot_id)
            assert (status.state, status.error, status.flapping, status.private_bytes) == (
                "disconnected", None, False, 0)
            assert not rig.store.is_desired(bot_id)
            announced = await disconnected_records(changes)
        assert announced[-1] == status, "the record carries the status as it is after the change"
        assert [(a.error, a.flapping) for a in announced] == [(None, False)] * len(announced)

    run(case, tmp_path)


async def disconnected_records(changes: Subscription) -> list[BotStatus]:
    """The statuses in the change records that announce `disconnected` (stopping, stopped)."""
    found = []
    while (change := await changes.get(0)) is not None:
        if (change.kind == ChangeKind.STATE and change.to_state == "disconnected"
                and change.status is not None):
            found.append(change.status)
    return found


def test_disconnecting_a_bot_in_error_announces_it_without_the_old_error(
    tmp_path: Path,
) -> None:
    """Review: the `disconnected` record still carried the old error, code and memory figure
    (the status was cleared only after it was announced)."""

    async def case(rig: Rig) -> None:
        bot_id = await rig.add(connected=True)
        rig.report(rig.worker(bot_id), ConnState.CONNECTING, private_bytes=123_456)
        rig.refuse(rig.worker(bot_id))
        await rig.settle()
        assert rig.supervisor.status(bot_id).error_code == 10003
        with rig.supervisor.subscribe() as changes:
            await rig.supervisor.disconnect(bot_id)
            [announced] = await disconnected_records(changes)
        assert (announced.error, announced.error_code, announced.private_bytes) == (None, None, 0)

    run(case, tmp_path)


def test_a_worker_that_ignores_stop_is_killed_after_the_grace(tmp_path: Path) -> None:
    async def case(rig: Rig) -> None:
        bot_id = await rig.add(connected=True)
        worker = rig.worker(bot_id)
        rig.connected(worker)
        disconnect = asyncio.create_task(rig.supervisor.disconnect(bot_id))
        await rig.settle()
        await rig.advance(4.9)
        assert not worker.killed
        await rig.advance(0.2)
        await asyncio.wait_for(disconnect, 1)
        assert worker.killed and rig.phase(bot_id) == Phase.STOPPED

    run(case, tmp_path)


def test_connect_during_a_stop_restarts_after_it_never_hangs(tmp_path: Path) -> None:
    """Item 3: a connect during DELETE/disconnect restarted the worker; the DELETE hung."""

    async def case(rig: Rig) -> None:
        bot_id = await rig.add(connected=True)
        worker = rig.worker(bot_id)
        rig.connected(worker)
        disconnect = asyncio.create_task(rig.supervisor.disconnect(bot_id))
        await rig.settle()
        connect = asyncio.create_task(rig.supervisor.connect(bot_id))
        await rig.settle()
        assert not connect.done(), "commands on one bot are serialised"
        worker.exit(exitcodes.STOPPED)
        await asyncio.wait_for(disconnect, 1)
        await asyncio.wait_for(connect, 1)
        await rig.settle()
        assert rig.phase(bot_id) == Phase.STARTING and len(rig.processes.live(bot_id)) == 1

    run(case, tmp_path)


def test_commands_on_a_bot_being_deleted_answer_not_found(tmp_path: Path) -> None:
    async def case(rig: Rig) -> None:
        sup = rig.supervisor
        bot_id = await rig.add(connected=True)
        worker = rig.worker(bot_id)
        rig.connected(worker)
        delete = asyncio.create_task(sup.bot_removed(bot_id))
        await rig.settle()
        for command in (sup.connect, sup.disconnect, sup.bot_removed, sup.bot_changed):
            with pytest.raises(NotFound):
                await asyncio.wait_for(command(bot_id), 1)
        worker.exit(exitcodes.STOPPED)
        await asyncio.wait_for(delete, 1)
        assert bot_id not in sup._bots
        with pytest.raises(NotFound):
            rig.store.get_bot(bot_id)
        with pytest.raises(NotFound):
            await sup.connect(bot_id)

    run(case, tmp_path)


def test_two_deletes_at_once_one_deletes_the_other_is_not_found(tmp_path: Path) -> None:
    async def case(rig: Rig) -> None:
        bot_id = await rig.add()
        results = await asyncio.gather(
            rig.supervisor.bot_removed(bot_id), rig.supervisor.bot_removed(bot_id),
            return_exceptions=True,
        )
        assert sorted(type(r).__name__ for r in results) == ["NoneType", "NotFound"]

    run(case, tmp_path)


def test_a_delete_that_cannot_finish_is_bounded(tmp_path: Path) -> None:
    async def case(rig: Rig) -> None:
        bot_id = await rig.add(connected=True)
        worker = rig.worker(bot_id)
        rig.processes.kill = lambda w: None  # type: ignore[method-assign]  # unkillable
        delete = asyncio.create_task(rig.supervisor.bot_removed(bot_id))
        await rig.advance(100.0)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(delete, 2)
        assert not worker.exited

    run(case, tmp_path)


def test_a_permanent_refusal_is_fatal_until_connect_is_asked_again(tmp_path: Path) -> None:
    async def case(rig: Rig) -> None:
        bot_id = await rig.add(connected=True)
        rig.refuse(rig.worker(bot_id))
        await rig.advance(120.0)
        status = rig.supervisor.status(bot_id)
        assert (status.state, status.error_code) == ("error", 10003)
        assert len(rig.processes.of(bot_id)) == 1, "no retries"
        await rig.supervisor.connect(bot_id)
        await rig.settle()
        assert len(rig.processes.live(bot_id)) == 1
        assert rig.supervisor.status(bot_id).error is None

    run(case, tmp_path)


def test_a_config_change_restarts_a_running_worker_with_the_new_config(tmp_path: Path) -> None:
    async def case(rig: Rig) -> None:
        bot_id = await rig.add(connected=True)
        old = rig.worker(bot_id)
        rig.connected(old)
        rig.store.update_bot(bot_id, None, name="renamed")
        await rig.supervisor.bot_changed(bot_id)
        assert rig.phase(bot_id) == Phase.STOPPING and rig.channel.stops_to(old) == 1
        old.exit(exitcodes.STOPPED)
        await rig.settle()
        new = rig.worker(bot_id)
        assert new.spec.bot.name == "renamed" and rig.phase(bot_id) == Phase.STARTING

    run(case, tmp_path)


def test_an_error_bot_switched_to_webhook_mode_is_served_at_once(tmp_path: Path) -> None:
    """Review: a bot in `error` PATCHed to webhook mode stayed in `error`, no worker, until a
    supervisor restart (pushes 503, ws/connect 409 webhook_mode); a config change of a bot in
    `error` or backoff is acted on at once, as a connect is."""

    async def case(rig: Rig) -> None:
        bot_id = await rig.add(connected=True)
        rig.refuse(rig.worker(bot_id))
        await rig.settle()
        assert rig.state(bot_id) == "error"
        rig.store.update_bot(bot_id, None, use_websocket=False, verification_token="VT2xxxxx")
        await rig.supervisor.bot_changed(bot_id)
        await rig.settle()
        worker = rig.worker(bot_id)
        assert not worker.spec.bot.use_websocket
        status = rig.supervisor.status(bot_id)
        assert (status.state, status.error, status.error_code) == ("webhook", None, None)
        rig.hello(worker)
        rig.report(worker, ConnState.WEBHOOK)
        assert rig.state(bot_id) == "webhook"

    run(case, tmp_path)


def test_a_webhook_bot_in_error_switched_to_websocket_follows_the_connect_wish(
    tmp_path: Path,
) -> None:
    """The reverse: without a connect wish it rests disconnected (no stale error), with one
    it starts at once on the new config."""

    async def case(rig: Rig) -> None:
        for wished in (False, True):
            bot_id = await rig.add(webhook=True)
            rig.refuse(rig.worker(bot_id))
            await rig.settle()
            assert rig.state(bot_id) == "error"
            if wished:
                rig.store.set_desired_connected(bot_id, True)
            rig.store.update_bot(bot_id, None, use_websocket=True)
            await rig.supervisor.bot_changed(bot_id)
            await rig.settle()
            status = rig.supervisor.status(bot_id)
            if wished:
                assert rig.worker(bot_id).spec.bot.use_websocket
                assert (status.state, status.error) == ("connecting", None)
            else:
                assert rig.processes.live(bot_id) == []
                assert (status.state, status.error) == ("disconnected", None)

    run(case, tmp_path)


def test_a_patch_that_fixes_the_secret_of_an_error_or_backoff_bot_retries_at_once(
    tmp_path: Path,
) -> None:
    async def case(rig: Rig) -> None:
        refused = await rig.add(connected=True)
        rig.refuse(rig.worker(refused))
        crashed = await rig.add(connected=True)
        rig.worker(crashed).exit(1)
        await rig.settle()
        assert (rig.state(refused), rig.phase(crashed)) == ("error", Phase.BACKOFF)
        for bot_id in (refused, crashed):
            rig.store.update_bot(bot_id, None, app_secret="fixed")
            await rig.supervisor.bot_changed(bot_id)
            await rig.settle()
            assert rig.worker(bot_id).spec.bot.app_secret == "fixed", "no wait for a retry"
            assert rig.supervisor.status(bot_id).error is None
        assert rig.supervisor.status(crashed).attempt == 0, "a fresh start, as after connect"

    run(case, tmp_path)


def test_an_exception_in_one_bots_step_parks_only_that_bot(tmp_path: Path) -> None:
    """Item 4: one bot whose start raised stopped the loop for every bot."""

    async def case(rig: Rig) -> None:
        bad = await rig.add()
        good = await rig.add()
        real = rig.store.get_bot

        def exploding(bot_id: str, owner: str | None = None):  # type: ignore[no-untyped-def]
            if bot_id == bad:
                raise RuntimeError("injected")
            return real(bot_id, owner)

        rig.store.get_bot = exploding  # type: ignore[method-assign]
        await rig.supervisor.connect(bad)
        await rig.supervisor.connect(good)
        await rig.settle()
        status = rig.supervisor.status(bad)
        assert (status.state, status.error_code) == ("error", "internal")
        assert "injected" in (status.error or "")
        rig.connected(rig.worker(good))
        assert rig.state(good) == "connected"
        rig.say(rig.worker(good), object())  # type: ignore[arg-type]  # a message that raises
        await rig.advance(1.0)
        rig.report(rig.worker(good))
        assert rig.state(good) == "connected", "the loop and the router carry on"

    run(case, tmp_path)


def test_failures_to_connect_back_off_but_never_flap(tmp_path: Path) -> None:
    """Item 6: a short outage parked the bot at the 60 s flapping cap."""

    async def case(rig: Rig) -> None:
        bot_id = await rig.add(connected=True)
        for _ in range(8):
            worker = rig.worker(bot_id)
            rig.hello(worker)
            worker.exit(exitcodes.TRANSIENT)
            await rig.settle()
            status = rig.supervisor.status(bot_id)
            assert not status.flapping
            await rig.advance(60.0)
        assert rig.supervisor.status(bot_id).attempt == 8

    run(case, tmp_path)


def test_crashes_after_connecting_are_held_as_flapping(tmp_path: Path) -> None:
    async def case(rig: Rig) -> None:
        bot_id = await rig.add(connected=True)
        for _ in range(5):
            worker = rig.worker(bot_id)
            rig.connected(worker)
            worker.exit(-9)
            await rig.settle()
            if not rig.supervisor.status(bot_id).flapping:
                await rig.advance(2.0)
        status = rig.supervisor.status(bot_id)
        assert status.flapping and status.state == "reconnecting"
        await rig.supervisor.connect(bot_id)
        assert not rig.supervisor.status(bot_id).flapping, "connect lifts the hold"

    run(case, tmp_path)


def test_attempt_5000_still_backs_off_and_retries(tmp_path: Path) -> None:
    """Item 2: the delay overflowed at attempt ~1,024 and the bot wedged."""

    async def case(rig: Rig) -> None:
        bot_id = await rig.add(connected=True)
        rig.supervisor._bots[bot_id].backoff.attempt = 4999
        rig.worker(bot_id).exit(exitcodes.TRANSIENT)
        await rig.settle()
        status = rig.supervisor.status(bot_id)
        assert (status.state, status.attempt) == ("reconnecting", 5000)
        await rig.advance(61.0)
        assert len(rig.processes.live(bot_id)) == 1

    run(case, tmp_path)


def test_messages_from_an_old_incarnation_are_ignored(tmp_path: Path) -> None:
    async def case(rig: Rig) -> None:
        bot_id = await rig.add(connected=True)
        old = rig.worker(bot_id)
        rig.connected(old)
        old.exit(-9)
        await rig.advance(2.0)
        new = rig.worker(bot_id)
        rig.report(old)
        assert rig.phase(bot_id) == Phase.STARTING
        rig.hello(new)
        assert rig.phase(bot_id) == Phase.RUNNING

    run(case, tmp_path)


def test_shutdown_stops_everyone_kills_stragglers_and_restarts_nothing(tmp_path: Path) -> None:
    async def main() -> None:
        rig = Rig(tmp_path)
        polite, stubborn = rig.create(connected=True), rig.create(webhook=True)
        backing_off = rig.create(connected=True)
        rig.processes.ready.set()
        await rig.supervisor.start()
        await rig.settle()
        rig.connected(rig.worker(polite))
        rig.hello(rig.worker(stubborn))
        rig.worker(backing_off).exit(-9)
        await rig.settle()
        p, s = rig.worker(polite), rig.worker(stubborn)
        shutdown = asyncio.create_task(rig.supervisor.shutdown())
        await rig.settle()
        assert rig.channel.stops_to(p) == 1 and rig.channel.stops_to(s) == 1
        p.exit(exitcodes.STOPPED)
        await rig.advance(5.1)
        await asyncio.wait_for(shutdown, 2)
        assert s.killed and not p.killed
        assert rig.processes.live() == [] and len(rig.processes.workers) == 3
        assert rig.store.is_desired(polite), "the wish survives for the next boot"
        rig.close()

    asyncio.run(main())


def test_timer_ticks_skip_the_policy_for_running_bots_with_a_fresh_beat(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At rest the policy ran for every bot four times a second (most of the supervisor's
    CPU at 1,000 bots); a timer tick now decides only for bots that may need an action,
    and a silent worker is still killed on the first tick past the timeout. Only where
    leases lapse by time (cluster mode) does a timer tick make a full pass every second."""
    from supervisor import supervisor as module

    async def case(rig: Rig) -> None:
        bots = [await rig.add(connected=True) for _ in range(20)]
        for bot_id in bots:
            rig.connected(rig.worker(bot_id))
        decided: list[str] = []
        real = module.decide
        monkeypatch.setattr(module, "decide",
                            lambda view, *a: decided.append(view.phase) or real(view, *a))
        for _ in range(8):
            rig.clock.now += 0.25
            rig.supervisor._reconcile(full=False)
        assert decided == [], "one host: timer ticks decided for running bots with a fresh beat"
        for bot_id in bots:
            rig.report(rig.worker(bot_id))
        monkeypatch.setattr(rig.supervisor.placement, "lapses", True, raising=False)
        rig.clock.now += module.FULL_PASS_S
        rig.supervisor._reconcile(full=False)
        assert len(decided) == 20, "leases lapse: a second after the last full pass, a full pass"
        decided.clear()
        for _ in range(3):
            rig.clock.now += 0.25
            rig.supervisor._reconcile(full=False)
        assert decided == [], "timer ticks decided for running bots with a fresh beat"
        rig.clock.now += 0.25
        rig.supervisor._reconcile(full=False)
        assert len(decided) == 20, "leases lapse: a full pass every second"
        monkeypatch.setattr(rig.supervisor.placement, "lapses", False, raising=False)
        silent = rig.worker(bots[0])
        rig.clock.now += 2.9
        for bot_id in bots[1:]:
            rig.report(rig.worker(bot_id))
        rig.supervisor._reconcile(full=True)
        decided.clear()
        rig.clock.now += 0.2
        rig.supervisor._reconcile(full=False)
        assert decided == [Phase.RUNNING] and silent.killed

    run(case, tmp_path)


def test_a_late_beat_from_a_loop_waiting_for_io_is_not_a_hang(tmp_path: Path) -> None:
    """An idle worker beats every 30 s (worker/beats.py): when its beat is nearly late the
    supervisor looks at its loop in /proc, and a loop asleep in epoll_wait counts as a
    beat. Once the kernel no longer shows it waiting (stopped, blocked, spinning), the kill
    comes at the last proof of life plus the timeout, as it did with beats alone."""
    async def case(rig: Rig) -> None:
        bot_id = await rig.add(connected=True)
        worker = rig.worker(bot_id)
        assert (worker.spec.heartbeat_interval, worker.spec.idle_beat_interval) == (1.5, 30.0)
        rig.hello(worker, loop_tid=worker.pid + 1)
        rig.report(worker)
        rig.loops.waiting.add(worker.pid)
        for _ in range(100):  # 25 s without a beat, asleep in epoll_wait throughout
            await rig.advance(0.25)
        assert not worker.killed
        assert rig.loops.looks and set(rig.loops.looks) == {(worker.pid, worker.pid + 1)}
        looks = len(rig.loops.looks)
        assert looks <= 100 / 8 + 1, "a look only within the last second before the deadline"
        assert rig.supervisor.status(bot_id).last_heartbeat is not None
        rig.loops.waiting.clear()  # stopped, blocked or spinning from here
        stopped = rig.clock.now
        while not worker.killed:
            await rig.advance(0.25)
            assert rig.clock.now - stopped <= 3.0 + 0.25, "not killed within timeout + tick"
        assert "no heartbeat for" in (rig.supervisor.status(bot_id).error or "")
        await rig.settle()
        assert worker.pid in rig.loops.forgotten, "what was held to look at it is let go"

    run(case, tmp_path)


def test_a_worker_is_never_looked_at_where_proc_cannot_tell(tmp_path: Path) -> None:
    """/proc unusable at start-up (decided once): workers beat every interval, idle or
    not, and a late beat is a hang at the timeout as before, whatever the kernel says."""
    async def main() -> None:
        rig = Rig(tmp_path)
        rig.loops.why_not = "no epoll system call numbers known for sparc"
        rig.processes.ready.set()
        await rig.supervisor.start()
        await rig.settle()
        bot_id = await rig.add(connected=True)
        worker = rig.worker(bot_id)
        assert worker.spec.idle_beat_interval == worker.spec.heartbeat_interval == 1.5
        rig.hello(worker, loop_tid=worker.pid)
        rig.report(worker)
        rig.loops.waiting.add(worker.pid)
        await rig.advance(2.9)
        assert not worker.killed
        await rig.advance(0.2)
        assert worker.killed and rig.loops.looks == []
        await rig.shutdown()
        rig.close()

    asyncio.run(main())


def test_a_worker_that_did_not_say_its_loop_thread_is_never_looked_at(tmp_path: Path) -> None:
    async def case(rig: Rig) -> None:
        bot_id = await rig.add(connected=True)
        worker = rig.worker(bot_id)
        rig.connected(worker)  # Hello without loop_tid
        rig.loops.waiting.add(worker.pid)
        await rig.advance(3.1)
        assert worker.killed and rig.loops.looks == []

    run(case, tmp_path)
