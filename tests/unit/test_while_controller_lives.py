"""The action that runs a heartbeat-refreshing module only while ansible-playbook lives: a worker outliving its
parent (a SIGKILLed ansible-playbook: its workers run in sessions of their own) sends no module, so no beat."""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from ansible_collections.voxtral.deploy.plugins.action import while_controller_lives
from ansible_collections.voxtral.deploy.plugins.action.while_controller_lives import ActionModule, controller_alive

ROOT = Path(__file__).resolve().parents[2]
FORK = multiprocessing.get_context("fork")  # ansible-core forks its workers


def worker(report, parent_gone):
    """The grandchild: the worker, reporting whether it sees its controller alive, before and after its death."""
    report.send(controller_alive())
    parent_gone.wait(10)
    time.sleep(0.2)
    report.send(controller_alive())


def controller(report, parent_gone):
    """The child: ansible-playbook, which starts one worker and dies without a word (os._exit, as SIGKILL)."""
    FORK.Process(target=worker, args=(report, parent_gone)).start()
    time.sleep(0.2)
    parent_gone.set()
    os._exit(0)


def test_a_worker_sees_its_controller_alive_then_gone():
    receive, report = FORK.Pipe(duplex=False)
    parent_gone = FORK.Event()
    FORK.Process(target=controller, args=(report, parent_gone)).start()
    assert receive.recv() is True
    assert receive.recv() is False


def test_a_process_that_is_no_worker_counts_as_alive():
    assert multiprocessing.parent_process() is None  # pytest itself
    assert controller_alive() is True


def test_a_sentinel_that_cannot_be_read_runs_the_module(monkeypatch):
    def closed():
        raise OSError(9, "Bad file descriptor")

    monkeypatch.setattr(multiprocessing, "parent_process", lambda: SimpleNamespace(is_alive=closed))
    assert controller_alive() is True


def action():
    task = SimpleNamespace(resolved_action="voxtral.deploy.async_progress")
    return ActionModule.__new__(ActionModule), task


def test_an_orphaned_worker_fails_the_task_without_running_the_module(monkeypatch):
    module, task = action()
    module._task = task
    monkeypatch.setattr(while_controller_lives, "controller_alive", lambda: False)
    monkeypatch.setattr(while_controller_lives.NormalAction, "run", lambda *a, **k: pytest.fail("the module ran"))
    result = module.run(task_vars={})
    assert result["failed"] is True
    assert result["msg"].startswith("ansible-playbook is gone (this worker outlived it): voxtral.deploy.async_progress")


def test_a_live_controller_runs_the_module_as_the_generic_action_does(monkeypatch):
    module, task = action()
    module._task = task
    monkeypatch.setattr(while_controller_lives, "controller_alive", lambda: True)
    monkeypatch.setattr(while_controller_lives.NormalAction, "run", lambda self, tmp=None, task_vars=None: {"ok": 1})
    assert module.run(task_vars={}) == {"ok": 1}


def test_every_module_that_beats_is_routed_through_it():
    """A module with a heartbeat option that refreshes it (not only reads or requires it) goes through the action."""
    routing = yaml.safe_load((ROOT / "meta" / "runtime.yml").read_text())["plugin_routing"]["modules"]
    routed = {
        name for name, route in routing.items() if route.get("action_plugin") == "voxtral.deploy.while_controller_lives"
    }
    beating = {
        path.stem
        for path in (ROOT / "plugins" / "modules").glob("*.py")
        if "flight_heartbeat.beat(" in path.read_text()
    }
    assert beating and routed == beating
