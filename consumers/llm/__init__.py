"""Model providers: one small interface (`base`), an OpenAI-compatible implementation."""
