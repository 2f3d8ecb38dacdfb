"""The Meta Conversions API destination (Graph API POST /{version}/{pixel_id}/events)."""
