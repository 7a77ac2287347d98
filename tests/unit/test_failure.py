"""The failure file: the reason first, cut to 1024 bytes between characters, never overwritten."""

from __future__ import annotations

from pathlib import Path

from byoc.failure import (
    EXIT_INPUT_ERROR,
    EXIT_INTERNAL_ERROR,
    FAILURE_REASON_LIMIT,
    reason_line,
    stopped_exit_code,
    write_failure,
)


def test_the_reason_comes_first_and_the_details_after(tmp_path: Path) -> None:
    path = tmp_path / "output" / "failure"

    assert write_failure(path, "Bad data in a.csv, row 3.", "Traceback ...")

    assert path.read_text() == "Bad data in a.csv, row 3.\n\nTraceback ...\n"
    assert [p.name for p in path.parent.iterdir()] == ["failure"]


def test_an_existing_failure_file_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "failure"
    path.write_text("the first reason\n")

    assert not write_failure(path, "a later reason")

    assert path.read_text() == "the first reason\n"
    assert [p.name for p in tmp_path.iterdir()] == ["failure"]


def test_a_long_reason_is_cut_between_utf8_characters_and_kept_whole_after(tmp_path: Path) -> None:
    reason = "x" + "€" * 1000  # 3 bytes each: 1024 is not a character boundary
    path = tmp_path / "failure"

    write_failure(path, reason, "details")

    content = path.read_bytes()
    first_line = content.split(b"\n")[0]
    assert len(first_line) <= FAILURE_REASON_LIMIT
    assert first_line.decode().endswith("€...")
    assert content[:FAILURE_REASON_LIMIT].decode("utf-8", errors="strict")
    assert reason in content.decode()
    assert content.decode().endswith("details\n")


def test_a_reason_that_fits_is_one_line_as_it_is() -> None:
    assert reason_line("Channel  training\nhas no rows.") == "Channel training has no rows."
    assert reason_line("é" * 512) == "é" * 512


def test_the_exit_codes_tell_input_from_code_from_a_stop() -> None:
    assert (EXIT_INTERNAL_ERROR, EXIT_INPUT_ERROR) == (1, 2)
    assert stopped_exit_code(15) == 143
    assert stopped_exit_code(9) == 137
