"""How the container tier finds the base image's name and the Debian mirror to bootstrap it from."""

from __future__ import annotations

from pathlib import Path

import pytest

from .base_image import (
    AptSource,
    base_image_name,
    debian_mirror,
    parse_deb822,
    parse_one_line,
    suite_of,
)
from .conftest import DOCKERFILE

DEB822 = """\
Types: deb
# a snapshot could go here
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main

Types: deb-src
URIs: http://src.example/debian
Suites: bookworm
Components: main

Enabled: no
Types: deb
URIs: http://disabled.example/debian
Suites: bookworm
Components: main
"""


def test_the_dockerfile_names_a_debian_slim_base_through_an_arg() -> None:
    """The tier imports its base under exactly this name, so FROM must use the ARG."""
    name = base_image_name(DOCKERFILE)
    assert suite_of(name) == "bookworm"
    assert "FROM ${BASE_IMAGE}" in DOCKERFILE.read_text()


def test_a_dockerfile_without_the_arg_is_reported(tmp_path: Path) -> None:
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("FROM debian:bookworm-slim\n")
    with pytest.raises(ValueError, match="ARG BASE_IMAGE"):
        base_image_name(dockerfile)


def test_deb822_stanzas_give_binary_enabled_sources_only() -> None:
    assert list(parse_deb822(DEB822)) == [
        AptSource("http://mirror.example/debian", ("bookworm", "bookworm-updates"), ("main",)),
        AptSource("http://mirror.example/debian-security", ("bookworm-security",), ("main",)),
    ]


def test_one_line_sources_skip_options_comments_and_deb_src() -> None:
    text = (
        "# deb http://commented.example/debian bookworm main\n"
        "deb [signed-by=/k.gpg arch=amd64] http://one.example/debian bookworm main\n"
        "deb-src http://src.example/debian bookworm main\n"
    )
    assert list(parse_one_line(text)) == [
        AptSource("http://one.example/debian", ("bookworm",), ("main",))
    ]


def test_the_mirror_is_the_one_apt_uses_for_the_suite() -> None:
    sources = [
        AptSource("https://other.example/apt", ("cloud-sdk",), ("main",)),
        *parse_deb822(DEB822),
    ]
    assert debian_mirror(sources, "bookworm") == "http://mirror.example/debian"


def test_a_host_of_another_release_lends_its_release_mirror() -> None:
    sources = [
        AptSource("http://security.example/debian-security", ("trixie-security",), ("main",)),
        AptSource("http://mirror.example/debian", ("trixie",), ("main", "contrib")),
    ]
    assert debian_mirror(sources, "bookworm") == "http://mirror.example/debian"


def test_no_debian_mirror_is_an_error() -> None:
    with pytest.raises(LookupError, match="no Debian mirror"):
        debian_mirror(
            [AptSource("https://other.example/apt", ("stable",), ("contrib",))], "bookworm"
        )
