"""The admin token check of the admin API and the dashboard."""

from __future__ import annotations

import hmac

from starlette.requests import Request
from starlette.responses import Response

from pixelrelay.secret import Secret
from pixelrelay.web.credential_guard import credential_failed
from pixelrelay.web.http import bearer, problem_response


def admin_denied(request: Request, admin_token: Secret) -> Response | None:
    """None when the request carries the admin token (Bearer or X-Admin-Token).

    A wrong token counts as a failed attempt of the client's address; a missing one does not.
    """
    if not admin_token:
        return problem_response(403, "forbidden", "set server.admin_token to use admin endpoints")
    given = bearer(request) or request.headers.get("x-admin-token", "")
    if not given:
        return problem_response(401, "unauthorized", "admin token required")
    if not hmac.compare_digest(given.encode(), admin_token.reveal().encode()):
        credential_failed(request)
        return problem_response(401, "unauthorized", "admin token required")
    return None
