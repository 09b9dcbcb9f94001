"""The WeChat simulator on a loopback port: one server for the session, reset for each test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from wxcrm.wechat.sim import SimControl, SimServer, SimState


@pytest.fixture(scope="session")
def sim() -> Iterator[SimServer]:
    # Client tests give each test its own app id (so its token row starts empty): the shared
    # simulator accepts any app id. The secret must still be right.
    with SimServer(SimState(any_app_id=True)) as server:
        yield server


@pytest.fixture(scope="session")
def sim_url(sim: SimServer) -> str:
    return sim.base_url


# Clients live for the session: making an httpx client costs tens of milliseconds.
@pytest.fixture(scope="session")
async def _sim_control(sim: SimServer) -> AsyncIterator[SimControl]:
    async with SimControl(sim.base_url) as control:
        yield control


@pytest.fixture(scope="session")
async def _sim_http(sim: SimServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=sim.base_url) as http:
        yield http


@pytest.fixture
async def sim_control(_sim_control: SimControl) -> SimControl:
    """The control client, after a reset: each test starts from an empty simulator."""
    await _sim_control.reset()
    return _sim_control


@pytest.fixture
def sim_http(_sim_http: httpx.AsyncClient, sim_control: SimControl) -> httpx.AsyncClient:
    """A plain HTTP client at the (reset) simulator, for calling WeChat's endpoints by hand."""
    return _sim_http
