"""OpenAI's legacy Completions (`/completions`): a `prompt` (a string, a list of them, or token ids) continued as
`choices[].text`; streamed as `text_completion` chunks of text by choice index, with usage last when the request asks
for it, as Chat Completions streams."""

from __future__ import annotations

from typing import Any

from .base import OpenAIFormat, StreamAssembler, sse_bytes, texts_of_prompts
from .openai_chunks import ChoiceChunksAssembler, ask_for_stream_usage, replay_ending


class OpenAICompletions(OpenAIFormat):
    name = "openai_completions"
    description = "OpenAI legacy completions"
    gateway_paths = ("/v1/completions", "/completions")
    usage_flavor = "chat"  # the same usage block as Chat Completions: prompt_tokens, completion_tokens

    def matches(self, path: str) -> bool:
        return path.endswith("/completions") and not path.endswith("/chat/completions")

    def new_assembler(self) -> StreamAssembler:
        return CompletionStreamAssembler()

    def ask_for_stream_usage(self, body: dict[str, Any]) -> bool:
        return ask_for_stream_usage(body)

    def replay_stream(self, answer: dict[str, Any], request: dict[str, Any]) -> bytes:
        head: dict[str, Any] = {k: answer[k] for k in ("id", "created", "model", "system_fingerprint") if k in answer}
        head["object"] = "text_completion"
        events = []
        for choice in answer.get("choices") or []:
            index = choice.get("index", 0)
            if choice.get("text"):
                text_choice = {"index": index, "text": choice["text"], "logprobs": None, "finish_reason": None}
                events.append(sse_bytes({**head, "choices": [text_choice]}))
            finish = choice.get("finish_reason") or "stop"
            events.append(sse_bytes({**head, "choices": [{"index": index, "text": "", "logprobs": None,
                                                           "finish_reason": finish}]}))
        return b"".join(events + replay_ending(head, answer, request))

    def transcript(self, request: Any, response: Any) -> list[tuple[str, str]]:
        turns = []
        if isinstance(request, dict):
            if request.get("suffix"):
                turns.append(("suffix", str(request["suffix"])))
            turns += [("prompt", text) for text in texts_of_prompts(request.get("prompt"))]
        if isinstance(response, dict):
            for choice in response.get("choices") or []:
                if isinstance(choice, dict):
                    turns.append(("completion", str(choice.get("text") or "")))
            if isinstance(response.get("error"), dict):
                turns.append(("error", str(response["error"].get("message", response["error"]))))
        return turns


class CompletionStreamAssembler(ChoiceChunksAssembler):
    answer_object = "text_completion"

    def _new_choice(self) -> dict[str, Any]:
        return {"text": [], "finish": None}

    def _add_choice(self, slot: dict[str, Any], choice: dict[str, Any]) -> None:
        if choice.get("text"):
            slot["text"].append(self.keep(choice["text"]))
            self.first_token_seen = True
        if choice.get("finish_reason"):
            slot["finish"] = choice["finish_reason"]

    def _choice_of(self, index: int, slot: dict[str, Any]) -> dict[str, Any]:
        return {"index": index, "text": "".join(slot["text"]), "logprobs": None, "finish_reason": slot["finish"]}
