#!/usr/bin/python
"""Apply upstream pull requests to a pinned git base as cherry-picks of their own commits, idempotently."""

DOCUMENTATION = r"""
---
module: git_pr_patches
short_description: Apply upstream pull requests to a pinned git base as cherry-picks, idempotently
description:
  - Fetches C(refs/pull/<N>/head) of each listed pull request from a remote (GitHub's layout), checks its
    pinned head SHA, and cherry-picks the PR's own commits on top of the base, in list order.
  - A PR's own commits are what a code host lists for it, C(<base branch>..<head>), the base branch
    fetched from the same remote (O(base_branch), default the remote's default branch); or, with
    O(patches[].commits), the last N commits of the head. A merge commit among them is refused (see notes).
  - Decides per PR from the tree, in this order; C(superseded) when the code it patches is not in the base
    (O(patches[].anchors) or O(patches[].files), read from the base without fetching the PR; else the files
    its own commits change, when none of them is in the tree any more but they were at the PR's fork
    point); C(left_out) when O(patches[].left_out) gives a reason (nothing fetched); C(contained) when its
    change is already there (head an ancestor of the tree, every commit with an equivalent patch there, or
    every commit empty on it); C(applied) otherwise; C(conflict) fails the module.
  - O(patches[].superseded_from) is a cross-check only, it decides nothing; the module warns when the
    version says superseded and the tree does not, or the other way round.
  - A PR that is to be fetched needs O(patches[].head_sha); without it the module fails before fetching
    anything, unless O(allow_unpinned) is set (then it warns with the head it took).
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
    description: Remote name or URL the C(refs/pull/<N>/head) refs and the base branch are fetched from.
    type: str
    default: origin
  base_branch:
    description:
      - Branch of O(remote) the PRs were opened against; a PR's own commits are C(<base_branch>..<head>).
      - Fetched to C(refs/git_pr_patches/base/<branch>) only when a PR's commits are to be listed.
      - Default is the remote's default branch, read with C(git ls-remote --symref <remote> HEAD).
    type: str
  allow_unpinned:
    description:
      - Take a PR without O(patches[].head_sha) as its head is now, with a warning naming that head.
      - Off, such a PR fails the module before anything is fetched (unless it is superseded or left out).
    type: bool
    default: false
  package_version:
    description:
      - Version of the package at O(base), e.g. C(0.30.0). Compared with each patch's C(superseded_from)
        to cross-check the tree's decision.
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
          - Expected SHA (full, or a prefix of at least 7 hex digits) of C(refs/pull/<N>/head). Required for
            a PR that is fetched, unless O(allow_unpinned).
          - PR heads can be force-pushed; a different head fails the module before anything changes.
          - When the pinned commit is already present locally under C(refs/pull/<N>/head), nothing is
            fetched (reruns work offline).
        type: str
      files:
        description:
          - Paths the PR changes. When none of them is in the base, the PR is C(superseded), decided without
            fetching it.
        type: list
        elements: str
      anchors:
        description:
          - Code the PR patches. When a file is missing at the base or no longer holds its text (a function
            name, say), the PR is C(superseded), decided without fetching it.
        type: list
        elements: dict
        suboptions:
          path:
            description: Path of the file in the tree.
            type: str
            required: true
          text:
            description: Text that must be in it, e.g. C(def _build_voxtral_prompt).
            type: str
            required: true
      left_out:
        description:
          - Why this PR is deliberately not applied. It is reported C(left_out) with this reason and never
            fetched (unless the tree already reports it C(superseded)). Not with O(patches[].head_sha).
        type: str
      superseded_from:
        description:
          - Package version from which this PR is expected not to be needed (its fix shipped, or its code
            moved). A cross-check of the tree's decision; a disagreement is a warning.
        type: str
      reason:
        description: Why it is superseded (added to the reason the tree gives).
        type: str
      commits:
        description:
          - Pins the PR's own commits to the last N commits of its head (first-parent line).
          - Default is C(<base_branch>..<head>).
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
  - Merge commits among a PR's own commits are refused, not skipped, skipping one would drop what it
    brought in (its conflict resolutions), so the tree would not be the PR's.
  - A PR already merged into the base branch after O(base) has no commits in C(<base_branch>..<head>);
    the module fails and asks for O(patches[].commits).
  - Check mode fetches nothing and creates nothing; C(git ls-remote) reads the PR heads and the base branch.
    It decides what it can from local objects and reports C(applied) (would be applied) otherwise; a conflict
    is only found by a real run. Without the repository it reports from the data (C(superseded_from)).
  - Needs git 2.23 or later on the host.
requirements:
  - git
author:
  - voxtral-deploy maintainers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: "Apply #2405 on v0.18.0, #2790 left out (vars/profiles.yml of the vllm_omni_build role)"
  git_pr_patches:
    repo_dir: /opt/vllm-omni/git/vllm-omni
    base: v0.18.0
    package_version: "0.18.0"
    patches:
      - pr: 2405
        head_sha: 42744c3debad5c8fc3ebf854eabe2f213932c17f
        files: [vllm_omni/model_executor/models/voxtral_tts/configuration_voxtral_tts.py]
        superseded_from: "0.20.0"
        reason: "the same fix shipped in 0.20.0 (#3065 moved the file, #3232 fixed it)"
      - pr: 2790
        anchors:
          - path: vllm_omni/entrypoints/openai/serving_speech.py
            text: _build_voxtral_prompt
        superseded_from: "0.30.0"
        left_out: "head SHA not known; the public checkpoint has no audio-encoder weights for ref_audio"
  register: patched

- name: A fork's PR opened against its release branch, its last two commits only
  git_pr_patches:
    repo_dir: /opt/vllm-omni/git/vllm-omni
    base: v0.30.0
    base_branch: release/0.30
    patches:
      - pr: 4242
        head_sha: 0123456789abcdef0123456789abcdef01234567
        commits: 2

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
  description:
    - SHA of the patched tree's tip (equals base_sha when nothing was applied).
    - In check mode before a checkout exists, O(base) when it is a full SHA and no PR would be applied, else
      null (an applied PR's tip is known only once it is picked).
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
      description: applied, contained, superseded, left_out or conflict.
      type: str
    reason:
      description: Why (which check decided it).
      type: str
    head_sha:
      description: SHA of refs/pull/<N>/head (null for a PR that was not fetched, superseded or left out).
      type: str
    ref:
      description: The PR's ref.
      type: str
    range:
      description: Where its own commits were taken from, e.g. C(main..refs/pull/2405/head) (null when not listed).
      type: str
    commits:
      description: The PR's own commits and what happened to each, C({sha, result, picked}); result is
        picked (C(picked) is the new SHA), equivalent or empty.
      type: list
      elements: dict
    diffstat:
      description: What the PR changed in the tree, C({files [{path, added, removed}], added, removed})
        (check mode, applied, its own commits' change); empty when it changed nothing.
      type: dict
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

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.voxtral.deploy.plugins.module_utils.atomic_file import write_atomically

HEX_RE = re.compile(r"^[0-9a-f]{7,40}$")
BRANCH_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._/-]*$")
VERSION_RE = re.compile(r"^v?(\d+(?:\.\d+)*)(?:[.-]?(dev|a|alpha|b|beta|rc|c|post)\.?(\d*))?")
# PEP 440 order of the pre/post-release segments (dev < a < b < rc < final < post).
PHASE_RANK = {"dev": 0, "a": 1, "alpha": 1, "b": 2, "beta": 2, "rc": 3, "c": 3, None: 4, "post": 5}
NO_DIFF = {"files": [], "added": 0, "removed": 0}


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
        self.remote = self.params["remote"]
        self.git = module.get_bin_path("git", required=True)
        self.results = []
        self.undecided = set()  # check mode: PRs reported "would be applied" without a decision
        self.base_branch = None  # (local ref or None, branch name), once listed

    # ---- git plumbing -------------------------------------------------------------------------
    def run_git(self, args, cwd=None, check=True, env=None):
        cmd = [
            self.git,
            "-c",
            "commit.gpgsign=false",
            "-c",
            "core.hooksPath=/dev/null",
            "-c",
            "core.quotePath=off",
            *args,
        ]
        environ = {"LC_ALL": "C", "GIT_TERMINAL_PROMPT": "0"}
        environ.update(env or {})
        rc, out, err = self.module.run_command(cmd, cwd=cwd or self.repo_dir, environ_update=environ)
        if check and rc != 0:
            self.fail(f"git {' '.join(args)} failed (rc={rc}): {(err or out).strip()}")
        return rc, out.strip(), err.strip()

    def rev_parse(self, rev):
        rc, out, _err = self.run_git(["rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"], check=False)
        return out if rc == 0 and out else None

    def is_ancestor(self, commit, of):
        rc, _out, _err = self.run_git(["merge-base", "--is-ancestor", commit, of], check=False)
        return rc == 0

    def has_path(self, rev, path):
        return self.run_git(["cat-file", "-e", f"{rev}:{path}"], check=False)[0] == 0

    def fail(self, msg, **extra):
        self.module.fail_json(msg=msg, patches=self.results, **extra)

    # ---- input checks ---------------------------------------------------------------------------
    def validate(self):
        seen = set()
        need_version = False
        branch = self.params.get("base_branch")
        if branch is not None and not BRANCH_RE.match(branch):
            self.fail(f"base_branch {branch!r} is not a branch name")
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
            if pin and patch.get("left_out"):
                self.fail(f"patches: PR #{pr}: left_out and head_sha together; a left-out PR is never fetched")
            if patch.get("commits") is not None and patch["commits"] < 1:
                self.fail(f"patches: PR #{pr}: commits must be at least 1")
            if any(not path for path in patch.get("files") or []):
                self.fail(f"patches: PR #{pr}: files holds an empty path")
            if any(not (a["path"] and a["text"]) for a in patch.get("anchors") or []):
                self.fail(f"patches: PR #{pr}: each anchor needs a path and a text")
            if patch.get("superseded_from"):
                need_version = True
                if parse_version(patch["superseded_from"]) is None:
                    self.fail(f"patches: PR #{pr}: superseded_from {patch['superseded_from']!r} is not a version")
        version = self.params.get("package_version")
        if need_version and not version:
            self.fail("package_version is required when a patch sets superseded_from")
        if version and parse_version(version) is None:
            self.fail(f"package_version {version!r} is not a version")

    def require_pin(self, patch):
        """A PR about to be fetched must be pinned (or the user opted in, and is warned once it is fetched)."""
        if patch.get("head_sha") or self.params["allow_unpinned"]:
            return
        pr = patch["pr"]
        ref = f"refs/pull/{pr}/head"
        self.fail(
            f"PR #{pr} is to be applied but has no head_sha: review the PR's commits ({ref} on {self.remote}) "
            "and pin its head with head_sha (the full SHA), since a PR head can be force-pushed. "
            "allow_unpinned: true takes the head as it is now, with a warning.",
            pr=pr,
            ref=ref,
        )

    def data_says_superseded(self, patch):
        since = patch.get("superseded_from")
        return bool(since) and parse_version(self.params["package_version"]) >= parse_version(since)

    # ---- decisions from the tree -------------------------------------------------------------------
    def superseded_reason(self, patch, why):
        extra = patch.get("reason")
        return f"superseded (from the tree): {why}" + (f"; {extra}" if extra else "")

    def gone_from(self, patch, tree):
        """Why the code the data says the PR patches is not in `tree` (anchors, then files); None if it is."""
        for anchor in patch.get("anchors") or []:
            rc, content, _err = self.run_git(["cat-file", "blob", f"{tree}:{anchor['path']}"], check=False)
            if rc != 0:
                return f"{anchor['path']} (where it patches {anchor['text']!r}) is not in the base"
            if anchor["text"] not in content:
                return f"{anchor['text']!r}, the code it patches, is no longer in {anchor['path']} at the base"
        files = patch.get("files") or []
        if files and not any(self.has_path(tree, path) for path in files):
            return f"none of the files it changes is in the base (moved or removed): {', '.join(files)}"
        return None

    def files_gone(self, head, commits, tip):
        """Why the PR is superseded judged by the files its commits change: each was there at the PR's
        fork point and none is in the tree now. A file newer than the tree is a conflict, not this."""
        rc, out, _err = self.run_git(
            ["diff", "--name-only", "--no-renames", "--diff-filter=MD", f"{commits[0]}~1", head], check=False
        )
        paths = out.splitlines() if rc == 0 else []
        if not paths or any(self.has_path(tip, path) for path in paths):
            return None
        rc, fork_point, _err = self.run_git(["merge-base", tip, head], check=False)
        if rc != 0 or not all(self.has_path(fork_point, path) for path in paths):
            return None
        return f"the files its commits change were moved or removed since {fork_point[:12]}: {', '.join(paths)}"

    # ---- PR heads and their own commits -------------------------------------------------------------
    def local_head(self, pr):
        return self.rev_parse(f"refs/pull/{pr}/head")

    def head_of(self, patch):
        """SHA of refs/pull/<N>/head: the local one if it is the pinned commit, else fetched."""
        pr, pin = patch["pr"], (patch.get("head_sha") or "").lower()
        ref = f"refs/pull/{pr}/head"
        local = self.local_head(pr)
        if pin and local and local.startswith(pin):
            return local
        if self.check_mode:
            rc, out, err = self.run_git(["ls-remote", self.remote, ref], check=False)
            head = out.split()[0] if rc == 0 and out else None
            if not head:
                self.fail(f"PR #{pr}: {ref} not found on {self.remote}: {err or 'no such ref'}", pr=pr, ref=ref)
        else:
            rc, _out, err = self.run_git(["fetch", "--no-tags", "--quiet", self.remote, f"+{ref}:{ref}"], check=False)
            if rc != 0:
                self.fail(f"PR #{pr}: could not fetch {ref} from {self.remote}: {err}", pr=pr, ref=ref)
            head = self.local_head(pr)
        if pin and not head.startswith(pin):
            self.fail(
                f"PR #{pr}: {ref} on {self.remote} is {head}, but head_sha pins {pin}: the PR head moved "
                "(force-push?). Review the new head and update head_sha.",
                pr=pr,
                ref=ref,
                head_sha=head,
            )
        if not pin:
            self.module.warn(
                f"PR #{pr} is not pinned (allow_unpinned): took {ref} as it is now, {head}. "
                f"Review it and pin head_sha: {head}"
            )
        return head

    def default_branch(self):
        rc, out, err = self.run_git(["ls-remote", "--symref", self.remote, "HEAD"], check=False)
        match = re.search(r"^ref: refs/heads/(\S+)\s+HEAD$", out, re.MULTILINE) if rc == 0 else None
        if not match:
            self.fail(
                f"cannot tell the default branch of {self.remote} (git ls-remote --symref {self.remote} HEAD: "
                f"{err or out or 'no symbolic HEAD'}); set base_branch"
            )
        return match.group(1)

    def base_branch_ref(self):
        """(local ref or SHA of the base branch, its name); the ref is None in check mode when not local."""
        if self.base_branch is None:
            branch = self.params["base_branch"] or self.default_branch()
            remote_ref, local_ref = f"refs/heads/{branch}", f"refs/git_pr_patches/base/{branch}"
            if self.check_mode:
                rc, out, err = self.run_git(["ls-remote", self.remote, remote_ref], check=False)
                sha = out.split()[0] if rc == 0 and out else None
                if not sha:
                    self.fail(f"base branch {branch!r} not found on {self.remote}: {err or 'no such branch'}")
                self.base_branch = (sha if self.rev_parse(sha) else None, branch)
            else:
                fetch = ["fetch", "--no-tags", "--quiet", self.remote, f"+{remote_ref}:{local_ref}"]
                rc, _out, err = self.run_git(fetch, check=False)
                if rc != 0:
                    self.fail(f"could not fetch the base branch {branch!r} from {self.remote}: {err}")
                self.base_branch = (local_ref, branch)
        return self.base_branch

    def own_commits(self, patch, head):
        """The PR's own commits, oldest first, and where they came from; (None, None) when check mode
        cannot list them from local objects. Merge commits are refused."""
        pr = patch["pr"]
        ref = f"refs/pull/{pr}/head"
        count = patch.get("commits")
        if count:
            _rc, out, _err = self.run_git(["rev-list", "--first-parent", "--parents", f"--max-count={count}", head])
            lines = list(reversed(out.splitlines()))
            where = f"the last {count} commit(s) of {ref}"
        else:
            base_ref, branch = self.base_branch_ref()
            if base_ref is None:
                return None, None
            _rc, out, _err = self.run_git(["rev-list", "--reverse", "--topo-order", "--parents", f"{base_ref}..{head}"])
            lines = out.splitlines()
            where = f"{branch}..{ref}"
            if not lines:
                self.fail(
                    f"PR #{pr}: {ref} ({head[:12]}) is already in {branch} of {self.remote} but not in the tree "
                    f"(merged after the base?), so {where} lists none of its commits: pin them with commits: "
                    "<the number of the PR's commits>.",
                    pr=pr,
                    ref=ref,
                )
        merges = [line.split()[0] for line in lines if len(line.split()) > 2]
        if merges:
            self.fail(
                f"PR #{pr}: {where} holds merge commit(s) {', '.join(m[:12] for m in merges)}; a merge is not "
                "cherry-picked (skipping it would drop what it brought in). Review the PR and pin the commits "
                "after its last merge with commits: N, or ask for a rebased PR.",
                pr=pr,
                ref=ref,
                merge_commits=merges,
            )
        return [line.split()[0] for line in lines], where

    def equivalent_in(self, tip, head):
        """Commits of head whose patch already exists in tip (`git cherry` marks them '-')."""
        _rc, out, _err = self.run_git(["cherry", tip, head])
        return {line[2:].strip() for line in out.splitlines() if line.startswith("- ")}

    def diffstat(self, old, new):
        if not old or old == new:
            return dict(NO_DIFF)
        _rc, out, _err = self.run_git(["diff", "--numstat", "--no-renames", old, new])
        files = []
        for line in out.splitlines():
            added, removed, path = line.split("\t", 2)
            files.append(
                {
                    "path": path,
                    "added": int(added) if added != "-" else None,
                    "removed": int(removed) if removed != "-" else None,
                }
            )
        return {
            "files": files,
            "added": sum(f["added"] or 0 for f in files),
            "removed": sum(f["removed"] or 0 for f in files),
        }

    # ---- the patched branch -------------------------------------------------------------------
    # Idempotency lives in a branch named from the inputs, not in a git note or a state file: a branch
    # is kept as long as the checkout is, `git clone --branch` hands exactly that tree to a release, and
    # `git branch` shows it. The JSON record beside it only caches the per-PR report; if it is lost (or
    # the patch data changed), the next run cherry-picks again in a throw-away worktree, gets the same
    # SHAs (fixed committer and dates) and reports no change.
    def branch_name(self, base_sha, heads):
        """Named from the base and every fetched PR head, so the same inputs find the same branch."""
        lines = [base_sha, self.params["committer_name"], self.params["committer_email"]]
        if self.params["base_branch"]:
            lines.append(f"base_branch:{self.params['base_branch']}")
        for patch, head in heads:
            lines.append(f"{patch['pr']}:{head}:{patch.get('commits') or ''}")
        digest = hashlib.sha256("\n".join(lines).encode()).hexdigest()[:12]
        return f"{self.params['branch_prefix']}/{base_sha[:12]}-{digest}"

    def inputs_key(self, base_sha):
        """Everything a recorded report depends on, including the data of PRs that were not fetched."""
        patches = [{**p, "head_sha": (p.get("head_sha") or "").lower() or None} for p in self.params["patches"]]
        data = {"base": base_sha, "base_branch": self.params["base_branch"], "patches": patches}
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()

    def record_path(self, branch):
        _rc, git_dir, _err = self.run_git(["rev-parse", "--absolute-git-dir"])
        return os.path.join(git_dir, "git_pr_patches", branch.replace("/", "__") + ".json")

    def read_record(self, branch, tip, inputs):
        """The report of the run that made `branch`, if it describes the branch's tip and these inputs."""
        try:
            with open(self.record_path(branch)) as handle:
                record = json.load(handle)
        except (OSError, ValueError):
            return None
        return record if record.get("sha") == tip and record.get("inputs") == inputs else None

    def write_record(self, branch, record):
        path = self.record_path(branch)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        write_atomically(path, json.dumps(record, indent=2, sort_keys=True).encode("utf-8"), 0o644, durable=False)

    # ---- one PR -------------------------------------------------------------------------------
    def plan(self, patch, head, tip):
        """Decide without changing any tree: (status, reason, entries, commits, where); status None means
        cherry-pick `commits`, "pending" that check mode cannot list them from local objects."""
        if self.is_ancestor(head, tip):
            return "contained", f"head {head[:12]} is already an ancestor of the tree", [], [], None
        commits, where = self.own_commits(patch, head)
        if commits is None:
            return "pending", None, [], [], None
        gone = self.files_gone(head, commits, tip)
        if gone:
            return "superseded", self.superseded_reason(patch, gone), [], commits, where
        equivalent = self.equivalent_in(tip, head)
        if all(c in equivalent or self.is_ancestor(c, tip) for c in commits):
            entries = [{"sha": c, "result": "equivalent"} for c in commits]
            return "contained", "every commit has an equivalent patch in the tree (git cherry)", entries, commits, where
        return None, None, [{"sha": c, "result": "equivalent"} for c in commits if c in equivalent], commits, where

    def cherry_pick(self, worktree, commit):
        """Pick one commit; returns the new tip, or None when the commit turned out empty."""
        _rc, date, _err = self.run_git(["log", "-1", "--format=%cd", "--date=raw", commit])
        env = {
            "GIT_COMMITTER_NAME": self.params["committer_name"],
            "GIT_COMMITTER_EMAIL": self.params["committer_email"],
            "GIT_COMMITTER_DATE": date,
        }
        rc, out, err = self.run_git(["cherry-pick", "-x", commit], cwd=worktree, check=False, env=env)
        if rc == 0:
            return self.run_git(["rev-parse", "HEAD"], cwd=worktree)[1]
        _rc, unmerged, _err = self.run_git(["diff", "--name-only", "--diff-filter=U"], cwd=worktree)
        _rc, status, _err = self.run_git(["status", "--porcelain", "--untracked-files=no"], cwd=worktree)
        self.run_git(["cherry-pick", "--abort"], cwd=worktree, check=False)
        if unmerged:
            output = "\n".join(line for line in (err or out).splitlines() if not line.startswith("hint:"))
            raise PatchConflict(commit, unmerged.splitlines(), output)
        if not status:
            return None  # "The previous cherry-pick is now empty": its change is already in the tree.
        self.fail(f"git cherry-pick {commit} failed (rc={rc}): {err or out}")
        return None

    def pick(self, worktree, commits, entries, tip):
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
            return "contained", "every commit is empty on the tree (its changes are already there)", entries, tip
        skipped = len(commits) - picked
        reason = f"{picked} commit(s) cherry-picked" + (f", {skipped} already in the tree" if skipped else "")
        return "applied", reason, entries, tip

    # ---- main ------------------------------------------------------------------------------------
    @staticmethod
    def result(patch, status, reason, head, commits=None, where=None, diffstat=None):
        return {
            "pr": patch["pr"],
            "status": status,
            "reason": reason,
            "head_sha": head,
            "ref": f"refs/pull/{patch['pr']}/head",
            "range": where,
            "commits": commits or [],
            "diffstat": diffstat or dict(NO_DIFF),
        }

    def pending_result(self):
        """Check mode before the repository or base exists: report what can be known from the data."""
        for patch in self.params["patches"]:
            if self.data_says_superseded(patch):
                since, version = patch["superseded_from"], self.params["package_version"]
                why = f"superseded from {since} by the data (base is {version}); the tree decides on a real run"
                self.results.append(
                    self.result(
                        patch, "superseded", why + (f"; {patch['reason']}" if patch.get("reason") else ""), None
                    )
                )
            elif patch.get("left_out"):
                self.results.append(self.result(patch, "left_out", patch["left_out"], None))
            else:
                self.require_pin(patch)
                self.results.append(self.result(patch, "applied", "would be fetched and applied", None))
        # The release a real run would build is named from these: with nothing to apply the tip is the base
        # (when the caller passes the ref's SHA, as the git module reports it in check mode); an applied PR's
        # tip is only known once it is picked. The hash is over the pins, as a real run computes it.
        applied = [r for r in self.results if r["status"] == "applied"]
        base = self.params["base"] if re.fullmatch(r"[0-9a-f]{40}", self.params["base"] or "") else None
        pins = {p["pr"]: (p.get("head_sha") or "").lower() or None for p in self.params["patches"]}
        return {
            "changed": True,
            "base_sha": base,
            "sha": None if applied else base,
            "branch": None,
            "patch_hash": patch_hash((r["pr"], pins[r["pr"]]) for r in applied),
            "applied": [r["pr"] for r in applied],
            "patches": self.results,
        }

    def run(self):
        self.validate()
        if not os.path.isdir(self.repo_dir):
            if self.check_mode:
                return self.pending_result()
            self.fail(f"repo_dir {self.repo_dir} does not exist")
        base_sha = self.rev_parse(self.params["base"])
        if not base_sha:
            if self.check_mode:
                return self.pending_result()
            self.fail(f"base {self.params['base']!r} is not a commit in {self.repo_dir}")

        # What the data and the base decide, and every pin, before anything is fetched.
        decided, to_fetch = {}, []
        for patch in self.params["patches"]:
            gone = self.gone_from(patch, base_sha)
            if gone:
                decided[patch["pr"]] = self.result(patch, "superseded", self.superseded_reason(patch, gone), None)
            elif patch.get("left_out"):
                decided[patch["pr"]] = self.result(patch, "left_out", patch["left_out"], None)
            else:
                self.require_pin(patch)
                to_fetch.append(patch)
        heads = [(patch, self.head_of(patch)) for patch in to_fetch]

        branch = self.branch_name(base_sha, heads)
        inputs = self.inputs_key(base_sha)
        existing = self.rev_parse(f"refs/heads/{branch}")
        record = self.read_record(branch, existing, inputs) if existing else None
        if record:
            # Same base, same PR heads and data, branch still where the run that made it left it: no change.
            self.results = record["patches"]
            return self.summary(False, base_sha, existing, branch)

        if self.check_mode:
            for patch, head in heads:
                decided[patch["pr"]] = self.check_plan(patch, head, base_sha)
            self.results = [decided[p["pr"]] for p in self.params["patches"]]
            return self.summary(True, base_sha, existing or base_sha, branch)

        tip = self.patch_in_worktree(base_sha, heads, decided)
        self.results = [decided[p["pr"]] for p in self.params["patches"]]
        changed = existing != tip
        if changed:
            self.run_git(["branch", "--force", branch, tip])
        self.write_record(branch, {"sha": tip, "base_sha": base_sha, "inputs": inputs, "patches": self.results})
        return self.summary(changed, base_sha, tip, branch)

    def check_plan(self, patch, head, base_sha):
        """Check mode: each PR judged on the base alone (earlier PRs are not applied)."""
        if not self.rev_parse(head):
            self.undecided.add(patch["pr"])
            return self.result(patch, "applied", "would be fetched and applied", head)
        status, reason, entries, commits, where = self.plan(patch, head, base_sha)
        if status == "pending":
            self.undecided.add(patch["pr"])
            return self.result(patch, "applied", "would be fetched and applied", head)
        if status is None:
            diff = self.diffstat(f"{commits[0]}~1", head)
            return self.result(patch, "applied", "would be cherry-picked", head, entries, where, diff)
        return self.result(patch, status, reason, head, entries, where)

    def patch_in_worktree(self, base_sha, heads, decided):
        """Cherry-pick every PR in a throw-away worktree; on a conflict nothing is left behind."""
        tmp_root = tempfile.mkdtemp(prefix="git_pr_patches-", dir=self.module.tmpdir)
        worktree = os.path.join(tmp_root, "tree")
        self.run_git(["worktree", "add", "--detach", "--quiet", worktree, base_sha])
        try:
            tip = base_sha
            for patch, head in heads:
                status, reason, entries, commits, where = self.plan(patch, head, tip)
                before = tip
                if status is None:
                    try:
                        status, reason, entries, tip = self.pick(worktree, commits, entries, tip)
                    except PatchConflict as conflict:
                        self.fail_conflict(patch, head, base_sha, conflict, decided, where)
                diff = self.diffstat(before, tip)
                decided[patch["pr"]] = self.result(patch, status, reason, head, entries, where, diff)
            return tip
        finally:
            self.run_git(["worktree", "remove", "--force", worktree], check=False)
            self.run_git(["worktree", "prune"], check=False)
            shutil.rmtree(tmp_root, ignore_errors=True)

    def fail_conflict(self, patch, head, base_sha, conflict, decided, where):
        ref = f"refs/pull/{patch['pr']}/head"
        files = ", ".join(conflict.files)
        reason = f"commit {conflict.commit[:12]} conflicts in {files}"
        decided[patch["pr"]] = self.result(patch, "conflict", reason, head, where=where)
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

    def cross_check(self):
        """Warn where superseded_from (the data's version) and the tree disagree; the tree has decided."""
        by_pr = {r["pr"]: r for r in self.results}
        version = self.params.get("package_version")
        for patch in self.params["patches"]:
            result = by_pr.get(patch["pr"])
            if not patch.get("superseded_from") or not result or patch["pr"] in self.undecided:
                continue
            by_data, by_tree = self.data_says_superseded(patch), result["status"] == "superseded"
            if by_data == by_tree:
                continue
            since = patch["superseded_from"]
            if by_data:
                self.module.warn(
                    f"PR #{patch['pr']}: superseded_from {since} says it is not needed on {version}, but the tree "
                    f"says {result['status']} ({result['reason']}); the tree decided. Check superseded_from."
                )
            else:
                self.module.warn(
                    f"PR #{patch['pr']}: superseded_from {since} says it is still needed on {version}, but the tree "
                    f"says superseded ({result['reason']}); the tree decided. Check superseded_from."
                )

    def summary(self, changed, base_sha, tip, branch):
        self.cross_check()
        applied = [r for r in self.results if r["status"] == "applied"]
        return {
            "changed": changed,
            "base_sha": base_sha,
            "sha": tip,
            "branch": branch,
            "patch_hash": patch_hash((r["pr"], r["head_sha"]) for r in applied),
            "applied": [r["pr"] for r in applied],
            "patches": self.results,
        }


def patch_hash(applied):
    """First 8 hex digits of sha256 over the applied PRs' "pr:head_sha" lines (RV(patch_hash))."""
    lines = "\n".join(f"{pr}:{head}" for pr, head in applied)
    return hashlib.sha256(lines.encode()).hexdigest()[:8]


ARGUMENT_SPEC = {
    "repo_dir": {"type": "path", "required": True},
    "base": {"type": "str", "required": True},
    "remote": {"type": "str", "default": "origin"},
    "base_branch": {"type": "str"},
    "allow_unpinned": {"type": "bool", "default": False},
    "package_version": {"type": "str"},
    "patches": {
        "type": "list",
        "elements": "dict",
        "default": [],
        "options": {
            "pr": {"type": "int", "required": True},
            "head_sha": {"type": "str"},
            "files": {"type": "list", "elements": "str"},
            "anchors": {
                "type": "list",
                "elements": "dict",
                "options": {
                    "path": {"type": "str", "required": True},
                    "text": {"type": "str", "required": True},
                },
            },
            "left_out": {"type": "str"},
            "superseded_from": {"type": "str"},
            "reason": {"type": "str"},
            "commits": {"type": "int"},
        },
    },
    "branch_prefix": {"type": "str", "default": "patched"},
    "committer_name": {"type": "str", "default": "git_pr_patches"},
    "committer_email": {"type": "str", "default": "git_pr_patches@localhost"},
}


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    module.exit_json(**GitPrPatches(module).run())


if __name__ == "__main__":
    main()
