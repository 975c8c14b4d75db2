"""The product shell: the ``notsound`` CLI, the live run, the terminal view, config and the caption page."""

__version__ = "0.1.0"
