"""Runtimes qrt talks to: the protocol, the embedded runtime and the HTTP client."""

from qrt_apply.runtime.base import (
    BackendInfo,
    JobInfo,
    ProgramInfo,
    Runtime,
    Target,
)

__all__ = ["BackendInfo", "JobInfo", "ProgramInfo", "Runtime", "Target"]
