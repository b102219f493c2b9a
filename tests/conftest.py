"""Shared pytest set-up: import the project's plugins as the collection voxtral.deploy, as Ansible does."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# scripts/setup.sh links the checkout in as .cache/collections/ansible_collections/voxtral/deploy.
COLLECTIONS = ROOT / ".cache" / "collections"
if not (COLLECTIONS / "ansible_collections" / "voxtral" / "deploy" / "galaxy.yml").is_file():
    raise RuntimeError(f"{COLLECTIONS}/ansible_collections/voxtral/deploy is missing: run `make setup` first")
sys.path.insert(0, str(COLLECTIONS))
