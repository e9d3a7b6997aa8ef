"""The pipeline client's pure decisions: CI labels from each CI system's variables, `k=v` labels."""

from __future__ import annotations

import pytest

from service.client.ci import ci_labels, parse_labels


def test_github_actions_gives_the_commit_the_branch_and_the_runs_url() -> None:
    env = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_SHA": "abc",
        "GITHUB_HEAD_REF": "feature",
        "GITHUB_REF_NAME": "12/merge",
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_REPOSITORY": "acme/bot",
        "GITHUB_RUN_ID": "7",
    }
    assert ci_labels(env) == {
        "ci": "github-actions",
        "commit": "abc",
        "branch": "feature",  # a pull request's head, not its merge ref
        "build_url": "https://github.com/acme/bot/actions/runs/7",
    }


def test_gitlab_and_jenkins_are_recognised_and_empty_values_are_left_out() -> None:
    gitlab = {"GITLAB_CI": "true", "CI_COMMIT_SHA": "def", "CI_COMMIT_REF_NAME": "main", "CI_JOB_URL": ""}
    assert ci_labels({**gitlab, "CI_PIPELINE_URL": "https://gitlab/p/1"}) == {
        "ci": "gitlab-ci", "commit": "def", "branch": "main", "build_url": "https://gitlab/p/1",
    }  # fmt: skip
    jenkins = {"JENKINS_URL": "https://ci", "GIT_COMMIT": "123", "GIT_BRANCH": "origin/main", "BUILD_URL": ""}
    assert ci_labels(jenkins) == {"ci": "jenkins", "commit": "123", "branch": "origin/main"}


def test_no_ci_system_means_no_labels_and_long_values_are_cut() -> None:
    assert ci_labels({"HOME": "/root", "GITHUB_ACTIONS": "false"}) == {}
    assert len(ci_labels({"JENKINS_URL": "x", "GIT_COMMIT": "a" * 500})["commit"]) == 200


def test_labels_are_key_value_pairs() -> None:
    assert parse_labels(["team=qa", "note=a=b", "empty="]) == {"team": "qa", "note": "a=b", "empty": ""}
    for bad in ("novalue", "=v"):
        with pytest.raises(ValueError, match="key=value"):
            parse_labels([bad])
