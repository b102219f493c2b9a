"""The weights download, run by the download venv's Python on the host (tasks/download.yml) as an async job.

Arguments: repo revision cache log pid_file token_file. It writes its PID (so a stalled download can be
stopped), logs one timestamped line per step to `log` (the controller shows the latest, callback
voxtral_progress), reads the token from `token_file` and removes it at once (never on a command line or in
the async job's status file), and masks the token in anything it prints.
"""

import os
import sys
import time

# The project's timestamp format (plugins/module_utils/state_file.py ISO); this program cannot import it.
ISO = "%Y-%m-%dT%H:%M:%SZ"


def size(count):
    return next(
        (f"{count / unit:.1f} {name}" for name, unit in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)) if count >= unit),
        f"{count} B",
    )


def main(argv):
    repo, revision, cache, log, pid_file, token_file = argv[:6]
    token = None
    if os.path.exists(token_file):
        with open(token_file, encoding="utf-8") as handle:
            token = handle.read().strip() or None
        os.unlink(token_file)
    out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(out, 1)
    os.dup2(out, 2)
    sys.stdout = os.fdopen(1, "w", buffering=1)
    sys.stderr = os.fdopen(2, "w", buffering=1)
    with open(pid_file, "w", encoding="utf-8") as handle:
        handle.write(f"{os.getpid()}\n")

    def step(text):
        print(f"== {time.strftime(ISO, time.gmtime())}  {text}", flush=True)

    def masked(text):
        return text.replace(token, "********") if token else text

    try:
        from huggingface_hub import HfApi, snapshot_download

        step(f"download of {repo}@{revision} into {cache}")
        try:
            info = HfApi().model_info(repo, revision=revision, files_metadata=True, token=token)
            total = sum(sibling.size or 0 for sibling in info.siblings)
            step(f"{len(info.siblings)} files, {size(total)} (commit {str(info.sha)[:12]})")
        except Exception as exc:  # pylint: disable=broad-exception-caught  # the list is only informative
            step(f"fetching (file list unknown: {masked(type(exc).__name__)})")
        path = snapshot_download(repo_id=repo, revision=revision, cache_dir=cache, token=token)
        step(f"done: {path}")
    except Exception as exc:  # pylint: disable=broad-exception-caught  # the log's last line says why
        print(masked(f"{type(exc).__name__}: {exc}"), flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
