"""The roles as the views use them: what a page shows the user, and who may open it.

Views keep Django's own `permission_required(..., raise_exception=True)` for who may open a
page (a 403, never a login loop); what they change goes through the services, which check
the same permissions again (machines/services/rights.py).
"""

from __future__ import annotations

from django.http import HttpRequest

from machines.services.rights import roles_of


def roles(request: HttpRequest) -> dict[str, bool]:
    """`can_operate` and `can_admin` for the templates, from the user's permissions."""
    return roles_of(request.user)
