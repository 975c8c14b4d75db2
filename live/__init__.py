"""The caption worker, the wire protocol, the ``notsound`` CLI and the terminal view."""

__version__ = "0.1.0"
