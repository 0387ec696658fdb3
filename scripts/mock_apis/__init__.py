"""The provider APIs the mock speaks, one module each: its endpoints, what it refuses, its answers (JSON and stream).

Adding an API to the mock is a module here exporting `API` (a `MockApi`) and a line in `APIS`. mock_provider.py
serves them all: it records each call, applies the test's scripted action (errors, delays, cut streams) and hands
the rest to the API.
"""

from __future__ import annotations

from . import anthropic_messages, gemini_generate, openai_chat, openai_completions, openai_embeddings, openai_responses
from .base import MockApi

APIS: tuple[MockApi, ...] = (
    openai_chat.API, anthropic_messages.API, openai_responses.API, openai_embeddings.API, openai_completions.API,
    gemini_generate.API,
)


def api_for(method: str, path: str) -> MockApi | None:
    """The API a request of `method` to `path` (no query string) calls, or None."""
    return next((api for api in APIS if api.serves(method, path)), None)
