"""A separate OS process that sends subscribe messages through its own WeChatClient and
its own database connection; the multi-process token tests start four of these.

    python -m tests.wechat.send_burst SIM_URL DATABASE_URL APP_ID COUNT START_AT [WAVES]

It waits until the wall clock reaches START_AT so that every process starts together,
sends COUNT messages in WAVES waves 0.1 s apart, and prints a JSON summary.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import httpx
from pydantic import SecretStr

from wxcrm.core.db import Database
from wxcrm.wechat.client import WeChatClient
from wxcrm.wechat.errors import RetryPolicy, WeChatError

OPENID = "o-burst-advisor"
TEMPLATE = "tmpl-burst"


async def main(
    sim_url: str, database_url: str, app_id: str, count: int, start_at: float, waves: int
) -> None:
    database = Database.from_url(database_url)
    limits = httpx.Limits(max_connections=200)
    async with httpx.AsyncClient(limits=limits) as http:
        client = WeChatClient(
            http,
            database,
            app_id=app_id,
            app_secret=SecretStr("sim-app-secret"),
            base_url=sim_url,
            retry=RetryPolicy(attempts=5, base_delay=0.05, max_delay=0.5),
        )
        await asyncio.sleep(max(0.0, start_at - time.time()))
        ok, errors = 0, []

        async def send(n: int) -> None:
            nonlocal ok
            try:
                await client.send_subscribe_message(
                    touser=OPENID,
                    template_id=TEMPLATE,
                    data={"thing1": {"value": f"消息{n}"}},
                )
                ok += 1
            except WeChatError as error:
                errors.append(str(error))

        per_wave = count // waves
        for wave in range(waves):
            size = per_wave if wave < waves - 1 else count - per_wave * (waves - 1)
            await asyncio.gather(*(send(wave * per_wave + i) for i in range(size)))
            if wave < waves - 1:
                await asyncio.sleep(0.1)
    await database.dispose()
    sys.stdout.write(json.dumps({"ok": ok, "errors": errors}) + "\n")


if __name__ == "__main__":
    url, db_url, app, n, start = sys.argv[1:6]
    asyncio.run(
        main(url, db_url, app, int(n), float(start), int(sys.argv[6]) if len(sys.argv) > 6 else 1)
    )
