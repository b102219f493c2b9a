#!/usr/bin/python
"""Apply upstream pull requests to a pinned git base as cherry-picks, idempotently."""

DOCUMENTATION = r"""
---
module: git_pr_patches
short_description: Apply upstream pull requests to a pinned git base as cherry-picks, idempotently
description:
  - Fetches C(refs/pull/<N>/head) of each listed pull request from a remote (GitHub's layout), checks a
    pinned head SHA when one is given, and cherry-picks the PR's own commits (those not in the base)
    on top of the base, in list order.
  - Reports per PR one of C(applied), C(contained) (head is an ancestor of the tree, or every commit
    has an equivalent patch there, or every commit is empty on it), C(superseded) (the package version
    at the base is at or past the version from which the PR is not needed; nothing is fetched) or
    C(conflict).
  - The cherry-picks happen in a temporary git worktree, never in the repository's own working tree.
    The result is a local branch C(<branch_prefix>/<base sha12>-<inputs hash>) whose name is derived
    from the base SHA and the PR heads, so a second run with the same inputs finds the branch and
    reports no change.
  - On a conflict the cherry-pick is aborted, the temporary worktree removed, no branch is created or
    moved, and the module fails naming the PR, its ref and the conflicting files.
  - Commits are created with a fixed committer identity and the picked commit's own committer date,
    so the same inputs give the same patched SHA on every host of a fleet.
version_added: "1.0.0"
options:
  repo_dir:
    description:
      - Path of an existing git repository (working clone or bare) that holds O(base).
      - Its working tree and C(HEAD) are never changed.
    type: path
    required: true
  base:
    description: Revision to patch (SHA, tag or branch); resolved to a commit SHA.
    type: str
    required: true
  remote:
    description: Remote name or URL the C(refs/pull/<N>/head) refs are fetched from.
    type: str
    default: origin
  package_version:
    description:
      - Version of the package at O(base), e.g. C(0.30.0). Compared with each patch's C(superseded_from).
      - Required when any patch sets C(superseded_from).
    type: str
  patches:
    description: The pull requests to apply, in order.
    type: list
    elements: dict
    default: []
    suboptions:
      pr:
        description: Pull request number.
        type: int
        required: true
      head_sha:
        description:
          - Expected SHA (full, or a prefix of at least 7 hex digits) of C(refs/pull/<N>/head).
          - PR heads can be force-pushed; a different head fails the module before anything changes.
          - When the pinned commit is already present locally under C(refs/pull/<N>/head), nothing is
            fetched (reruns work offline).
        type: str
      superseded_from:
        description: Package version from which this PR is not needed (its fix shipped, or its code moved).
        type: str
      reason:
        description: Why it is superseded (reported with the status).
        type: str
      commits:
        description:
          - Number of the PR's own commits at the tip of its head (as GitHub lists them).
          - Default is every non-merge commit of the head that is not in O(base).
        type: int
  branch_prefix:
    description: Prefix of the local branch that holds the patched tree.
    type: str
    default: patched
  committer_name:
    description: Committer name of the cherry-picked commits (authors are kept).
    type: str
    default: git_pr_patches
  committer_email:
    description: Committer e-mail of the cherry-picked commits.
    type: str
    default: git_pr_patches@localhost
notes:
  - Check mode fetches nothing and creates nothing; C(git ls-remote) reads the PR heads. It reports
    C(superseded) and C(contained) where that can be decided from local objects, and C(applied) (would be
    applied) otherwise; a conflict is only found by a real run.
  - Needs git 2.23 or later on the host.
requirements:
  - git
author:
  - voxtral-deploy
"""

EXAMPLES = r"""
- name: Apply the seed's two PRs on top of v0.18.0
  git_pr_patches:
    repo_dir: /opt/vllm-omni/git/vllm-omni
    base: v0.18.0
    package_version: "0.18.0"
    patches:
      - pr: 2405
        head_sha: 42744c3d
        superseded_from: "0.20.0"
        reason: "the same fix shipped as #3232 in 0.20.0"
      - pr: 2790
        superseded_from: "0.28.0"
        reason: serving_speech.py code moved to tts_adapters/voxtral.py
  register: patched

- name: Build from the patched tree
  ansible.builtin.debug:
    msg: "{{ patched.branch }} at {{ patched.sha }}"
"""

RETURN = r"""
base_sha:
  description: The base revision resolved to a commit SHA (null in check mode when not yet present locally).
  returned: always
  type: str
  sample: 3f1c0d2e9a8b7c6d5e4f30211a2b3c4d5e6f7a8b
sha:
  description: SHA of the patched tree's tip (equals base_sha when nothing was applied).
  returned: always
  type: str
branch:
  description: Local branch that holds the patched tree.
  returned: always
  type: str
  sample: patched/3f1c0d2e9a8b-1a2b3c4d5e6f
patch_hash:
  description: First 8 hex digits of sha256 over the applied PRs and their head SHAs ("pr:sha" lines).
  returned: always
  type: str
applied:
  description: Numbers of the PRs applied.
  returned: always
  type: list
  elements: int
patches:
  description: One result per PR, in input order.
  returned: always
  type: list
  elements: dict
  contains:
    pr:
      description: Pull request number.
      type: int
    status:
      description: applied, contained, superseded or conflict.
      type: str
    reason:
      description: Why (which check decided it).
      type: str
    head_sha:
      description: SHA of refs/pull/<N>/head (null for superseded PRs, which are not fetched).
      type: str
    ref:
      description: The PR's ref.
      type: str
    commits:
      description: The PR's own commits and what happened to each (picked SHA, equivalent, empty).
      type: list
      elements: dict
conflict_files:
  description: Files left unmerged by the conflicting cherry-pick (on failure only).
  returned: failure
  type: list
  elements: str
"""

import hashlib
import json
import os
import re
import shutil
import tempfile

from ansible.module_utils.atomic_file import write_atomically
from ansible.module_utils.basic import AnsibleModule

HEX_RE = re.compile(r"^[0-9a-f]{7,40}$")
VERSION_RE = re.compile(r"^v?(\d+(?:\.\d+)*)(?:[.-]?(dev|a|alpha|b|beta|rc|c|post)\.?(\d*))?")
# PEP 440 order of the pre/post-release segments (dev < a < b < rc < final < post).
PHASE_RANK = {"dev": 0, "a": 1, "alpha": 1, "b": 2, "beta": 2, "rc": 3, "c": 3, None: 4, "post": 5}


def parse_version(text):
    """Return a sortable key for a PEP 440-like version ('0.30.0', 'v0.19.0rc1'); None if unparseable."""
    match = VERSION_RE.match(str(text).strip())
    if not match:
        return None
    release = tuple(int(part) for part in match.group(1).split("."))
    release = release + (0,) * (4 - len(release)) if len(release) < 4 else release
    return release, PHASE_RANK[match.group(2)], int(match.group(3) or 0)


class PatchConflict(Exception):
    """A cherry-pick left unmerged files."""

    def __init__(self, commit, files, output):
        super().__init__(commit)
        self.commit = commit
        self.files = files
        self.output = output


class GitPrPatches:
    """Decides, fetches and cherry-picks the PRs; all git calls go through run_git()."""

    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.check_mode = module.check_mode
        self.repo_dir = self.params["repo_dir"]
        self.git = module.get_bin_path("git", required=True)
        self.results = []

    # ---- git plumbing -------------------------------------------------------------------------
    def run_git(self, args, cwd=None, check=True, env=None):
        cmd = [self.git, "-c", "commit.gpgsign=false", "-c", "core.hooksPath=/dev/null", *args]
        environ = {"LC_ALL": "C", "GIT_TERMINAL_PROMPT": "0"}
        environ.update(env or {})
        rc, out, err = self.module.run_command(cmd, cwd=cwd or self.repo_dir, environ_update=environ)
        if check and rc != 0:
            self.fail(f"git {' '.join(args)} failed (rc={rc}): {(err or out).strip()}")
        return rc, out.strip(), err.strip()

    def rev_parse(self, rev):
        rc, out, _ = self.run_git(["rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"], check=False)
        return out if rc == 0 and out else None

    def is_ancestor(self, commit, of):
        rc, _, _ = self.run_git(["merge-base", "--is-ancestor", commit, of], check=False)
        return rc == 0

    def fail(self, msg, **extra):
        self.module.fail_json(msg=msg, patches=self.results, **extra)

    # ---- input checks ---------------------------------------------------------------------------
    def validate(self):
        seen = set()
        need_version = False
        for patch in self.params["patches"]:
            pr = patch["pr"]
            if pr <= 0:
                self.fail(f"patches: pr must be a positive PR number, got {pr}")
            if pr in seen:
                self.fail(f"patches: PR #{pr} is listed twice")
            seen.add(pr)
            pin = patch.get("head_sha")
            if pin and not HEX_RE.match(pin.lower()):
                self.fail(f"patches: PR #{pr}: head_sha {pin!r} is not 7-40 hex digits")
            if patch.get("commits") is not None and patch["commits"] < 1:
                self.fail(f"patches: PR #{pr}: commits must be at least 1")
            if patch.get("superseded_from"):
                need_version = True
                if parse_version(patch["superseded_from"]) is None:
                    self.fail(f"patches: PR #{pr}: superseded_from {patch['superseded_from']!r} is not a version")
        version = self.params.get("package_version")
        if need_version and not version:
            self.fail("package_version is required when a patch sets superseded_from")
        if version and parse_version(version) is None:
            self.fail(f"package_version {version!r} is not a version")

    def superseded(self, patch):
        since = patch.get("superseded_from")
        version = self.params.get("package_version")
        if not since or parse_version(version) < parse_version(since):
            return None
        why = patch.get("reason") or "not needed from this version on"
        return f"superseded from {since} (base is {version}): {why}"

    # ---- PR heads -------------------------------------------------------------------------------
    def local_head(self, pr):
        return self.rev_parse(f"refs/pull/{pr}/head")

    def head_of(self, patch):
        """SHA of refs/pull/<N>/head: the local one if it is the pinned commit, else fetched."""
        pr, pin = patch["pr"], (patch.get("head_sha") or "").lower()
        ref = f"refs/pull/{pr}/head"
        local = self.local_head(pr)
        if pin and local and local.startswith(pin):
            return local
        remote = self.params["remote"]
        if self.check_mode:
            rc, out, err = self.run_git(["ls-remote", remote, ref], check=False)
            head = out.split()[0] if rc == 0 and out else None
            if not head:
                self.fail(f"PR #{pr}: {ref} not found on {remote}: {err or 'no such ref'}", pr=pr, ref=ref)
        else:
            rc, _, err = self.run_git(["fetch", "--no-tags", "--quiet", remote, f"+{ref}:{ref}"], check=False)
            if rc != 0:
                self.fail(f"PR #{pr}: could not fetch {ref} from {remote}: {err}", pr=pr, ref=ref)
            head = self.local_head(pr)
        if pin and not head.startswith(pin):
            self.fail(
                f"PR #{pr}: {ref} on {remote} is {head}, but head_sha pins {pin}: the PR head moved "
                "(force-push?). Review the new head and update head_sha.",
                pr=pr,
                ref=ref,
                head_sha=head,
            )
        return head

    def own_commits(self, patch, head, base_sha):
        """The PR's own commits, oldest first: its last `commits` commits, or every commit not in base."""
        if patch.get("commits"):
            args = ["rev-list", "--no-merges", f"--max-count={patch['commits']}", head]
        else:
            args = ["rev-list", "--no-merges", head, f"^{base_sha}"]
        _, out, _ = self.run_git(args)
        return list(reversed(out.split())) if out else []

    def equivalent_in(self, tip, head):
        """Commits of head whose patch already exists in tip (`git cherry` marks them '-')."""
        _, out, _ = self.run_git(["cherry", tip, head])
        return {line[2:].strip() for line in out.splitlines() if line.startswith("- ")}

    # ---- the patched branch -------------------------------------------------------------------
    # Idempotency lives in a branch named from the inputs, not in a git note or a state file: a branch
    # is kept as long as the checkout is, `git clone --branch` hands exactly that tree to a release, and
    # `git branch` shows it. The JSON record beside it only caches the per-PR report; if it is lost, the
    # next run cherry-picks again in a throw-away worktree, gets the same SHAs (fixed committer and
    # dates) and reports no change.
    def branch_name(self, base_sha, heads):
        """Named from the base and every fetched PR head, so the same inputs find the same branch."""
        lines = [base_sha, self.params["committer_name"], self.params["committer_email"]]
        for patch, head in heads:
            lines.append(f"{patch['pr']}:{head}:{patch.get('commits') or ''}")
        digest = hashlib.sha256("\n".join(lines).encode()).hexdigest()[:12]
        return f"{self.params['branch_prefix']}/{base_sha[:12]}-{digest}"

    def record_path(self, branch):
        _, git_dir, _ = self.run_git(["rev-parse", "--absolute-git-dir"])
        return os.path.join(git_dir, "git_pr_patches", branch.replace("/", "__") + ".json")

    def read_record(self, branch, tip):
        """The report of the run that made `branch`, if it describes the branch's current tip."""
        try:
            with open(self.record_path(branch)) as handle:
                record = json.load(handle)
        except (OSError, ValueError):
            return None
        return record if record.get("sha") == tip else None

    def write_record(self, branch, record):
        path = self.record_path(branch)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        write_atomically(path, json.dumps(record, indent=2, sort_keys=True).encode("utf-8"), 0o644, durable=False)

    # ---- one PR, in the worktree --------------------------------------------------------------
    def classify(self, patch, head, commits, tip):
        """Status decided without touching any tree: contained, or None (needs cherry-picking)."""
        if self.is_ancestor(head, tip):
            return "contained", f"head {head[:12]} is already an ancestor of the tree", []
        if not commits:
            return "contained", "the PR has no commits outside the base", []
        equivalent = self.equivalent_in(tip, head)
        if all(c in equivalent or self.is_ancestor(c, tip) for c in commits):
            entries = [{"sha": c, "result": "equivalent"} for c in commits]
            return "contained", "every commit has an equivalent patch in the tree (git cherry)", entries
        return None, None, [{"sha": c, "result": "equivalent"} for c in commits if c in equivalent]

    def cherry_pick(self, worktree, commit):
        """Pick one commit; returns the new tip, or None when the commit turned out empty."""
        _, date, _ = self.run_git(["log", "-1", "--format=%cd", "--date=raw", commit])
        env = {
            "GIT_COMMITTER_NAME": self.params["committer_name"],
            "GIT_COMMITTER_EMAIL": self.params["committer_email"],
            "GIT_COMMITTER_DATE": date,
        }
        rc, out, err = self.run_git(["cherry-pick", "-x", commit], cwd=worktree, check=False, env=env)
        if rc == 0:
            return self.run_git(["rev-parse", "HEAD"], cwd=worktree)[1]
        _, unmerged, _ = self.run_git(["diff", "--name-only", "--diff-filter=U"], cwd=worktree)
        _, status, _ = self.run_git(["status", "--porcelain", "--untracked-files=no"], cwd=worktree)
        self.run_git(["cherry-pick", "--abort"], cwd=worktree, check=False)
        if unmerged:
            output = "\n".join(line for line in (err or out).splitlines() if not line.startswith("hint:"))
            raise PatchConflict(commit, unmerged.splitlines(), output)
        if not status:
            return None  # "The previous cherry-pick is now empty": its change is already in the tree.
        self.fail(f"git cherry-pick {commit} failed (rc={rc}): {err or out}")
        return None

    def apply(self, worktree, patch, head, commits, tip):
        status, reason, entries = self.classify(patch, head, commits, tip)
        if status:
            return status, reason, entries, tip
        done = {e["sha"] for e in entries}
        picked = 0
        for commit in commits:
            if commit in done:
                continue
            new_tip = self.cherry_pick(worktree, commit)
            if new_tip is None:
                entries.append({"sha": commit, "result": "empty"})
            else:
                entries.append({"sha": commit, "result": "picked", "picked": new_tip})
                tip, picked = new_tip, picked + 1
        order = {c: i for i, c in enumerate(commits)}
        entries.sort(key=lambda e: order[e["sha"]])
        if not picked:
            return (
                "contained",
                "every commit is empty on the tree (its changes are already there)",
                entries,
                tip,
            )
        skipped = len(commits) - picked
        reason = f"{picked} commit(s) cherry-picked" + (f", {skipped} already in the tree" if skipped else "")
        return "applied", reason, entries, tip

    # ---- main ------------------------------------------------------------------------------------
    def pending_result(self, base_sha):
        """Check mode before the repository or base exists: report what can be known from the data."""
        for patch in self.params["patches"]:
            reason = self.superseded(patch)
            status = "superseded" if reason else "applied"
            self.results.append(self.result(patch, status, reason or "would be fetched and applied", None))
        return {
            "changed": True,
            "base_sha": base_sha,
            "sha": base_sha,
            "branch": None,
            "patch_hash": None,
            "applied": [],
            "patches": self.results,
        }

    @staticmethod
    def result(patch, status, reason, head, commits=None):
        return {
            "pr": patch["pr"],
            "status": status,
            "reason": reason,
            "head_sha": head,
            "ref": f"refs/pull/{patch['pr']}/head",
            "commits": commits or [],
        }

    def run(self):
        self.validate()
        if not os.path.isdir(self.repo_dir):
            if self.check_mode:
                return self.pending_result(None)
            self.fail(f"repo_dir {self.repo_dir} does not exist")
        base_sha = self.rev_parse(self.params["base"])
        if not base_sha:
            if self.check_mode:
                return self.pending_result(None)
            self.fail(f"base {self.params['base']!r} is not a commit in {self.repo_dir}")

        heads = []
        decided = {}
        for patch in self.params["patches"]:
            reason = self.superseded(patch)
            if reason:
                decided[patch["pr"]] = self.result(patch, "superseded", reason, None)
            else:
                heads.append((patch, self.head_of(patch)))

        branch = self.branch_name(base_sha, heads)
        existing = self.rev_parse(f"refs/heads/{branch}")
        record = self.read_record(branch, existing) if existing else None
        if record:
            # Same base, same PR heads, branch still where the run that made it left it: no change.
            self.results = record["patches"]
            return self.summary(False, base_sha, existing, branch)

        if self.check_mode:
            tip = base_sha
            for patch, head in heads:
                if not self.rev_parse(head):
                    decided[patch["pr"]] = self.result(patch, "applied", "would be fetched and applied", head)
                    continue
                commits = self.own_commits(patch, head, base_sha)
                status, reason, entries = self.classify(patch, head, commits, tip)
                decided[patch["pr"]] = self.result(
                    patch, status or "applied", reason or "would be cherry-picked", head, entries
                )
            self.results = [decided[p["pr"]] for p in self.params["patches"]]
            return self.summary(True, base_sha, existing or base_sha, branch)

        tip = self.patch_in_worktree(base_sha, heads, decided)
        self.results = [decided[p["pr"]] for p in self.params["patches"]]
        changed = existing != tip
        if changed:
            self.run_git(["branch", "--force", branch, tip])
        self.write_record(branch, {"sha": tip, "base_sha": base_sha, "patches": self.results})
        return self.summary(changed, base_sha, tip, branch)

    def patch_in_worktree(self, base_sha, heads, decided):
        """Cherry-pick every PR in a throw-away worktree; on a conflict nothing is left behind."""
        tmp_root = tempfile.mkdtemp(prefix="git_pr_patches-", dir=self.module.tmpdir)
        worktree = os.path.join(tmp_root, "tree")
        self.run_git(["worktree", "add", "--detach", "--quiet", worktree, base_sha])
        try:
            tip = base_sha
            for patch, head in heads:
                commits = self.own_commits(patch, head, base_sha)
                try:
                    status, reason, entries, tip = self.apply(worktree, patch, head, commits, tip)
                except PatchConflict as conflict:
                    self.fail_conflict(patch, head, base_sha, conflict, decided)
                decided[patch["pr"]] = self.result(patch, status, reason, head, entries)
            return tip
        finally:
            self.run_git(["worktree", "remove", "--force", worktree], check=False)
            self.run_git(["worktree", "prune"], check=False)
            shutil.rmtree(tmp_root, ignore_errors=True)

    def fail_conflict(self, patch, head, base_sha, conflict, decided):
        ref = f"refs/pull/{patch['pr']}/head"
        files = ", ".join(conflict.files)
        reason = f"commit {conflict.commit[:12]} conflicts in {files}"
        decided[patch["pr"]] = self.result(patch, "conflict", reason, head)
        self.results = [decided[p["pr"]] for p in self.params["patches"] if p["pr"] in decided]
        self.fail(
            f"PR #{patch['pr']} ({ref} at {head[:12]}, commit {conflict.commit[:12]}) does not apply on "
            f"{base_sha[:12]}: conflict in {files}. The cherry-pick was aborted; no patched branch was "
            "created and the checkout is unchanged.",
            pr=patch["pr"],
            ref=ref,
            head_sha=head,
            base_sha=base_sha,
            conflict_files=conflict.files,
            git_output=conflict.output,
        )

    def summary(self, changed, base_sha, tip, branch):
        applied = [r for r in self.results if r["status"] == "applied"]
        lines = "\n".join(f"{r['pr']}:{r['head_sha']}" for r in applied)
        return {
            "changed": changed,
            "base_sha": base_sha,
            "sha": tip,
            "branch": branch,
            "patch_hash": hashlib.sha256(lines.encode()).hexdigest()[:8],
            "applied": [r["pr"] for r in applied],
            "patches": self.results,
        }


def main():
    module = AnsibleModule(
        argument_spec={
            "repo_dir": {"type": "path", "required": True},
            "base": {"type": "str", "required": True},
            "remote": {"type": "str", "default": "origin"},
            "package_version": {"type": "str"},
            "patches": {
                "type": "list",
                "elements": "dict",
                "default": [],
                "options": {
                    "pr": {"type": "int", "required": True},
                    "head_sha": {"type": "str"},
                    "superseded_from": {"type": "str"},
                    "reason": {"type": "str"},
                    "commits": {"type": "int"},
                },
            },
            "branch_prefix": {"type": "str", "default": "patched"},
            "committer_name": {"type": "str", "default": "git_pr_patches"},
            "committer_email": {"type": "str", "default": "git_pr_patches@localhost"},
        },
        supports_check_mode=True,
    )
    module.exit_json(**GitPrPatches(module).run())


if __name__ == "__main__":
    main()
