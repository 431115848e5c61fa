from django.urls import path

from accounts import views

urlpatterns = [
    path("signup/code", views.request_code),
    path("signup/verify", views.verify_code),
    path("smsq/webhook", views.smsq_webhook),
]
