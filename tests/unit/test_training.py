"""The job in-process with any model module: metrics, the model directory, exit codes, failures."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from model_modules import (
    BOOSTED_REGRESSOR,
    FOREST_CLASSIFIER,
    FOREST_REGRESSOR,
    PIPELINE,
    TREE_CLASSIFIER,
    TREE_REGRESSOR,
    ModuleFactory,
)
from sklearn.tree import DecisionTreeClassifier

from byoc import artifacts, defaults, fasttree, hooks, training
from byoc.environment import Paths
from byoc.failure import EXIT_INPUT_ERROR, EXIT_INTERNAL_ERROR
from training_job import PROGRAM_DIR, Job, rows

CLASSIFIER_METRICS = {f"{c}:{m}" for c in ("train", "validation") for m in ("accuracy", "f1_macro")}
REGRESSOR_METRICS = {f"{c}:{m}" for c in ("train", "validation") for m in ("rmse", "mae", "r2")}


@pytest.fixture
def job(tmp_path: Path) -> Job:
    return Job(tmp_path / "opt_ml")


@pytest.fixture
def use_module(model_module: ModuleFactory, monkeypatch: pytest.MonkeyPatch) -> ModuleFactory:
    """Write a model module and make it the job's ($BYOC_PREDICTOR), as `train` would find it."""

    def use(source: str) -> Path:
        path = model_module(source)
        monkeypatch.setenv(hooks.PREDICTOR_ENV, str(path))
        hooks.load.cache_clear()
        return path

    return use


def numeric_rows(n: int, features: int = 3, seed: int = 0, sign: float = 1.0) -> str:
    """CSV text: a numeric label (first) that the features predict."""
    rng = np.random.default_rng(seed)
    values = rng.random((n, features))
    target = sign * (3 * values[:, 0] - values[:, 1]) + 0.05 * rng.normal(size=n)
    return "".join(
        f"{t:.5f}," + ",".join(f"{v:.5f}" for v in row) + "\n"
        for t, row in zip(target, values, strict=True)
    )


def run(job: Job) -> int:
    return training.main(Paths(job.base))


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def classification_job(job: Job) -> Job:
    job.data("training/a.csv", rows(200, seed=1))
    job.data("validation/a.csv", rows(60, seed=2))
    return job


def regression_job(job: Job) -> Job:
    job.data("training/a.csv", numeric_rows(200, seed=1))
    job.data("validation/a.csv", numeric_rows(60, seed=2))
    return job


# ---------------------------------------------------------------------------- a good job


@pytest.mark.usefixtures("model_module")
def test_the_demo_module_trains_a_tree_with_metrics_and_a_complete_model_directory(
    job: Job, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(hooks.PREDICTOR_ENV, raising=False)
    classification_job(job).hyperparameters({"max_depth": "3", "sagemaker_region": '"x"'})

    assert run(job) == 0

    assert not job.failure.exists()
    metrics = job.metrics()
    assert set(metrics) == CLASSIFIER_METRICS
    assert all(0.5 <= value <= 1.0 for value in metrics.values())
    metadata = job.metadata()
    assert metadata["estimator"] == "DecisionTreeClassifier"
    assert metadata["kind"] == "classifier"
    assert metadata["classes"] == ["class_0", "class_1"]
    assert metadata["n_features"] == 3
    assert metadata["feature_names"] == ["feature_1", "feature_2", "feature_3"]
    assert metadata["string_columns"] == []
    assert metadata["label_column"] is None
    # Every parameter of the estimator trained, as set: the demo's own and the job's.
    assert (
        metadata["hyperparameters"]
        == DecisionTreeClassifier(random_state=0, max_depth=3).get_params()
    )
    assert metadata["training_rows"] == 200
    assert set(metadata) >= {"sklearn", "numpy"}
    files = metadata["files"]
    assert set(files) == {defaults.SKOPS_FILE, fasttree.FILE}
    for name, sha256 in files.items():
        assert digest(job.model_dir / name) == sha256
    assert sorted(p.name for p in job.model_dir.iterdir()) == sorted(
        [*files, artifacts.METADATA_FILE]
    )
    assert 1 <= fasttree.load(job.model_dir / fasttree.FILE).depth <= 3


@pytest.mark.parametrize(
    ("source", "kind", "files", "estimator"),
    [
        (TREE_CLASSIFIER, "classifier", {"model.skops", "tree.npz"}, "DecisionTreeClassifier"),
        (TREE_REGRESSOR, "regressor", {"model.skops", "tree.npz"}, "DecisionTreeRegressor"),
        (FOREST_CLASSIFIER, "classifier", {"model.skops"}, "RandomForestClassifier"),
        (FOREST_REGRESSOR, "regressor", {"model.skops"}, "RandomForestRegressor"),
        (BOOSTED_REGRESSOR, "regressor", {"model.skops"}, "HistGradientBoostingRegressor"),
        (PIPELINE, "classifier", {"model.skops"}, "Pipeline"),
    ],
    ids=lambda v: v if isinstance(v, str) and v.isidentifier() else "",
)
def test_any_estimator_trains_with_the_metrics_of_its_kind_and_serves_its_predictions(
    job: Job,
    use_module: ModuleFactory,
    source: str,
    kind: str,
    files: set[str],
    estimator: str,
) -> None:
    path = use_module(source)
    (classification_job if kind == "classifier" else regression_job)(job)

    assert run(job) == 0, job.failure.read_text()

    assert set(job.metrics()) == (CLASSIFIER_METRICS if kind == "classifier" else REGRESSOR_METRICS)
    metadata = job.metadata()
    assert (metadata["estimator"], metadata["kind"]) == (estimator, kind)
    assert ("classes" in metadata) is (kind == "classifier")
    assert set(metadata["files"]) == files
    model_hooks = hooks.load(path)
    model = model_hooks.model_fn(job.model_dir)
    asked = defaults.Request(accept="application/json")
    row = np.array([[0.5, 0.5, 0.5]])
    records = model_hooks.output_fn(
        model_hooks.predict_fn(model_hooks.input_fn(row, model), model, asked), model, asked
    )
    assert len(records) == 1
    assert isinstance(records[0], str if kind == "classifier" else float)


def test_a_regressors_metrics_are_its_errors(job: Job, use_module: ModuleFactory) -> None:
    use_module(TREE_REGRESSOR)
    regression_job(job).hyperparameters({"max_depth": "2"})

    assert run(job) == 0

    metrics = job.metrics()
    assert metrics["train:rmse"] >= metrics["train:mae"] > 0
    assert metrics["train:r2"] < 1.0
    assert metrics["validation:rmse"] > 0


# ---------------------------------------------------------------------------- metric definitions


@pytest.mark.parametrize(
    ("source", "metrics"),
    [(TREE_CLASSIFIER, ("accuracy", "f1_macro")), (TREE_REGRESSOR, ("rmse", "mae", "r2"))],
    ids=["classifier", "regressor"],
)
def test_metric_definitions_match_the_lines_the_job_logs(
    job: Job,
    use_module: ModuleFactory,
    capsys: pytest.CaptureFixture[str],
    source: str,
    metrics: tuple[str, ...],
) -> None:
    use_module(source)
    if metrics[0] == "rmse":
        # Validation data that the model gets badly wrong: a negative R², as a regex must read.
        job.data("training/a.csv", numeric_rows(200, seed=1))
        job.data("validation/a.csv", numeric_rows(60, seed=2, sign=-1.0))
    else:
        classification_job(job)

    definitions = training.metric_definitions(hooks.load())
    assert run(job) == 0
    log = capsys.readouterr().out

    assert [d["Name"] for d in definitions] == [
        f"{channel}:{name}" for channel in ("validation", "train") for name in metrics
    ]
    written = job.metrics()
    assert {d["Name"] for d in definitions} == set(written)
    for definition in definitions:
        found = re.findall(definition["Regex"], log)
        assert len(found) == 1, (definition, log)
        assert float(found[0]) == pytest.approx(written[definition["Name"]], abs=1e-4)
    if metrics[0] == "rmse":
        assert written["validation:r2"] < 0


def test_train_prints_the_metric_definitions_of_the_model_module(
    model_module: ModuleFactory,
) -> None:
    path = model_module(TREE_REGRESSOR)
    environ = {
        **os.environ,
        hooks.PREDICTOR_ENV: str(path),
        "PYTHONPATH": str(PROGRAM_DIR),
    }

    result = subprocess.run(
        [sys.executable, str(PROGRAM_DIR / "train"), "--metric-definitions"],
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert printed == training.metric_definitions(hooks.load(path))
    assert {d["Name"] for d in printed} == REGRESSOR_METRICS


def test_metric_definitions_of_a_module_without_estimator_fail_naming_it(
    model_module: ModuleFactory,
) -> None:
    path = model_module("TRUSTED_TYPES = []\n")

    with pytest.raises(hooks.HookError, match=r"estimator\(\)"):
        training.metric_definitions(hooks.load(path))


# ---------------------------------------------------------------------------- exit 2: the input


@pytest.mark.parametrize(
    ("source", "received", "reason"),
    [
        (TREE_CLASSIFIER, {"max_depth": "0"}, 'Hyperparameter max_depth="0" is not valid: The '),
        (TREE_CLASSIFIER, {"criterion": "gino"}, 'Hyperparameter criterion="gino" is not valid'),
        (TREE_CLASSIFIER, {"max_dept": "3"}, 'Unknown hyperparameter "max_dept". Did you mean'),
        (TREE_CLASSIFIER, {"class_weight": '{"z": 2}'}, "Hyperparameter class_weight names"),
        (TREE_REGRESSOR, {"criterion": "gini"}, 'Hyperparameter criterion="gini" is not valid'),
        (FOREST_CLASSIFIER, {"n_estimators": "5.0"}, 'Hyperparameter n_estimators="5.0" is not'),
        (
            FOREST_CLASSIFIER,
            {"oob_score": "true", "bootstrap": "false"},
            "RandomForestClassifier cannot fit the training data: ",
        ),
        (FOREST_REGRESSOR, {"max_samples": "-1"}, 'Hyperparameter max_samples="-1" is not valid'),
        (BOOSTED_REGRESSOR, {"max_iter": "2.5"}, 'Hyperparameter max_iter="2.5" is not valid'),
        (BOOSTED_REGRESSOR, {"loss": "gino"}, 'Hyperparameter loss="gino" is not valid'),
        (
            BOOSTED_REGRESSOR,
            {"categorical_features": "[7]"},
            "HistGradientBoostingRegressor cannot fit the training data: ",
        ),
        (PIPELINE, {"model__max_depth": "0"}, 'Hyperparameter model__max_depth="0" is not valid'),
        (PIPELINE, {"max_depth": "3"}, 'Unknown hyperparameter "max_depth". Did you mean "model__'),
        (PIPELINE, {"model": "3"}, "Hyperparameter model"),
        (TREE_CLASSIFIER, {"label_column": "y"}, "Hyperparameter label_column='y' applies to "),
    ],
    ids=lambda v: json.dumps(v) if isinstance(v, dict) else "",
)
def test_a_bad_hyperparameter_of_any_estimator_exits_2_with_the_reason_first(
    job: Job, use_module: ModuleFactory, source: str, received: dict[str, str], reason: str
) -> None:
    use_module(source)
    regressor = source in (TREE_REGRESSOR, FOREST_REGRESSOR, BOOSTED_REGRESSOR)
    (regression_job if regressor else classification_job)(job).hyperparameters(received)

    assert run(job) == EXIT_INPUT_ERROR, job.failure.read_text()

    assert job.failure_reason().startswith(reason)
    assert "Traceback" not in job.failure.read_text()
    assert not (job.model_dir / artifacts.METADATA_FILE).exists()


@pytest.mark.parametrize(
    ("files", "reason"),
    [
        (
            {"training/a.csv": "same,1,2\nsame,3,4\n"},
            "The training data has a single class ('same' in all 2 rows)",
        ),
        ({"training/a.json": "{}"}, 'Channel "training" has no data files'),
        ({"data/a.csv": rows(5)}, 'The job has no "training" channel (channels found: "data")'),
        (
            {"training/a.csv": rows(20), "validation/a.csv": "class_0,1\n"},
            "The validation data",
        ),
    ],
)
def test_bad_data_exits_2_with_the_reason_first(
    job: Job, use_module: ModuleFactory, files: dict[str, str], reason: str
) -> None:
    use_module(TREE_CLASSIFIER)
    for name, content in files.items():
        job.data(name, content)

    assert run(job) == EXIT_INPUT_ERROR

    assert job.failure_reason().startswith(reason)
    assert not (job.model_dir / artifacts.METADATA_FILE).exists()


def test_an_input_error_of_an_own_hook_exits_2_with_its_message(
    job: Job, use_module: ModuleFactory
) -> None:
    use_module(
        TREE_CLASSIFIER
        + """

from byoc.errors import InputError


def fit(estimator, features, labels):
    raise InputError(f"{len(labels)} rows are too few for this model: send 1000.")
"""
    )
    classification_job(job)

    assert run(job) == EXIT_INPUT_ERROR

    assert job.failure_reason() == "200 rows are too few for this model: send 1000."


def test_a_sharded_channel_on_several_hosts_exits_2(job: Job, use_module: ModuleFactory) -> None:
    use_module(TREE_CLASSIFIER)
    classification_job(job)
    job.config("resourceconfig.json", {"current_host": "algo-1", "hosts": ["algo-1", "algo-2"]})
    job.channels(training={"S3DistributionType": "ShardedByS3Key"})

    assert run(job) == EXIT_INPUT_ERROR
    assert "set S3DistributionType to FullyReplicated for channel training" in (
        job.failure_reason()
    )


def test_a_host_that_does_not_lead_exits_0_without_a_model(
    job: Job, use_module: ModuleFactory
) -> None:
    use_module(TREE_CLASSIFIER)
    classification_job(job)
    job.config("resourceconfig.json", {"current_host": "algo-2", "hosts": ["algo-1", "algo-2"]})

    assert run(job) == 0
    assert not job.model_dir.exists()
    assert not job.failure.exists()


# ---------------------------------------------------------------------------- exit 1: the code


def test_a_module_lacking_trusted_types_exits_1_saying_what_to_add(
    job: Job, use_module: ModuleFactory
) -> None:
    use_module(TREE_CLASSIFIER.replace("TRUSTED_TYPES", "UNUSED"))
    classification_job(job)

    assert run(job) == EXIT_INTERNAL_ERROR

    reason = job.failure_reason()
    assert reason.startswith("serve could not load this DecisionTreeClassifier: ")
    assert "skops does not trust sklearn.tree._tree.Tree" in reason
    assert "add them to TRUSTED_TYPES in your model module" in reason
    assert "Traceback" in job.failure.read_text()
    assert not job.model_dir.exists() or list(job.model_dir.iterdir()) == []


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ("import no_such_module_here\n", "The model module cannot be used: importing "),
        ("TRUSTED_TYPES = []\n", "The model module cannot be used: "),
    ],
    ids=["import error", "no estimator"],
)
def test_a_module_that_cannot_be_used_exits_1_naming_it(
    job: Job, use_module: ModuleFactory, source: str, reason: str
) -> None:
    path = use_module(source)
    classification_job(job)

    assert run(job) == EXIT_INTERNAL_ERROR

    assert job.failure_reason().startswith(reason)
    assert str(path) in job.failure_reason()


def test_another_error_of_an_own_hook_exits_1_with_its_traceback(
    job: Job, use_module: ModuleFactory
) -> None:
    use_module(
        TREE_CLASSIFIER
        + """

def evaluate(estimator, features, labels):
    raise RuntimeError("metrics broke")
"""
    )
    classification_job(job)

    assert run(job) == EXIT_INTERNAL_ERROR

    assert job.failure_reason() == (
        "Training failed on an internal error: RuntimeError: metrics broke"
    )
    assert 'raise RuntimeError("metrics broke")' in job.failure.read_text()
    assert not (job.model_dir / artifacts.METADATA_FILE).exists()
