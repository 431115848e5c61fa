"""A minimal project: one app (accounts), SQLite, smsq's address and secrets from the
environment."""
import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-only-not-a-secret")
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
INSTALLED_APPS = ["django.contrib.contenttypes", "accounts"]
MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]
ROOT_URLCONF = "signup.urls"
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": BASE_DIR / "db.sqlite3"}}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True

# smsq: where its API is, the app's bearer token (one of SMSQ_API_TOKENS), and the webhook
# endpoint's signing secret (smsq's SMSQ_WEBHOOK_SECRET_<NAME>).
SMSQ_URL = os.environ.get("SMSQ_URL", "http://127.0.0.1:8080")
SMSQ_TOKEN = os.environ.get("SMSQ_TOKEN", "")
SMSQ_WEBHOOK_SECRET = os.environ.get("SMSQ_WEBHOOK_SECRET", "")
STATIC_URL = "static/"
