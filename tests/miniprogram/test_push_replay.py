"""WeChat's message push: each signed (timestamp, nonce) taken once, and safe mode (安全模式)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import time
from collections.abc import Callable

import httpx
import pytest
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tests.conftest import SIM_APP_ID, assert_error
from tests.factories import add_user, committed_advisor, new_openid
from tests.miniprogram.conftest import PUSH_TOKEN
from tests.miniprogram.test_push import (
    CREATED,
    OTHER_TEMPLATE,
    TEMPLATE,
    URL,
    acknowledged,
    count,
    popup_json,
    popup_xml,
    signed,
    subscription,
)
from wxcrm.core.db import Database
from wxcrm.core.settings import Settings
from wxcrm.miniprogram.models import WeChatPushEvent, WeChatPushNonce
from wxcrm.miniprogram.push_service import MAX_CLOCK_SKEW_SECONDS, NONCE_RETENTION_SECONDS
from wxcrm.notifications.models import AdvisorSubscription
from wxcrm.notifications.subscriptions import get_subscription
from wxcrm.users.models import User

AES_KEY = bytes(range(100, 132))
# WeChat's EncodingAESKey: the 32-byte key in base64, without its trailing "=".
ENCODING_AES_KEY = base64.b64encode(AES_KEY).decode().rstrip("=")
OTHER_AES_KEY = bytes(range(32))


@pytest.fixture
def safe_app(push_app: FastAPI) -> FastAPI:
    """The push in safe mode (安全模式): messages encrypted with the EncodingAESKey."""
    settings: Settings = push_app.state.settings
    push_app.state.settings = settings.model_copy(
        update={"wechat_push_aes_key": SecretStr(ENCODING_AES_KEY)}
    )
    return push_app


@pytest.fixture
async def advisor(session: AsyncSession) -> User:
    return await add_user(session, openid=new_openid())


# -- WeChat's side of safe mode, written here from its documentation ---------------------------


def framed(message: bytes, *, app_id: str = SIM_APP_ID, length: int | None = None) -> bytes:
    """16 random bytes, the message's length (4 bytes, big-endian), the message, the AppID."""
    size = len(message) if length is None else length
    return os.urandom(16) + size.to_bytes(4, "big") + message + app_id.encode()


def aes_cbc(data: bytes, key: bytes = AES_KEY) -> str:
    encryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    return base64.b64encode(encryptor.update(data) + encryptor.finalize()).decode()


def pkcs7_32(data: bytes) -> bytes:
    padder = padding.PKCS7(256).padder()  # WeChat pads to 32 bytes
    return padder.update(data) + padder.finalize()


def wechat_encrypt(message: str | bytes, *, key: bytes = AES_KEY, app_id: str = SIM_APP_ID) -> str:
    plain = message.encode() if isinstance(message, str) else message
    return aes_cbc(pkcs7_32(framed(plain, app_id=app_id)), key)


def sha1_of(*parts: str) -> str:
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def signed_encrypted(
    encrypted: str, *, timestamp: int | None = None, nonce: str | None = None
) -> dict[str, str]:
    """Safe mode's query: the plain signature, and msg_signature over the ciphertext too."""
    query = signed(timestamp=timestamp, nonce=nonce)
    return {
        **query,
        "encrypt_type": "aes",
        "msg_signature": sha1_of(PUSH_TOKEN, query["timestamp"], query["nonce"], encrypted),
    }


def envelope_json(encrypted: str, **plain: object) -> str:
    return json.dumps({"ToUserName": "gh_123456789abc", "Encrypt": encrypted, **plain})


def envelope_xml(encrypted: str) -> str:
    return (
        "<xml><ToUserName><![CDATA[gh_123456789abc]]></ToUserName>"
        f"<Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>"
    )


async def post(client: httpx.AsyncClient, body: str, query: dict[str, str]) -> httpx.Response:
    return await client.post(URL, params=query, content=body)


async def nothing_written(session: AsyncSession) -> None:
    assert await count(session, WeChatPushEvent) == 0
    assert await count(session, AdvisorSubscription) == 0
    assert await count(session, WeChatPushNonce) == 0


# -- plain-text mode: a signed (timestamp, nonce) is taken once --------------------------------


async def test_a_replayed_signature_with_another_body_is_refused_and_changes_nothing(
    push_app: FastAPI, client: httpx.AsyncClient, session: AsyncSession, advisor: User
) -> None:
    victim = await add_user(session, openid=new_openid())
    # Plain values: a refused request's rollback expires the loaded users.
    (advisor_id, openid), (victim_id, victim_openid) = (
        (user.id, str(user.openid)) for user in (advisor, victim)
    )
    captured = signed()
    acknowledged(await post(client, popup_json(openid, [(TEMPLATE, "accept")]), captured))

    # Whoever saw the URL sends its signature again with decisions of their own choosing.
    forged = [
        popup_json(openid, [(TEMPLATE, "accept")]),  # the same body
        popup_json(openid, [(TEMPLATE, "accept")], created=CREATED + 1),
        popup_xml(openid, [(TEMPLATE, "reject")], created=CREATED + 2),
        popup_json(victim_openid, [(TEMPLATE, "accept"), (OTHER_TEMPLATE, "accept")]),
    ]
    for body in forged:
        body_json = assert_error(await post(client, body, captured), 401, "UNAUTHORIZED")
        assert "重复" in body_json["message"]

    row = await subscription(session, advisor_id)
    assert row is not None and (row.subscribed, row.credits) == (True, 1)
    assert await subscription(session, victim_id) is None
    assert await count(session, WeChatPushEvent) == 1
    assert await count(session, WeChatPushNonce) == 1
    # WeChat's next push has a nonce of its own.
    later = popup_json(openid, [(TEMPLATE, "accept")], created=CREATED + 3)
    acknowledged(await post(client, later, signed()))
    row = await subscription(session, advisor_id)
    assert row is not None and row.credits == 2


async def test_the_window_refuses_a_stale_timestamp_whatever_its_nonce(
    push_app: FastAPI, client: httpx.AsyncClient, session: AsyncSession, advisor: User
) -> None:
    assert advisor.openid
    body = popup_json(advisor.openid, [(TEMPLATE, "accept")])
    now = int(time.time())
    for stamp in (now - MAX_CLOCK_SKEW_SECONDS - 60, now + MAX_CLOCK_SKEW_SECONDS + 60):
        response = await post(client, body, signed(timestamp=stamp, nonce="never-seen"))
        assert "过期" in assert_error(response, 401, "UNAUTHORIZED")["message"]
    await nothing_written(session)


async def test_nonces_are_purged_once_the_window_refuses_their_timestamp(
    push_app: FastAPI, client: httpx.AsyncClient, session: AsyncSession, advisor: User
) -> None:
    assert advisor.openid
    now = int(time.time())
    session.add_all(
        [
            WeChatPushNonce(timestamp=now - NONCE_RETENTION_SECONDS - 5, nonce="expired"),
            WeChatPushNonce(timestamp=now - MAX_CLOCK_SKEW_SECONDS + 5, nonce="recent"),
        ]
    )
    await session.commit()
    acknowledged(await post(client, popup_json(advisor.openid, [(TEMPLATE, "accept")]), signed()))
    kept = set(await session.scalars(select(WeChatPushNonce.nonce)))
    assert "expired" not in kept
    assert "recent" in kept and len(kept) == 2


@pytest.fixture
def live_push_app(committed_app: FastAPI, settings: Settings) -> FastAPI:
    """The app whose requests commit, with the push configured."""
    committed_app.state.settings = settings.model_copy(
        update={"wechat_push_token": SecretStr(PUSH_TOKEN)}
    )
    return committed_app


@pytest.mark.parametrize("same_body", [True, False], ids=["same-body", "other-body"])
async def test_two_concurrent_pushes_with_one_nonce_take_one(
    live_push_app: FastAPI, live_client: httpx.AsyncClient, database: Database, same_body: bool
) -> None:
    advisor = await committed_advisor(database)
    assert advisor.openid
    query = signed()
    bodies = [
        popup_json(advisor.openid, [(TEMPLATE, "accept")]),
        popup_json(advisor.openid, [(TEMPLATE, "accept")], created=CREATED + int(not same_body)),
    ]
    responses = await asyncio.gather(
        *(live_client.post(URL, params=query, content=body) for body in bodies)
    )
    assert sorted(response.status_code for response in responses) == [200, 401]
    async with database.reader() as session:
        row = await get_subscription(session, advisor.id, TEMPLATE)
        assert row is not None and row.credits == 1
        assert await count(session, WeChatPushNonce) == 1


# -- safe mode (安全模式) -----------------------------------------------------------------------


@pytest.mark.parametrize("data_format", ["json", "xml"])
async def test_safe_mode_decrypts_and_applies(
    safe_app: FastAPI,
    client: httpx.AsyncClient,
    session: AsyncSession,
    advisor: User,
    data_format: str,
) -> None:
    advisor_id, openid = advisor.id, str(advisor.openid)
    popup = popup_json if data_format == "json" else popup_xml
    encrypted = wechat_encrypt(popup(openid, [(TEMPLATE, "accept")]))
    body = envelope_json(encrypted) if data_format == "json" else envelope_xml(encrypted)
    query = signed_encrypted(encrypted)
    acknowledged(await post(client, body, query))
    row = await subscription(session, advisor_id)
    assert row is not None and (row.subscribed, row.credits, row.openid) == (True, 1, openid)
    # The same encrypted push again (a capture of it) is refused like any replay.
    assert_error(await post(client, body, query), 401, "UNAUTHORIZED")
    row = await subscription(session, advisor_id)
    assert row is not None and row.credits == 1


async def test_compatible_mode_takes_the_encrypted_message(
    safe_app: FastAPI, client: httpx.AsyncClient, session: AsyncSession, advisor: User
) -> None:
    assert advisor.openid
    encrypted = wechat_encrypt(popup_json(advisor.openid, [(TEMPLATE, "accept")]))
    # 兼容模式 sends both; the plain copy is not covered by msg_signature, so it is not read.
    plain = json.loads(popup_json(advisor.openid, [(OTHER_TEMPLATE, "accept")]))
    acknowledged(await post(client, envelope_json(encrypted, **plain), signed_encrypted(encrypted)))
    row = await subscription(session, advisor.id)
    assert row is not None and row.credits == 1
    assert await subscription(session, advisor.id, OTHER_TEMPLATE) is None


def _tampered(encrypted: str) -> str:
    raw = bytearray(base64.b64decode(encrypted))
    raw[-1] ^= 0x01  # the last block: padding and AppID
    return base64.b64encode(bytes(raw)).decode()


def _truncated(encrypted: str) -> str:
    return base64.b64encode(base64.b64decode(encrypted)[:-16]).decode()


def _bad_padding(message: str) -> str:
    data = framed(message.encode())
    return aes_cbc(data + b"\x00" * (32 - len(data) % 32))


def _length_past_the_end(message: str) -> str:
    return aes_cbc(pkcs7_32(framed(message.encode(), length=len(message) + 1000)))


UNOPENABLE: dict[str, Callable[[str], str]] = {
    "tampered": lambda message: _tampered(wechat_encrypt(message)),
    "truncated": lambda message: _truncated(wechat_encrypt(message)),
    "not-base64": lambda message: "@@@" + wechat_encrypt(message)[3:],
    "other-key": lambda message: wechat_encrypt(message, key=OTHER_AES_KEY),
    "other-appid": lambda message: wechat_encrypt(message, app_id="wx1111111111111111"),
    "bad-padding": _bad_padding,
    "length-past-the-end": _length_past_the_end,
}


@pytest.mark.parametrize("make", UNOPENABLE.values(), ids=UNOPENABLE.keys())
async def test_safe_mode_refuses_what_does_not_open_with_our_key_and_appid(
    safe_app: FastAPI,
    client: httpx.AsyncClient,
    session: AsyncSession,
    advisor: User,
    make: Callable[[str], str],
) -> None:
    assert advisor.openid
    encrypted = make(popup_json(advisor.openid, [(TEMPLATE, "accept")]))
    # Signed with the right token: only the key and the AppID stand in the way.
    response = await post(client, envelope_json(encrypted), signed_encrypted(encrypted))
    assert_error(response, 401, "UNAUTHORIZED")
    await nothing_written(session)


async def test_safe_mode_refuses_unsigned_stale_and_plain_pushes(
    safe_app: FastAPI, client: httpx.AsyncClient, session: AsyncSession, advisor: User
) -> None:
    assert advisor.openid
    message = popup_json(advisor.openid, [(TEMPLATE, "accept")])
    encrypted = wechat_encrypt(message)
    other = wechat_encrypt(popup_json(advisor.openid, [(OTHER_TEMPLATE, "accept")]))
    stale = int(time.time()) - MAX_CLOCK_SKEW_SECONDS - 60
    refused = [
        # msg_signature covers the ciphertext: another one does not match it.
        (envelope_json(other), signed_encrypted(encrypted)),
        (envelope_json(encrypted), {**signed_encrypted(encrypted), "msg_signature": "0" * 40}),
        (envelope_json(encrypted), signed_encrypted(encrypted, timestamp=stale)),
        (envelope_json(encrypted), {**signed_encrypted(encrypted), "msg_signature": ""}),
        ('{"ToUserName": "gh_123456789abc"}', signed_encrypted("")),
        ("not a body", signed_encrypted(encrypted)),
        # With a key configured a plain push is not taken: its signature covers no body.
        (message, signed()),
        (message, {**signed(), "encrypt_type": "raw"}),
    ]
    for body, query in refused:
        assert_error(await post(client, body, query), 401, "UNAUTHORIZED")
    await nothing_written(session)


async def test_safe_mode_answers_the_encrypted_url_check_with_its_plain_text(
    safe_app: FastAPI, client: httpx.AsyncClient
) -> None:
    echostr = wechat_encrypt("7312951049632517")
    query = {**signed_encrypted(echostr), "echostr": echostr}
    response = await client.get(URL, params=query)
    assert response.status_code == 200, response.text
    assert response.text == "7312951049632517"
    assert response.headers["content-type"].startswith("text/plain")
    # WeChat's mini-program docs also describe the check in plain text: still answered.
    response = await client.get(URL, params=signed(echostr="4375120948345356249"))
    assert response.status_code == 200 and response.text == "4375120948345356249"


async def test_safe_mode_refuses_a_url_check_it_cannot_trust_or_open(
    safe_app: FastAPI, client: httpx.AsyncClient
) -> None:
    foreign = wechat_encrypt("7312951049632517", app_id="wx1111111111111111")
    ours = wechat_encrypt("7312951049632517")
    refused = [
        {**signed_encrypted(foreign), "echostr": foreign},
        {**signed_encrypted(_tampered(ours)), "echostr": _tampered(ours)},
        {**signed_encrypted(ours), "echostr": wechat_encrypt("another")},
        {**signed_encrypted(ours), "echostr": ours, "msg_signature": "0" * 40},
    ]
    for query in refused:
        response = await client.get(URL, params=query)
        body = assert_error(response, 401, "UNAUTHORIZED")
        assert "7312951049632517" not in json.dumps(body)


async def test_a_malformed_aes_key_is_503_and_stays_out_of_the_logs(
    app: FastAPI, settings: Settings, client: httpx.AsyncClient, capsys: pytest.CaptureFixture[str]
) -> None:
    wrong_key = "not-an-encoding-aes-key-" + "x" * 10
    app.state.settings = settings.model_copy(
        update={
            "wechat_push_token": SecretStr(PUSH_TOKEN),
            "wechat_push_aes_key": SecretStr(wrong_key),
        }
    )
    response = await client.get(URL, params=signed(echostr="1"))
    assert "WECHAT_PUSH_AES_KEY" in assert_error(response, 503, "SERVICE_UNAVAILABLE")["message"]
    captured = capsys.readouterr()
    assert "WECHAT_PUSH_AES_KEY" in captured.out + captured.err
    assert wrong_key not in captured.out + captured.err + response.text
