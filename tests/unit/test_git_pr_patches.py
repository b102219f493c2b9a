"""git_pr_patches: real git in temporary directories, the module run in-process as Ansible runs it.

The "upstream" built here has GitHub's shape: a main branch with a tag, and PR heads only under
refs/pull/<N>/head (not as branches), fetched by the module exactly as it fetches them from GitHub.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import git_pr_patches
import pytest
from ansible.module_utils.testing import patch_module_args

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
    20 and 21 (two commits) apply on tag v1.0.0."""
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
    up.commit("after the tag: remove a.txt", {"a.txt": None})
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
    args = {
        "_ansible_check_mode": check,
        "_ansible_remote_tmp": str(tmp_path / "ansible-tmp"),
        "base": "v1.0.0",
        "package_version": "1.0.0",
        **args,
    }
    with patch_module_args(args), pytest.raises(SystemExit):
        git_pr_patches.main()
    return json.loads(capsys.readouterr().out)


def by_pr(result: dict) -> dict:
    return {p["pr"]: p for p in result["patches"]}


def assert_untouched(checkout: Path, base: str) -> None:
    assert git(checkout, "rev-parse", "HEAD") == base
    assert git(checkout, "status", "--porcelain") == ""
    assert len(git(checkout, "worktree", "list").splitlines()) == 1
    assert not (checkout / ".git" / "CHERRY_PICK_HEAD").exists()


# ---- applied, rerun, determinism ----------------------------------------------------------------
def test_applies_prs_on_a_branch_and_leaves_the_checkout_alone(capsys, tmp_path, upstream, checkout):
    result = run(capsys, tmp_path, repo_dir=str(checkout), patches=[{"pr": 20}, {"pr": 21}])
    assert result["changed"] is True, result
    assert result["base_sha"] == upstream["base"]
    assert result["applied"] == [20, 21]
    prs = by_pr(result)
    assert prs[20]["status"] == "applied" and prs[20]["head_sha"] == upstream["heads"][20]
    assert [c["result"] for c in prs[21]["commits"]] == ["picked", "picked"]
    assert result["branch"].startswith(f"patched/{upstream['base'][:12]}-")
    tip = result["sha"]
    assert git(checkout, "rev-parse", result["branch"]) == tip
    assert git(checkout, "show", f"{tip}:a.txt") == "FIXED1\nline2\nline3"
    assert git(checkout, "show", f"{tip}:new.txt") == "newer"
    assert git(checkout, "rev-list", "--count", f"{upstream['base']}..{tip}") == "3"
    assert "cherry picked from commit" in git(checkout, "log", "-1", "--format=%B", tip)
    assert git(checkout, "log", "-1", "--format=%an", tip) == "Upstream Dev"  # authors kept
    assert_untouched(checkout, upstream["base"])


def test_rerun_reports_no_change(capsys, tmp_path, checkout):
    first = run(capsys, tmp_path, repo_dir=str(checkout), patches=[{"pr": 20}, {"pr": 21}])
    second = run(capsys, tmp_path, repo_dir=str(checkout), patches=[{"pr": 20}, {"pr": 21}])
    assert second["changed"] is False
    assert second["sha"] == first["sha"] and second["patches"] == first["patches"]
    assert second["patch_hash"] == first["patch_hash"]


def test_lost_record_rebuilds_the_same_tip_without_change(capsys, tmp_path, checkout):
    first = run(capsys, tmp_path, repo_dir=str(checkout), patches=[{"pr": 20}])
    for record in (checkout / ".git" / "git_pr_patches").iterdir():
        record.unlink()
    second = run(capsys, tmp_path, repo_dir=str(checkout), patches=[{"pr": 20}])
    assert second["changed"] is False and second["sha"] == first["sha"]


def test_same_inputs_give_the_same_sha_on_another_host(capsys, tmp_path, upstream, checkout):
    other = clone(upstream, tmp_path / "other-host")
    one = run(capsys, tmp_path, repo_dir=str(checkout), patches=[{"pr": 20}, {"pr": 21}])
    two = run(capsys, tmp_path, repo_dir=str(other), patches=[{"pr": 20}, {"pr": 21}])
    assert one["sha"] == two["sha"] and one["branch"] == two["branch"]


def test_a_different_patch_list_is_a_different_branch(capsys, tmp_path, checkout):
    one = run(capsys, tmp_path, repo_dir=str(checkout), patches=[{"pr": 20}])
    two = run(capsys, tmp_path, repo_dir=str(checkout), patches=[{"pr": 20}, {"pr": 21}])
    assert two["changed"] is True and one["branch"] != two["branch"] and one["patch_hash"] != two["patch_hash"]


def test_commits_option_takes_only_the_prs_last_commits(capsys, tmp_path, upstream, checkout):
    result = run(capsys, tmp_path, repo_dir=str(checkout), patches=[{"pr": 20}, {"pr": 21, "commits": 1}])
    # Only "edit new" is taken from #21; it edits a file the base lacks, so it conflicts.
    assert result["failed"] is True
    assert "PR #21" in result["msg"] and "new.txt" in result["msg"]


# ---- contained ----------------------------------------------------------------------------------
def test_merged_pr_is_contained_as_ancestor(capsys, tmp_path, checkout):
    result = run(capsys, tmp_path, repo_dir=str(checkout), patches=[{"pr": 10}])
    assert by_pr(result)[10]["status"] == "contained"
    assert "ancestor" in by_pr(result)[10]["reason"]
    assert result["sha"] == result["base_sha"] and result["applied"] == []


def test_squash_merged_pr_is_contained_as_equivalent_patch(capsys, tmp_path, checkout):
    result = run(capsys, tmp_path, repo_dir=str(checkout), patches=[{"pr": 11}])
    assert by_pr(result)[11]["status"] == "contained"
    assert "equivalent patch" in by_pr(result)[11]["reason"]
    assert by_pr(result)[11]["commits"][0]["result"] == "equivalent"


def test_pr_whose_change_is_already_there_is_contained_as_empty(capsys, tmp_path, checkout):
    result = run(capsys, tmp_path, repo_dir=str(checkout), patches=[{"pr": 22}])
    assert by_pr(result)[22]["status"] == "contained"
    assert "empty" in by_pr(result)[22]["reason"]
    assert result["sha"] == result["base_sha"]


def test_contained_and_applied_mix_and_report_in_input_order(capsys, tmp_path, checkout):
    result = run(capsys, tmp_path, repo_dir=str(checkout), patches=[{"pr": 10}, {"pr": 20}, {"pr": 11}])
    assert [(p["pr"], p["status"]) for p in result["patches"]] == [
        (10, "contained"),
        (20, "applied"),
        (11, "contained"),
    ]
    assert result["applied"] == [20]


# ---- superseded -----------------------------------------------------------------------------------
def test_superseded_pr_is_skipped_with_its_reason_and_not_fetched(capsys, tmp_path, checkout):
    result = run(
        capsys,
        tmp_path,
        repo_dir=str(checkout),
        package_version="1.2.0",
        patches=[{"pr": 20, "superseded_from": "1.1.0", "reason": "fixed upstream as #99"}, {"pr": 21}],
    )
    pr20 = by_pr(result)[20]
    assert pr20["status"] == "superseded" and pr20["head_sha"] is None
    assert "1.1.0" in pr20["reason"] and "fixed upstream as #99" in pr20["reason"]
    assert git(checkout, "for-each-ref", "refs/pull/20") == ""  # never fetched
    assert result["applied"] == [21]


def test_not_yet_superseded_pr_is_applied(capsys, tmp_path, checkout):
    result = run(
        capsys,
        tmp_path,
        repo_dir=str(checkout),
        package_version="1.0.0rc1",
        patches=[{"pr": 20, "superseded_from": "1.0.0"}],
    )
    assert by_pr(result)[20]["status"] == "applied"


def test_version_order():
    order = ["0.18.0", "0.19.0.dev3", "0.19.0rc1", "v0.19.0", "0.19.0.post1", "0.20", "0.30.0", "1.0"]
    keys = [git_pr_patches.parse_version(v) for v in order]
    assert keys == sorted(keys)
    assert git_pr_patches.parse_version("0.20") == git_pr_patches.parse_version("0.20.0")
    assert git_pr_patches.parse_version("main") is None


# ---- pinned heads -------------------------------------------------------------------------------
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
    first = run(capsys, tmp_path, repo_dir=str(repo), patches=[{"pr": 30}])
    up.pr_from(30, "v1.0.0", [("one, force-pushed", {"a.txt": "ONE\nline2\nline3\n"})])
    second = run(capsys, tmp_path, repo_dir=str(repo), patches=[{"pr": 30}])
    assert second["changed"] is True and second["branch"] != first["branch"]
    assert git(repo, "show", f"{second['sha']}:a.txt").startswith("ONE")


def test_missing_pr_ref_fails_clearly(capsys, tmp_path, checkout):
    result = run(capsys, tmp_path, repo_dir=str(checkout), patches=[{"pr": 404}])
    assert result["failed"] is True and "refs/pull/404/head" in result["msg"]


# ---- conflict -----------------------------------------------------------------------------------
def test_conflict_aborts_leaves_nothing_and_names_pr_files_and_ref(capsys, tmp_path, upstream, checkout):
    result = run(capsys, tmp_path, repo_dir=str(checkout), patches=[{"pr": 20}, {"pr": 12}])
    assert result["failed"] is True
    assert "PR #12" in result["msg"] and "refs/pull/12/head" in result["msg"] and "conf.yaml" in result["msg"]
    assert result["conflict_files"] == ["conf.yaml"]
    assert result["ref"] == "refs/pull/12/head"
    assert [(p["pr"], p["status"]) for p in result["patches"]] == [(20, "applied"), (12, "conflict")]
    assert git(checkout, "for-each-ref", "refs/heads/patched") == ""  # no half-patched branch
    assert_untouched(checkout, upstream["base"])


def test_after_a_conflict_the_good_list_still_applies(capsys, tmp_path, checkout):
    run(capsys, tmp_path, repo_dir=str(checkout), patches=[{"pr": 12}])
    result = run(capsys, tmp_path, repo_dir=str(checkout), patches=[{"pr": 20}])
    assert result["changed"] is True and result["applied"] == [20]


# ---- check mode -----------------------------------------------------------------------------------
def test_check_mode_fetches_and_creates_nothing(capsys, tmp_path, upstream, checkout):
    result = run(
        capsys,
        tmp_path,
        check=True,
        repo_dir=str(checkout),
        package_version="1.0.0",
        patches=[{"pr": 20}, {"pr": 12, "superseded_from": "0.9"}],
    )
    assert result["changed"] is True
    assert [(p["pr"], p["status"]) for p in result["patches"]] == [(20, "applied"), (12, "superseded")]
    assert by_pr(result)[20]["head_sha"] == upstream["heads"][20]  # read with ls-remote
    assert git(checkout, "for-each-ref", "refs/pull", "refs/heads/patched") == ""
    assert_untouched(checkout, upstream["base"])


def test_check_mode_after_a_run_reports_no_change(capsys, tmp_path, checkout):
    run(capsys, tmp_path, repo_dir=str(checkout), patches=[{"pr": 20}])
    result = run(capsys, tmp_path, check=True, repo_dir=str(checkout), patches=[{"pr": 20}])
    assert result["changed"] is False and by_pr(result)[20]["status"] == "applied"


def test_check_mode_classifies_what_it_can_from_local_objects(capsys, tmp_path, checkout):
    git(checkout, "fetch", "-q", "origin", "+refs/pull/10/head:refs/pull/10/head")
    result = run(capsys, tmp_path, check=True, repo_dir=str(checkout), patches=[{"pr": 10}])
    assert by_pr(result)[10]["status"] == "contained"


def test_check_mode_without_a_checkout_yet(capsys, tmp_path):
    result = run(
        capsys,
        tmp_path,
        check=True,
        repo_dir=str(tmp_path / "not-cloned-yet"),
        package_version="0.30.0",
        patches=[{"pr": 2405, "superseded_from": "0.20.0", "reason": "#3232"}, {"pr": 7}],
    )
    assert result["changed"] is True and result["base_sha"] is None
    assert [p["status"] for p in result["patches"]] == ["superseded", "applied"]


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
    ],
)
def test_bad_patch_entries_fail_before_any_change(capsys, tmp_path, checkout, patches, package_version, message):
    result = run(capsys, tmp_path, repo_dir=str(checkout), patches=patches, package_version=package_version)
    assert result["failed"] is True and message in result["msg"]
    assert git(checkout, "for-each-ref", "refs/pull", "refs/heads/patched") == ""


def test_unknown_base_fails(capsys, tmp_path, checkout):
    result = run(capsys, tmp_path, repo_dir=str(checkout), base="v9.9.9", patches=[])
    assert result["failed"] is True and "v9.9.9" in result["msg"]


def test_no_patches_gives_the_base(capsys, tmp_path, upstream, checkout):
    result = run(capsys, tmp_path, repo_dir=str(checkout), patches=[])
    assert result["sha"] == upstream["base"] and result["applied"] == []
    assert run(capsys, tmp_path, repo_dir=str(checkout), patches=[])["changed"] is False
