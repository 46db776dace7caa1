"""The real qiskit-ibm-runtime 0.11.3 client on the ``ibm_cloud`` channel against a ``qrt serve``,
through the client's ``experimental`` URL escape hatch (such a URL is the runtime base as is).

Run with the OLD client's interpreter (not qrt's)::

    /tmp/oldrt/bin/python tests/oldclient/cloud_flow.py http://127.0.0.1:PORT/experimental TOKEN

Prints one JSON object of observations on stdout for ``tests/test_server_oldclient.py``.
"""

import json
import sys

from qiskit_ibm_runtime import QiskitRuntimeService

SOURCE = """
def main(backend, user_messenger, **kwargs):
    return {"echo": kwargs}
"""

# a CRN is required offline: a plain service name would make the client ask IBM IAM for one
CRN = "crn:v1:bluemix:public:quantum-computing:us-east:a/0123456789:abcdef::"


def main(url: str, token: str) -> dict:
    service = QiskitRuntimeService(channel="ibm_cloud", url=url, token=token, instance=CRN)
    names = sorted(b.name for b in service.backends())
    program_id = service.upload_program(
        data=SOURCE,
        metadata={"name": "cloud-flow", "max_execution_time": 60, "description": "cloud"},
    )
    job = service.run(program_id, inputs={"x": 5})  # no backend: the server picks one
    result = job.result(timeout=120)
    backend = job.backend().name
    service.delete_program(program_id)
    return {"backends": names, "result": result, "backend": backend}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2])))
