"""Print the progress line of long waits (async_progress polls) as they happen."""

DOCUMENTATION = r"""
---
name: voxtral_progress
type: aggregate
short_description: Show the progress of long waits while they run
description:
  - An C(until) loop prints only "FAILED - RETRYING ... (N retries left)" between polls. For tasks whose
    result carries a C(progress) line (the C(async_progress) module reports the build's current step,
    elapsed time and the host path of its log; the weights download's bytes and files so far; the latest
    journal line of a starting C(voxtral-tts.service)), this callback prints that line at every poll, so an
    operator sees which step a 20-minute build, an 8 GB download or a minutes-long model load is in and
    that it is still moving.
requirements:
  - enabled in ansible.cfg (callbacks_enabled)
"""

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "voxtral_progress"
    CALLBACK_NEEDS_ENABLED = True

    def v2_runner_retry(self, result):
        progress = result._result.get("progress")
        if progress:
            self._display.display(f"  [{result._host.get_name()}] {progress}", color="cyan")
