"""git_pr_patches: real git in temporary directories, the module run in-process as Ansible runs it.

The "upstream" built here has GitHub's shape: a main branch (its default) with tags, and PR heads only
under refs/pull/<N>/head (not as branches), fetched by the module exactly as it fetches them from GitHub.
The last section runs the module on the project's fixture upstream with vars/profiles.yml's PR data.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import subprocess
from pathlib import Path
from unittest import mock

import pytest
import yaml
from ansible.module_utils import _internal as ansible_internal
from ansible.module_utils.common import warnings as ansible_warnings
from ansible.module_utils.testing import patch_module_args
from ansible_collections.voxtral.deploy.plugins.modules import git_pr_patches

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Upstream Dev",
    "GIT_AUTHOR_EMAIL": "dev@example.invalid",
    "GIT_COMMITTER_NAME": "Upstream Dev",
    "GIT_COMMITTER_EMAIL": "dev@example.invalid",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}


class Upstream:
    """A small upstream repository built commit by commit with fixed dates (stable SHAs)."""

    def __init__(self, path: Path):
        self.path = path
        self.clock = 1_700_000_000
        path.mkdir()
        self.git("init", "-q", "-b", "main")

    def git(self, *args: str, cwd: Path | None = None) -> str:
        self.clock += 60
        env = {
            **os.environ,
            **GIT_ENV,
            "GIT_AUTHOR_DATE": f"{self.clock} +0000",
            "GIT_COMMITTER_DATE": f"{self.clock} +0000",
        }
        done = subprocess.run(["git", *args], cwd=cwd or self.path, env=env, check=True, capture_output=True, text=True)
        return done.stdout.strip()

    def commit(self, message: str, files: dict[str, str | None]) -> str:
        for name, content in files.items():
            target = self.path / name
            if content is None:
                self.git("rm", "-q", name)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content)
            self.git("add", name)
        self.git("commit", "-q", "-m", message)
        return self.git("rev-parse", "HEAD")

    def pr_from(self, number: int, start: str, commits: list[tuple[str, dict]]) -> str:
        """Commits on a throw-away branch from `start`, published only as refs/pull/<number>/head."""
        self.git("checkout", "-q", "-b", f"pr{number}", start)
        for message, files in commits:
            head = self.commit(message, files)
        self.git("checkout", "-q", "main")
        self.git("update-ref", f"refs/pull/{number}/head", head)
        self.git("branch", "-q", "-D", f"pr{number}")
        return head


A_TXT = "line1\nline2\nline3\n"
C_TXT = "".join(f"c{i}\n" for i in range(1, 10))


@pytest.fixture(scope="module")
def upstream(tmp_path_factory) -> dict:
    """PR 10 merged (ancestor), 11 squash-merged (equivalent), 12 conflicting, 22 empty on the base;
    20 and 21 (two commits) apply on tag v1.0.0; 23 is one commit on a main commit past the tag; 24 holds a
    merge; 25 was merged into main after the tag. v1.1.0 removed a.txt and the line c5 of c.txt."""
    up = Upstream(tmp_path_factory.mktemp("up") / "upstream")
    c0 = up.commit("initial", {"a.txt": A_TXT, "conf.yaml": "util: 0.9\n", "b.txt": "b1\nb2\n", "c.txt": C_TXT})
    heads = {}
    heads[10] = up.pr_from(10, c0, [("add merged.txt", {"merged.txt": "merged\n"})])
    up.git("merge", "-q", "--no-ff", "-m", "Merge pull request #10", heads[10])
    heads[11] = up.pr_from(11, c0, [("change b2", {"b.txt": "b1\nB2\n"})])
    up.commit("change b2 (#11) squashed", {"b.txt": "b1\nB2\n"})
    heads[12] = up.pr_from(12, c0, [("lower util", {"conf.yaml": "util: 0.85\n"})])
    heads[22] = up.pr_from(22, c0, [("c8 to X", {"c.txt": C_TXT.replace("c8", "X")})])
    up.commit("c2 and c8", {"c.txt": C_TXT.replace("c2", "Y").replace("c8", "X")})
    up.commit("util 0.8", {"conf.yaml": "util: 0.8\n"})
    up.git("tag", "-a", "-m", "v1.0.0", "v1.0.0")
    base = up.git("rev-parse", "v1.0.0^{commit}")
    heads[20] = up.pr_from(20, "v1.0.0", [("fix line1", {"a.txt": "FIXED1\nline2\nline3\n"})])
    heads[21] = up.pr_from(21, "v1.0.0", [("add new", {"new.txt": "new\n"}), ("edit new", {"new.txt": "newer\n"})])
    main_work = up.commit("other work on main", {"d.txt": "d\n"})
    heads[23] = up.pr_from(23, main_work, [("b1 to B1", {"b.txt": "B1\nB2\n"})])
    # 24: a commit, main merged into the PR branch, another commit.
    up.git("checkout", "-q", "-b", "pr24", "v1.0.0")
    up.commit("add e", {"e.txt": "e\n"})
    up.git("merge", "-q", "--no-ff", "-m", "Merge main into pr24", "main")
    heads[24] = up.commit("edit e", {"e.txt": "E\n"})
    up.git("checkout", "-q", "main")
    up.git("update-ref", "refs/pull/24/head", heads[24])
    up.git("branch", "-q", "-D", "pr24")
    heads[25] = up.pr_from(25, "v1.0.0", [("add f", {"f.txt": "f\n"})])
    up.git("merge", "-q", "--no-ff", "-m", "Merge pull request #25", heads[25])
    up.commit("after the tag: remove a.txt", {"a.txt": None})
    up.commit("drop c5", {"c.txt": C_TXT.replace("c2", "Y").replace("c8", "X").replace("c5\n", "")})
    up.git("tag", "-a", "-m", "v1.1.0", "v1.1.0")
    return {"path": up.path, "base": base, "heads": heads, "repo": up}


def clone(upstream: dict, dest: Path) -> Path:
    subprocess.run(["git", "clone", "-q", str(upstream["path"]), str(dest)], check=True, env={**os.environ, **GIT_ENV})
    subprocess.run(["git", "-C", str(dest), "checkout", "-q", "--detach", "v1.0.0"], check=True)
    return dest


@pytest.fixture
def checkout(upstream, tmp_path) -> Path:
    return clone(upstream, tmp_path / "checkout")


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True)
    return done.stdout.strip()


def run(capsys, tmp_path, check: bool = False, **args) -> dict:
    (tmp_path / "ansible-tmp").mkdir(mode=0o700, exist_ok=True)
    args = {
        "_ansible_check_mode": check,
        "_ansible_remote_tmp": str(tmp_path / "ansible-tmp"),
        "base": "v1.0.0",
        "package_version": "1.0.0",
        **args,
    }
    ansible_warnings._global_warnings.clear()  # one module run per process in Ansible; many here
    # Once a test in the same process imported controller code (ansible.template), module warnings go to
    # the controller's Display instead of the result: run the module as it runs on a host.
    try:
        with (
            patch_module_args(args),
            mock.patch.object(ansible_internal, "is_controller", False),
            pytest.raises(SystemExit),
        ):
            git_pr_patches.main()
    finally:
        ansible_warnings._global_warnings.clear()  # nothing of this run leaks into the next module's result
    return json.loads(capsys.readouterr().out)


def pinned(upstream: dict, *prs: int, **extra) -> list[dict]:
    """Patch entries pinned to the upstream's PR heads, as a profile pins them."""
    return [{"pr": pr, "head_sha": upstream["heads"][pr], **extra} for pr in prs]


def warned(result: dict) -> list[str]:
    """The module's warnings (ansible-core 2.19 returns them as structured events)."""
    return [w["event"]["msg"] if isinstance(w, dict) else w for w in result.get("warnings", [])]


def by_pr(result: dict) -> dict:
    return {p["pr"]: p for p in result["patches"]}


def assert_untouched(checkout: Path, base: str) -> None:
    assert git(checkout, "rev-parse", "HEAD") == base
    assert git(checkout, "status", "--porcelain") == ""
    assert len(git(checkout, "worktree", "list").splitlines()) == 1
    assert not (checkout / ".git" / "CHERRY_PICK_HEAD").exists()


# ---- the module's documentation ----------------------------------------------------------------------
def spec_of(doc_options: dict) -> dict:
    """DOCUMENTATION's options in argument_spec's shape (type, elements, required, default, suboptions)."""
    spec = {}
    for name, option in doc_options.items():
        entry = {k: option[k] for k in ("type", "elements", "required", "default") if k in option}
        if "suboptions" in option:
            entry["options"] = spec_of(option["suboptions"])
        spec[name] = entry
    return spec


def test_documentation_matches_the_argument_spec():
    assert spec_of(yaml.safe_load(git_pr_patches.DOCUMENTATION)["options"]) == git_pr_patches.ARGUMENT_SPEC
    yaml.safe_load(git_pr_patches.EXAMPLES)
    returned = yaml.safe_load(git_pr_patches.RETURN)
    assert set(returned["patches"]["contains"]) == {
        "pr", "status", "reason", "head_sha", "ref", "range", "commits", "diffstat"
    }  # fmt: skip


# ---- applied, rerun, determinism ----------------------------------------------------------------
def test_applies_prs_on_a_branch_and_leaves_the_checkout_alone(capsys, tmp_path, upstream, checkout):
    result = run(capsys, tmp_path, repo_dir=str(checkout), patches=pinned(upstream, 20, 21))
    assert result["changed"] is True, result
    assert result["base_sha"] == upstream["base"]
    assert result["applied"] == [20, 21]
    prs = by_pr(result)
    assert prs[20]["status"] == "applied" and prs[20]["head_sha"] == upstream["heads"][20]
    assert prs[20]["range"] == "main..refs/pull/20/head"
    assert prs[20]["diffstat"] == {"files": [{"path": "a.txt", "added": 1, "removed": 1}], "added": 1, "removed": 1}
    assert [c["result"] for c in prs[21]["commits"]] == ["picked", "picked"]
    assert prs[21]["diffstat"]["files"] == [{"path": "new.txt", "added": 1, "removed": 0}]
    assert result["branch"].startswith(f"patched/{upstream['base'][:12]}-")
    tip = result["sha"]
    assert prs[21]["commits"][-1]["picked"] == tip
    assert git(checkout, "rev-parse", result["branch"]) == tip
    assert git(checkout, "show", f"{tip}:a.txt") == "FIXED1\nline2\nline3"
    assert git(checkout, "show", f"{tip}:new.txt") == "newer"
    assert git(checkout, "rev-list", "--count", f"{upstream['base']}..{tip}") == "3"
    assert "cherry picked from commit" in git(checkout, "log", "-1", "--format=%B", tip)
    assert git(checkout, "log", "-1", "--format=%an", tip) == "Upstream Dev"  # authors kept
    assert warned(result) == []
    assert_untouched(checkout, upstream["base"])


def test_rerun_reports_no_change(capsys, tmp_path, upstream, checkout):
    first = run(capsys, tmp_path, repo_dir=str(checkout), patches=pinned(upstream, 20, 21))
    second = run(capsys, tmp_path, repo_dir=str(checkout), patches=pinned(upstream, 20, 21))
    assert second["changed"] is False
    assert second["sha"] == first["sha"] and second["patches"] == first["patches"]
    assert second["patch_hash"] == first["patch_hash"]


def test_lost_record_rebuilds_the_same_tip_without_change(capsys, tmp_path, upstream, checkout):
    first = run(capsys, tmp_path, repo_dir=str(checkout), patches=pinned(upstream, 20))
    for record in (checkout / ".git" / "git_pr_patches").iterdir():
        record.unlink()
    second = run(capsys, tmp_path, repo_dir=str(checkout), patches=pinned(upstream, 20))
    assert second["changed"] is False and second["sha"] == first["sha"]


def test_changed_data_of_an_unfetched_pr_is_reported_without_change(capsys, tmp_path, upstream, checkout):
    first = run(capsys, tmp_path, repo_dir=str(checkout), patches=pinned(upstream, 20))
    patches = [*pinned(upstream, 20), {"pr": 2790, "left_out": "no encoder weights"}]
    second = run(capsys, tmp_path, repo_dir=str(checkout), patches=patches)
    assert second["changed"] is False and second["sha"] == first["sha"]
    assert [(p["pr"], p["status"]) for p in second["patches"]] == [(20, "applied"), (2790, "left_out")]


def test_same_inputs_give_the_same_sha_on_another_host(capsys, tmp_path, upstream, checkout):
    other = clone(upstream, tmp_path / "other-host")
    one = run(capsys, tmp_path, repo_dir=str(checkout), patches=pinned(upstream, 20, 21))
    two = run(capsys, tmp_path, repo_dir=str(other), patches=pinned(upstream, 20, 21))
    assert one["sha"] == two["sha"] and one["branch"] == two["branch"]


def test_a_different_patch_list_is_a_different_branch(capsys, tmp_path, upstream, checkout):
    one = run(capsys, tmp_path, repo_dir=str(checkout), patches=pinned(upstream, 20))
    two = run(capsys, tmp_path, repo_dir=str(checkout), patches=pinned(upstream, 20, 21))
    assert two["changed"] is True and one["branch"] != two["branch"] and one["patch_hash"] != two["patch_hash"]


# ---- which commits are the PR's own ---------------------------------------------------------------
def test_picks_only_the_prs_own_commits_not_the_base_branch_under_it(capsys, tmp_path, upstream, checkout):
    head = upstream["heads"][23]
    assert git(checkout, "rev-list", "--count", f"v1.0.0..{head}") == "2"  # "not in the base" would take 2
    result = run(capsys, tmp_path, repo_dir=str(checkout), patches=pinned(upstream, 23))
    pr23 = by_pr(result)[23]
    assert pr23["status"] == "applied" and pr23["range"] == "main..refs/pull/23/head"
    assert [c["sha"] for c in pr23["commits"]] == [head]
    assert pr23["diffstat"]["files"] == [{"path": "b.txt", "added": 1, "removed": 1}]
    assert git(checkout, "rev-list", "--count", f"{upstream['base']}..{result['sha']}") == "1"
    assert "d.txt" not in git(checkout, "ls-tree", "--name-only", result["sha"]).split()  # main's own work stays out


def test_base_branch_can_be_named(capsys, tmp_path, upstream, checkout):
    result = run(capsys, tmp_path, repo_dir=str(checkout), base_branch="main", patches=pinned(upstream, 23))
    assert by_pr(result)[23]["range"] == "main..refs/pull/23/head" and len(by_pr(result)[23]["commits"]) == 1
    assert git(checkout, "rev-parse", "refs/git_pr_patches/base/main") == git(upstream["path"], "rev-parse", "main")


def test_unknown_base_branch_fails_clearly(capsys, tmp_path, upstream, checkout):
    result = run(capsys, tmp_path, repo_dir=str(checkout), base_branch="release/9.9", patches=pinned(upstream, 20))
    assert result["failed"] is True
    assert "could not fetch the base branch 'release/9.9' from origin" in result["msg"]
    assert git(checkout, "for-each-ref", "refs/heads/patched") == ""


def test_unreadable_default_branch_asks_for_base_branch(capsys, tmp_path, upstream, checkout):
    git(checkout, "fetch", "-q", "origin", "+refs/pull/20/head:refs/pull/20/head")
    git(checkout, "remote", "set-url", "origin", str(tmp_path / "gone"))
    result = run(capsys, tmp_path, repo_dir=str(checkout), patches=pinned(upstream, 20))
    assert result["failed"] is True
    assert "cannot tell the default branch of origin" in result["msg"] and "set base_branch" in result["msg"]


def test_merge_commit_in_the_prs_commits_is_refused(capsys, tmp_path, upstream, checkout):
    result = run(capsys, tmp_path, repo_dir=str(checkout), patches=pinned(upstream, 24))
    assert result["failed"] is True
    assert "PR #24: main..refs/pull/24/head holds merge commit(s)" in result["msg"]
    assert "commits: N" in result["msg"]
    assert len(result["merge_commits"]) == 1
    assert git(checkout, "for-each-ref", "refs/heads/patched") == ""
    assert_untouched(checkout, upstream["base"])


def test_pr_merged_into_main_after_the_base_needs_a_commits_pin(capsys, tmp_path, upstream, checkout):
    result = run(capsys, tmp_path, repo_dir=str(checkout), patches=pinned(upstream, 25))
    assert result["failed"] is True
    assert "PR #25: refs/pull/25/head" in result["msg"] and "is already in main of origin" in result["msg"]
    assert "pin them with commits:" in result["msg"]
    result = run(capsys, tmp_path, repo_dir=str(checkout), patches=pinned(upstream, 25, commits=1))
    pr25 = by_pr(result)[25]
    assert pr25["status"] == "applied" and pr25["range"] == "the last 1 commit(s) of refs/pull/25/head"
    assert [c["sha"] for c in pr25["commits"]] == [upstream["heads"][25]]


def test_commits_option_takes_only_the_prs_last_commits(capsys, tmp_path, upstream, checkout):
    result = run(
        capsys, tmp_path, repo_dir=str(checkout), patches=[*pinned(upstream, 20), *pinned(upstream, 21, commits=1)]
    )
    # Only "edit new" is taken from #21; it edits a file the base lacks, so it conflicts.
    assert result["failed"] is True
    assert "PR #21" in result["msg"] and "new.txt" in result["msg"]


def test_commits_pin_over_a_merge_is_refused(capsys, tmp_path, upstream, checkout):
    result = run(capsys, tmp_path, repo_dir=str(checkout), patches=pinned(upstream, 24, commits=2))
    assert result["failed"] is True
    assert "PR #24: the last 2 commit(s) of refs/pull/24/head holds merge commit(s)" in result["msg"]


# ---- contained ----------------------------------------------------------------------------------
def test_merged_pr_is_contained_as_ancestor(capsys, tmp_path, upstream, checkout):
    result = run(capsys, tmp_path, repo_dir=str(checkout), patches=pinned(upstream, 10))
    assert by_pr(result)[10]["status"] == "contained"
    assert "ancestor" in by_pr(result)[10]["reason"]
    assert result["sha"] == result["base_sha"] and result["applied"] == []


def test_squash_merged_pr_is_contained_as_equivalent_patch(capsys, tmp_path, upstream, checkout):
    result = run(capsys, tmp_path, repo_dir=str(checkout), patches=pinned(upstream, 11))
    assert by_pr(result)[11]["status"] == "contained"
    assert "equivalent patch" in by_pr(result)[11]["reason"]
    assert by_pr(result)[11]["commits"][0]["result"] == "equivalent"
    assert by_pr(result)[11]["diffstat"] == {"files": [], "added": 0, "removed": 0}


def test_pr_whose_change_is_already_there_is_contained_as_empty(capsys, tmp_path, upstream, checkout):
    result = run(capsys, tmp_path, repo_dir=str(checkout), patches=pinned(upstream, 22))
    assert by_pr(result)[22]["status"] == "contained"
    assert "empty" in by_pr(result)[22]["reason"]
    assert result["sha"] == result["base_sha"]


def test_contained_and_applied_mix_and_report_in_input_order(capsys, tmp_path, upstream, checkout):
    result = run(capsys, tmp_path, repo_dir=str(checkout), patches=pinned(upstream, 10, 20, 11))
    assert [(p["pr"], p["status"]) for p in result["patches"]] == [
        (10, "contained"),
        (20, "applied"),
        (11, "contained"),
    ]
    assert result["applied"] == [20]


# ---- superseded (from the tree), left out, and the superseded_from cross-check ---------------------
def test_pr_whose_files_are_gone_from_the_base_is_superseded(capsys, tmp_path, upstream, checkout):
    patches = pinned(upstream, 20, superseded_from="1.1.0", reason="fixed upstream as #99")
    result = run(capsys, tmp_path, repo_dir=str(checkout), base="v1.1.0", package_version="1.1.0", patches=patches)
    pr20 = by_pr(result)[20]
    assert pr20["status"] == "superseded", pr20
    assert "moved or removed" in pr20["reason"] and "a.txt" in pr20["reason"]
    assert pr20["reason"].endswith("; fixed upstream as #99")
    assert warned(result) == []  # superseded_from agrees
    assert result["sha"] == result["base_sha"]


def test_pr_whose_listed_files_are_gone_is_superseded_without_fetching(capsys, tmp_path, checkout):
    patches = [{"pr": 20, "files": ["a.txt"]}]  # unpinned: never fetched, so no pin is needed
    result = run(capsys, tmp_path, repo_dir=str(checkout), base="v1.1.0", package_version="1.1.0", patches=patches)
    pr20 = by_pr(result)[20]
    assert pr20["status"] == "superseded" and pr20["head_sha"] is None
    assert (
        pr20["reason"]
        == "superseded (from the tree): none of the files it changes is in the base (moved or removed): a.txt"
    )
    assert git(checkout, "for-each-ref", "refs/pull/20") == ""


def test_pr_whose_anchor_is_gone_is_superseded_without_fetching(capsys, tmp_path, checkout):
    patches = [
        {"pr": 22, "anchors": [{"path": "c.txt", "text": "c5"}]},
        {"pr": 7, "anchors": [{"path": "z.txt", "text": "z"}]},
    ]
    result = run(capsys, tmp_path, repo_dir=str(checkout), base="v1.1.0", package_version="1.1.0", patches=patches)
    assert (
        by_pr(result)[22]["reason"]
        == "superseded (from the tree): 'c5', the code it patches, is no longer in c.txt at the base"
    )
    assert by_pr(result)[7]["reason"] == "superseded (from the tree): z.txt (where it patches 'z') is not in the base"
    assert git(checkout, "for-each-ref", "refs/pull") == ""


def test_pr_whose_anchor_is_still_there_must_be_pinned(capsys, tmp_path, checkout):
    patches = [{"pr": 22, "anchors": [{"path": "c.txt", "text": "c5"}]}]
    result = run(capsys, tmp_path, repo_dir=str(checkout), patches=patches)
    assert result["failed"] is True
    assert result["msg"].startswith("PR #22 is to be applied but has no head_sha: review the PR's commits")


def test_version_says_superseded_but_the_tree_applies_it_warns(capsys, tmp_path, upstream, checkout):
    patches = pinned(upstream, 20, superseded_from="1.0.0")
    result = run(capsys, tmp_path, repo_dir=str(checkout), package_version="1.0.0", patches=patches)
    assert by_pr(result)[20]["status"] == "applied"  # the tree decides
    assert warned(result) == [
        "PR #20: superseded_from 1.0.0 says it is not needed on 1.0.0, but the tree says applied "
        "(1 commit(s) cherry-picked); the tree decided. Check superseded_from."
    ]


def test_version_says_needed_but_the_tree_says_superseded_warns(capsys, tmp_path, checkout):
    patches = [{"pr": 20, "files": ["a.txt"], "superseded_from": "2.0"}]
    result = run(capsys, tmp_path, repo_dir=str(checkout), base="v1.1.0", package_version="1.1.0", patches=patches)
    assert by_pr(result)[20]["status"] == "superseded"
    assert len(warned(result)) == 1
    assert warned(result)[0].startswith(
        "PR #20: superseded_from 2.0 says it is still needed on 1.1.0, but the tree says superseded"
    )


def test_not_yet_superseded_pr_is_applied_without_warning(capsys, tmp_path, upstream, checkout):
    patches = pinned(upstream, 20, superseded_from="1.0.0")
    result = run(capsys, tmp_path, repo_dir=str(checkout), package_version="1.0.0rc1", patches=patches)
    assert by_pr(result)[20]["status"] == "applied" and "warnings" not in result


def test_left_out_pr_is_reported_with_its_reason_and_not_fetched(capsys, tmp_path, upstream, checkout):
    patches = [*pinned(upstream, 20), {"pr": 21, "left_out": "no encoder weights, so ref_audio cannot work"}]
    result = run(capsys, tmp_path, repo_dir=str(checkout), patches=patches)
    pr21 = by_pr(result)[21]
    assert (pr21["status"], pr21["reason"], pr21["head_sha"]) == (
        "left_out",
        "no encoder weights, so ref_audio cannot work",
        None,
    )
    assert result["applied"] == [20]
    assert git(checkout, "for-each-ref", "--format=%(refname)", "refs/pull") == "refs/pull/20/head"


def test_left_out_pr_whose_code_is_gone_is_superseded(capsys, tmp_path, checkout):
    patches = [{"pr": 21, "files": ["a.txt"], "left_out": "not wanted"}]
    result = run(capsys, tmp_path, repo_dir=str(checkout), base="v1.1.0", package_version="1.1.0", patches=patches)
    assert by_pr(result)[21]["status"] == "superseded"


def test_version_order():
    order = ["0.18.0", "0.18.1.dev3", "0.19.0.dev3", "0.19.0rc1", "v0.19.0", "0.19.0.post1", "0.20", "0.30.0", "1.0"]
    keys = [git_pr_patches.parse_version(v) for v in order]
    assert keys == sorted(keys)
    assert git_pr_patches.parse_version("0.20") == git_pr_patches.parse_version("0.20.0")
    assert git_pr_patches.parse_version("main") is None


# ---- pinned heads -------------------------------------------------------------------------------
def test_unpinned_pr_is_refused_before_anything_is_fetched(capsys, tmp_path, upstream, checkout):
    result = run(capsys, tmp_path, repo_dir=str(checkout), patches=[*pinned(upstream, 20), {"pr": 21}])
    assert result["failed"] is True
    assert result["msg"] == (
        "PR #21 is to be applied but has no head_sha: review the PR's commits (refs/pull/21/head on origin) and "
        "pin its head with head_sha (the full SHA), since a PR head can be force-pushed. allow_unpinned: true "
        "takes the head as it is now, with a warning."
    )
    assert git(checkout, "for-each-ref", "refs/pull", "refs/heads/patched") == ""  # not even #20 was fetched


def test_allow_unpinned_applies_the_current_head_and_warns(capsys, tmp_path, upstream, checkout):
    result = run(capsys, tmp_path, repo_dir=str(checkout), allow_unpinned=True, patches=[{"pr": 20}])
    head = upstream["heads"][20]
    assert by_pr(result)[20]["status"] == "applied" and by_pr(result)[20]["head_sha"] == head
    assert warned(result) == [
        f"PR #20 is not pinned (allow_unpinned): took refs/pull/20/head as it is now, {head}. "
        f"Review it and pin head_sha: {head}"
    ]


def test_pinned_head_mismatch_fails_before_any_change(capsys, tmp_path, checkout):
    result = run(capsys, tmp_path, repo_dir=str(checkout), patches=[{"pr": 20, "head_sha": "deadbeef"}])
    assert result["failed"] is True
    assert "PR #20" in result["msg"] and "deadbeef" in result["msg"] and "force-push" in result["msg"]
    assert git(checkout, "for-each-ref", "refs/heads/patched") == ""


def test_pinned_prefix_matches_and_rerun_needs_no_remote(capsys, tmp_path, upstream, checkout):
    pin = upstream["heads"][20][:10]
    first = run(capsys, tmp_path, repo_dir=str(checkout), patches=[{"pr": 20, "head_sha": pin.upper()}])
    assert by_pr(first)[20]["status"] == "applied"
    git(checkout, "remote", "set-url", "origin", str(tmp_path / "gone"))
    second = run(capsys, tmp_path, repo_dir=str(checkout), patches=[{"pr": 20, "head_sha": pin}])
    assert second["changed"] is False and second["sha"] == first["sha"]


def test_unpinned_head_that_moved_gives_a_new_branch(capsys, tmp_path, upstream):
    up = Upstream(tmp_path / "moving")
    up.commit("initial", {"a.txt": A_TXT})
    up.git("tag", "-a", "-m", "v1.0.0", "v1.0.0")
    up.pr_from(30, "v1.0.0", [("one", {"a.txt": "1\nline2\nline3\n"})])
    repo = clone({"path": up.path}, tmp_path / "moving-checkout")
    first = run(capsys, tmp_path, repo_dir=str(repo), allow_unpinned=True, patches=[{"pr": 30}])
    up.pr_from(30, "v1.0.0", [("one, force-pushed", {"a.txt": "ONE\nline2\nline3\n"})])
    second = run(capsys, tmp_path, repo_dir=str(repo), allow_unpinned=True, patches=[{"pr": 30}])
    assert second["changed"] is True and second["branch"] != first["branch"]
    assert git(repo, "show", f"{second['sha']}:a.txt").startswith("ONE")


def test_missing_pr_ref_fails_clearly(capsys, tmp_path, checkout):
    result = run(capsys, tmp_path, repo_dir=str(checkout), patches=[{"pr": 404, "head_sha": "abcdef0"}])
    assert result["failed"] is True and "refs/pull/404/head" in result["msg"]


# ---- conflict -----------------------------------------------------------------------------------
def test_conflict_aborts_leaves_nothing_and_names_pr_files_and_ref(capsys, tmp_path, upstream, checkout):
    result = run(capsys, tmp_path, repo_dir=str(checkout), patches=pinned(upstream, 20, 12))
    assert result["failed"] is True
    assert "PR #12" in result["msg"] and "refs/pull/12/head" in result["msg"] and "conf.yaml" in result["msg"]
    assert result["conflict_files"] == ["conf.yaml"]
    assert result["ref"] == "refs/pull/12/head"
    assert [(p["pr"], p["status"]) for p in result["patches"]] == [(20, "applied"), (12, "conflict")]
    assert git(checkout, "for-each-ref", "refs/heads/patched") == ""  # no half-patched branch
    assert_untouched(checkout, upstream["base"])


def test_after_a_conflict_the_good_list_still_applies(capsys, tmp_path, upstream, checkout):
    run(capsys, tmp_path, repo_dir=str(checkout), patches=pinned(upstream, 12))
    result = run(capsys, tmp_path, repo_dir=str(checkout), patches=pinned(upstream, 20))
    assert result["changed"] is True and result["applied"] == [20]


# ---- check mode -----------------------------------------------------------------------------------
def test_check_mode_fetches_and_creates_nothing(capsys, tmp_path, upstream, checkout):
    patches = [*pinned(upstream, 20), {"pr": 12, "files": ["no/such/file"]}, {"pr": 21, "left_out": "later"}]
    result = run(capsys, tmp_path, check=True, repo_dir=str(checkout), patches=patches)
    assert result["changed"] is True
    assert [(p["pr"], p["status"]) for p in result["patches"]] == [
        (20, "applied"),
        (12, "superseded"),
        (21, "left_out"),
    ]
    assert by_pr(result)[20]["head_sha"] == upstream["heads"][20]  # read with ls-remote
    assert git(checkout, "for-each-ref", "refs/pull", "refs/heads/patched", "refs/git_pr_patches") == ""
    assert_untouched(checkout, upstream["base"])


def test_check_mode_refuses_an_unpinned_pr(capsys, tmp_path, checkout):
    result = run(capsys, tmp_path, check=True, repo_dir=str(checkout), patches=[{"pr": 20}])
    assert result["failed"] is True and "has no head_sha" in result["msg"]


def test_check_mode_after_a_run_reports_no_change(capsys, tmp_path, upstream, checkout):
    run(capsys, tmp_path, repo_dir=str(checkout), patches=pinned(upstream, 20))
    result = run(capsys, tmp_path, check=True, repo_dir=str(checkout), patches=pinned(upstream, 20))
    assert result["changed"] is False and by_pr(result)[20]["status"] == "applied"


def test_check_mode_classifies_what_it_can_from_local_objects(capsys, tmp_path, upstream, checkout):
    for ref in ("refs/pull/10/head", "refs/pull/23/head"):
        git(checkout, "fetch", "-q", "origin", f"+{ref}:{ref}")
    result = run(capsys, tmp_path, check=True, repo_dir=str(checkout), patches=pinned(upstream, 10, 23))
    assert by_pr(result)[10]["status"] == "contained"
    pr23 = by_pr(result)[23]
    assert (pr23["status"], pr23["reason"]) == ("applied", "would be cherry-picked")
    assert pr23["diffstat"]["files"] == [{"path": "b.txt", "added": 1, "removed": 1}]


def test_check_mode_without_a_checkout_yet(capsys, tmp_path):
    patches = [
        {"pr": 2405, "superseded_from": "0.20.0", "reason": "#3232", "files": ["x.py"]},
        {"pr": 2790, "left_out": "no encoder weights"},
        {"pr": 7, "head_sha": "abcdef0"},
    ]
    result = run(
        capsys,
        tmp_path,
        check=True,
        repo_dir=str(tmp_path / "not-cloned-yet"),
        package_version="0.30.0",
        patches=patches,
    )
    assert result["changed"] is True and result["base_sha"] is None
    assert [p["status"] for p in result["patches"]] == ["superseded", "left_out", "applied"]
    assert "by the data" in result["patches"][0]["reason"]


def test_check_mode_without_a_checkout_names_the_tip_a_real_run_would_have(capsys, tmp_path):
    # The ref's SHA as the git module reports it in check mode; with nothing to apply the tip is that SHA and
    # the hash is a real run's over no PR, so the flight's dry run names the release a real run builds.
    base = "3f4635ce644e43fbb522d465452c020500347217"
    common = {"check": True, "repo_dir": str(tmp_path / "not-cloned-yet"), "package_version": "0.30.0", "base": base}
    nothing = run(capsys, tmp_path, patches=[{"pr": 2790, "left_out": "no encoder weights"}], **common)
    assert (nothing["base_sha"], nothing["sha"], nothing["applied"]) == (base, base, [])
    assert nothing["patch_hash"] == hashlib.sha256(b"").hexdigest()[:8]
    pin = "42744c3debad5c8fc3ebf854eabe2f213932c17f"
    applied = run(capsys, tmp_path, patches=[{"pr": 2405, "head_sha": pin}], **common)
    assert (applied["sha"], applied["applied"]) == (None, [2405])
    assert applied["patch_hash"] == hashlib.sha256(f"2405:{pin}".encode()).hexdigest()[:8]


def test_check_mode_without_a_checkout_refuses_an_unpinned_pr(capsys, tmp_path):
    result = run(capsys, tmp_path, check=True, repo_dir=str(tmp_path / "not-cloned-yet"), patches=[{"pr": 7}])
    assert result["failed"] is True and result["msg"].startswith("PR #7 is to be applied but has no head_sha")


# ---- bad input --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("patches", "package_version", "message"),
    [
        ([{"pr": 20}, {"pr": 20}], "1.0.0", "listed twice"),
        ([{"pr": 20, "head_sha": "not-a-sha"}], "1.0.0", "7-40 hex"),
        ([{"pr": 0}], "1.0.0", "positive"),
        ([{"pr": 20, "superseded_from": "0.20.0"}], None, "package_version is required"),
        ([{"pr": 20, "superseded_from": "soon"}], "1.0.0", "not a version"),
        ([{"pr": 20, "commits": 0}], "1.0.0", "at least 1"),
        ([{"pr": 20, "sha": "abc"}], "1.0.0", "sha"),  # unknown key
        ([{"head_sha": "abcdef0"}], "1.0.0", "pr"),  # pr missing
        ([{"pr": 20, "head_sha": "abcdef0", "left_out": "x"}], "1.0.0", "left_out and head_sha together"),
        ([{"pr": 20, "files": [""]}], "1.0.0", "files holds an empty path"),
        ([{"pr": 20, "anchors": [{"path": "a.txt", "text": ""}]}], "1.0.0", "each anchor needs a path and a text"),
        ([{"pr": 20, "anchors": [{"path": "a.txt"}]}], "1.0.0", "text"),
    ],
)
def test_bad_patch_entries_fail_before_any_change(capsys, tmp_path, checkout, patches, package_version, message):
    result = run(capsys, tmp_path, repo_dir=str(checkout), patches=patches, package_version=package_version)
    assert result["failed"] is True and message in result["msg"]
    assert git(checkout, "for-each-ref", "refs/pull", "refs/heads/patched") == ""


def test_bad_base_branch_fails_before_any_change(capsys, tmp_path, checkout):
    result = run(capsys, tmp_path, repo_dir=str(checkout), base_branch="-x", patches=[])
    assert result["failed"] is True and result["msg"] == "base_branch '-x' is not a branch name"


def test_unknown_base_fails(capsys, tmp_path, checkout):
    result = run(capsys, tmp_path, repo_dir=str(checkout), base="v9.9.9", patches=[])
    assert result["failed"] is True and "v9.9.9" in result["msg"]


def test_no_patches_gives_the_base(capsys, tmp_path, upstream, checkout):
    result = run(capsys, tmp_path, repo_dir=str(checkout), patches=[])
    assert result["sha"] == upstream["base"] and result["applied"] == []
    assert run(capsys, tmp_path, repo_dir=str(checkout), patches=[])["changed"] is False


# ---- the project's fixture upstream, with vars/profiles.yml's PR data -------------------------------
ROOT = Path(__file__).resolve().parents[2]
KNOWN = {
    p["pr"]: p
    for p in yaml.safe_load((ROOT / "roles" / "vllm_omni_build" / "vars" / "profiles.yml").read_text())[
        "__vllm_omni_build_known_patches"
    ]
}
CONFIG_018 = "vllm_omni/model_executor/models/voxtral_tts/configuration_voxtral_tts.py"


@pytest.fixture(scope="module")
def fixture_upstream(tmp_path_factory) -> dict:
    spec = importlib.util.spec_from_file_location("make_upstream", ROOT / "tests" / "fixtures" / "make_upstream.py")
    make_upstream = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_upstream)
    out = tmp_path_factory.mktemp("fixture-upstream")
    assert make_upstream.main(["make_upstream", str(out)]) == 0
    return {"path": out / "vllm-omni.git", "refs": json.loads((out / "refs.json").read_text())}


@pytest.fixture
def fixture_checkout(fixture_upstream, tmp_path) -> Path:
    dest = tmp_path / "vllm-omni"
    subprocess.run(
        ["git", "clone", "-q", str(fixture_upstream["path"]), str(dest)], check=True, env={**os.environ, **GIT_ENV}
    )
    return dest


def known(fixture_upstream: dict, pr: int, pin: bool = True, **changes) -> dict:
    """The profile's entry for `pr`, pinned to the fixture's head instead of upstream's."""
    entry = {**KNOWN[pr], **changes}
    if pin:
        entry.pop("left_out", None)
        entry["head_sha"] = fixture_upstream["refs"]["pulls"][str(pr)]
    return {k: v for k, v in entry.items() if v is not None}


def on_fixture(capsys, tmp_path, checkout: Path, tag: str, patches: list[dict]) -> dict:
    return run(capsys, tmp_path, repo_dir=str(checkout), base=tag, package_version=tag[1:], patches=patches)


def test_seed_plan_picks_only_2405s_own_commit_and_leaves_2790_out(
    capsys, tmp_path, fixture_upstream, fixture_checkout
):
    refs, head = fixture_upstream["refs"], fixture_upstream["refs"]["pulls"]["2405"]
    assert git(fixture_checkout, "rev-list", "--count", f"v0.18.0..{head}") == "4"  # the PR branch holds main's work
    patches = [known(fixture_upstream, 2405), known(fixture_upstream, 2790, pin=False)]
    result = on_fixture(capsys, tmp_path, fixture_checkout, "v0.18.0", patches)
    pr2405, pr2790 = by_pr(result)[2405], by_pr(result)[2790]
    assert (pr2405["status"], pr2405["range"]) == ("applied", "main..refs/pull/2405/head")
    assert [c["sha"] for c in pr2405["commits"]] == [head]
    assert pr2405["diffstat"]["files"] == [{"path": CONFIG_018, "added": 4, "removed": 2}]
    assert git(fixture_checkout, "rev-list", "--count", f"{refs['tags']['v0.18.0']}..{result['sha']}") == "1"
    assert "docs/changes" not in git(fixture_checkout, "ls-tree", "-r", "--name-only", result["sha"])
    assert (pr2790["status"], pr2790["head_sha"]) == ("left_out", None)
    assert "no audio-encoder weights" in pr2790["reason"]
    assert git(fixture_checkout, "for-each-ref", "--format=%(refname)", "refs/pull") == "refs/pull/2405/head"
    assert warned(result) == []
    again = on_fixture(capsys, tmp_path, fixture_checkout, "v0.18.0", patches)
    assert again["changed"] is False and again["sha"] == result["sha"]


def test_2790_pinned_after_review_applies_its_one_commit(capsys, tmp_path, fixture_upstream, fixture_checkout):
    result = on_fixture(capsys, tmp_path, fixture_checkout, "v0.18.0", [known(fixture_upstream, 2790)])
    pr2790 = by_pr(result)[2790]
    assert pr2790["status"] == "applied" and len(pr2790["commits"]) == 1
    assert [f["path"] for f in pr2790["diffstat"]["files"]] == ["vllm_omni/entrypoints/openai/serving_speech.py"]


def test_on_0_20_2405_is_superseded_and_2790_still_needed(capsys, tmp_path, fixture_upstream, fixture_checkout):
    patches = [known(fixture_upstream, 2405), known(fixture_upstream, 2790, pin=False)]
    result = on_fixture(capsys, tmp_path, fixture_checkout, "v0.20.0", patches)
    assert [(p["pr"], p["status"]) for p in result["patches"]] == [(2405, "superseded"), (2790, "left_out")]
    assert CONFIG_018 in by_pr(result)[2405]["reason"] and by_pr(result)[2405]["head_sha"] is None
    assert warned(result) == []  # superseded_from 0.20.0 and 0.30.0 agree with the tree


def test_on_0_20_the_tree_decides_2405_even_without_files_in_the_data(
    capsys, tmp_path, fixture_upstream, fixture_checkout
):
    patches = [known(fixture_upstream, 2405, files=None)]
    result = on_fixture(capsys, tmp_path, fixture_checkout, "v0.20.0", patches)
    pr2405 = by_pr(result)[2405]
    assert pr2405["status"] == "superseded"  # fetched: its file is gone since its fork point
    assert (
        f"moved or removed since {fixture_upstream['refs']['pull_bases']['2405'][:12]}: {CONFIG_018}"
        in pr2405["reason"]
    )


def test_on_0_26_2790_still_applies(capsys, tmp_path, fixture_upstream, fixture_checkout):
    assert "vllm_omni/entrypoints/openai/tts_adapters/voxtral.py" in git(
        fixture_checkout, "ls-tree", "-r", "--name-only", "v0.26.0"
    )
    result = on_fixture(capsys, tmp_path, fixture_checkout, "v0.26.0", [known(fixture_upstream, 2790)])
    assert by_pr(result)[2790]["status"] == "applied" and warned(result) == []


def test_on_0_30_both_are_superseded_from_the_tree_without_fetching(
    capsys, tmp_path, fixture_upstream, fixture_checkout
):
    patches = [known(fixture_upstream, 2405), known(fixture_upstream, 2790, pin=False)]
    result = on_fixture(capsys, tmp_path, fixture_checkout, "v0.30.0", patches)
    assert [(p["pr"], p["status"]) for p in result["patches"]] == [(2405, "superseded"), (2790, "superseded")]
    assert "'_build_voxtral_prompt', the code it patches, is no longer in" in by_pr(result)[2790]["reason"]
    assert git(fixture_checkout, "for-each-ref", "refs/pull") == "" and warned(result) == []


def test_a_wrong_superseded_from_warns_and_the_tree_wins(capsys, tmp_path, fixture_upstream, fixture_checkout):
    # The old data file said #2790 was superseded from 0.20.0; at 0.20.0 the tree still has its code.
    patches = [known(fixture_upstream, 2790, pin=False, superseded_from="0.20.0")]
    result = on_fixture(capsys, tmp_path, fixture_checkout, "v0.20.0", patches)
    assert by_pr(result)[2790]["status"] == "left_out"
    assert len(warned(result)) == 1
    assert warned(result)[0].startswith(
        "PR #2790: superseded_from 0.20.0 says it is not needed on 0.20.0, but the tree says left_out"
    )
