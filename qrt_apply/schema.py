"""The JSON Schemas qrt ships in ``schemas/``: the manifests' (Program, JobBatch) and qrt.yaml's.

They are what ``qrt validate`` checks first, what ``qrt schema NAME`` prints for editors, and what
``qrt init`` points the ``# yaml-language-server: $schema=`` lines at.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

__all__ = ["SCHEMA_FILES", "load_schema", "schema_text", "schema_validator"]

SCHEMA_FILES = {
    "program": "program.schema.json",
    "jobbatch": "jobbatch.schema.json",
    "moved": "moved.schema.json",
    "project": "project.schema.json",
}


def schema_text(name: str) -> str:
    """The schema file ``name`` (a key of ``SCHEMA_FILES``) as shipped, byte for byte."""
    return resources.files("qrt_apply").joinpath("schemas", SCHEMA_FILES[name]).read_text("utf-8")


@cache
def load_schema(name: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(schema_text(name))
    return schema


@cache
def schema_validator(name: str) -> Any:
    """A Draft 2020-12 validator of schema ``name``, built once (jsonschema is imported here, not
    at start-up)."""
    import jsonschema

    return jsonschema.Draft202012Validator(load_schema(name))
