"""The process itself: the one source of time, the allocator, collector pauses and the event
loop's lag. Nothing here knows about Bybit or the metrics."""
