from django.db import models


class PhoneCode(models.Model):
    """A code smsq is sending to a number, and what its webhooks said about it."""

    mobile = models.CharField(max_length=20)
    job_id = models.CharField(max_length=32, unique=True)
    delivered = models.BooleanField(default=False)
    created = models.DateTimeField(auto_now_add=True)


class Account(models.Model):
    mobile = models.CharField(max_length=20, unique=True)
    created = models.DateTimeField(auto_now_add=True)
