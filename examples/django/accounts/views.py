"""Sign-up by phone: ask for a code, type it, get an account. And smsq's webhooks."""
import json

from django.http import HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from . import smsq
from .models import Account, PhoneCode


def _body(request) -> dict:
    try:
        return json.loads(request.body or b"{}")
    except ValueError:
        return {}


@csrf_exempt
@require_POST
def request_code(request):
    mobile = str(_body(request).get("mobile", ""))
    try:
        sent = smsq.send_code(
            mobile,
            client_ip=request.META.get("REMOTE_ADDR", "127.0.0.1"),
            request_id=request.headers.get("x-request-id"),
        )
    except smsq.SmsqRefused as e:
        # invalid_mobile, resend_too_soon, hourly_limit, …: tell the user, with smsq's code.
        return JsonResponse({"error": e.error}, status=400 if e.status == 400 else 429)
    PhoneCode.objects.create(mobile=mobile, job_id=sent["job_id"])
    return JsonResponse({"job_id": sent["job_id"], "resend_after": sent["resend_after"]})


@csrf_exempt
@require_POST
def verify_code(request):
    body = _body(request)
    mobile, code = str(body.get("mobile", "")), str(body.get("code", ""))
    if not smsq.check_code(mobile, code):
        return JsonResponse({"error": "wrong_code"}, status=400)
    account, _ = Account.objects.get_or_create(mobile=mobile)
    return JsonResponse({"account": account.id}, status=201)


@csrf_exempt
@require_POST
def smsq_webhook(request):
    if not smsq.verify_webhook(request.headers.get("Smsq-Signature", ""), request.body):
        return HttpResponse(status=401)
    event = json.loads(request.body)
    if event["type"] == "code.delivered":
        PhoneCode.objects.filter(job_id=event["job_id"]).update(delivered=True)
    # Any 2xx: smsq stops retrying. It may send an event twice: this update is idempotent.
    return HttpResponse(status=204)
