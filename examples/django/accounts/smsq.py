"""smsq's HTTP API, the two calls a sign-up needs (httpx; `requests` reads the same)."""
import hashlib
import hmac
import time

import httpx
from django.conf import settings


class SmsqRefused(Exception):
    """smsq said no: `error` is its code (invalid_mobile, resend_too_soon, …)."""

    def __init__(self, status: int, error: str, message: str):
        super().__init__(f"{status} {error}: {message}")
        self.status, self.error, self.message = status, error, message


def _post(path: str, body: dict, request_id: str | None = None) -> dict:
    headers = {"Authorization": f"Bearer {settings.SMSQ_TOKEN}"}
    if request_id:
        headers["x-request-id"] = request_id
    r = httpx.post(settings.SMSQ_URL + path, json=body, headers=headers, timeout=5)
    answer = r.json()
    if r.status_code >= 400:
        raise SmsqRefused(r.status_code, answer["error"], answer["message"])
    return answer


def send_code(mobile: str, client_ip: str, request_id: str | None = None) -> dict:
    """Queues a sign-up code; returns {job_id, expires_in, resend_after}."""
    body = {"mobile": mobile, "purpose": "signup", "client_ip": client_ip}
    return _post("/v1/codes", body, request_id)


def check_code(mobile: str, code: str) -> bool:
    return _post("/v1/codes/verify", {"mobile": mobile, "purpose": "signup", "code": code})["valid"]


def verify_webhook(header: str, body: bytes, tolerance: int = 300) -> bool:
    """The README's verification: HMAC-SHA256 of `<t>.<body>`, constant time, fresh `t`."""
    secret = settings.SMSQ_WEBHOOK_SECRET
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    t, v1 = parts.get("t", ""), parts.get("v1", "")
    if not secret or not t.isdigit() or abs(time.time() - int(t)) > tolerance:
        return False
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(mac, v1)
