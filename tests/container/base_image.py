"""The Dockerfile's base image, made locally: no registry is reachable from the test machines.

`debootstrap --variant=minbase` from the Debian mirror apt is configured with, slimmed the way
debian:*-slim is, with the host's CA certificates added (outgoing HTTPS may be re-signed by a local
CA that pip inside the build must trust), then `docker import`ed under the exact name the Dockerfile
uses. The tarball is cached between runs under a key that changes with anything that changes it.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .engine import Engine, with_sbin

RECIPE_VERSION = "2"
"""Bump when the recipe below changes, so that cached tarballs are rebuilt."""

APT_SOURCES = Path("/etc/apt/sources.list")
APT_SOURCES_DIR = Path("/etc/apt/sources.list.d")
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
HOST_LOCAL_CAS = Path("/usr/local/share/ca-certificates")

# What debian:*-slim leaves out (debuerreotype's slimify), so that image sizes measured here match.
SLIM_EXCLUDES = (
    "/usr/share/doc/*",
    "/usr/share/groff/*",
    "/usr/share/info/*",
    "/usr/share/linda/*",
    "/usr/share/lintian/overrides/*",
    "/usr/share/locale/*",
    "/usr/share/man/*",
)
SLIM_INCLUDES = ("/usr/share/doc/*/copyright",)

# debian:*-slim's apt settings: downloaded packages are deleted once installed, no translations.
APT_CONFIG = {
    "docker-clean": (
        'DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb'
        ' /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };\n'
        'APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb'
        ' /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };\n'
        'Dir::Cache::pkgcache "";\nDir::Cache::srcpkgcache "";\n'
    ),
    "docker-no-languages": 'Acquire::Languages "none";\n',
}

# The configuration debian:*-slim has; `docker import` sets none, and a Dockerfile that extends PATH
# with ${PATH} would otherwise lose the system folders.
IMAGE_CONFIG = (
    "--change", "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "--change", 'CMD ["bash"]',
)  # fmt: skip


@dataclass(frozen=True)
class AptSource:
    """One `deb` line or deb822 stanza of apt's configuration."""

    uri: str
    suites: tuple[str, ...]
    components: tuple[str, ...]


def base_image_name(dockerfile: Path) -> str:
    """The default of the Dockerfile's `ARG BASE_IMAGE=...`, which its FROM lines use."""
    match = re.search(r"^ARG\s+BASE_IMAGE=(\S+)\s*$", dockerfile.read_text(), re.MULTILINE)
    if match is None:
        raise ValueError(f"{dockerfile} has no `ARG BASE_IMAGE=<name>` line")
    return match.group(1)


def suite_of(image: str) -> str:
    """The Debian suite an image name like `debian:bookworm-slim` stands for."""
    repository, _, tag = image.rpartition(":")
    if repository.rsplit("/", 1)[-1] != "debian" or not tag:
        raise ValueError(f"{image} is not a debian:<suite>[-slim] image")
    return tag.removesuffix("-slim")


def parse_one_line(text: str) -> Iterable[AptSource]:
    """Sources in the one-line format: `deb [options] URI SUITE COMPONENT...`."""
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        line = re.sub(r"\[[^\]]*\]", " ", line)
        fields = line.split()
        if len(fields) >= 3 and fields[0] == "deb":
            yield AptSource(fields[1], (fields[2],), tuple(fields[3:]))


def parse_deb822(text: str) -> Iterable[AptSource]:
    """Sources in the deb822 format of *.sources files (stanzas separated by blank lines)."""
    lines = [line for line in text.splitlines() if not line.startswith("#")]
    for stanza in "\n".join(lines).split("\n\n"):
        fields: dict[str, str] = {}
        key = ""
        for line in stanza.splitlines():
            if line[:1] in (" ", "\t") and key:
                fields[key] += " " + line.strip()
            elif ":" in line:
                key, _, value = line.partition(":")
                key = key.strip().lower()
                fields[key] = value.strip()
        if "deb" not in fields.get("types", "").split():
            continue
        if fields.get("enabled", "yes").lower() == "no":
            continue
        for uri in fields.get("uris", "").split():
            yield AptSource(
                uri,
                tuple(fields.get("suites", "").split()),
                tuple(fields.get("components", "").split()),
            )


def apt_sources() -> list[AptSource]:
    """Every `deb` source apt is configured with, in apt's reading order."""
    sources: list[AptSource] = []
    if APT_SOURCES.is_file():
        sources.extend(parse_one_line(APT_SOURCES.read_text()))
    if APT_SOURCES_DIR.is_dir():
        for path in sorted(APT_SOURCES_DIR.iterdir()):
            if path.suffix == ".list":
                sources.extend(parse_one_line(path.read_text()))
            elif path.suffix == ".sources":
                sources.extend(parse_deb822(path.read_text()))
    return sources


def debian_mirror(sources: Iterable[AptSource], suite: str) -> str:
    """The mirror to bootstrap `suite` from: one apt already uses for that suite's main component.

    On a host of another Debian release the mirror that serves its plain release suite is used.
    """
    candidates = [s for s in sources if "main" in s.components]
    for source in candidates:
        if suite in source.suites:
            return source.uri
    for source in candidates:
        if any("-" not in s and "/" not in s for s in source.suites):
            return source.uri
    raise LookupError(f"apt is configured with no Debian mirror for {suite} main")


def host_ca_files() -> list[Path]:
    """The host's CA bundle and the CAs added locally to it."""
    files = [HOST_CA_BUNDLE] if HOST_CA_BUNDLE.is_file() else []
    if HOST_LOCAL_CAS.is_dir():
        files.extend(sorted(HOST_LOCAL_CAS.rglob("*.crt")))
    return files


def cache_key(suite: str, mirror: str, ca_files: Iterable[Path]) -> str:
    """A digest of everything the tarball depends on."""
    digest = hashlib.sha256(f"{RECIPE_VERSION}\n{suite}\n{mirror}\n".encode())
    for path in ca_files:
        digest.update(str(path).encode() + b"\n" + path.read_bytes())
    return digest.hexdigest()[:16]


def cache_dir() -> Path:
    """Where base tarballs are kept between runs."""
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "sagemaker-decision-trees"


def slim(root: Path) -> None:
    """Make the tree what debian:*-slim is: no docs, locales or apt caches, now or later."""
    for name, text in APT_CONFIG.items():
        (root / "etc/apt/apt.conf.d" / name).write_text(text)
    config = root / "etc/dpkg/dpkg.cfg.d/docker-slim"
    config.write_text(
        "".join(f"path-exclude {p}\n" for p in SLIM_EXCLUDES)
        + "".join(f"path-include {p}\n" for p in SLIM_INCLUDES)
    )
    for pattern in SLIM_EXCLUDES:
        parent = root / pattern.strip("/").removesuffix("/*")
        for entry in parent.glob("*") if parent.is_dir() else ():
            copyright_file = entry / "copyright"
            if parent.name == "doc" and copyright_file.is_file():
                for child in entry.iterdir():
                    if child.name != "copyright":
                        remove(child)
            else:
                remove(entry)
    for folder in ("var/cache/apt/archives", "var/lib/apt/lists"):
        for entry in (root / folder).glob("*"):
            if entry.is_file():
                entry.unlink()
    for entry in (root / "var/cache/apt").glob("*.bin"):
        entry.unlink()


def remove(path: Path) -> None:
    """Remove a file, link or folder tree."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def add_ca_certificates(root: Path, ca_files: Iterable[Path]) -> None:
    """Trust the host's CAs: the bundle for tools that run before ca-certificates is installed,
    and the local CAs where update-ca-certificates finds them when the image installs it."""
    for path in ca_files:
        if path == HOST_CA_BUNDLE:
            target = root / "etc/ssl/certs" / path.name
        else:
            target = root / "usr/local/share/ca-certificates" / path.relative_to(HOST_LOCAL_CAS)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)


def build_tarball(suite: str, mirror: str, ca_files: list[Path], tarball: Path) -> None:
    """debootstrap a minimal `suite`, slim it, add the CAs and pack it into `tarball` atomically."""
    tarball.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="dt-rootfs-") as work:
        root = Path(work) / "rootfs"
        run(["debootstrap", "--variant=minbase", suite, str(root), mirror])
        slim(root)
        add_ca_certificates(root, ca_files)
        partial = tarball.with_suffix(f".partial-{os.getpid()}")
        run(["tar", "--numeric-owner", "-C", str(root), "-cf", str(partial), "."])
        partial.replace(tarball)


def run(command: list[str]) -> None:
    """Run a setup command; on failure raise with the end of its output."""
    env = {**os.environ, "PATH": with_sbin(os.environ.get("PATH", ""))}
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        output = (result.stdout + result.stderr)[-4000:]
        raise RuntimeError(f"{' '.join(command)} exited with {result.returncode}:\n{output}")


def ensure_base_image(engine: Engine, dockerfile: Path) -> str:
    """Make the Dockerfile's base image exist in `engine`, from the cached tarball if any."""
    name = base_image_name(dockerfile)
    if engine.run("image", "inspect", name, check=False).returncode == 0:
        return name
    suite = suite_of(name)
    mirror = debian_mirror(apt_sources(), suite)
    ca_files = host_ca_files()
    tarball = cache_dir() / f"{suite}-minbase-{cache_key(suite, mirror, ca_files)}.tar"
    if not tarball.is_file():
        build_tarball(suite, mirror, ca_files, tarball)
        for stale in tarball.parent.glob(f"{suite}-minbase-*.tar"):
            if stale != tarball:
                stale.unlink()
    engine.run("import", *IMAGE_CONFIG, str(tarball), name)
    return name
