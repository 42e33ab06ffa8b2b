"""``bybit-dcp-exporter doctor``: a read-only first-contact check of each configured account.

:mod:`.checks` turns answers into verdict lines (pure), :mod:`.run` makes the read-only calls,
:mod:`.command` is the command line. See docs/doctor.md.
"""
