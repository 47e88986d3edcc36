"""The `push.apps` setting that points at the local APNs and FCM servers (tests, benchmarks)."""

from __future__ import annotations

from typing import Any

from tests.push.fcm_server import FakeFcm

TEAM_ID = "TEAM123456"
KEY_ID = "KEY1234567"
BUNDLE_ID = "com.acme.chat"
PACKAGE = "com.acme.chat"


def apps_setting(apns_key: str, fcm: FakeFcm) -> dict[str, Any]:
    """An iOS app signing with `apns_key` (sandbox) and an Android app with `fcm`'s account."""
    return {
        "ios": {
            "platform": "ios",
            "bundle_id": BUNDLE_ID,
            "team_id": TEAM_ID,
            "key_id": KEY_ID,
            "key": apns_key,
            "sandbox": True,
        },
        "android": {
            "platform": "android",
            "service_account": fcm.service_account_info(),
            "packages": [PACKAGE],
        },
    }
