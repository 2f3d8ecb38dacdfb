"""Graph API error objects as Meta's Conversions API answers them (codes per meta-capi.md §5)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

# Graph API versions Meta serves the Conversions API on (meta-capi.md §1.1: every version lives at
# least two years for CAPI; v23.0 to v27.0 are all served through 2027).
SERVED_VERSIONS: Final = frozenset({"v23.0", "v24.0", "v25.0", "v26.0", "v27.0"})
LATEST_VERSION: Final = "v27.0"

OAUTH: Final = "OAuthException"
METHOD: Final = "GraphMethodException"

INVALID_PARAMETER: Final = 100
TOKEN_INVALID: Final = 190
# The per-event validation subcodes Meta documents by name; any other field problem gets the
# generic one below (the doc lists 2804019 among the per-field subcodes without a meaning, and
# clients must classify by code 100 anyway).
SUBCODE_TOO_OLD: Final = 2804003
SUBCODE_PURCHASE_VALUE: Final = 2804009
SUBCODE_FIELD: Final = 2804019
SUBCODE_NO_OBJECT: Final = 33
SUBCODE_TOKEN_REVOKED: Final = 460

TITLE_TOO_OLD: Final = "Event Timestamp Too Old"
MSG_TOO_OLD: Final = (
    "The timestamp for this event is too far in the past. Events need to be sent from your "
    "server within 7 days of when they occurred. Enter a timestamp that has occurred within "
    "the last 7 days."
)
TITLE_PURCHASE_VALUE: Final = "Missing Value for Purchase Event"
TITLE_FIELD: Final = "Invalid Parameter"


@dataclass(frozen=True, slots=True)
class GraphError:
    """One Graph API error answer: the HTTP status and the `error` object's fields."""

    http_status: int
    code: int
    message: str
    type: str = OAUTH
    subcode: int | None = None
    is_transient: bool | None = None
    user_title: str | None = None
    user_msg: str | None = None

    def body(self, fbtrace_id: str) -> dict[str, Any]:
        err: dict[str, Any] = {"message": self.message, "type": self.type, "code": self.code}
        if self.subcode is not None:
            err["error_subcode"] = self.subcode
        if self.is_transient is not None:
            err["is_transient"] = self.is_transient
        if self.user_title is not None:
            err["error_user_title"] = self.user_title
        if self.user_msg is not None:
            err["error_user_msg"] = self.user_msg
        err["fbtrace_id"] = fbtrace_id
        return {"error": err}


# Token errors: Graph answers 400 with an OAuthException (and a WWW-Authenticate header).
TOKEN_MISSING: Final = GraphError(400, 104, "An access token is required to request this resource.")
TOKEN_UNKNOWN: Final = GraphError(
    400, TOKEN_INVALID, "Invalid OAuth access token - Cannot parse access token"
)
TOKEN_REVOKED: Final = GraphError(
    400,
    TOKEN_INVALID,
    "Error validating access token: The session has been invalidated because the user changed "
    "their password or Facebook has changed the session for security reasons.",
    subcode=SUBCODE_TOKEN_REVOKED,
)

# Errors a fault can inject, by code (meta-capi.md §5's table). Throttling answers 400 with
# is_transient; downtime answers 500.
INJECTABLE: Final[dict[int, GraphError]] = {
    1: GraphError(500, 1, "An unknown error occurred", subcode=99, is_transient=True),
    2: GraphError(
        500, 2, "An unexpected error has occurred. Please retry your request later.",
        is_transient=True,
    ),
    3: GraphError(400, 3, "(#3) Application does not have the capability to make this API call."),
    4: GraphError(400, 4, "(#4) Application request limit reached", is_transient=True),
    10: GraphError(400, 10, "(#10) Application does not have permission for this action"),
    17: GraphError(
        400, 17, "(#17) User request limit reached", subcode=2446079, is_transient=True
    ),
    190: TOKEN_REVOKED,
    200: GraphError(400, 200, "(#200) Permissions error"),
    341: GraphError(400, 341, "(#341) Application limit reached", is_transient=True),
    368: GraphError(
        400, 368, "(#368) The action attempted has been deemed abusive or is otherwise disallowed"
    ),
    613: GraphError(
        400, 613, "(#613) There have been too many calls from this ad-account. Wait a bit and "
        "try again.", subcode=1487742, is_transient=True,
    ),
    2635: GraphError(
        400, 2635, "(#2635) You are calling a deprecated version of the Ads API. Please update "
        f"to the latest version: {LATEST_VERSION}."
    ),
    21009: GraphError(
        400, 21009, "(#21009) The data set upload is temporarily not ready.", is_transient=True
    ),
}
RATE_LIMIT_CODES: Final = frozenset({4, 17, 613})


def no_such_object(object_id: str) -> GraphError:
    """The pixel/dataset id is unknown to the token (100/33)."""
    return GraphError(
        400,
        INVALID_PARAMETER,
        f"Unsupported post request. Object with ID '{object_id}' does not exist, cannot be "
        "loaded due to missing permissions, or does not support this operation. Please read "
        "the Graph API documentation at https://developers.facebook.com/docs/graph-api",
        type=METHOD,
        subcode=SUBCODE_NO_OBJECT,
    )


def unknown_path(path: str) -> GraphError:
    # Not in meta-capi.md: what Graph answers for a version segment it does not know.
    return GraphError(400, 2500, f"Unknown path components: {path}")


def param_error(message: str) -> GraphError:
    """A request-level parameter problem, phrased as Graph's parameter checker does."""
    return GraphError(400, INVALID_PARAMETER, f"(#100) {message}")


def event_error(subcode: int, detail: str) -> GraphError:
    """A per-event validation failure: the whole request is refused (meta-capi.md §4)."""
    if subcode == SUBCODE_TOO_OLD:
        title, msg = TITLE_TOO_OLD, f"{MSG_TOO_OLD} ({detail})"
    elif subcode == SUBCODE_PURCHASE_VALUE:
        title, msg = TITLE_PURCHASE_VALUE, detail
    else:
        title, msg = TITLE_FIELD, detail
    return GraphError(
        400, INVALID_PARAMETER, "Invalid parameter", subcode=subcode, is_transient=False,
        user_title=title, user_msg=msg,
    )
