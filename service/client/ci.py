"""Labels for a run started from a CI pipeline: the commit, the branch and the build's URL, read
from the variables GitHub Actions, GitLab CI and Jenkins set (nothing when none is set)."""

from __future__ import annotations

from collections.abc import Mapping


def ci_labels(env: Mapping[str, str]) -> dict[str, str]:
    """`commit`, `branch`, `build_url` and `ci` from the environment of a known CI system."""
    if env.get("GITHUB_ACTIONS") == "true":
        server, repo, run = (
            env.get("GITHUB_SERVER_URL", ""),
            env.get("GITHUB_REPOSITORY", ""),
            env.get("GITHUB_RUN_ID", ""),
        )
        found = {
            "ci": "github-actions",
            "commit": env.get("GITHUB_SHA", ""),
            "branch": env.get("GITHUB_HEAD_REF") or env.get("GITHUB_REF_NAME", ""),
            "build_url": f"{server}/{repo}/actions/runs/{run}" if server and repo and run else "",
        }
    elif env.get("GITLAB_CI") == "true":
        found = {
            "ci": "gitlab-ci",
            "commit": env.get("CI_COMMIT_SHA", ""),
            "branch": env.get("CI_COMMIT_REF_NAME", ""),
            "build_url": env.get("CI_JOB_URL") or env.get("CI_PIPELINE_URL", ""),
        }
    elif env.get("JENKINS_URL"):
        found = {
            "ci": "jenkins",
            "commit": env.get("GIT_COMMIT", ""),
            "branch": env.get("BRANCH_NAME") or env.get("GIT_BRANCH", ""),
            "build_url": env.get("BUILD_URL", ""),
        }
    else:
        return {}
    return {key: value[:200] for key, value in found.items() if value}


def parse_labels(pairs: list[str]) -> dict[str, str]:
    """`k=v` arguments as labels (a pair without `=` is a usage error)."""
    labels = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"labels are key=value, got {pair!r}")
        labels[key] = value
    return labels
