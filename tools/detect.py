"""Start an auto-detection on a running gateway and follow its progress.

    M70_PASSWORD=... python -m tools.detect --url http://127.0.0.1:8080 --mode full

Uses the daemon's HTTP API (POST /api/login as --profile with the password in
$M70_PASSWORD, POST /api/discovery with the session's cookie and CSRF token,
GET /api/discovery) and prints the devices found. Exit code 0 when the
detection completed.
"""

import argparse
import json
import os
import re
import sys
import time
import urllib.error
import urllib.request


SESSION = {}        # the session cookie and CSRF token once logged in


def call(url, data=None):
    body = None if data is None else json.dumps(data).encode()
    headers = {"Content-Type": "application/json"}
    if SESSION:
        headers.update({"Cookie": "m70_session=" + SESSION["cookie"], "X-CSRF-Token": SESSION["csrf"]})
    req = urllib.request.Request(url, data=body, method="POST" if data is not None else "GET", headers=headers)
    with urllib.request.urlopen(req, timeout=10) as resp:
        cookie = re.search(r"m70_session=([^;]+)", resp.headers.get("Set-Cookie") or "")
        answer = json.loads(resp.read())
    if cookie:
        SESSION.update(cookie=cookie.group(1), csrf=answer["csrf"])
    return answer


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tools.detect", description=__doc__.split("\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:80", help="base URL of the gateway")
    parser.add_argument("--mode", choices=("fast", "full"), default="fast")
    parser.add_argument("--guard", type=float, default=600, help="give up after this many seconds")
    parser.add_argument("--profile", default="admin", help="the profile to log in as (password in $M70_PASSWORD)")
    args = parser.parse_args(argv)
    base = args.url.rstrip("/")
    try:
        call(base + "/api/login", {"profile": args.profile, "password": os.environ.get("M70_PASSWORD", "")})
        call(base + "/api/discovery", {"mode": args.mode})
    except urllib.error.HTTPError as exc:
        print("error: %s" % json.loads(exc.read() or b"{}").get("error", exc), file=sys.stderr)
        return 1
    except OSError as exc:
        print("error: cannot reach %s: %s" % (base, exc), file=sys.stderr)
        return 1
    end = time.monotonic() + args.guard
    while time.monotonic() < end:
        status = call(base + "/api/discovery")
        print("\r%s detection: %3.0f %%  %s" % (args.mode.upper(), 100 * status["progress"], status["message"]),
              end="", flush=True)
        if status["state"] in ("done", "failed", "cancelled"):
            print()
            break
        time.sleep(0.5)
    else:
        print("\nerror: detection still running after %.0f s" % args.guard, file=sys.stderr)
        return 1
    if status["state"] != "done":
        return 1
    for device in call(base + "/api/status")["devices"]:
        print("  %-8s %3d  %-10s %s  %d loads" % (device["bus"], device["address"], device["reference"],
                                                  device["netid"], len(device["loads"])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
