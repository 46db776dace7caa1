"""IqpRuntime against the real IBM Quantum Platform: runs only when an account is configured.

Set ``QRT_IQP_LIVE_ACCOUNT`` to the name of a saved account (``qrt account save --channel
ibm_quantum_platform --token API_KEY --instance CRN``) to run it. It uses a few seconds of QPU time:
one 100-shot Bell sampler job inside a ``batch`` session, on ``QRT_IQP_LIVE_BACKEND`` or else the
operational device with the most qubits. ``QRT_IQP_LIVE_TIMEOUT`` (seconds, default 3600) bounds the
wait in the queue; the job is cancelled if the wait runs out.
"""

from __future__ import annotations

import json
import os
import time
import uuid

import pytest

from qrt_apply.runtime.accounts import PLATFORM_CHANNELS, load_account
from qrt_apply.runtime.base import SUBMIT_TAG_PREFIX
from qrt_apply.runtime.iqp import IqpRuntime

from projects import BELL

ACCOUNT = os.environ.get("QRT_IQP_LIVE_ACCOUNT", "")

pytestmark = pytest.mark.skipif(
    not ACCOUNT,
    reason="no real IBM Quantum Platform account configured: set QRT_IQP_LIVE_ACCOUNT to a saved "
    "ibm_quantum_platform or ibm_cloud account to run this live test",
)


def test_a_bell_job_in_a_batch_session_on_the_real_platform() -> None:
    account = load_account(ACCOUNT)
    assert account.channel in PLATFORM_CHANNELS, f"{ACCOUNT} is a {account.channel} account"
    runtime = IqpRuntime(account)
    try:
        backends = [b for b in runtime.backends() if b.operational]
        assert backends, "the instance offers no operational backend"
        wanted = os.environ.get("QRT_IQP_LIVE_BACKEND")
        backend = wanted or max(backends, key=lambda b: b.num_qubits).name
        tag = SUBMIT_TAG_PREFIX + uuid.uuid4().hex
        session = runtime.open_session(backend, "batch")
        try:
            job = runtime.run(
                "sampler", {"pubs": [{"circuit": BELL, "shots": 100}]}, backend=backend, tags=[tag]
            )
        finally:
            runtime.close_session(session)
        assert job.session_id == session
        assert [j.id for j in runtime.jobs(tags=[tag], limit=None)] == [job.id]
        deadline = time.monotonic() + float(os.environ.get("QRT_IQP_LIVE_TIMEOUT", "3600"))
        while not (info := runtime.job(job.id, include_params=False)).final:
            if time.monotonic() > deadline:
                runtime.cancel_job(job.id)
                pytest.fail(f"job {job.id} still {info.status} when the wait ran out; cancelled")
            time.sleep(10)  # polling a remote queue; nothing here depends on how long it takes
        assert info.status == "COMPLETED", info.reason
        counts = json.loads(runtime.job_result(job.id))["results"][0]["data"]["c"]["counts"]
        assert sum(counts.values()) == 100
        assert counts.get("00", 0) + counts.get("11", 0) > 70  # a Bell state, with device noise
    finally:
        runtime.close()
