"""Fixtures that start real parts: mosquitto on a free port, the simulated MCU on a real pty, the bridge."""

from __future__ import annotations

from pathlib import Path

import pytest

from josev_bridge.harness.bridge_process import BridgeProcess
from josev_bridge.harness.broker import Mosquitto
from josev_bridge.sim.launcher import start_sim

# The `e2e` marker (`make test-fast` runs `-m "not e2e"`): everything under tests/e2e/, and every
# test that uses a fixture starting a real process (mosquitto, the simulator, the daemon), directly
# or through another fixture (`bridge` needs `broker` and `sim`; tests/sim/conftest.py's `host`
# needs its `sim`). These names are kept for such fixtures. A test that starts a process itself
# carries `@pytest.mark.e2e` (or its module `pytestmark`).
PROCESS_FIXTURES = frozenset({"broker", "upstream", "sim", "shared_sim"})
E2E_DIR = Path(__file__).parent / "e2e"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if E2E_DIR in item.path.parents or PROCESS_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture
def broker(tmp_path):
    with Mosquitto(tmp_path / "broker") as b:
        yield b


@pytest.fixture
def upstream(tmp_path):
    """A second broker: the fleet's, for journal export."""
    with Mosquitto(tmp_path / "upstream") as broker:
        yield broker


@pytest.fixture
def sim(tmp_path):
    with start_sim(tmp_path / "sim") as s:
        yield s


@pytest.fixture
def make_bridge(tmp_path, broker, sim):
    """Build (not start) a bridge wired to the broker and the sim; stopped at the end of the test."""
    made: list[BridgeProcess] = []

    def make(**extra) -> BridgeProcess:
        bridge = BridgeProcess(tmp_path / "bridge", broker_port=broker.port, serial_url=str(sim.pty_link),
                               extra=extra or None)
        made.append(bridge)
        return bridge

    yield make
    for bridge in made:
        bridge.stop()


@pytest.fixture
def bridge(make_bridge):
    b = make_bridge()
    b.start()
    return b
