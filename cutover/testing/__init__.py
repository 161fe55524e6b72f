"""Test doubles shipped with cutover (as structlog ships structlog.testing): a clock that moves
only when told, a fault-injecting proxy in front of an emulator, a counter of AWS calls. The
production path never imports them."""
