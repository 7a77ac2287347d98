"""The OpenAPI document (container/decision_trees/openapi.json) loaded by schemathesis, with the
media types it cannot send by itself sent as the text or bytes they are."""

from __future__ import annotations

import schemathesis
from serving import ROOT

schemathesis.serializer.alias(
    ["application/jsonlines", "application/x-jsonlines", "application/jsonl"], "text/plain"
)
schemathesis.serializer.alias(["application/x-npy"], "application/octet-stream")

DOCUMENT = schemathesis.openapi.from_path(ROOT / "container" / "decision_trees" / "openapi.json")
