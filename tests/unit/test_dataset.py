"""Reading a channel: CSV, gzip, Parquet, nested files, and errors that name the file and row."""

from __future__ import annotations

import csv
import gzip
import io
import os
import sys
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.compose import make_column_transformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

from byoc import dataset
from byoc.channels import Channel
from byoc.errors import InputError
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


def test_a_parquet_feature_column_of_neither_numbers_nor_strings_fails_naming_it(
    channel: Channel,
) -> None:
    table = pa.table({"y": [0, 1], "when": pa.array([1, 2], pa.date32()), "x": [1.0, 2.0]})
    pq.write_table(table, channel.path / "part.parquet")

    with pytest.raises(
        InputError,
        match=r"training/part\.parquet: column 'when' is date32\[day\], but every column other "
        r"than the label \('y'\) must hold numbers or strings",
    ):
        read(channel)


@pytest.mark.parametrize(
    ("content", "message"),
    [
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


def test_an_error_deep_in_a_large_file_still_names_its_row(
    channel: Channel, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 200,000 rows are about 3 MiB: "oops" is in a later block than the first, which makes
    # column 3 numeric.
    monkeypatch.setattr(dataset, "CSV_BLOCK_BYTES", 1 << 20)
    put(channel, "bad.csv", rows(200_000, features=2) + "a,1,oops\n")

    with pytest.raises(
        InputError,
        match=r"training/bad.csv, row 200001, column 3: 'oops' is not a number, but column 3 "
        r"holds numbers: its every cell in the first block of training/bad.csv is a number",
    ):
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


# String features: a DataFrame of float32 and object columns, with np.nan where missing.


def assert_frame(features: object, expected: dict[str, list[object]]) -> None:
    """features is a DataFrame of these columns: float32 for numbers, object holding str else."""
    assert isinstance(features, pd.DataFrame)
    assert list(features.columns) == list(expected)
    for name, values in expected.items():
        column = features[name]
        if all(isinstance(v, str) or v is np.nan for v in values):
            assert column.dtype == object, name
            assert [type(v) for v in column] == [type(v) for v in values], name
            assert column.tolist() == values, name  # np.nan is np.nan: equal in a list
        else:
            assert column.dtype == np.float32, name
            np.testing.assert_array_equal(column.to_numpy(), np.array(values, np.float32))


def test_a_csv_column_with_text_in_the_first_block_holds_strings(channel: Channel) -> None:
    put(channel, "a.csv", "a,red,1.5,1\nb,,2,x\nc,blue,NA,2\nd,NA, 3,01\n")

    data = read(channel)

    assert data.feature_names == ["feature_1", "feature_2", "feature_3"]
    assert data.string_columns == [0, 2]
    assert_frame(
        data.features,
        {
            "feature_1": ["red", np.nan, "blue", np.nan],
            "feature_2": [1.5, 2.0, np.nan, 3.0],
            "feature_3": ["1", "x", "2", "01"],  # numbers in a string column keep their text
        },
    )
    assert data.labels.tolist() == ["a", "b", "c", "d"]


def test_an_all_numeric_channel_is_a_float32_matrix_without_string_columns(
    channel: Channel,
) -> None:
    put(channel, "a.csv", "a,1,NA\nb,2,\n")

    data = read(channel)

    assert isinstance(data.features, np.ndarray)
    assert data.string_columns == []
    np.testing.assert_array_equal(data.features, np.array([[1, np.nan], [2, np.nan]], np.float32))


def test_column_kinds_come_from_the_first_block_and_hold_across_blocks_and_files(
    channel: Channel, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dataset, "CSV_BLOCK_BYTES", 64)
    first = "".join(f"r{i},c{i % 3},{i}\n" for i in range(20))  # blocks of a few rows
    put(channel, "a.csv", first)
    put(channel, "b.csv.gz", gzip.compress(b"s,7,8\nt,,9\n"))

    data = read(channel)

    assert data.string_columns == [0]
    assert_frame(
        data.features,
        {
            "feature_1": [f"c{i % 3}" for i in range(20)] + ["7", np.nan],
            "feature_2": [*range(20), 8, 9],
        },
    )


@pytest.mark.parametrize("later", ["block", "file"])
def test_a_numeric_column_meeting_text_later_fails_saying_it_was_numeric(
    channel: Channel, monkeypatch: pytest.MonkeyPatch, later: str
) -> None:
    monkeypatch.setattr(dataset, "CSV_BLOCK_BYTES", 64)
    numbers = "".join(f"r{i},c,{i}\n" for i in range(20))
    if later == "block":
        put(channel, "a.csv", numbers + "r20,c,twenty\n")
        where = "a.csv, row 21"
    else:
        put(channel, "a.csv", numbers)
        put(channel, "b.csv", "r20,c,20\nr21,c,twenty\n")
        where = "b.csv, row 2"

    with pytest.raises(InputError) as error:
        read(channel)

    assert str(error.value).startswith(
        f"training/{where}, column 3: 'twenty' is not a number, but column 3 holds numbers: "
        "its every cell in the first block of training/a.csv is a number or missing."
    )


def test_a_header_row_is_still_caught_when_other_columns_hold_strings(channel: Channel) -> None:
    put(channel, "a.csv", "label,colour,size\na,red,1\nb,blue,2\n")

    with pytest.raises(InputError) as error:
        read(channel)

    assert str(error.value).startswith(
        "training/a.csv, row 1, column 3: 'size' is not a number (a header row?)"
    )


def test_parquet_string_columns_from_the_schema(channel: Channel) -> None:
    table = pa.table(
        {
            "y": [0, 1, 2],
            "s": pa.array(["a", None, "c"], pa.string()),
            "x": [1.5, None, 3.0],
            "large": pa.array(["u", "v", None], pa.large_string()),
            "dict": pa.array(["p", "q", "p"]).dictionary_encode(),
        }
    )
    pq.write_table(table, channel.path / "part.parquet")

    data = read(channel)

    assert data.string_columns == [0, 2, 3]
    assert data.feature_names == ["s", "x", "large", "dict"]
    assert_frame(
        data.features,
        {
            "s": ["a", np.nan, "c"],
            "x": [1.5, np.nan, 3.0],
            "large": ["u", "v", np.nan],
            "dict": ["p", "q", "p"],
        },
    )


def test_parquet_files_disagreeing_on_a_column_kind_fail_naming_both(channel: Channel) -> None:
    pq.write_table(pa.table({"y": [0], "x": ["a"]}), channel.path / "a.parquet")
    pq.write_table(pa.table({"y": [1], "x": [2.0]}), channel.path / "b.parquet")

    with pytest.raises(
        InputError,
        match=r"training/b\.parquet: column 'x' holds numbers \(double\), but in "
        r"training/a\.parquet it holds strings",
    ):
        read(channel)


def test_string_features_impute_and_encode_in_a_scikit_learn_pipeline(channel: Channel) -> None:
    put(channel, "a.csv", "0,red,1\n1,blue,2\n1,blue,NA\n0,,4\n")

    data = read(channel)
    strings = make_column_transformer(
        (
            make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder()),
            data.string_columns,
        ),
        remainder=SimpleImputer(),
    )

    # The missing colour is imputed as the most frequent one, blue: SimpleImputer saw it.
    np.testing.assert_allclose(
        strings.fit_transform(data.features),
        [[0, 1, 1], [1, 0, 2], [1, 0, 7 / 3], [1, 0, 4]],
        rtol=1e-6,
    )


def test_string_features_without_pandas_say_how_to_add_it(
    channel: Channel, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas: ImportError
    put(channel, "a.csv", "a,1,red\n")

    with pytest.raises(InputError) as error:
        read(channel)

    assert str(error.value) == (
        "training/a.csv: column 'feature_2' holds strings: string features need pandas; "
        "add pandas to container/requirements.in and run make lock."
    )


def test_numeric_features_need_no_pandas(channel: Channel, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)
    put(channel, "a.csv", "a,1,2\n")

    assert read(channel).features.tolist() == [[1, 2]]


def test_validation_data_read_with_the_training_string_columns_keeps_their_kinds(
    tmp_path: Path,
) -> None:
    validation = Channel("validation", tmp_path / "validation")
    put(validation, "v.csv", "a,1,2\nb,NA,3\n")  # column 2 alone would be numeric

    data = dataset.read(validation, log=lambda _: None, string_columns=[0])

    assert data.string_columns == [0]
    assert_frame(data.features, {"feature_1": ["1", np.nan], "feature_2": [2, 3]})


def test_validation_text_in_a_column_of_training_numbers_fails_saying_so(
    tmp_path: Path,
) -> None:
    validation = Channel("validation", tmp_path / "validation")
    put(validation, "v.csv", "a,x,2\n")

    with pytest.raises(InputError) as error:
        dataset.read(validation, log=lambda _: None, string_columns=[])

    assert str(error.value).startswith(
        "validation/v.csv, row 1, column 2: 'x' is not a number (a header row?), but column 2 "
        "holds numbers in the training data."
    )


# Labels: numbers for regressors, classes for classifiers.


@pytest.mark.parametrize(
    ("labels", "values", "dtype"),
    [
        (["0", "1", "2", "1"], [0, 1, 2, 1], np.int64),
        (["1.5", "-2", "3e2", "0.1"], [1.5, -2.0, 300.0, 0.1], np.float64),
        (["b", "1", "a", "1"], ["b", "1", "a", "1"], np.str_),
    ],
)
def test_csv_labels_that_are_numbers_are_int64_or_float64(
    channel: Channel, labels: list[str], values: list[object], dtype: type
) -> None:
    put(channel, "a.csv", "".join(f"{label},1\n" for label in labels))

    data = read(channel)

    assert data.labels.tolist() == values
    assert data.labels.dtype.type is dtype


def test_many_distinct_float_labels_are_read_exactly(
    channel: Channel, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dataset, "CSV_BLOCK_BYTES", 1 << 16)  # many blocks
    targets = np.random.default_rng(3).normal(size=20_000) * 1000
    put(channel, "a.csv", "".join(f"{t!r},{i}\n" for i, t in enumerate(targets.tolist())))

    # Read as numbers, not kept as text and converted at the end, which is slow for many.
    monkeypatch.setattr(dataset, "_label_values", None)
    data = read(channel)

    assert data.labels.dtype == np.float64
    np.testing.assert_array_equal(data.labels, targets)


@pytest.mark.parametrize(
    ("later", "values"),
    [
        ("2.5", [0.0, 1.0, 2.5]),  # ints then a float: floats, as if read together
        ("x", ["0", "1", "x"]),  # numbers then text: text, as if read together
    ],
)
def test_labels_that_stop_being_ints_or_numbers_in_a_later_file_widen(
    channel: Channel, monkeypatch: pytest.MonkeyPatch, later: str, values: list[object]
) -> None:
    put(channel, "a.csv", "0,1\n1,2\n")
    put(channel, "b.csv", f"{later},3\n")
    if later == "2.5":  # ints widen to floats, without turning into text on the way
        monkeypatch.setattr(dataset, "_label_values", None)

    assert read(channel).labels.tolist() == values


def test_parquet_float_labels_stay_floats(channel: Channel) -> None:
    targets = np.random.default_rng(4).normal(size=100_000)
    pq.write_table(pa.table({"y": targets, "x": np.arange(100_000)}), channel.path / "a.parquet")

    data = read(channel)

    assert data.labels.dtype == np.float64
    np.testing.assert_array_equal(data.labels, targets)
