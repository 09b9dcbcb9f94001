"""`wxcrm demo` runs the API and the simulator in one process, seeds its data once, and a
customer's action reaches the advisor's WeChat (the simulator) over real HTTP."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from wxcrm.demo import (
    ACTION_TEMPLATE,
    ADMIN_PASSWORD,
    ADMIN_PHONE,
    ADVISOR_DEPARTMENT,
    ADVISOR_PASSWORD,
    ADVISORS,
    ASSIGNED_TEMPLATE,
    CREDITS,
    CUSTOMERS,
)

# Settings the demo chooses itself unless the environment does: keep this test's out of it.
_OWN_PREFIXES = ("DATABASE_", "SECRET_KEY", "WECHAT_", "MINIPROGRAM_", "NOTIFY_", "LOG_", "WXCRM_")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running_demo(workdir: Path) -> Iterator[tuple[str, str, Path]]:
    """Start `wxcrm demo` in `workdir`; stop it with SIGTERM and check it stopped cleanly.
    Yields the API's and the simulator's URLs, and the file its output goes to."""
    port, sim_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(_OWN_PREFIXES)}
    log_path = workdir / f"demo-{port}.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "wxcrm",
                "demo",
                "--port",
                str(port),
                "--sim-port",
                str(sim_port),
            ],
            cwd=workdir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
    api, sim = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{sim_port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, log_path.read_text()
            try:
                if httpx.get(f"{api}/api/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the demo did not answer within 30 s"
            time.sleep(0.1)
        yield api, sim, log_path
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        process.wait(timeout=15)
    output = log_path.read_text()
    assert process.returncode in (0, -15), output
    assert "Application shutdown complete" in output
    assert "demo stopped" in output


def login(api: str, username: str, password: str) -> dict[str, Any]:
    response = httpx.post(
        f"{api}/api/auth/login", json={"username": username, "password": password}
    )
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


def customers_total(api: str, token: str, **params: str) -> int:
    response = httpx.get(
        f"{api}/api/customers",
        params={"limit": "1", **params},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200, response.text
    return int(response.json()["data"]["total"])


def staff_mini_program_login(sim: str, api: str, openid: str, phone: str) -> dict[str, Any]:
    """The staff mini program's login: a wx.login code and the staff member's phone."""
    code = httpx.post(f"{sim}/sim/login-codes", json={"openid": openid}).json()["code"]
    response = httpx.post(f"{api}/api/auth/miniprogram-login", json={"code": code, "phone": phone})
    assert response.status_code == 200, response.text
    assert response.json()["message"] == "小程序登录成功"
    data: dict[str, Any] = response.json()["data"]
    return data


def customer_views_resume(api: str, sim: str, advisor_id: str, openid: str, phone: str) -> None:
    """The mini program's flow: login code → session token → an action with a new phone."""
    code = httpx.post(f"{sim}/sim/login-codes", json={"openid": openid}).json()["code"]
    session = httpx.post(f"{api}/api/wechat/openid", json={"code": code})
    assert session.status_code == 200, session.text
    action = httpx.post(
        f"{api}/api/customer/action",
        headers={"Authorization": f"Bearer {session.json()['data']['token']}"},
        json={
            "customerId": openid,
            "advisorId": advisor_id,
            "actionType": "view_resume",
            "actionData": {"resumeId": "R1001"},
            "customerName": "周女士",
            "customerPhone": phone,
        },
    )
    assert action.status_code == 200, action.text
    assert action.json()["data"]["customerCreated"] is True


def wait_for_message(sim: str, touser: str, phone: str) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        messages = httpx.get(f"{sim}/sim/messages", params={"touser": touser}).json()["messages"]
        for message in messages:
            if message["data"]["thing3"]["value"] == phone:
                found: dict[str, Any] = message
                return found
        time.sleep(0.1)
    raise AssertionError(f"no message to {touser} about {phone} at the simulator")


def test_demo_seeds_once_and_notifies_through_the_simulator(tmp_path: Path) -> None:
    advisor = ADVISORS[0]
    with running_demo(tmp_path) as (api, sim, output):
        admin = login(api, "admin", ADMIN_PASSWORD)
        assert admin["user"]["role"] == "admin" and admin["user"]["phone"] == ADMIN_PHONE
        advisors = [login(api, demo.username, ADVISOR_PASSWORD)["user"] for demo in ADVISORS]
        assert [user["role"] for user in advisors] == ["employee"] * 3
        assert [user["name"] for user in advisors] == [demo.name for demo in ADVISORS]
        assert [user["phone"] for user in advisors] == [demo.phone for demo in ADVISORS]
        assert all(user["openidBound"] for user in advisors)
        # An advisor logs in from the staff mini program with the phone the banner shows.
        staff = staff_mini_program_login(sim, api, advisor.openid, f"+86 {advisor.phone}")
        assert staff["openid"] == advisor.openid
        assert staff["user"]["id"] == advisors[0]["_id"]
        assert (staff["user"]["role"], staff["user"]["roleLabel"]) == ("employee", "员工")
        assert staff["user"]["department"] == ADVISOR_DEPARTMENT
        token = admin["token"]
        assert customers_total(api, token) == CUSTOMERS
        in_pool = customers_total(api, token, inPublicPool="true")
        assert 0 < in_pool < CUSTOMERS
        # The simulator got the credits our ledger holds.
        granted = httpx.get(f"{sim}/sim/subscriptions", params={"openid": advisor.openid}).json()
        assert {(s["template_id"], s["count"]) for s in granted["subscriptions"]} == {
            (ACTION_TEMPLATE, CREDITS),
            (ASSIGNED_TEMPLATE, CREDITS),
        }

        customer_views_resume(api, sim, advisors[0]["_id"], "o-demo-test-1", "13912340001")
        message = wait_for_message(sim, advisor.openid, "13912340001")
        assert message["template_id"] == ACTION_TEMPLATE
        assert message["data"]["thing1"]["value"] == "新客户查看了您的简历"

    # The banner (read once the demo stopped: its stdout is a buffered file) lists each
    # login with its phone.
    banner = output.read_text()
    assert f"admin     {ADMIN_PASSWORD:<14} {ADMIN_PHONE}" in banner
    for demo in ADVISORS:
        assert f"{demo.username:<9} {ADVISOR_PASSWORD:<14} {demo.phone} {demo.name}" in banner

    # Started again in the same directory: nothing seeded twice, the fresh simulator knows
    # the credits that are left, and messages still go through (no stale access token).
    with running_demo(tmp_path) as (api, sim, _):
        token = login(api, "admin", ADMIN_PASSWORD)["token"]
        assert customers_total(api, token) == CUSTOMERS + 1  # the seed and the lead made above
        assert customers_total(api, token, inPublicPool="true") == in_pool
        granted = httpx.get(f"{sim}/sim/subscriptions", params={"openid": advisor.openid}).json()
        assert {(s["template_id"], s["count"]) for s in granted["subscriptions"]} == {
            (ACTION_TEMPLATE, CREDITS - 1),
            (ASSIGNED_TEMPLATE, CREDITS),
        }
        advisor_id = login(api, advisor.username, ADVISOR_PASSWORD)["user"]["_id"]
        customer_views_resume(api, sim, advisor_id, "o-demo-test-2", "13912340002")
        wait_for_message(sim, advisor.openid, "13912340002")
