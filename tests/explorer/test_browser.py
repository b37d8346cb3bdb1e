"""The explorer in a real browser: headless Chromium (the system's, not a download)
driven by Playwright, against a 3-participant qnet network with one private contract.

Skipped, with the reason, when Playwright or Chromium is missing or Chromium does not
launch; the server-side tests (test_views, test_server, test_search) run regardless.
Every wait is on a condition in the page; screenshots go under the test's tmp_path.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.privacy.conftest import PrivateNet, private_network

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.timeout(300)]

WAIT_MS = 30_000


def _chromium() -> str:
    for name in (os.environ.get("EXPLORER_CHROMIUM", ""), "chromium", "chromium-browser"):
        if name and (path := shutil.which(name)):
            return path
    pytest.skip("no system Chromium (Debian: apt-get install chromium; .ci/run installs it)")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    executable = _chromium()
    with sync_api.sync_playwright() as playwright:
        try:
            launched = playwright.chromium.launch(executable_path=executable, headless=True)
        except sync_api.Error as exc:
            pytest.skip(f"Chromium at {executable} does not launch: {str(exc)[:300]}")
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateNet]:
    with private_network(tmp_path_factory.mktemp("explorer-net"), 3) as net:
        yield net


def _deploy_simple_storage(net: PrivateNet) -> tuple[str, str]:
    """SimpleStorage(42) from node1, private for node2; every node has the block."""
    factory = net.contract("node1", "SimpleStorage")
    tx_hash = factory.constructor(42).transact(
        {"from": net.address("node1"), "privateFor": [net.key("node2")]}
    )
    tx = "0x" + bytes(tx_hash).hex()
    receipt = net.receipt("node1", tx)
    for name in net.names:
        net.receipt(name, tx)
    return tx, str(receipt["contractAddress"])


def _start_explorer(directory: Path) -> str:
    """``qnet explorer --detach``: the network's ``qnet down`` stops it."""
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "quorum_node.qnet_command",
            "explorer",
            "--dir",
            str(directory),
            "--detach",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return (directory / "explorer" / "url").read_text().strip()


def test_each_participant_view_side_by_side(
    browser: Any, network: PrivateNet, tmp_path: Path
) -> None:
    """(``browser`` first: without Chromium the test skips before starting a network.)"""
    from playwright.sync_api import expect

    started = time.monotonic()
    tx, contract = _deploy_simple_storage(network)
    url = _start_explorer(network.qnet.directory)
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.set_default_timeout(WAIT_MS)
    shots: list[Path] = []

    def shot(name: str) -> None:
        path = tmp_path / f"explorer-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        shots.append(path)

    # The network page: every participant, and the private transaction in the list.
    page.goto(url)
    expect(page.locator("#participants tr[data-party]")).to_have_count(3)
    expect(page.locator("#live")).to_have_attribute("data-state", "subscribed")
    shot("network")

    # Follow the private transaction: node1 and node2 show the private receipt, node3 not.
    page.locator(f'#transactions a[href="/tx/{tx}"]').click()
    expect(page.locator("h1")).to_contain_text("private")
    for name in ("node1", "node2"):
        column = page.locator(f'section[data-party="{name}"]')
        expect(column.locator(".receipt")).to_have_text("private receipt: status 1")
        expect(column.locator(".call")).to_have_text("SimpleStorage.new(initVal=42)")
    expect(page.locator('section[data-party="node3"] .not-party')).to_have_text("not a party")
    shot("transaction")

    # The contract: 42 at node1 and node2, no code at node3.
    page.locator(f'section[data-party="node1"] a[href="/address/{contract}"]').click()
    for name in ("node1", "node2"):
        expect(page.locator(f'td[data-party="{name}"][data-field="get"]')).to_have_text("42")
    expect(page.locator('td[data-party="node3"][data-field="code"]')).to_have_text("no code")
    shot("contract")

    # Live: a new private transaction appears in the network page's list without a reload.
    page.goto(url)
    expect(page.locator("#live")).to_have_attribute("data-state", "subscribed")
    setter = network.contract("node1", "SimpleStorage", contract).functions.set(43)
    second = (
        "0x"
        + bytes(
            setter.transact(
                {"from": network.address("node1"), "privateFor": [network.key("node2")]}
            )
        ).hex()
    )
    expect(page.locator(f'#transactions tr[data-tx="{second}"]')).to_be_visible()

    # Bad input in the search box: a 400 page with a clear message.
    page.fill("#search", "not a block")
    with page.expect_response(lambda reply: "/search" in reply.url) as answer:
        page.press("#search", "Enter")
    assert answer.value.status == 400
    expect(page.locator("#message")).to_contain_text("Cannot search for 'not a block'")
    shot("search")

    page.close()
    print(f"\nexplorer browser test: {time.monotonic() - started:.1f} s; screenshots:")
    for path in shots:
        print(f"  {path}")
    assert all(path.stat().st_size > 0 for path in shots)

    # `qnet down` stops the detached explorer with the network.
    pid = int((network.qnet.directory / "explorer" / "explorer.pid").read_text())
    network.qnet.down()
    assert not _alive(pid)


def _alive(pid: int) -> bool:
    """Running, and not a zombie waiting for its parent."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False
