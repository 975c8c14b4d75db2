"""Session-wide test setup: the fake engine, which the product does not ship, is registered.

It goes through ``NOTSOUND_ENGINES`` in ``os.environ``, so the test process and
every ``notsound serve``/``live`` it starts (``python -m notsound.cli`` with the
repository root as working directory, which puts ``bench`` on their path)
offer ``--engine fake``.
"""

from __future__ import annotations

from bench.fake_engine import offer_fake_engine


def pytest_configure(config) -> None:
    offer_fake_engine()
