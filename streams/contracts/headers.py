"""Header names of a raw record (``rapport.raw.<platform>``), written by the publisher.

The normalizer reads them (:func:`streams.normalize.records.normalize_records`); the chaos
harness and the benches build them to feed the normalizer as the publisher would. A header
is text (UTF-8); a missing one has the default its reader documents.
"""

from __future__ import annotations

HEADER_SOURCE = "source"
"""How the payload reached us (``stream``, ``inbox``, ``webhook``, ``listen:<source>``, ...);
missing means ``stream``."""
HEADER_RECEIVED_AT = "received_at"
"""When Rapport received the payload, epoch ms as a decimal integer; missing means the
record's broker timestamp, unusable makes the record a dead letter."""
HEADER_VIA_ACCOUNT = "via_account"
"""The tracked account whose own route delivered the payload (a webhook's entry id, an
inbox's account), for attribution; missing or empty means none."""
HEADER_REFUSED = "refused"
"""Set by the publisher on the stand-in of a payload it refused (too large): the reason."""
DEFAULT_SOURCE = "stream"
