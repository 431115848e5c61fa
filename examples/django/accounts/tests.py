"""The sign-up flow against a live smsq (API, worker, fake provider), as smsq's test suite
runs it: SMSQ_URL, SMSQ_TOKEN, SMSQ_WEBHOOK_SECRET, SMSQ_FAKE_URL (the fake provider, to read
the code the "phone" received) and DJANGO_LIVE_PORT (where smsq's webhooks come)."""
import json
import os
import time
import urllib.request

from django.test import LiveServerTestCase

from .models import Account, PhoneCode


def received_code(job_id: str, within: float = 10.0) -> str:
    deadline = time.time() + within
    while time.time() < deadline:
        with urllib.request.urlopen(os.environ["SMSQ_FAKE_URL"] + "/_fake/messages") as r:
            for m in json.load(r):
                if m["req_id"] == job_id:
                    return m["datas"][0]
        time.sleep(0.05)
    raise AssertionError(f"the provider never got job {job_id}")


class SignUpTests(LiveServerTestCase):
    port = int(os.environ.get("DJANGO_LIVE_PORT", "0"))

    def post(self, path, body, **headers):
        return self.client.post(path, json.dumps(body), content_type="application/json", **headers)

    def test_a_number_signs_up_with_the_code_it_received(self):
        asked = self.post("/signup/code", {"mobile": "+86 139 0013 8901"}, HTTP_X_REQUEST_ID="django-signup-1")
        self.assertEqual(asked.status_code, 200, asked.content)
        job_id = asked.json()["job_id"]
        code = received_code(job_id)

        wrong = "000000" if code != "000000" else "111111"
        self.assertEqual(self.post("/signup/verify", {"mobile": "13900138901", "code": wrong}).status_code, 400)
        made = self.post("/signup/verify", {"mobile": "13900138901", "code": code})
        self.assertEqual(made.status_code, 201, made.content)
        self.assertTrue(Account.objects.filter(mobile="13900138901").exists())

        # smsq's code.delivered webhook reaches the live server and marks it.
        deadline = time.time() + 15
        while not PhoneCode.objects.get(job_id=job_id).delivered:
            self.assertLess(time.time(), deadline, "no code.delivered webhook")
            time.sleep(0.1)

    def test_smsq_refusals_reach_the_user_with_their_code(self):
        bad = self.post("/signup/code", {"mobile": "12345"})
        self.assertEqual((bad.status_code, bad.json()["error"]), (400, "invalid_mobile"))

    def test_a_webhook_without_a_valid_signature_is_refused(self):
        forged = self.client.post("/smsq/webhook", b"{}", content_type="application/json",
                                  HTTP_SMSQ_SIGNATURE="t=1,v1=00")
        self.assertEqual(forged.status_code, 401)
