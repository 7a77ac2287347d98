"""Media types and content negotiation."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import formats

PROGRAM_DIR = Path(formats.__file__).parent


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("text/csv", "text/csv"),
        ("Text/CSV; charset=UTF-8", "text/csv"),
        (" application/json ;q=1", "application/json"),
        ("application/x-jsonlines", "application/jsonlines"),
        ("", ""),
        (None, ""),
    ],
)
def test_media_type_is_bare_and_lower_case(header: str | None, expected: str) -> None:
    assert formats.media_type(header) == expected


@pytest.mark.parametrize(
    ("accept", "default", "expected"),
    [
        (None, "text/csv", "text/csv"),
        ("", "application/json", "application/json"),
        ("*/*", "application/json", "application/json"),
        ("application/*", "text/csv", "application/json"),
        ("application/*", "application/x-npy", "application/x-npy"),
        ("text/html, */*;q=0.1", "text/csv", "text/csv"),
        ("application/jsonlines;q=0.4, application/json;q=0.9", "text/csv", "application/json"),
        ("text/csv;q=abc, application/json", "text/csv", "application/json"),
        ("text/html", "text/csv", None),
        ("*/*;q=0", "text/csv", None),
    ],
)
def test_negotiate_picks_the_most_preferred_supported_type(
    accept: str | None, default: str, expected: str | None
) -> None:
    assert formats.negotiate(accept, default) == expected


def test_csv_output_quotes_labels_that_need_it() -> None:
    assert formats.encode(["a,b", 'say "hi"', "plain"], formats.CSV, batch=False) == (
        b'"a,b"\n"say ""hi"""\nplain\n'
    )


def test_numbers_and_lists_are_written_as_csv_rows() -> None:
    assert formats.encode([1.5, [1, 2]], formats.CSV, batch=False) == b"1.5\n1,2\n"


def test_a_big_csv_body_is_decoded_without_importing_pandas() -> None:
    program = (
        "import sys, formats; "
        "formats.decode(b'5.1,3.5,1.4,0.2\\n' * 5000, formats.CSV, 4); "
        "assert 'pandas' not in sys.modules, 'pandas was imported'"
    )
    subprocess.run([sys.executable, "-c", program], cwd=PROGRAM_DIR, check=True)
