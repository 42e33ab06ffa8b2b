"""Every metric the exporter exports, defined in one place: the table of :mod:`.specs`.

:mod:`.registry` builds from it the :class:`Metrics` the rest of the exporter records into;
:mod:`.labelled` holds the compact label-keyed families it is made of; :mod:`.docs` writes
``docs/metrics.md`` from the same table.
"""

from . import specs
from .registry import ENDPOINTS, RTT_BUCKETS, Metrics

__all__ = ["ENDPOINTS", "RTT_BUCKETS", "Metrics", "specs"]
