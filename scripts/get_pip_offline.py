"""Stand-in for pypa's get-pip.py, which ansible-test downloads from a host this network cannot reach.

ansible-test runs it (as `get_pip_<version>.py` from ~/.ansible/test/cache) inside a fresh venv made
without pip, with pip's install options and the packages to install (pip==X, setuptools, wheel). Python's
own ensurepip gives the venv a pip; that pip then installs the same packages from the package index.
get-pip's own flags (--no-setuptools, --no-wheel) are not pip's: they only drop those packages.
"""

import subprocess
import sys

OWN_FLAGS = {"--no-setuptools": "setuptools", "--no-wheel": "wheel"}

args = sys.argv[1:]
dropped = {OWN_FLAGS[a] for a in args if a in OWN_FLAGS}
args = [a for a in args if a not in OWN_FLAGS and a.split("=")[0].split("<")[0].split(">")[0] not in dropped]
subprocess.run([sys.executable, "-m", "ensurepip", "--default-pip"], check=True, capture_output=True)
sys.exit(subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", *args], check=False).returncode)
