"""Audio capture: microphone and files, Silero VAD utterances, the streaming client, the journal."""
