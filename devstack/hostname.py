"""The host name an Airflow process reports (``[core] hostname_callable``), taken from its environment.

Several workers and triggerers of one deployment run on this one machine; each gets a name of its own
(``DEVSTACK_HOSTNAME``), so task instances' ``hostname`` and triggerer jobs' ``hostname`` tell them apart.
"""

from __future__ import annotations

import os
import socket

HOSTNAME_ENV = "DEVSTACK_HOSTNAME"
CALLABLE = "devstack.hostname.from_environment"


def from_environment() -> str:
    return os.environ.get(HOSTNAME_ENV) or socket.getfqdn()
