"""The wire contract between the capture side and the caption worker (protocol v1).

The ground floor both ends import: it imports nothing of the worker, the
capture side or the product shell.
"""
