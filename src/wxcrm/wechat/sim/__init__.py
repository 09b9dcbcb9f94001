"""A stand-in for `https://api.weixin.qq.com` with WeChat's own semantics and error codes,
served over real HTTP on loopback for the tests and the demo (README: WeChat simulator).

    with SimServer() as server:                     # or `wxcrm wechat-sim` on port 8900
        async with SimControl(server.base_url) as control:
            code = await control.mint_login_code("o-user-1")

Its state lives in the memory of its own process, as a fake of an external service should.
"""

from wxcrm.wechat.sim.app import create_sim_app
from wxcrm.wechat.sim.control import SimControl
from wxcrm.wechat.sim.server import SimServer
from wxcrm.wechat.sim.state import (
    DEFAULT_APP_ID,
    DEFAULT_APP_SECRET,
    ENDPOINTS,
    CloudFunction,
    Endpoint,
    SimError,
    SimState,
    TokenFamily,
)

__all__ = [
    "DEFAULT_APP_ID",
    "DEFAULT_APP_SECRET",
    "ENDPOINTS",
    "CloudFunction",
    "Endpoint",
    "SimControl",
    "SimError",
    "SimServer",
    "SimState",
    "TokenFamily",
    "create_sim_app",
]
