"""The audio format every part of the pipeline shares: 16 kHz mono int16 PCM.

Capture records and resamples to it, the wire carries it (little-endian), the
engines decode it. This is the one place the rate is written; other modules
import it from here (``wire.protocol``, ``models`` and ``capture.vad`` re-export it).
"""

from __future__ import annotations

__all__ = ["SAMPLE_RATE", "BYTES_PER_SAMPLE"]

#: samples per second of all audio the project handles
SAMPLE_RATE = 16_000
#: one int16 mono sample
BYTES_PER_SAMPLE = 2
