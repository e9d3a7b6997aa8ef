"""Pinned npm tarballs for tests (schemas published on the npm registry), checked against their
registry integrity and cached under the repo's ignored `.services/`."""

from __future__ import annotations

import base64
import hashlib
import tarfile
import urllib.request
from pathlib import Path

DOWNLOAD_TIMEOUT_S = 60.0


def repo_root() -> Path:
    """The checkout this module belongs to (the directory holding pyproject.toml)."""
    here = Path(__file__).resolve()
    return next(parent for parent in here.parents if (parent / "pyproject.toml").is_file())


def integrity(data: bytes) -> str:
    """npm's `integrity` value without the `sha512-` prefix: base64 of the SHA-512 digest."""
    return base64.b64encode(hashlib.sha512(data).digest()).decode()


def verified_tarball(url: str, sha512: str, cached: Path) -> Path:
    """The tarball at `url`, downloaded once to `cached` (a corrupt cached copy is replaced)."""
    if cached.is_file() and integrity(cached.read_bytes()) == sha512:
        return cached
    with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:  # noqa: S310 — a pinned https URL
        data: bytes = response.read()
    got = integrity(data)
    assert got == sha512, f"{url} has integrity sha512-{got}, expected sha512-{sha512}"
    cached.parent.mkdir(parents=True, exist_ok=True)
    partial = cached.with_suffix(".part")
    partial.write_bytes(data)
    partial.replace(cached)  # atomic: a concurrent reader never sees half a file
    return cached


def member_bytes(tarball: Path, member: str) -> bytes:
    """One file of a tarball."""
    with tarfile.open(tarball, "r:gz") as archive:
        extracted = archive.extractfile(member)
        assert extracted is not None, member
        return extracted.read()
