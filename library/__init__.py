"""The lecture library: the session-folder format and what is built on the finished folders.

- :mod:`library.folder` is the only reader and writer of a session folder
  (journal lines, ``session.json``, atomic replacement, folder names); every
  package may import it. Standard library, :mod:`wire.protocol` and :mod:`common` only.
- :mod:`library.history` lists the sessions (``notsound history``).
- :mod:`library.export` writes subtitles and transcripts (``notsound export``).
- :mod:`library.index` and :mod:`library.search` keep and query the search
  index (``notsound index``, ``notsound search``).

Importing this package imports nothing heavy; import the modules you need.
"""
