"""Every metric the exporter exports, defined in one place.

:mod:`.registry` builds the :class:`Metrics` the rest of the exporter records into;
:mod:`.labelled` holds the compact label-keyed families it is made of.
"""

from .registry import ENDPOINTS, RTT_BUCKETS, Metrics

__all__ = ["ENDPOINTS", "RTT_BUCKETS", "Metrics"]
