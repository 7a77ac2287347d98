"""hyperparameters.json: decoded in every client's encoding, validated by the estimator itself."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestClassifier
from sklearn.feature_selection import SelectFromModel
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier
from sklearn.utils._param_validation import InvalidParameterError

from byoc import hyperparameters
from byoc.errors import InputError
from byoc.hyperparameters import configure, decode, read, split


def pipeline() -> Pipeline:
    return Pipeline([("scale", StandardScaler()), ("model", DecisionTreeClassifier())])


ESTIMATORS: dict[str, Callable[[], Any]] = {
    "DecisionTreeClassifier": DecisionTreeClassifier,
    "RandomForestClassifier": RandomForestClassifier,
    "HistGradientBoostingRegressor": HistGradientBoostingRegressor,
    "Pipeline": pipeline,
}


# ---------------------------------------------------------------------------- decode


@pytest.mark.parametrize(
    ("received", "decoded"),
    [
        ("5", 5),
        ("-3", -3),
        ("0.25", 0.25),
        ("5.0", 5.0),
        ("1e-3", 0.001),
        ('"gini"', "gini"),
        ('"5"', "5"),
        ("gini", "gini"),
        ("log_loss", "log_loss"),
        ("true", True),
        ("false", False),
        ("null", None),
        ("True", True),
        ("False", False),
        ("None", None),
        ("[64, 32]", [64, 32]),
        ('{"a": 2}', {"a": 2}),
        ("{'a': 2}", {"a": 2}),
        ("{'setosa': 2, 0: 1.5}", {"setosa": 2, 0: 1.5}),
        ("[64, 'relu', None, True]", [64, "relu", None, True]),
        ("(64, 32)", (64, 32)),
        (" [1, 2] ", [1, 2]),
        ("{'a': }", "{'a': }"),
        ("[a, b]", "[a, b]"),
        ("(gini)", "(gini)"),
        ("'gini'", "'gini'"),
        ("1_000", "1_000"),
        ("", ""),
        (" 7 ", 7),
        (5, 5),
        (0.5, 0.5),
        (True, True),
        (None, None),
        ([1, 2], [1, 2]),
    ],
)
def test_a_value_is_decoded_as_json_or_a_python_word_and_kept_as_text_otherwise(
    received: object, decoded: object
) -> None:
    value = decode(received)

    assert value == decoded
    assert type(value) is type(decoded)


@pytest.mark.parametrize(
    "code",
    [
        "[__import__('os').system('touch /tmp/pwned')]",
        "(print('called'),)",
        "{'a': open('/etc/passwd')}",
        "[().__class__.__bases__[0].__subclasses__()]",
        "[1 + 2]",
        "[" * 5000 + "]" * 5000,
    ],
)
def test_a_python_container_holding_code_stays_text_and_is_never_run(
    code: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert decode(code) == code
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("word", ["none", "NONE", "TRUE", "true ", "Null"])
def test_only_pythons_exact_spelling_of_none_true_false_is_a_python_word(word: str) -> None:
    try:
        expected = json.loads(word)
    except ValueError:
        expected = word
    assert decode(word) == expected


# ---------------------------------------------------------------------------- read and split


def test_read_drops_the_platform_keys_and_keeps_the_values_as_received(tmp_path: Path) -> None:
    path = tmp_path / "hyperparameters.json"
    path.write_text(
        json.dumps(
            {
                "max_depth": "5",
                "criterion": '"gini"',
                "sagemaker_program": '"train.py"',
                "sagemaker_container_log_level": "20",
                "_tuning_objective_metric": "validation:accuracy",
            }
        )
    )

    assert read(path) == {"max_depth": "5", "criterion": '"gini"'}


def test_a_missing_file_means_no_hyperparameters(tmp_path: Path) -> None:
    assert read(tmp_path / "hyperparameters.json") == {}


@pytest.mark.parametrize("content", ["[1, 2]", "{not json", '"max_depth"'])
def test_a_file_that_is_not_a_json_object_fails_naming_it(tmp_path: Path, content: str) -> None:
    path = tmp_path / "hyperparameters.json"
    path.write_text(content)

    with pytest.raises(InputError, match=r"hyperparameters\.json"):
        read(path)


@pytest.mark.parametrize(
    ("received", "label"),
    [("target", "target"), ('"target"', "target"), ("3", "3"), ("2.5", "2.5"), (7, "7")],
)
def test_split_takes_label_column_out_as_a_column_name(received: object, label: str) -> None:
    data, estimator = split({"label_column": received, "max_depth": "3", "criterion": "gini"})

    assert data == {"label_column": label}
    assert estimator == {"max_depth": "3", "criterion": "gini"}


def test_split_without_data_hyperparameters_passes_everything_through() -> None:
    received = {"max_depth": "None", "class_weight": '{"a": 2}'}

    assert split(received) == ({}, received)


@pytest.mark.parametrize("received", ["", '""', "true", "True", "[1]", '{"a": 1}'])
def test_a_label_column_that_is_no_column_name_fails(received: str) -> None:
    with pytest.raises(InputError) as error:
        split({"label_column": received})

    assert str(error.value).startswith(f"Hyperparameter label_column={json.dumps(received)}")
    assert "expected a column name" in str(error.value)


def test_label_column_is_no_hyperparameter_of_the_estimator() -> None:
    with pytest.raises(InputError, match='Unknown hyperparameter "label_column"'):
        configure(DecisionTreeClassifier(), {"label_column": "y"})


# ---------------------------------------------------------------------------- configure: accepted


@pytest.mark.parametrize(
    ("estimator", "received", "expected"),
    [
        ("DecisionTreeClassifier", {"max_depth": "3"}, {"max_depth": 3}),
        ("DecisionTreeClassifier", {"max_depth": "None"}, {"max_depth": None}),
        ("DecisionTreeClassifier", {"max_depth": "null"}, {"max_depth": None}),
        ("DecisionTreeClassifier", {"max_depth": 4}, {"max_depth": 4}),
        ("DecisionTreeClassifier", {"criterion": "entropy"}, {"criterion": "entropy"}),
        ("DecisionTreeClassifier", {"criterion": '"log_loss"'}, {"criterion": "log_loss"}),
        ("DecisionTreeClassifier", {"min_samples_split": "0.1"}, {"min_samples_split": 0.1}),
        ("DecisionTreeClassifier", {"max_features": "sqrt"}, {"max_features": "sqrt"}),
        ("DecisionTreeClassifier", {"class_weight": '{"a": 2}'}, {"class_weight": {"a": 2}}),
        ("DecisionTreeClassifier", {"class_weight": "balanced"}, {"class_weight": "balanced"}),
        (
            "DecisionTreeClassifier",
            {"class_weight": "{'setosa': 2, 'versicolor': 1}"},
            {"class_weight": {"setosa": 2, "versicolor": 1}},
        ),
        ("DecisionTreeClassifier", {"random_state": "None"}, {"random_state": None}),
        (
            "RandomForestClassifier",
            {"n_estimators": "10", "bootstrap": "False", "max_samples": "None"},
            {"n_estimators": 10, "bootstrap": False, "max_samples": None},
        ),
        ("RandomForestClassifier", {"max_features": "0.5"}, {"max_features": 0.5}),
        (
            "HistGradientBoostingRegressor",
            {"learning_rate": "0.05", "max_iter": "50", "loss": "absolute_error"},
            {"learning_rate": 0.05, "max_iter": 50, "loss": "absolute_error"},
        ),
        ("HistGradientBoostingRegressor", {"early_stopping": "true"}, {"early_stopping": True}),
        ("Pipeline", {"model__max_depth": "2"}, {"model__max_depth": 2}),
        (
            "Pipeline",
            {"scale__with_mean": "False", "model__criterion": "entropy"},
            {"scale__with_mean": False, "model__criterion": "entropy"},
        ),
    ],
)
def test_accepted_values_are_set_with_their_real_type(
    estimator: str, received: dict[str, Any], expected: dict[str, Any]
) -> None:
    template = ESTIMATORS[estimator]()

    configured = configure(template, received)

    params = configured.get_params(deep=True)
    for name, value in expected.items():
        assert params[name] == value
        assert type(params[name]) is type(value)


def test_configure_sets_no_other_parameter() -> None:
    template = RandomForestClassifier(n_estimators=7, random_state=1)
    before = template.get_params()

    after = configure(template, {"max_depth": "3"}).get_params()

    assert {k: v for k, v in after.items() if before[k] != v} == {"max_depth": 3}


# ---------------------------------------------------------------------------- configure: refused


@pytest.mark.parametrize(
    ("estimator", "received", "closest"),
    [
        ("DecisionTreeClassifier", "max_dept", "max_depth"),
        ("DecisionTreeClassifier", "criteria", "criterion"),
        ("RandomForestClassifier", "n_estimator", "n_estimators"),
        ("HistGradientBoostingRegressor", "learning_rat", "learning_rate"),
        ("HistGradientBoostingRegressor", "max_iters", "max_iter"),
        ("Pipeline", "model__max_dept", "model__max_depth"),
        ("Pipeline", "max_depth", "model__max_depth"),
    ],
)
def test_an_unknown_name_fails_with_the_closest_known_name(
    estimator: str, received: str, closest: str
) -> None:
    with pytest.raises(InputError) as error:
        configure(ESTIMATORS[estimator](), {received: "3"})

    message = str(error.value)
    assert message.startswith(f'Unknown hyperparameter "{received}". Did you mean "{closest}"?')
    for name in ESTIMATORS[estimator]().get_params(deep=True):
        assert name in message


def test_an_unknown_name_like_no_other_fails_without_a_guess() -> None:
    with pytest.raises(InputError) as error:
        configure(DecisionTreeClassifier(), {"zzzz": "1"})

    assert str(error.value).startswith('Unknown hyperparameter "zzzz". Accepted: ')


def scikit_learns_message(estimator: str, name: str, value: Any) -> str:
    """What scikit-learn itself says when fit meets the value: the description quoted."""
    template = ESTIMATORS[estimator]().set_params(**{name: value})
    features = np.zeros((4, 2), dtype=np.float32)
    with pytest.raises(InvalidParameterError) as error:
        template.fit(features, [0, 1, 0, 1])
    return str(error.value)


@pytest.mark.parametrize(
    ("estimator", "name", "received", "value"),
    [
        ("DecisionTreeClassifier", "max_depth", "0", 0),
        ("DecisionTreeClassifier", "max_depth", "5.0", 5.0),
        ("DecisionTreeClassifier", "max_depth", 0, 0),
        ("DecisionTreeClassifier", "criterion", "gino", "gino"),
        ("DecisionTreeClassifier", "criterion", "Gini", "Gini"),
        ("DecisionTreeClassifier", "min_samples_split", "1", 1),
        ("DecisionTreeClassifier", "class_weight", "{a: 2}", "{a: 2}"),
        ("DecisionTreeClassifier", "random_state", "-1", -1),
        ("DecisionTreeClassifier", "min_impurity_decrease", "NaN", float("nan")),
        ("DecisionTreeClassifier", "ccp_alpha", "1e400", float("inf")),
        ("RandomForestClassifier", "n_estimators", "0", 0),
        ("RandomForestClassifier", "n_estimators", "5.0", 5.0),
        ("RandomForestClassifier", "bootstrap", "yes", "yes"),
        ("HistGradientBoostingRegressor", "max_iter", "2.5", 2.5),
        ("HistGradientBoostingRegressor", "learning_rate", "-1", -1),
        ("HistGradientBoostingRegressor", "loss", "gino", "gino"),
        ("Pipeline", "model__max_depth", "0", 0),
        ("Pipeline", "model__criterion", "gino", "gino"),
        ("Pipeline", "scale__with_mean", "maybe", "maybe"),
    ],
)
def test_a_bad_value_fails_naming_the_key_the_value_and_what_scikit_learn_accepts(
    estimator: str, name: str, received: Any, value: Any
) -> None:
    with pytest.raises(InputError) as error:
        configure(ESTIMATORS[estimator](), {name: received})

    message = str(error.value)
    assert message.startswith(f"Hyperparameter {name}={json.dumps(received)} is not valid: ")
    parameter = name.rpartition("__")[2]
    own = scikit_learns_message(estimator, name, value)
    # "The 'x' parameter of Y must be <what is accepted>. Got <value> instead."
    accepted, got, _ = own.partition(" Got ")
    assert accepted.startswith(f"The '{parameter}' parameter of ")
    assert got
    assert accepted in message
    assert not message.endswith("..")


def test_with_several_hyperparameters_the_bad_one_is_named() -> None:
    received = {"max_depth": "3", "criterion": "gino", "min_samples_leaf": "2"}

    with pytest.raises(InputError, match=r'^Hyperparameter criterion="gino" is not valid'):
        configure(DecisionTreeClassifier(), received)


@pytest.mark.parametrize(
    "received",
    [
        {"model__max_depth": "0", "select__estimator__max_depth": "3"},
        {"select__estimator__max_depth": "3", "model__max_depth": "0"},
    ],
    ids=["bad one first", "bad one second"],
)
def test_in_a_pipeline_the_bad_value_of_a_shared_parameter_name_is_the_one_named(
    received: dict[str, str],
) -> None:
    template = Pipeline(
        [("select", SelectFromModel(DecisionTreeClassifier())), ("model", DecisionTreeClassifier())]
    )

    with pytest.raises(InputError) as error:
        configure(template, received)

    assert str(error.value).startswith('Hyperparameter model__max_depth="0" is not valid')


def test_values_are_checked_before_any_data_is_read() -> None:
    """configure runs scikit-learn's check itself: an estimator that fits nothing still fails."""
    template = DecisionTreeClassifier()

    with pytest.raises(InputError):
        configure(template, {"max_depth": "0"})
    assert not hasattr(template, "tree_")


# ---------------------------------------------------------------------------- scikit-learn's side


@pytest.mark.parametrize(
    ("estimator", "name", "value"),
    [
        ("DecisionTreeClassifier", "max_depth", 0),
        ("RandomForestClassifier", "n_estimators", 0),
        ("HistGradientBoostingRegressor", "max_iter", 2.5),
        ("Pipeline", "memory", 5),
    ],
)
def test_scikit_learns_private_validate_params_still_checks_without_fitting(
    estimator: str, name: str, value: Any
) -> None:
    """hyperparameters.validate_params calls BaseEstimator._validate_params, which is private:
    when a scikit-learn release removes or changes it, this fails the build (without it, a bad
    value would be found only by fit, after the data is read)."""
    good = ESTIMATORS[estimator]()
    check = getattr(good, "_validate_params", None)
    assert callable(check), "scikit-learn no longer has BaseEstimator._validate_params"
    assert check() is None

    bad = ESTIMATORS[estimator]().set_params(**{name: value})
    with pytest.raises(InvalidParameterError, match=f"The '{name}' parameter of"):
        bad._validate_params()
    with pytest.raises(InvalidParameterError, match=f"The '{name}' parameter of"):
        hyperparameters.validate_params(bad)
    assert issubclass(InvalidParameterError, ValueError)
    assert issubclass(InvalidParameterError, TypeError)


@pytest.mark.parametrize("estimator", sorted(ESTIMATORS))
def test_scikit_learns_message_is_still_the_one_explain_recognises(estimator: str) -> None:
    """_explain finds the parameter's name in "The 'x' parameter of Y must be ..."."""
    name = "model__max_depth" if estimator == "Pipeline" else "max_depth"
    if estimator == "HistGradientBoostingRegressor":
        name = "max_iter"

    with pytest.raises(InputError) as error:
        configure(ESTIMATORS[estimator](), {name: "-4"})

    assert str(error.value).startswith(f'Hyperparameter {name}="-4" is not valid: The ')
