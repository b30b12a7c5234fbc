"""The operator dashboard in a real browser against a real service with 1,000 bots.

Debian's Chromium drives the page exactly as an operator would: the only way in
is the token, every state shown comes from the API and its events stream, and
200 of the bots really hold connections to the simulator. The 1,000 bots are
written to the store before the service starts (the API would take minutes on
2 cores for nothing this test is about); the 200 marked "connected" are brought
back by the supervisor at boot, as after any restart. Waits are Playwright
expectations on the DOM with deadlines, never sleeps. Screenshots for the README
are rewritten only with LARKFLEET_UPDATE_SCREENSHOT=1.
"""

import contextlib
import os
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from playwright.sync_api import Browser, Locator, Page, expect, sync_playwright

from shared.botconfig import BotConfig, EchoHandler
from shared.paths import DataPaths
from simulator.client import SimClient
from simulator.testing import SimulatorThread
from store import open_store
from tests.fixtures.service import ADMIN_TOKEN, Service, wait_until

pytestmark = pytest.mark.timeout(300)

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
ENSURE_CHROMIUM = ROOT / "tests" / "browser" / "ensure-chromium.sh"
FLEET_SHOT = ROOT / "docs" / "dashboard.png"
BOT_SHOT = ROOT / "docs" / "dashboard-bot.png"
CHROMIUM_ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
BOTS = 1_000
CONNECTED = 60
"""Live workers among the 1,000: enough for a table whose states change while it is read;
each is a forked worker (200 of them were ~20 s of CPU, a tenth of the suite's spare)."""
WEBHOOK = 5
ALICE = 100
"""Bots owned by a second user, for the owner filter."""
LIVE = 30_000  # ms


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, installed by the set-up script when missing (root and apt-get)."""
    if not CHROMIUM.exists():
        with contextlib.suppress(subprocess.TimeoutExpired):
            subprocess.run(["sh", str(ENSURE_CHROMIUM)], check=False, timeout=100)
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing and could not be installed: run "
                    f"{ENSURE_CHROMIUM.relative_to(ROOT)} as root (apt-get install chromium)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@dataclass
class Fleet:
    service: Service
    sim: SimClient
    connected: list[tuple[str, str]]
    """(bot id, app id) of the bots brought back connected."""
    webhook: list[str]
    refused: str
    alice: str


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    data_dir = tmp_path_factory.mktemp("dashboard") / "data"
    with SimulatorThread() as simulator:
        sim = SimClient(simulator.url)
        paths = DataPaths(data_dir)
        paths.ensure()
        store = open_store(paths)
        admin = store.bootstrap_admin()
        alice, _ = store.create_user("alice")
        connected, webhook = [], []
        refused = ""
        for n in range(BOTS):
            app_id = f"cli_dash_{n:04d}"
            live = n < CONNECTED
            if live:
                sim.create_app(app_id, f"secret-{app_id}", pingInterval=5, reconnectInterval=1,
                               reconnectNonce=0)
            wrong = n == CONNECTED  # a refused bot: its app knows another secret
            if wrong:
                sim.create_app(app_id, "the-real-secret")
            config = BotConfig(
                id="", name=f"bot-{n:04d}" if n else "support-desk", app_id=app_id,
                app_secret=f"secret-{app_id}", use_websocket=n < BOTS - WEBHOOK,
                verification_token="" if n < BOTS - WEBHOOK else f"vt-{app_id}",
                domain=simulator.url, handler=EchoHandler(),
            )
            owner = alice.id if CONNECTED < n <= CONNECTED + ALICE else admin.id
            record = store.create_bot(owner, config)
            if live or wrong:
                store.set_desired_connected(record.config.id, True)
            if live:
                connected.append((record.config.id, app_id))
            if wrong:
                refused = record.config.id
            if not config.use_websocket:
                webhook.append(record.config.id)
        store.close()
        service = Service(data_dir).start(timeout=120)
        try:
            def all_connected() -> bool:
                states = service.request("GET", "/api/feishu/ws/status").json()["connections"]
                return sum(s["state"] == "connected" for s in states) >= CONNECTED

            wait_until(all_connected, 120, f"{CONNECTED} bots connected")
            yield Fleet(service, sim, connected, webhook, refused, alice.id)
        finally:
            try:
                service.stop(timeout=60)
            except subprocess.TimeoutExpired:
                service.kill()  # never leave a service behind, even on a stalled host
                raise


@pytest.fixture
def page(browser: Browser, fleet: Fleet) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(15_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(fleet.service.url)
    yield page
    context.close()
    assert not [e for e in errors if "Content Security Policy" in e], errors


def sign_in(page: Page, token: str = ADMIN_TOKEN) -> None:
    page.locator("#token").fill(token)
    page.locator("#token").press("Enter")
    expect(page.locator("#live-status")).to_have_text("live", timeout=LIVE)


def rows(page: Page) -> Locator:
    return page.locator("#bots tbody tr")


def test_fleet_table_pages_sorts_and_filters_a_thousand_bots(page: Page, fleet: Fleet) -> None:
    started = time.monotonic()
    sign_in(page)
    expect(page.locator("#counts .total")).to_have_text(f"{BOTS} bots")
    expect(page.locator('#counts [data-state="connected"] strong')).to_have_text(str(CONNECTED),
                                                                                  timeout=LIVE)
    expect(page.locator('#counts [data-state="webhook"] strong')).to_have_text(str(WEBHOOK))
    expect(page.locator('#counts [data-state="error"] strong')).to_have_text("1", timeout=LIVE)
    expect(rows(page)).to_have_count(50)
    expect(page.locator("#page-info")).to_contain_text(f"1-50 of {BOTS}")
    first_view = time.monotonic() - started
    if os.environ.get("LARKFLEET_UPDATE_SCREENSHOT") == "1":
        page.screenshot(path=str(FLEET_SHOT))

    page.locator("#page-next").click()
    expect(page.locator("#page-info")).to_contain_text(f"51-100 of {BOTS} · page 2 of 20")
    page.select_option("#page-size", "200")
    expect(rows(page)).to_have_count(200)

    page.locator('th[data-sort="name"]').click()  # already by name: now descending
    expect(rows(page).first.locator(".col-name")).to_have_text("support-desk")
    page.locator('th[data-sort="name"]').click()
    expect(rows(page).first.locator(".col-name")).to_have_text("bot-0001")
    page.locator('th[data-sort="eventsReceived"]').click()
    expect(page.locator('th[data-sort="eventsReceived"]')).to_have_attribute("aria-sort",
                                                                              "ascending")

    page.locator('#counts [data-state="error"]').click()
    expect(rows(page)).to_have_count(1)
    refused = rows(page).first
    expect(refused).to_have_attribute("data-bot-id", fleet.refused)
    expect(refused.locator(".col-error")).not_to_be_empty()
    page.locator('#counts [data-state="error"]').click()

    page.select_option("#owner-filter", fleet.alice)
    expect(page.locator("#page-info")).to_contain_text(f"of {ALICE} (filtered from {BOTS})")
    page.select_option("#owner-filter", "")
    page.fill("#filter", "bot-0042")
    expect(rows(page)).to_have_count(1)
    page.fill("#filter", "")

    page.fill("#filter", fleet.webhook[0])
    webhook_row = rows(page).first
    expect(webhook_row.locator('[data-action="connect"]')).to_be_disabled()
    expect(webhook_row.locator('[data-action="disconnect"]')).to_be_disabled()

    bot_id, app_id = fleet.connected[-1]
    page.fill("#filter", bot_id)
    row = rows(page).first
    expect(row.locator(".badge")).to_have_text("connected")
    expect(row.locator('[data-action="connect"]')).to_be_disabled()
    row.locator('[data-action="disconnect"]').click()
    expect(row.locator(".badge")).to_have_text("disconnected", timeout=LIVE)
    notice = page.locator("#notices .notice.ok").first
    expect(notice).to_contain_text(f"Disconnect bot-{CONNECTED - 1:04d} ({bot_id}): done")
    assert fleet.sim.info(app_id)["connections"] == 0
    rows(page).first.locator('[data-action="connect"]').click()
    expect(rows(page).first.locator(".badge")).to_have_text("connected", timeout=LIVE)
    expect(page.locator("#notices .notice")).to_have_count(2)  # stay until dismissed
    page.locator("#notices .notice .dismiss").first.click()
    expect(page.locator("#notices .notice")).to_have_count(1)
    page.fill("#filter", "")

    page.set_viewport_size({"width": 900, "height": 800})
    scroll = page.evaluate("document.documentElement.scrollWidth")
    assert scroll <= 900 + 1, f"the page is {scroll} px wide at a 900 px window"
    assert first_view < 20, f"the first view of {BOTS} bots took {first_view:.1f} s"


def test_bot_page_chart_live_log_dead_letters_and_edit(page: Page, fleet: Fleet) -> None:
    bot_id, app_id = fleet.connected[0]
    for n in range(3):
        fleet.sim.push_event(app_id, f"hello {n}")
    sign_in(page)
    page.goto(f"{fleet.service.url}/#/bots/{bot_id}")
    expect(page.locator("#bot-name")).to_have_text("support-desk")
    expect(page.locator("#bot-state")).to_have_text("connected")
    expect(page.locator("#log-text")).to_contain_text("INFO")
    before = page.locator("#log-text").inner_text()
    fleet.sim.push_event(app_id, "one more")
    expect(page.locator("#log-text")).not_to_have_text(before, timeout=LIVE)  # follows live
    expect(page.locator("#chart svg rect.bar.events").first).to_be_attached(timeout=LIVE)
    wait_until(lambda: int(page.locator("#chart svg").get_attribute("data-total") or 0) >= 3,
               30, "the chart to count the events", interval=0.5)
    expect(page.locator("#timeline li").first).to_contain_text("connected")
    expect(page.locator("#bot-latency")).to_contain_text("ms")
    expect(page.locator("#no-dead-letters")).to_be_visible()
    if os.environ.get("LARKFLEET_UPDATE_SCREENSHOT") == "1":
        page.screenshot(path=str(BOT_SHOT), full_page=True)

    page.locator("#edit-panel summary").click()
    form = page.locator("#edit-slot form")
    expect(form.locator('[name="appSecret"]')).to_have_attribute("placeholder",
                                                                 "set (type to replace)")
    form.locator('[name="name"]').fill("support-desk-2")
    form.locator('[name="kind"]').select_option("forward")
    form.locator('[name="url"]').fill("http://127.0.0.1:9/hook")
    form.locator('[name="secret"]').fill("typed-forward-secret")
    form.locator('[name="verificationToken"]').fill("typed-verification-token")
    form.locator('[name="replyFallback"]').select_option("send")
    form.locator('button[type="submit"]').click()
    expect(page.locator("#notices .notice.ok").first).to_contain_text("Saved support-desk-2")
    expect(page.locator("#bot-name")).to_have_text("support-desk-2")
    expect(form.locator('[name="secret"]')).to_have_value("")
    expect(form.locator('[name="secret"]')).to_have_attribute("placeholder",
                                                              "set (type to replace)")
    bot = fleet.service.request("GET", f"/api/feishu/bots/{bot_id}").json()
    assert bot["name"] == "support-desk-2"
    assert bot["handler"] == {"kind": "forward", "url": "http://127.0.0.1:9/hook",
                              "hasSecret": True, "timeout": 10.0}
    assert bot["hasVerificationToken"] and bot["options"]["replyFallback"] == "send"

    form.locator('[name="url"]').fill("http://127.0.0.1:9/other")  # the secret left empty
    form.locator('button[type="submit"]').click()
    expect(page.locator("#notices .notice.ok").first).to_contain_text("handler")
    bot = fleet.service.request("GET", f"/api/feishu/bots/{bot_id}").json()
    assert bot["handler"]["url"].endswith("/other") and bot["handler"]["hasSecret"], bot

    form.locator('[name="kind"]').select_option("echo")
    form.locator('[name="name"]').fill("support-desk")
    form.locator('button[type="submit"]').click()
    expect(page.locator("#bot-name")).to_have_text("support-desk")
    html = page.content()
    for secret in ("typed-forward-secret", "typed-verification-token", f"secret-{app_id}",
                   ADMIN_TOKEN):
        assert secret not in html


def test_create_form_names_the_bad_field_and_forgets_secrets(page: Page) -> None:
    sign_in(page)
    page.locator("#create-panel summary").click()
    form = page.locator("#create-slot form")
    form.locator('[name="name"]').fill("no-app-id")
    form.locator('[name="appSecret"]').fill("typed-secret")
    form.locator('[name="encryptKey"]').fill("typed-key")
    form.locator('button[type="submit"]').click()
    expect(form.locator(".form-error")).to_contain_text("appId")
    expect(form.locator('[name="appId"]')).to_have_attribute("aria-invalid", "true")
    expect(form.locator('[name="appSecret"]')).to_have_value("")
    expect(form.locator('[name="encryptKey"]')).to_have_value("")


def test_rejected_token_returns_to_sign_in_with_a_message(page: Page) -> None:
    page.locator("#token").fill("not-a-token")
    page.locator("#token").press("Enter")
    expect(page.locator("#signin-message")).to_contain_text("401")
    expect(page.locator("#fleet-view")).to_be_hidden()
    assert page.evaluate("sessionStorage.length") == 0


def test_sign_out_forgets_the_token(page: Page) -> None:
    sign_in(page)
    page.locator("#sign-out").click()
    expect(page.locator("#signin-view")).to_be_visible()
    assert page.evaluate("sessionStorage.length") == 0


def test_page_is_public_strict_and_serves_only_its_own_files(fleet: Fleet) -> None:
    anonymous = requests.Session()
    url = fleet.service.url
    for path, kind in (("/", "text/html"), ("/static/app.js", "text/javascript"),
                       ("/static/fleet.js", "text/javascript"), ("/static/app.css", "text/css")):
        response = anonymous.get(url + path, timeout=5)
        assert response.status_code == 200, path
        assert response.headers["Content-Type"].startswith(kind)
        policy = response.headers["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "style-src 'self'" in policy
        assert "unsafe-inline" not in policy
    page = anonymous.get(url + "/", timeout=5).text
    assert not re.search(r"<script(?![^>]*\bsrc=)", page), "no inline script"
    assert " style=" not in page, "no inline style"
    for path in ("/static/dashboard.py", "/static/..%2Fdashboard.py", "/static/nope.js"):
        assert anonymous.get(url + path, timeout=5).status_code == 404, path
    assert anonymous.get(url + "/api/feishu/bots", timeout=5).status_code == 401
