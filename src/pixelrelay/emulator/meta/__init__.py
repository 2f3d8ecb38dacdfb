"""An independent Meta Conversions API emulator: judges what pixelrelay delivers to Meta.

It serves the Graph API's events edge, `POST /{api_version}/{pixel_id}/events`, and judges each
request against Meta's contract as `meta-capi.md` states it: the token in the query string, a
form/JSON field or `Authorization: Bearer`; a JSON body or a form whose `data` is a JSON-encoded
array (each event possibly JSON-encoded again, as Meta's SDK sends it); required fields, the 7-day
window (one too-old event refuses the whole request), at most 1,000 events, SHA-256 shapes of
customer information, fbc/fbp formats, custom_data and Limited Data Use. It answers Meta's
success body `{"events_received", "messages", "fbtrace_id"}` or a Graph API error object with
Meta's code, subcode and HTTP status. A repeated (pixel, event_name, event_id) within 48 h is
counted in events_received and recorded as a duplicate, not as an event.

Control endpoints live at the app's root (the mount point: mounted at `/_meta`, they are
`/_meta/events` etc.), beside the Graph paths, which always start with a version segment:

- `GET  /events?pixel_id=&event_name=&event_id=&test_event_code=`: accepted events (each with
  `_pixel_id`, `_api_version`, `_test_event_code`, `_fbtrace_id`, `_received_at`);
- `GET  /requests`: every request and its answer (code, subcode, errors, notices, duplicates);
- `GET  /stats`;  `GET|POST /faults` (a partial JSON update of MetaFaults);  `POST /reset`.
"""

from pixelrelay.emulator.meta.app import EVENTS_PATH, create_meta_emulator_app
from pixelrelay.emulator.meta.contract import Judgement, Problem, judge
from pixelrelay.emulator.meta.faults import MetaFaults
from pixelrelay.emulator.meta.graph import GraphError
from pixelrelay.emulator.meta.state import MetaEmulator, MetaRequestLog

__all__ = [
    "EVENTS_PATH",
    "GraphError",
    "Judgement",
    "MetaEmulator",
    "MetaFaults",
    "MetaRequestLog",
    "Problem",
    "create_meta_emulator_app",
    "judge",
]
