"""The classic SageMaker sample's predictor, kept only as the benchmark's reference.

As in that sample: the model is loaded lazily by the first request of each worker, and every request
goes pandas.read_csv -> estimator.predict -> DataFrame.to_csv.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import flask
import pandas as pd

import model as model_files

MODEL_DIR = Path(os.environ.get("SAGEMAKER_BASE_DIR", "/opt/ml")) / "model"


class ScoringService:
    model = None

    @classmethod
    def get_model(cls):
        if cls.model is None:
            cls.model, _ = model_files.load(MODEL_DIR)
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
