"""The host reads and commands one on-host step needs: systemctl, /proc/meminfo, an HTTP health URL.

One job: talk to the host. The logic that decides what to run lives in the module that uses it
(service_swap), which takes any object with these methods, so its tests need no systemd.
"""

import subprocess
import time
import urllib.error
import urllib.request


class HostProbe:
    """systemctl, journalctl, meminfo and HTTP on the host this runs on."""

    def __init__(self, meminfo_path="/proc/meminfo"):
        self.meminfo_path = meminfo_path
        # A health probe on the host itself: never through a proxy from the environment.
        self.opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    @staticmethod
    def run(argv, timeout=None):
        """(rc, stdout, stderr); rc None when the command ran past timeout (then it is killed)."""
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired as exc:
            return None, exc.stdout or "", exc.stderr or ""
        except OSError as exc:
            return 127, "", str(exc)
        return done.returncode, done.stdout, done.stderr

    def unit_show(self, unit, properties):
        """The unit's properties as a dict (systemctl show)."""
        rc, out, err = self.run(["systemctl", "show", unit, "--property=" + ",".join(properties)], timeout=30)
        if rc != 0:
            raise OSError(f"systemctl show {unit} failed (rc {rc}): {err.strip()}")
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def systemctl(self, verb, unit, timeout=None):
        return self.run(["systemctl", verb, unit], timeout=timeout)

    def journal(self, unit, lines):
        _rc, out, _err = self.run(
            ["journalctl", f"--unit={unit}", f"--lines={lines}", "--no-pager", "--output=short-iso"], timeout=30
        )
        return out.strip()

    def meminfo_kib(self):
        """meminfo's figures in KiB (the file states kB), by key."""
        values = {}
        with open(self.meminfo_path, encoding="ascii") as handle:
            for line in handle:
                key, _colon, rest = line.partition(":")
                fields = rest.split()
                if fields:
                    values[key] = int(fields[0])
        return values

    @staticmethod
    def drop_page_cache():
        subprocess.run(["sync"], check=False)
        with open("/proc/sys/vm/drop_caches", "w", encoding="ascii") as handle:
            handle.write("3\n")

    def http_status(self, url, timeout):
        """The HTTP status of a GET, or None with why when nothing answered."""
        try:
            with self.opener.open(url, timeout=timeout) as answer:
                return answer.status, ""
        except urllib.error.HTTPError as exc:
            return exc.code, ""
        except (urllib.error.URLError, OSError) as exc:
            return None, str(getattr(exc, "reason", exc))

    @staticmethod
    def monotonic():
        return time.monotonic()

    @staticmethod
    def wall():
        return time.time()

    @staticmethod
    def sleep(seconds):
        time.sleep(seconds)
