"""Manifests: read YAML with line numbers, validate against the schemas, resolve ``$file``, expand matrices."""

from qrt_apply.manifests.loader import load_desired_state

__all__ = ["load_desired_state"]
