"""Part 3 of the notebook: the functions its cells call, against moto's SageMaker on loopback.

moto answers every call the walkthrough makes (S3 upload, CreateTrainingJob, CreateModel,
CreateEndpointConfig with two variants, CreateEndpoint, InvokeEndpoint, CreateTransformJob,
UpdateEndpointWeightsAndCapacities, the Delete calls), so these tests catch SDK and API drift in the
calls and their parameters. The image itself is tested by the functional and container tiers.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import moto_sagemaker
import pytest
import sagemaker_walkthrough as walkthrough

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "local_test" / "test_dir" / "input" / "data"
TRAIN = REPO / "container" / "decision_trees" / "train"
REGRESSOR = REPO / "examples" / "gradient_boosting_regressor"
IMAGE_URI, ROLE, BUCKET = moto_sagemaker.IMAGE_URI, moto_sagemaker.ROLE, moto_sagemaker.BUCKET


def printed_definitions(**environ: str) -> list[dict[str, str]]:
    """What `train --metric-definitions` prints, run here independently of the walkthrough."""
    base = {k: v for k, v in os.environ.items() if k != walkthrough.PREDICTOR_ENV}
    run = subprocess.run(
        [sys.executable, TRAIN, "--metric-definitions"],
        env={**base, **environ},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(run.stdout)


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    with moto_sagemaker.server() as url:
        yield url


@pytest.fixture
def aws(moto_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """Every AWS call of this process on a freshly reset moto, with Part 3 opted in."""
    for name in moto_sagemaker.UNSET:
        monkeypatch.delenv(name, raising=False)
    for name, value in moto_sagemaker.environment(moto_url, tmp_path).items():
        monkeypatch.setenv(name, value)
    moto_sagemaker.reset(moto_url)
    return moto_url


@pytest.fixture
def wt(aws: str) -> walkthrough.Walkthrough:
    session = walkthrough.Walkthrough.from_environment()
    session.poll_seconds = 0.1
    return session


@pytest.fixture
def sent(wt: walkthrough.Walkthrough) -> dict[str, list[dict[str, Any]]]:
    """The parameters of every SageMaker API request the SDK makes, by operation.

    moto stores some of them in its own way (it replaces MetricDefinitions, for one), so the
    requests themselves are what is checked.
    """
    requests: dict[str, list[dict[str, Any]]] = {}

    def record(params: dict[str, Any], model: Any, **_: Any) -> None:
        requests.setdefault(model.name, []).append(params)

    wt.session.sagemaker_client.meta.events.register("provide-client-params.sagemaker", record)
    return requests


def test_part3_is_skipped_without_opt_in_credentials_or_image(
    aws: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each missing condition gives its own one-line reason; all present means no reason."""
    assert walkthrough.skip_reason() is None
    monkeypatch.delenv(walkthrough.IMAGE_URI_ENV)
    assert walkthrough.IMAGE_URI_ENV in walkthrough.skip_reason()
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    assert "no AWS credentials" in walkthrough.skip_reason()
    monkeypatch.setenv(walkthrough.OPT_IN_ENV, "0")
    reason = walkthrough.skip_reason()
    assert reason.startswith("Skipped:") and "\n" not in reason


def test_training_job_gets_the_image_channels_hyperparameters_and_metric_regexes(
    wt: walkthrough.Walkthrough, sent: dict[str, list[dict[str, Any]]]
) -> None:
    channels = {name: wt.upload(DATA / name, name) for name in ("training", "validation")}
    assert channels == {
        name: f"s3://{BUCKET}/decision-trees/data/{name}" for name in ("training", "validation")
    }
    estimator = wt.train(channels, {"max_leaf_nodes": 5})

    [request] = sent["CreateTrainingJob"]
    assert request["TrainingJobName"] == estimator.latest_training_job.name
    assert request["AlgorithmSpecification"]["TrainingImage"] == IMAGE_URI
    # Exactly what the training program prints for the model module in place, none hand-written.
    definitions = request["AlgorithmSpecification"]["MetricDefinitions"]
    assert definitions == wt.metric_definitions == printed_definitions()
    assert {d["Name"] for d in definitions} == {
        f"{channel}:{metric}"
        for channel in ("train", "validation")
        for metric in ("accuracy", "f1_macro")
    }
    assert request["HyperParameters"] == {"max_leaf_nodes": "5"}
    assert request["RoleArn"] == ROLE
    assert request["ResourceConfig"]["InstanceType"] == walkthrough.INSTANCE_TYPE
    assert request["ResourceConfig"]["InstanceCount"] == 1
    assert request["OutputDataConfig"]["S3OutputPath"] == f"s3://{BUCKET}/decision-trees/output"
    by_name = {c["ChannelName"]: c for c in request["InputDataConfig"]}
    assert set(by_name) == {"training", "validation"}
    for name, channel in by_name.items():
        assert channel["ContentType"] == "text/csv"
        assert channel["DataSource"]["S3DataSource"]["S3Uri"] == channels[name]
    job = wt.session.sagemaker_client.describe_training_job(
        TrainingJobName=request["TrainingJobName"]
    )
    assert job["TrainingJobStatus"] == "Completed"
    s3 = boto3.client("s3")
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]}
    assert keys == {
        "decision-trees/data/training/iris.csv",
        "decision-trees/data/validation/iris.csv",
    }


def test_endpoint_serves_the_model_with_csv_in_and_out(wt: walkthrough.Walkthrough) -> None:
    estimator = wt.train({"training": wt.upload(DATA / "training", "training")}, {})
    model = wt.create_model(estimator, "leaves-5")
    predictor = wt.deploy(model)
    moto_sagemaker.queue_endpoint_answers(wt_url(wt), ["setosa\nvirginica\n"])

    assert predictor.predict([[5.1, 3.5, 1.4, 0.2], [7.7, 3.8, 6.7, 2.2]]) == [
        ["setosa"],
        ["virginica"],
    ]
    client = wt.session.sagemaker_client
    endpoint = client.describe_endpoint(EndpointName=predictor.endpoint_name)
    assert endpoint["EndpointStatus"] == "InService"
    config = client.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
    assert [v["ModelName"] for v in config["ProductionVariants"]] == [model.name]
    described = client.describe_model(ModelName=model.name)
    assert described["PrimaryContainer"]["Image"] == IMAGE_URI
    assert described["ExecutionRoleArn"] == ROLE


def test_batch_transform_splits_and_assembles_by_line(wt: walkthrough.Walkthrough) -> None:
    estimator = wt.train({"training": wt.upload(DATA / "training", "training")}, {})
    model = wt.create_model(estimator, "leaves-5")
    data = wt.upload(REPO / "local_test" / "payload.csv", "heldout")

    output = wt.batch_transform(model, data)

    client = wt.session.sagemaker_client
    [summary] = client.list_transform_jobs()["TransformJobSummaries"]
    job = client.describe_transform_job(TransformJobName=summary["TransformJobName"])
    assert job["TransformJobStatus"] == "Completed"
    assert job["ModelName"] == model.name
    assert job["BatchStrategy"] == "MultiRecord"
    assert job["TransformInput"]["SplitType"] == "Line"
    assert job["TransformInput"]["ContentType"] == "text/csv"
    assert job["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"] == data
    assert job["TransformOutput"]["AssembleWith"] == "Line"
    assert job["TransformOutput"]["Accept"] == "text/csv"
    assert job["TransformOutput"]["S3OutputPath"] == output


def test_two_variants_start_at_90_10_and_the_weights_shift_in_place(
    wt: walkthrough.Walkthrough,
) -> None:
    channels = {"training": wt.upload(DATA / "training", "training")}
    model_a = wt.create_model(wt.train(channels, {"max_leaf_nodes": 5}), "leaves-5")
    model_b = wt.create_model(wt.train(channels, {"max_leaf_nodes": 3}), "leaves-3")

    predictor = wt.deploy_variants({"leaves-5": (model_a, 90), "leaves-3": (model_b, 10)})
    endpoint = predictor.endpoint_name
    client = wt.session.sagemaker_client
    config = client.describe_endpoint_config(EndpointConfigName=endpoint)
    assert {
        v["VariantName"]: (v["ModelName"], v["InitialVariantWeight"])
        for v in config["ProductionVariants"]
    } == {"leaves-5": (model_a.name, 90), "leaves-3": (model_b.name, 10)}
    assert wt.weights(endpoint) == {"leaves-5": 90, "leaves-3": 10}

    moto_sagemaker.queue_endpoint_answers(wt_url(wt), ["setosa\n"])
    assert sum(wt.invoked_variants(endpoint, "5.1,3.5,1.4,0.2\n", 3).values()) == 3

    assert wt.set_weights(endpoint, {"leaves-5": 50, "leaves-3": 50}) == {
        "leaves-5": 50,
        "leaves-3": 50,
    }


def test_cleanup_deletes_every_endpoint_config_model_and_object_created(
    wt: walkthrough.Walkthrough,
) -> None:
    channels = {"training": wt.upload(DATA / "training", "training")}
    model_a = wt.create_model(wt.train(channels, {"max_leaf_nodes": 5}), "leaves-5")
    model_b = wt.create_model(wt.train(channels, {"max_leaf_nodes": 3}), "leaves-3")
    wt.deploy(model_a)
    wt.deploy_variants({"a": (model_a, 90), "b": (model_b, 10)})

    deleted = wt.cleanup()

    assert len(deleted) == 7
    client = wt.session.sagemaker_client
    assert client.list_endpoints()["Endpoints"] == []
    assert client.list_endpoint_configs()["EndpointConfigs"] == []
    assert client.list_models()["Models"] == []
    assert "Contents" not in boto3.client("s3").list_objects_v2(Bucket=BUCKET)
    assert wt.cleanup(delete_data=False) == []


def test_cleanup_goes_on_past_a_failure_and_then_reports_it(wt: walkthrough.Walkthrough) -> None:
    """An endpoint deleted behind the walkthrough's back must not leave its model behind."""
    channels = {"training": wt.upload(DATA / "training", "training")}
    model = wt.create_model(wt.train(channels, {}), "leaves-5")
    predictor = wt.deploy(model)
    wt.session.sagemaker_client.delete_endpoint(EndpointName=predictor.endpoint_name)

    with pytest.raises(RuntimeError, match=f"could not delete: endpoint {predictor.endpoint_name}"):
        wt.cleanup()

    client = wt.session.sagemaker_client
    assert client.list_endpoint_configs()["EndpointConfigs"] == []
    assert client.list_models()["Models"] == []


def wt_url(wt: walkthrough.Walkthrough) -> str:
    return wt.session.sagemaker_client.meta.endpoint_url


@pytest.mark.parametrize(
    ("predictor", "test_dir"),
    [
        (None, REPO / "local_test" / "test_dir"),
        (REGRESSOR / "predictor.py", REGRESSOR / "test_dir"),
    ],
    ids=["demo", "regressor"],
)
def test_metric_definitions_scrape_every_metric_train_prints(
    predictor: Path | None, test_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The regexes given to SageMaker find each metric of a real run, with the value it saved."""
    monkeypatch.delenv(walkthrough.PREDICTOR_ENV, raising=False)
    if predictor is not None:
        monkeypatch.setenv(walkthrough.PREDICTOR_ENV, str(predictor))
    shutil.copytree(test_dir / "input", tmp_path / "input")
    run = subprocess.run(
        [sys.executable, TRAIN],
        env={**os.environ, "SAGEMAKER_BASE_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    saved = json.loads((tmp_path / "output" / "data" / "metrics.json").read_text())
    log = run.stdout + run.stderr
    scraped = {}
    for definition in walkthrough.metric_definitions():
        [value] = re.findall(definition["Regex"], log)
        scraped[definition["Name"]] = float(value)
    assert scraped == pytest.approx(saved, abs=1e-4)


def test_metric_definitions_follow_the_model_module(monkeypatch: pytest.MonkeyPatch) -> None:
    """A regressor's module gives a regressor's metrics: the definitions come from the model."""
    monkeypatch.setenv(walkthrough.PREDICTOR_ENV, str(REGRESSOR / "predictor.py"))
    definitions = walkthrough.metric_definitions()
    assert definitions == printed_definitions(
        **{walkthrough.PREDICTOR_ENV: str(REGRESSOR / "predictor.py")}
    )
    assert {d["Name"] for d in definitions} == {
        f"{channel}:{metric}"
        for channel in ("train", "validation")
        for metric in ("rmse", "mae", "r2")
    }


def test_metric_definitions_say_why_the_program_failed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "predictor.py"
    monkeypatch.setenv(walkthrough.PREDICTOR_ENV, str(missing))
    with pytest.raises(RuntimeError, match="--metric-definitions failed") as failure:
        walkthrough.metric_definitions()
    assert str(missing) in str(failure.value)
