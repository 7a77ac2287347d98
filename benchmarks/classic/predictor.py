"""The classic SageMaker sample's predictor, kept only as the benchmark's reference.

As in that sample: the model is loaded lazily by the first request of each worker, and every request
goes pandas.read_csv -> estimator.predict -> DataFrame.to_csv. It serves whatever `train` saved
(model.skops), loaded with skops and the model module's TRUSTED_TYPES, as any sample would load its
own model; nothing of the template's serving code (byoc) runs here.
"""

from __future__ import annotations

import importlib.util
import io
import os
from pathlib import Path

import flask
import pandas as pd

MODEL_FILE = Path(os.environ.get("SAGEMAKER_BASE_DIR", "/opt/ml")) / "model" / "model.skops"
DEFAULT_MODULE = (
    Path(__file__).resolve().parents[2] / "container" / "decision_trees" / "predictor.py"
)


def trusted_types() -> list[str]:
    """TRUSTED_TYPES of the model module: $BYOC_PREDICTOR, else the template's predictor.py."""
    path = Path(os.environ.get("BYOC_PREDICTOR") or DEFAULT_MODULE).resolve()
    # Not under the name `predictor`: that is this module's own.
    spec = importlib.util.spec_from_file_location("classic_model_module", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return list(getattr(module, "TRUSTED_TYPES", ()))


class ScoringService:
    model = None

    @classmethod
    def get_model(cls):
        if cls.model is None:
            import skops.io

            cls.model = skops.io.load(MODEL_FILE, trusted=trusted_types())
        return cls.model

    @classmethod
    def predict(cls, data):
        return cls.get_model().predict(data)


app = flask.Flask(__name__)


@app.route("/ping", methods=["GET"])
def ping():
    health = ScoringService.get_model() is not None
    return flask.Response(response="\n", status=200 if health else 404, mimetype="application/json")


@app.route("/invocations", methods=["POST"])
def transformation():
    if flask.request.content_type != "text/csv":
        return flask.Response(response="This predictor only supports CSV data", status=415)
    data = pd.read_csv(io.StringIO(flask.request.data.decode("utf-8")), header=None)
    predictions = ScoringService.predict(data.values)
    out = io.StringIO()
    pd.DataFrame({"results": predictions}).to_csv(out, header=False, index=False)
    return flask.Response(response=out.getvalue(), status=200, mimetype="text/csv")
