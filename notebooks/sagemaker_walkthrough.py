"""Part 3 of the walkthrough notebook: every SageMaker call it makes, as small functions.

The notebook's cells call these, and tests/functional/test_sagemaker_walkthrough.py makes the very
same calls against moto's SageMaker on loopback, so a change of the SDK or of the API breaks a test
before it breaks a reader's run. Written for the SageMaker Python SDK v2 (pinned in
notebooks/requirements.txt). Everything created is recorded so that `cleanup` can delete it.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import sagemaker
from sagemaker.deserializers import CSVDeserializer
from sagemaker.estimator import Estimator
from sagemaker.inputs import TrainingInput
from sagemaker.model import Model
from sagemaker.predictor import Predictor
from sagemaker.serializers import CSVSerializer
from sagemaker.session import production_variant
from sagemaker.utils import name_from_base

OPT_IN_ENV = "RUN_ON_SAGEMAKER"
"""Part 3 runs only when this is "1": it creates resources that cost money."""

IMAGE_URI_ENV = "SAGEMAKER_IMAGE_URI"
"""The image pushed by build_and_push.sh (its last line of output)."""

BUCKET_ENV = "SAGEMAKER_BUCKET"
"""Optional: a bucket of your own instead of the SDK's default sagemaker-REGION-ACCOUNT."""

ROLE_ENV = "SAGEMAKER_ROLE_ARN"
"""The execution role; not needed inside SageMaker notebooks and Studio, which have their own."""

POLL_ENV = "WALKTHROUGH_POLL_SECONDS"
"""Optional: seconds between status checks of jobs and endpoints (default 15)."""

INSTANCE_TYPE = "ml.m5.large"

TRAIN_PROGRAM = Path(__file__).resolve().parents[1] / "container" / "decision_trees" / "train"
"""The repository's training program, the one the image runs as `train`."""

PREDICTOR_ENV = "BYOC_PREDICTOR"
"""The model module `train` uses instead of container/decision_trees/predictor.py, when set."""


def metric_definitions(
    program: Path = TRAIN_PROGRAM, environ: Mapping[str, str] = os.environ
) -> list[dict[str, str]]:
    """The MetricDefinitions that scrape `train`'s metric lines, e.g. `validation:accuracy=0.9667`.

    They are what `train --metric-definitions` prints for the model module in place (predictor.py,
    or $BYOC_PREDICTOR), run with this interpreter: the metrics follow from the model, so they are
    never written by hand. An image built from this repository holds the same module; for another
    image, `docker run IMAGE train --metric-definitions` prints its own.
    """
    predictor = environ.get(PREDICTOR_ENV)
    printed = _printed_definitions(
        str(program), str(Path(predictor).resolve()) if predictor else ""
    )
    definitions = json.loads(printed)
    if not definitions:
        raise RuntimeError(f"{program} --metric-definitions printed no definitions")
    return definitions


@functools.cache
def _printed_definitions(program: str, predictor: str) -> str:
    """What the program prints, once per program and model module in a process (it takes seconds:
    it imports scikit-learn); restart the kernel after changing the model module."""
    environ = {k: v for k, v in os.environ.items() if k != PREDICTOR_ENV}
    if predictor:
        environ[PREDICTOR_ENV] = predictor
    run = subprocess.run(
        [sys.executable, program, "--metric-definitions"],
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if run.returncode != 0:
        raise RuntimeError(
            f"{program} --metric-definitions failed (exit {run.returncode}): {run.stderr.strip()}"
        )
    return run.stdout


def skip_reason(environ: Mapping[str, str] = os.environ) -> str | None:
    """Why Part 3 does not run here, or None when the reader opted in and has credentials."""
    if environ.get(OPT_IN_ENV) != "1":
        return f"Skipped: set {OPT_IN_ENV}=1 (with AWS credentials) to run this on SageMaker."
    if boto3.Session().get_credentials() is None:
        return f"Skipped: {OPT_IN_ENV}=1 but no AWS credentials were found."
    if not environ.get(IMAGE_URI_ENV):
        return f"Skipped: set {IMAGE_URI_ENV} to the image URI that build_and_push.sh printed."
    return None


@dataclass
class Walkthrough:
    """One SageMaker session and the names of everything created through it."""

    session: sagemaker.Session
    role: str
    image_uri: str
    prefix: str = "decision-trees"
    instance_type: str = INSTANCE_TYPE
    poll_seconds: float = 15
    metric_definitions: list[dict[str, str]] = field(default_factory=metric_definitions)
    """Given to every training job: SageMaker scrapes the job's log with them."""
    endpoints: list[str] = field(default_factory=list)
    models: list[str] = field(default_factory=list)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> Walkthrough:
        """A session on the default AWS profile and region; image and role from the environment."""
        session = sagemaker.Session(default_bucket=environ.get(BUCKET_ENV) or None)
        role = environ.get(ROLE_ENV) or sagemaker.get_execution_role(session)
        return cls(
            session=session,
            role=role,
            image_uri=environ[IMAGE_URI_ENV],
            poll_seconds=float(environ.get(POLL_ENV) or 15),
        )

    @property
    def bucket(self) -> str:
        """$SAGEMAKER_BUCKET, else sagemaker-REGION-ACCOUNT; created on first use."""
        return self.session.default_bucket()

    def s3_uri(self, *parts: str) -> str:
        """s3://BUCKET/PREFIX/parts..."""
        return "/".join([f"s3://{self.bucket}", self.prefix, *parts])

    def upload(self, local_dir: Path, name: str) -> str:
        """Upload a file or a directory under PREFIX/data/NAME; returns its S3 URI."""
        return self.session.upload_data(
            str(local_dir), bucket=self.bucket, key_prefix=f"{self.prefix}/data/{name}"
        )

    def train(self, channels: Mapping[str, str], hyperparameters: Mapping[str, Any]) -> Estimator:
        """Run a training job of the image on the channels (name -> S3 URI), showing its log."""
        estimator = Estimator(
            image_uri=self.image_uri,
            role=self.role,
            instance_count=1,
            instance_type=self.instance_type,
            hyperparameters=dict(hyperparameters),
            metric_definitions=self.metric_definitions,
            output_path=self.s3_uri("output"),
            base_job_name=self.prefix,
            sagemaker_session=self.session,
        )
        inputs = {
            name: TrainingInput(uri, content_type="text/csv") for name, uri in channels.items()
        }
        estimator.fit(inputs, wait=False)
        job = estimator.latest_training_job.name
        self.session.logs_for_job(job, wait=True, poll=self.poll_seconds)
        return estimator

    def final_metrics(self, estimator: Estimator) -> dict[str, float]:
        """The metrics SageMaker scraped from the job's log with `metric_definitions`."""
        job = estimator.latest_training_job.describe()
        return {m["MetricName"]: m["Value"] for m in job.get("FinalMetricDataList", [])}

    def create_model(self, estimator: Estimator, label: str) -> Model:
        """A SageMaker model of the trained artifacts, served by the same image."""
        model = estimator.create_model(
            name=name_from_base(f"{self.prefix}-{label}"), predictor_cls=Predictor
        )
        model.create(instance_type=self.instance_type)
        self.models.append(model.name)
        return model

    def deploy(self, model: Model) -> Predictor:
        """A real-time endpoint of one model that speaks CSV both ways."""
        endpoint = name_from_base(self.prefix)
        self.endpoints.append(endpoint)
        predictor = model.deploy(
            initial_instance_count=1,
            instance_type=self.instance_type,
            endpoint_name=endpoint,
            serializer=CSVSerializer(),
            deserializer=CSVDeserializer(),
            wait=False,
        )
        self.session.wait_for_endpoint(endpoint, poll=self.poll_seconds)
        return predictor

    def batch_transform(self, model: Model, data: str) -> str:
        """Predict every line of the CSV objects under `data`; returns the output S3 prefix.

        SplitType=Line sends whole lines, AssembleWith=Line writes one prediction per input line
        into `<input file name>.out`.
        """
        output = self.s3_uri("transform", model.name)
        transformer = model.transformer(
            instance_count=1,
            instance_type=self.instance_type,
            strategy="MultiRecord",
            assemble_with="Line",
            accept="text/csv",
            output_path=output,
        )
        transformer.transform(
            data,
            content_type="text/csv",
            split_type="Line",
            job_name=name_from_base(f"{self.prefix}-transform"),
            wait=False,
        )
        job = transformer.latest_transform_job.name
        self.session.wait_for_transform_job(job, poll=self.poll_seconds)
        return output

    def read_s3_text(self, uri: str) -> str:
        """The text of one S3 object."""
        bucket, key = uri.removeprefix("s3://").split("/", 1)
        return self.session.read_s3_file(bucket, key)

    def deploy_variants(self, weights: Mapping[str, tuple[Model, int]]) -> Predictor:
        """One endpoint with a production variant per model (variant name -> (model, weight))."""
        endpoint = name_from_base(f"{self.prefix}-ab")
        variants = [
            production_variant(
                model_name=model.name,
                instance_type=self.instance_type,
                initial_instance_count=1,
                variant_name=variant,
                initial_weight=weight,
            )
            for variant, (model, weight) in weights.items()
        ]
        self.endpoints.append(endpoint)
        self.session.endpoint_from_production_variants(
            name=endpoint, production_variants=variants, wait=False
        )
        self.session.wait_for_endpoint(endpoint, poll=self.poll_seconds)
        return Predictor(
            endpoint,
            sagemaker_session=self.session,
            serializer=CSVSerializer(),
            deserializer=CSVDeserializer(),
        )

    def invoked_variants(self, endpoint: str, body: str, requests: int) -> Counter[str]:
        """How many of `requests` identical requests each variant answered."""
        runtime = self.session.sagemaker_runtime_client
        return Counter(
            runtime.invoke_endpoint(
                EndpointName=endpoint, Body=body, ContentType="text/csv", Accept="text/csv"
            )["InvokedProductionVariant"]
            for _ in range(requests)
        )

    def set_weights(self, endpoint: str, weights: Mapping[str, int]) -> dict[str, float]:
        """Shift traffic between variants without redeploying; returns the weights now in force."""
        self.session.sagemaker_client.update_endpoint_weights_and_capacities(
            EndpointName=endpoint,
            DesiredWeightsAndCapacities=[
                {"VariantName": variant, "DesiredWeight": weight}
                for variant, weight in weights.items()
            ],
        )
        self.session.wait_for_endpoint(endpoint, poll=self.poll_seconds)
        return self.weights(endpoint)

    def weights(self, endpoint: str) -> dict[str, float]:
        """Each variant's current weight."""
        described = self.session.sagemaker_client.describe_endpoint(EndpointName=endpoint)
        return {v["VariantName"]: v["CurrentWeight"] for v in described["ProductionVariants"]}

    def cleanup(self, delete_data: bool = True) -> list[str]:
        """Delete every endpoint, endpoint config and model created, and the data under PREFIX.

        Endpoints bill by the hour until deleted, so this keeps going past a failure and returns
        what it deleted; a failure to delete is raised at the end.
        """
        client = self.session.sagemaker_client
        deleted, errors = [], []

        def attempt(what: str, call: Any, **kwargs: str) -> None:
            try:
                call(**kwargs)
                deleted.append(what)
            except Exception as e:
                errors.append(f"{what}: {e}")

        for endpoint in self.endpoints:
            attempt(f"endpoint {endpoint}", client.delete_endpoint, EndpointName=endpoint)
            # deploy() and endpoint_from_production_variants() name the config after the endpoint.
            attempt(
                f"endpoint config {endpoint}",
                client.delete_endpoint_config,
                EndpointConfigName=endpoint,
            )
        for model in self.models:
            attempt(f"model {model}", client.delete_model, ModelName=model)
        self.endpoints, self.models = [], []
        if delete_data:
            bucket = self.session.boto_session.resource("s3").Bucket(self.bucket)
            objects = bucket.objects.filter(Prefix=f"{self.prefix}/")
            count = sum(1 for _ in objects)
            attempt(f"{count} S3 objects under {self.s3_uri()}", objects.delete)
        if errors:
            raise RuntimeError("could not delete: " + "; ".join(errors))
        return deleted
