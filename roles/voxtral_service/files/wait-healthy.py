#!/usr/bin/env python3
"""ExecStartPost of voxtral-tts.service: return once the server's /health answers 200.

Keeps the unit "activating" until vllm-omni has loaded its stages, so "active" means "serving" and
TimeoutStartSec bounds the whole start. systemd does not stop this probe when the server dies during
the start, so it watches the main process itself (systemd passes its PID as $MAINPID) and fails at once.
Usage: wait-healthy.py URL
"""

import os
import sys
import time
import urllib.error
import urllib.request


def main_process_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited
    except (OSError, IndexError):
        return False


url = sys.argv[1]
main_pid = int(os.environ.get("MAINPID") or 0)
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # the server is local: no proxy
while True:
    try:
        with opener.open(url, timeout=5) as response:
            if response.status == 200:
                sys.exit(0)
    except (urllib.error.URLError, OSError, ValueError):
        pass
    if main_pid and not main_process_alive(main_pid):
        sys.exit(f"wait-healthy: the server (PID {main_pid}) exited before {url} answered 200")
    time.sleep(1)
