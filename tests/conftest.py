"""Shared pytest set-up: make the project's plugins importable the way Ansible imports them."""

import sys
from pathlib import Path

import ansible.module_utils

ROOT = Path(__file__).resolve().parent.parent
# Ansible loads plugins/module_utils/<name>.py as ansible.module_utils.<name>; do the same here.
ansible.module_utils.__path__.append(str(ROOT / "plugins" / "module_utils"))
sys.path.insert(0, str(ROOT / "plugins" / "modules"))
