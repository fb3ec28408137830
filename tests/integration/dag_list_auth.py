"""A test auth manager whose roles may read only some DAGs, which Airflow's SimpleAuthManager cannot express
(its viewer, user, op and admin roles all read every DAG).

It is SimpleAuthManager (its users, passwords file, ``/auth/token`` login and JWTs) with one change: a user
listed in ``READABLE`` is authorized on a DAG only if the DAG is in that user's set. Airflow 3.3 asks
``is_authorized_dag`` both for one DAG (``requires_access_dag``) and, through ``get_authorized_dag_ids`` →
``filter_authorized_dag_ids``, for each DAG in the metadata DB, so overriding it restricts both paths.
Selected with ``[core] auth_manager = tests.integration.dag_list_auth.DagListAuthManager``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager

if TYPE_CHECKING:
    from airflow.api_fastapi.auth.managers.base_auth_manager import ResourceMethod
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser


class DagListAuthManager(SimpleAuthManager):
    """SimpleAuthManager whose users in ``READABLE`` may act only on the DAGs listed for them."""

    READABLE: ClassVar[dict[str, frozenset[str]]] = {}  # username -> the DAG ids that user may read

    def is_authorized_dag(
        self,
        *,
        method: ResourceMethod,
        user: SimpleAuthManagerUser,
        access_entity: DagAccessEntity | None = None,
        details: DagDetails | None = None,
    ) -> bool:
        allowed = self.READABLE.get(user.username)
        if allowed is not None and not (details and details.id in allowed):
            return False
        return super().is_authorized_dag(method=method, user=user, access_entity=access_entity, details=details)
