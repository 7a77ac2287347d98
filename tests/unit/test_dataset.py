"""Reading a channel: CSV, gzip, Parquet, nested files, and errors that name the file and row."""

from __future__ import annotations

import csv
import gzip
import io
import os
import threading
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import dataset
from channels import Channel
from failure import InputError
from training_job import rows


@pytest.fixture
def channel(tmp_path: Path) -> Channel:
    path = tmp_path / "data" / "training"
    path.mkdir(parents=True)
    return Channel("training", path)


def put(channel: Channel, name: str, content: str | bytes) -> None:
    path = channel.path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode() if isinstance(content, str) else content)


def read(channel: Channel, label_column: str | None = None) -> dataset.Dataset:
    return dataset.read(channel, label_column, log=lambda _: None)


def test_csv_gives_float32_features_in_c_order_and_text_labels(channel: Channel) -> None:
    put(channel, "a.csv", "setosa,5.1,3.5\nvirginica,6.3,,\n".replace(",,", ",NaN"))

    data = read(channel)

    assert data.features.dtype == np.float32
    assert data.features.flags.c_contiguous
    np.testing.assert_array_equal(data.features, np.array([[5.1, 3.5], [6.3, np.nan]], np.float32))
    assert data.labels.tolist() == ["setosa", "virginica"]
    assert data.feature_names == ["feature_1", "feature_2"]
    assert data.label_column is None


@pytest.mark.parametrize(
    ("labels", "expected"),
    [(["0", "1"], [0, 1]), (["0", "2.5"], [0.0, 2.5]), (["1", "b"], ["1", "b"])],
)
def test_csv_labels_are_numbers_when_every_label_is_one(
    channel: Channel, labels: list[str], expected: list[object]
) -> None:
    put(channel, "a.csv", "".join(f"{label},1\n" for label in labels))

    assert read(channel).labels.tolist() == expected


def test_files_are_read_recursively_in_path_order_with_gzip_and_without_hidden_files(
    channel: Channel,
) -> None:
    put(channel, "b/2.csv.gz", gzip.compress(b"b2,2\n"))
    put(channel, "a.csv", "a,1\n")
    put(channel, "b/1.csv", "b1,3\n")
    put(channel, "b/.cache/0.csv", "hidden,0\n")
    put(channel, "notes.txt", "not data")

    data = read(channel)

    assert data.labels.tolist() == ["a", "b1", "b2"]
    assert data.files == 3


def test_many_rows_grow_the_arrays_beyond_their_first_size(channel: Channel) -> None:
    text = rows(150_000, features=2, seed=1)
    put(channel, "big.csv", text)
    expected = np.loadtxt(text.splitlines(), delimiter=",", usecols=(1, 2), dtype=np.float32)

    data = read(channel)

    np.testing.assert_array_equal(data.features, expected)
    assert data.rows == 150_000


def test_parquet_uses_the_first_column_as_label_unless_label_column_names_one(
    channel: Channel,
) -> None:
    table = pa.table(
        {"y": [0, 1, 1], "x1": [1.5, 2.5, None], "flag": [True, False, True], "z": [7, 8, 9]}
    )
    pq.write_table(table, channel.path / "part.parquet")

    first = read(channel)
    named = read(channel, label_column="z")

    assert first.labels.tolist() == [0, 1, 1]
    assert first.feature_names == ["x1", "flag", "z"]
    assert first.label_column == "y"
    np.testing.assert_array_equal(first.features[2], np.array([np.nan, 1.0, 9.0], np.float32))
    assert named.feature_names == ["y", "x1", "flag"]
    assert named.labels.tolist() == [7, 8, 9]


def test_a_parquet_text_feature_column_fails_naming_it(channel: Channel) -> None:
    pq.write_table(pa.table({"y": [0, 1], "name": ["a", "b"]}), channel.path / "part.parquet")

    with pytest.raises(InputError, match=r"training/part\.parquet: column 'name' is string"):
        read(channel)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("a,1,2\nb,3,x\n", "training/bad.csv, row 2, column 3: 'x' is not a number."),
        (
            "label,f1,f2\na,1,2\n",
            "training/bad.csv, row 1, column 2: 'f1' is not a number (a header row?)",
        ),
        ("a,1,2\nb,3\n", "training/bad.csv, row 2: 2 columns where row 1 has 3: 'b,3'."),
        ("a,1,2\n,3,4\n", "training/bad.csv, row 2: the label is missing (empty or NA)."),
        ("a\nb\n", "training/bad.csv, row 1: one column only"),
    ],
)
def test_malformed_csv_fails_with_the_file_and_row(
    channel: Channel, content: str, message: str
) -> None:
    put(channel, "bad.csv", content)

    with pytest.raises(InputError) as error:
        read(channel)

    assert str(error.value).startswith(message)


def test_an_error_deep_in_a_large_file_still_names_its_row(channel: Channel) -> None:
    put(channel, "bad.csv", rows(200_000, features=2) + "a,1,oops\n")

    with pytest.raises(InputError, match=r"training/bad.csv, row 200001, column 3: 'oops'"):
        read(channel)


def test_files_with_different_columns_fail_naming_both(channel: Channel) -> None:
    put(channel, "a.csv", "a,1,2\n")
    put(channel, "b.csv", "b,1\n")

    with pytest.raises(
        InputError, match=r"training/b\.csv has 1 features .* but training/a\.csv has 2"
    ):
        read(channel)


def test_a_channel_without_data_files_says_what_it_holds(channel: Channel) -> None:
    put(channel, "data.json", "{}")

    with pytest.raises(
        InputError, match=r"holds 1 files \(such as data.json\), none ending in .csv"
    ):
        read(channel)


def test_a_channel_of_empty_files_has_no_rows(channel: Channel) -> None:
    put(channel, "a.csv", "")

    with pytest.raises(InputError, match='Channel "training" has no rows'):
        read(channel)


def test_csv_and_parquet_in_one_channel_fail(channel: Channel) -> None:
    put(channel, "a.csv", "a,1\n")
    pq.write_table(pa.table({"y": [0], "x": [1.0]}), channel.path / "b.parquet")

    with pytest.raises(InputError, match="mixes CSV and Parquet"):
        read(channel)


def test_label_column_with_csv_fails(channel: Channel) -> None:
    put(channel, "a.csv", "a,1\n")

    with pytest.raises(InputError, match="label_column='y' applies to Parquet files only"):
        read(channel, label_column="y")


def test_blank_lines_and_quoted_newlines_leave_no_gap_between_files(channel: Channel) -> None:
    put(channel, "a.csv", "a,1\n\nb,2\n\n")
    put(channel, "b.csv", '"c\nd",3\ne,4')
    put(channel, "c.csv", "f,5\n")

    data = read(channel)

    assert data.labels.tolist() == ["a", "b", "c\nd", "e", "f"]
    assert data.features[:, 0].tolist() == [1, 2, 3, 4, 5]


def write_csv(channel: Channel, name: str, labels: list[str]) -> None:
    """Rows of a label (quoted by the csv module where needed) and two features: i and i/2."""
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows(
        [label, i, i / 2] for i, label in enumerate(labels)
    )
    content = text.getvalue().encode()
    put(channel, name, gzip.compress(content) if name.endswith(".gz") else content)


@pytest.mark.parametrize("block_bytes", [16, 37, 64])
@pytest.mark.parametrize("name", ["a.csv", "a.csv.gz"])
def test_blocks_never_cut_a_row_at_a_quoted_newline(
    channel: Channel, monkeypatch: pytest.MonkeyPatch, name: str, block_bytes: int
) -> None:
    monkeypatch.setattr(dataset, "CSV_BLOCK_BYTES", block_bytes)
    labels = ["plain", 'say "hi"\nthen\nleave', "a,b", "\n", "l\ni\nn\ne\ns", "last"] * 20
    write_csv(channel, name, labels)

    data = read(channel)

    assert data.labels.tolist() == labels
    np.testing.assert_array_equal(data.features[:, 0], np.arange(len(labels), dtype=np.float32))


def test_a_row_longer_than_a_block_is_read_whole(
    channel: Channel, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dataset, "CSV_BLOCK_BYTES", 64)
    labels = ["short", "x" * 300, "short", "y" * 1000, "z" * 64]
    write_csv(channel, "a.csv", labels)

    assert read(channel).labels.tolist() == labels


def test_an_error_in_a_later_block_names_its_row_in_the_file(
    channel: Channel, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dataset, "CSV_BLOCK_BYTES", 64)
    put(channel, "bad.csv", rows(100, features=2) + "a,1\n")

    with pytest.raises(InputError, match=r"training/bad.csv, row 101: 2 columns where row 1 has 3"):
        read(channel)


def test_files_with_different_label_sets_share_one_coding(channel: Channel) -> None:
    put(channel, "a.csv", "x,1\ny,2\n")
    put(channel, "b.csv", "z,3\ny,4\n")

    assert read(channel).labels.tolist() == ["x", "y", "z", "y"]


def test_a_pipe_mode_fifo_is_read_as_a_stream_that_grows(tmp_path: Path) -> None:
    fifo = tmp_path / "training_0"
    os.mkfifo(fifo)
    text = rows(100_000, features=2, seed=2).encode()
    writer = threading.Thread(target=fifo.write_bytes, args=(text,))
    writer.start()

    data = read(Channel("training", fifo, input_mode="Pipe"))
    writer.join()

    assert data.rows == 100_000
    assert data.labels[:3].tolist() == [
        line.split(b",")[0].decode() for line in text.splitlines()[:3]
    ]
