"""The simulator fixture most of this room uses (one account, Bybit's time scaled down); a
module with a simulator of its own defines its own ``sim``."""

from account_harness import sim  # noqa: F401 - a fixture
