"""The caption worker: WebSocket server, per-stream sessions, scheduler, calibration, keys."""
