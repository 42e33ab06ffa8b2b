"""A lean HTTP/1.1 client for the REST poll: :mod:`.protocol` (sans-I/O) and :mod:`.pool` (asyncio).

Below ``bybit/``: it knows HTTP, not Bybit, and imports nothing of the project but ``runtime``.
"""
