"""The model directory: files written through staging, metadata.json last, digests checked."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from byoc import artifacts
from byoc.artifacts import METADATA_FILE, STAGING_PREFIX, ModelError


def writer(**files: bytes):
    def write(staging: Path) -> None:
        for name, content in files.items():
            (staging / name).write_bytes(content)

    return write


def test_save_puts_the_files_and_their_digests_in_place(tmp_path: Path) -> None:
    model_dir = tmp_path / "model"

    artifacts.save(model_dir, writer(a=b"alpha", b=b"beta"), {"kind": "classifier", "p": Path("x")})

    assert sorted(p.name for p in model_dir.iterdir()) == sorted(["a", "b", METADATA_FILE])
    metadata = json.loads((model_dir / METADATA_FILE).read_text())
    assert metadata == {
        "kind": "classifier",
        "p": "x",
        "files": {
            "a": hashlib.sha256(b"alpha").hexdigest(),
            "b": hashlib.sha256(b"beta").hexdigest(),
        },
    }
    assert artifacts.read_metadata(model_dir) == metadata
    assert artifacts.model_file(model_dir, metadata, "a") == model_dir / "a"


def test_a_failing_write_leaves_the_previous_model_as_it_was(tmp_path: Path) -> None:
    model_dir = tmp_path / "model"
    artifacts.save(model_dir, writer(a=b"old"), {"version": 1})
    before = {p.name: p.read_bytes() for p in model_dir.iterdir()}

    def failing(staging: Path) -> None:
        (staging / "a").write_bytes(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        artifacts.save(model_dir, failing, {"version": 2})

    assert {p.name: p.read_bytes() for p in model_dir.iterdir()} == before


def test_a_write_that_writes_nothing_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="wrote no file"):
        artifacts.save(tmp_path, lambda staging: None, {})

    assert list(tmp_path.iterdir()) == []


def test_a_new_model_replaces_the_old_files_it_names(tmp_path: Path) -> None:
    artifacts.save(tmp_path, writer(a=b"old"), {"version": 1})

    artifacts.save(tmp_path, writer(a=b"new"), {"version": 2})

    metadata = artifacts.read_metadata(tmp_path)
    assert metadata["version"] == 2
    assert artifacts.model_file(tmp_path, metadata, "a").read_bytes() == b"new"


def test_discard_partial_removes_staging_folders_only(tmp_path: Path) -> None:
    artifacts.save(tmp_path, writer(a=b"model"), {})
    staging = tmp_path / f"{STAGING_PREFIX}abc"
    staging.mkdir()
    (staging / "a").write_bytes(b"half")

    artifacts.discard_partial(tmp_path)

    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", METADATA_FILE]


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "no model: .* does not exist"), ("{oops", "cannot read"), ("[1]", "not hold a JSON")],
)
def test_unreadable_metadata_is_a_model_error(
    tmp_path: Path, content: str | None, message: str
) -> None:
    if content is not None:
        (tmp_path / METADATA_FILE).write_text(content)

    with pytest.raises(ModelError, match=message):
        artifacts.read_metadata(tmp_path)


def test_a_file_that_differs_from_its_digest_is_refused(tmp_path: Path) -> None:
    artifacts.save(tmp_path, writer(a=b"trained"), {})
    metadata = artifacts.read_metadata(tmp_path)
    (tmp_path / "a").write_bytes(b"swapped")

    with pytest.raises(ModelError, match="is not the file train wrote"):
        artifacts.model_file(tmp_path, metadata, "a")


def test_a_missing_file_is_an_incomplete_model(tmp_path: Path) -> None:
    artifacts.save(tmp_path, writer(a=b"trained"), {})
    metadata = artifacts.read_metadata(tmp_path)
    (tmp_path / "a").unlink()

    with pytest.raises(ModelError, match=r"incomplete model: .*/a does not exist"):
        artifacts.model_file(tmp_path, metadata, "a")
