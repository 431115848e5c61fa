#!/usr/bin/env bash
# The whole test suite. Installs what it needs when missing (redis-server, redis-cli for the
# cluster tests, chromium, node and python3-venv from Debian; playwright-core from npm into
# tests/browser/node_modules; schemathesis, openapi-python-client, Django and the official
# Tencent Cloud and Aliyun SDKs from PyPI into target/tools/venv, pinned), then runs `cargo test --locked`; extra arguments go to cargo test.
set -euo pipefail
cd "$(dirname "$0")"

need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || need+=(redis-tools)
[ -x /usr/bin/chromium ] || need+=(chromium)
command -v node >/dev/null 2>&1 || need+=(nodejs npm)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need+=(python3 python3-venv)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]}"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y "${need[@]}"
fi
if [ ! -d tests/browser/node_modules/playwright-core ]; then
  (cd tests/browser && npm ci --no-audit --no-fund)
fi

# The fuzzer and the client generator the OpenAPI tests run (tests/it/fuzz.rs, openapi.rs),
# Django (tests/it/django.rs) and the vendors' official SDKs (tests/it/captcha_vendors.rs,
# tests/it/provider_sdks.rs).
# Installed while the tests compile: the two together take the longer of them, not the sum.
tools=target/tools/venv
venv_log=target/tools/venv-install.log
venv_pid=""
if [ ! -x "$tools/bin/schemathesis" ] || [ ! -x "$tools/bin/openapi-python-client" ] || [ ! -x "$tools/bin/django-admin" ] \
  || ! "$tools/bin/python" -c 'import tencentcloud.captcha, tencentcloud.sms, alibabacloud_dysmsapi20170525' >/dev/null 2>&1; then
  rm -rf "$tools"
  mkdir -p target/tools
  (
    python3 -m venv "$tools" &&
    "$tools/bin/pip" install --quiet --disable-pip-version-check \
      'schemathesis==4.32.5' 'openapi-python-client==0.29.1' 'Django==5.2.19' \
      'tencentcloud-sdk-python-common==3.1.195' 'tencentcloud-sdk-python-captcha==3.1.177' \
      'tencentcloud-sdk-python-sms==3.1.153' 'alibabacloud-dysmsapi20170525==4.6.0' \
      'alibabacloud-tea-openapi==0.4.6' 'darabonba-core==1.0.9'
  ) >"$venv_log" 2>&1 &
  venv_pid=$!
fi

cargo test --locked --no-run "$@"
if [ -n "$venv_pid" ] && ! wait "$venv_pid"; then
  cat "$venv_log" >&2
  echo "installing the Python test tools failed" >&2
  exit 1
fi
exec cargo test --locked "$@"
