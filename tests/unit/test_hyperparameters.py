"""Decoding hyperparameters.json in every client's encoding, and validating the values."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.tree import DecisionTreeClassifier

import algorithm
from failure import InputError
from hyperparameters import Hyperparameter, Integer, Null, decode, read, resolve

SPEC = algorithm.HYPERPARAMETERS


@pytest.mark.parametrize(
    ("received", "decoded"),
    [
        ("5", 5),
        ("0.25", 0.25),
        ('"gini"', "gini"),
        ("gini", "gini"),
        ("true", True),
        ("True", "True"),
        ("null", None),
        ("None", "None"),
        ("[64, 32]", [64, 32]),
        ('{"a": 2}', {"a": 2}),
        (5, 5),
        (None, None),
    ],
)
def test_a_value_is_json_decoded_when_it_parses_and_kept_as_text_otherwise(
    received: object, decoded: object
) -> None:
    assert decode(received) == decoded


def test_read_drops_the_platform_keys_and_keeps_the_values_as_received(tmp_path: Path) -> None:
    path = tmp_path / "hyperparameters.json"
    path.write_text(
        json.dumps(
            {
                "max_depth": "5",
                "sagemaker_program": '"train.py"',
                "sagemaker_container_log_level": "20",
                "_tuning_objective_metric": "validation:accuracy",
            }
        )
    )

    assert read(path) == {"max_depth": "5"}


def test_a_missing_file_means_no_hyperparameters(tmp_path: Path) -> None:
    assert read(tmp_path / "hyperparameters.json") == {}


@pytest.mark.parametrize("content", ["[1, 2]", "{not json"])
def test_a_file_that_is_not_a_json_object_fails(tmp_path: Path, content: str) -> None:
    path = tmp_path / "hyperparameters.json"
    path.write_text(content)

    with pytest.raises(InputError, match=r"hyperparameters\.json"):
        read(path)


def test_the_defaults_are_scikit_learns_except_a_fixed_random_state() -> None:
    defaults = resolve({}, SPEC)
    sklearn_defaults = DecisionTreeClassifier().get_params()

    assert defaults.pop("random_state") == 0
    assert all(defaults[name] == sklearn_defaults[name] for name in defaults)
    assert set(SPEC) == set(sklearn_defaults) - {"monotonic_cst"}


@pytest.mark.parametrize(
    ("name", "received", "typed"),
    [
        ("criterion", "entropy", "entropy"),
        ("criterion", '"log_loss"', "log_loss"),
        ("splitter", "random", "random"),
        ("max_depth", "1", 1),
        ("max_depth", "None", None),
        ("max_depth", "null", None),
        ("min_samples_split", "2", 2),
        ("min_samples_split", "1.0", 1.0),
        ("min_samples_split", "0.1", 0.1),
        ("min_samples_leaf", "3", 3),
        ("min_samples_leaf", "0.2", 0.2),
        ("min_weight_fraction_leaf", "0", 0.0),
        ("min_weight_fraction_leaf", "0.5", 0.5),
        ("max_features", "2", 2),
        ("max_features", "0.5", 0.5),
        ("max_features", "sqrt", "sqrt"),
        ("max_features", '"log2"', "log2"),
        ("max_leaf_nodes", "2", 2),
        ("min_impurity_decrease", "0.01", 0.01),
        ("class_weight", "balanced", "balanced"),
        ("class_weight", '{"a": 2, "b": 0.5}', {"a": 2.0, "b": 0.5}),
        ("ccp_alpha", "0.02", 0.02),
        ("random_state", "42", 42),
        ("random_state", "None", None),
    ],
)
def test_accepted_values_get_their_real_type_and_scikit_learn_accepts_them(
    name: str, received: str, typed: object
) -> None:
    params = resolve({name: received}, SPEC)

    assert params[name] == typed
    assert type(params[name]) is type(typed)
    features = np.arange(40, dtype=np.float32).reshape(20, 2)
    labels = np.array(["a", "b"] * 10)
    algorithm.fit(features, labels, params)


@pytest.mark.parametrize(
    ("name", "received", "accepted"),
    [
        ("criterion", "Gini", '"gini" or "entropy" or "log_loss"'),
        ("max_depth", "0", "an integer >= 1, null (no limit)"),
        ("max_depth", "2.5", "an integer >= 1"),
        ("max_depth", "true", "an integer >= 1"),
        ("min_samples_split", "1", "an integer >= 2, a decimal fraction in (0.0, 1.0]"),
        ("min_samples_split", "1.5", "a decimal fraction in (0.0, 1.0]"),
        ("min_samples_leaf", "1.0", "a decimal fraction in (0.0, 1.0)"),
        ("min_weight_fraction_leaf", "0.6", "a number in [0.0, 0.5]"),
        ("max_features", "auto", '"sqrt" or "log2"'),
        ("max_leaf_nodes", "1", "an integer >= 2"),
        ("min_impurity_decrease", "-0.1", "a number >= 0.0"),
        ("min_impurity_decrease", "NaN", "a number >= 0.0"),
        ("class_weight", "{'a': 2}", "a JSON object of class to weight > 0"),
        ("class_weight", '{"a": 0}', "weight > 0"),
        ("random_state", "-1", "an integer in [0, 4294967295]"),
        ("random_state", "1" + "0" * 400, "an integer in [0, 4294967295]"),
        ("ccp_alpha", "1e400", "a number >= 0.0"),
    ],
)
def test_a_bad_value_fails_naming_the_key_the_value_and_what_is_accepted(
    name: str, received: str, accepted: str
) -> None:
    with pytest.raises(InputError) as error:
        resolve({name: received}, SPEC)

    message = str(error.value)
    assert message.startswith(f"Hyperparameter {name}={json.dumps(received)} is not valid")
    assert accepted in message


def test_an_unknown_name_fails_with_the_closest_known_name() -> None:
    with pytest.raises(
        InputError, match=r'Unknown hyperparameter "max_dept"\. Did you mean "max_depth"'
    ):
        resolve({"max_dept": "3"}, SPEC)


def test_a_raw_json_value_is_shown_as_json_in_the_error() -> None:
    spec = {"depth": Hyperparameter(None, (Integer(low=1), Null()))}

    with pytest.raises(InputError, match=r"Hyperparameter depth=0 is not valid"):
        resolve({"depth": 0}, spec)


def test_class_weight_names_are_matched_to_numeric_classes() -> None:
    features = np.arange(40, dtype=np.float32).reshape(20, 2)
    params = resolve({"class_weight": '{"0": 1, "1": 3}'}, SPEC)

    tree = algorithm.fit(features, np.array([0, 1] * 10), params)

    assert tree.class_weight == {0: 1.0, 1: 3.0}


def test_class_weight_naming_an_unknown_class_fails() -> None:
    features = np.arange(40, dtype=np.float32).reshape(20, 2)
    params = resolve({"class_weight": '{"c": 1}'}, SPEC)

    with pytest.raises(InputError, match="not in the training data: c; the classes are a, b"):
        algorithm.fit(features, np.array(["a", "b"] * 10), params)
