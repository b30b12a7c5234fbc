"""Assemble the simulator's aiohttp app and run it standalone (`larkfleet sim`)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from aiohttp import web

from simulator import cardactions, control, media, openapi, tls, webhook, ws
from simulator.state import STATE_KEY, SimState

logger = logging.getLogger(__name__)


def build_app() -> web.Application:
    """A fresh simulator with its own state, so tests can run several side by side."""
    app = web.Application(client_max_size=4 * 1024 * 1024)
    app[STATE_KEY] = SimState()
    app.add_routes(ws.routes)
    app.add_routes(control.routes)
    app.add_routes(openapi.routes)
    app.add_routes(webhook.routes)
    app.add_routes(media.routes)
    app.add_routes(cardactions.routes)
    app.on_shutdown.append(_on_shutdown)
    return app


async def _on_shutdown(app: web.Application) -> None:
    """Release hung endpoint calls and close sockets, or runner cleanup would wait on them."""
    state = app[STATE_KEY]
    state.closing.set()
    conns = [c for a in state.apps.values() for c in a.connections.values()]
    for a in state.apps.values():
        for d in a.events.values():
            if d.timer is not None:
                d.timer.cancel()
    await asyncio.gather(
        *(c.ws.close(code=1001, message=b"simulator shutting down") for c in conns),
        return_exceptions=True,
    )


async def start(host: str, port: int, tls_dir: Path | None = None,
                ) -> tuple[web.AppRunner, int]:
    """Start listening and return the runner plus the bound port (port 0 = ephemeral).

    With `tls_dir` the simulator serves `https` (and hands out `wss` URLs) with a
    throwaway CA written there (`simulator/tls.py`; clients trust `<tls_dir>/ca.pem`).
    """
    ssl_context = tls.make_server_context(tls_dir) if tls_dir is not None else None
    runner = web.AppRunner(build_app(), shutdown_timeout=2.0, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
    await site.start()
    server = site._server
    bound = server.sockets[0].getsockname()[1] if server and server.sockets else port
    return runner, bound


async def _serve(host: str, port: int, tls_dir: Path | None) -> None:
    runner, bound = await start(host, port, tls_dir)
    scheme = "https" if tls_dir is not None else "http"
    print(f"larkfleet simulator listening on {scheme}://{host}:{bound}", flush=True)
    if tls_dir is not None:
        trust = " ".join(f"{k}={v}" for k, v in tls.client_env(tls_dir).items())
        print(f"clients trust its CA with: {trust}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def main(args: argparse.Namespace) -> int:
    """Entry point for `larkfleet sim`; runs until SIGINT/SIGTERM and exits 0."""
    try:
        asyncio.run(_serve(args.host, args.port, getattr(args, "tls_dir", None)))
    except OSError as exc:
        print(f"larkfleet sim: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    return 0
