"""cutover: step a production feature through a declared phased cutover, and back out again."""

__version__ = "0.1.0"
