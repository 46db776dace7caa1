"""The current client given someone else's instance CRN: qrt serve's Global Search lists only the
caller's own instance, so the client refuses to start.

    .venv-newclient/bin/python tests/newclient/other_instance.py URL TOKEN OWN_CRN OTHER_CRN
"""

import json
import sys

from qiskit_ibm_runtime import QiskitRuntimeService
from qiskit_ibm_runtime.exceptions import IBMInputValueError


def main(base: str, token: str, own_crn: str, other_crn: str) -> dict:
    try:
        QiskitRuntimeService(
            channel="ibm_quantum_platform",
            token=token,
            instance=other_crn,
            url=f"{base}/experimental/api/v1",
        )
    except IBMInputValueError:
        return {"error": "IBMInputValueError"}
    return {"error": None}


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:5])))
