"""Rolling notes and the final summary through any OpenAI-compatible LLM."""
