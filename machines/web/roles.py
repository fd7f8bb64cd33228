"""The roles as the views use them: what a page shows the user, and who may open it.

Views keep Django's own `permission_required(..., raise_exception=True)` for who may open a
page (a 403, never a login loop; a team role counts as held "somewhere"); the machine a page
names is then found through `machine_for` (a 404 for one the user cannot see, a 403 for one
they may not act on), and what they change goes through the services, which check again
(machines/services/rights.py).
"""

from __future__ import annotations

from django.http import HttpRequest

from machines.models import Machine
from machines.services import rights
from machines.services.rights import roles_of


def roles(request: HttpRequest, machine: Machine | None = None) -> dict[str, bool]:
    """`can_operate` and `can_admin` for the templates: on this machine, or on any."""
    return roles_of(request.user, machine)


def machine_for(request: HttpRequest, name: str, perm: str = rights.VIEW) -> Machine:
    """The machine named in the URL (with its driver), if the user may see it and holds
    `perm` on it."""
    machine = rights.machine_or_404(
        request.user, Machine.objects.select_related("driver"), name=name
    )
    rights.require_on(request.user, machine, perm, "do this")
    return machine
