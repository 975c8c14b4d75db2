"""The image's HEALTHCHECK: exit 0 when this container's worker answers GET /health.

Standard library only. The port and the scheme follow the worker's own settings
(NOTSOUND_WORKER_PORT; https when NOTSOUND_WORKER_TLS_CERT is set, without checking the
certificate: this is the worker's own address).
"""

import os
import ssl
import sys
import urllib.request

port = os.environ.get("NOTSOUND_WORKER_PORT", "8765")
tls = bool(os.environ.get("NOTSOUND_WORKER_TLS_CERT"))
context = ssl._create_unverified_context() if tls else None
url = f"{'https' if tls else 'http'}://127.0.0.1:{port}/health"
try:
    with urllib.request.urlopen(url, timeout=4, context=context) as response:
        sys.exit(0 if response.status == 200 else 1)
except OSError as exc:
    print(f"{url}: {exc}", file=sys.stderr)
    sys.exit(1)
