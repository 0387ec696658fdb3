"""OpenAI Chat Completions (`/chat/completions`), the format every OpenAI-compatible provider speaks."""

from __future__ import annotations

from typing import Any

from .base import OpenAIFormat, StreamAssembler, as_dict, index_of, sse_bytes, text_of
from .openai_chunks import ChoiceChunksAssembler, ask_for_stream_usage, replay_ending


class OpenAIChat(OpenAIFormat):
    name = "openai_chat"
    description = "OpenAI-compatible, any provider"
    gateway_paths = ("/v1/chat/completions", "/chat/completions")
    # Spoken by OpenAI and by other providers' compatible endpoints (Google's among them): their own headers.
    provider_header_prefixes = ("openai-", "x-goog-")
    usage_flavor = "chat"
    usage_flavor_shared = True  # every provider's entry in genai-prices calls OpenAI-compatible chat "chat"

    def matches(self, path: str) -> bool:
        return path.endswith("/chat/completions")

    def new_assembler(self) -> StreamAssembler:
        return ChatStreamAssembler()

    def ask_for_stream_usage(self, body: dict[str, Any]) -> bool:
        return ask_for_stream_usage(body)

    def replay_stream(self, answer: dict[str, Any], request: dict[str, Any]) -> bytes:
        fields = ("id", "created", "model", "system_fingerprint")
        head: dict[str, Any] = {k: answer.get(k) for k in fields if k in answer}
        head["object"] = "chat.completion.chunk"

        def chunk(choices: list[dict[str, Any]], **extra: Any) -> bytes:
            return sse_bytes({**head, "choices": choices, **extra})

        events = []
        for choice in answer.get("choices") or []:
            index, message = choice.get("index", 0), choice.get("message") or {}
            events.append(chunk([{"index": index, "delta": {"role": message.get("role", "assistant"), "content": ""},
                                  "finish_reason": None}]))
            if message.get("content"):
                content = {"content": message["content"]}
                events.append(chunk([{"index": index, "delta": content, "finish_reason": None}]))
            calls = [{"index": i, **call} for i, call in enumerate(message.get("tool_calls") or [])]
            if calls:
                events.append(chunk([{"index": index, "delta": {"tool_calls": calls}, "finish_reason": None}]))
            finish = choice.get("finish_reason") or "stop"
            events.append(chunk([{"index": index, "delta": {}, "finish_reason": finish}]))
        return b"".join(events + replay_ending(head, answer, request))

    def transcript(self, request: Any, response: Any) -> list[tuple[str, str]]:
        turns = []
        if isinstance(request, dict):
            for message in request.get("messages") or []:
                if isinstance(message, dict):
                    turns.append((str(message.get("role", "?")), _message_text(message)))
        if isinstance(response, dict):
            for choice in response.get("choices") or []:
                message = choice.get("message") if isinstance(choice, dict) else None
                if isinstance(message, dict):
                    turns.append((str(message.get("role") or "assistant"), _message_text(message)))
            if isinstance(response.get("error"), dict):
                turns.append(("error", str(response["error"].get("message", response["error"]))))
        return turns


def _message_text(message: dict[str, Any]) -> str:
    text = text_of(message.get("content"))
    for call in message.get("tool_calls") or []:
        function = call.get("function", {}) if isinstance(call, dict) else {}
        text += f"\n→ {function.get('name')}({function.get('arguments', '')})"
    return text.strip()


class ChatStreamAssembler(ChoiceChunksAssembler):
    answer_object = "chat.completion"

    def _new_choice(self) -> dict[str, Any]:
        return {"role": "assistant", "content": [], "tool_calls": {}, "finish": None}

    def _add_choice(self, slot: dict[str, Any], choice: dict[str, Any]) -> None:
        delta = as_dict(choice.get("delta"))
        if delta.get("role"):
            slot["role"] = delta["role"]
        if delta.get("content"):
            slot["content"].append(self.keep(delta["content"]))
            self.first_token_seen = True
        calls = delta.get("tool_calls")
        for call in calls if isinstance(calls, list) else []:
            if not isinstance(call, dict):
                continue
            self.first_token_seen = True
            merged = slot["tool_calls"].setdefault(
                index_of(call.get("index")), {"id": None, "type": "function", "function": {"name": [], "arguments": []}}
            )
            merged["id"] = call.get("id") or merged["id"]
            function = as_dict(call.get("function"))
            merged["function"]["name"].append(self.keep(function.get("name")))
            merged["function"]["arguments"].append(self.keep(function.get("arguments")))
        if choice.get("finish_reason"):
            slot["finish"] = choice["finish_reason"]

    def _choice_of(self, index: int, slot: dict[str, Any]) -> dict[str, Any]:
        message: dict[str, Any] = {"role": slot["role"], "content": "".join(slot["content"]) or None}
        if slot["tool_calls"]:
            message["tool_calls"] = [_joined_call(slot["tool_calls"][i]) for i in sorted(slot["tool_calls"])]
        return {"index": index, "message": message, "finish_reason": slot["finish"]}


def _joined_call(call: dict[str, Any]) -> dict[str, Any]:
    """A tool call whose name and arguments were gathered piece by piece (a list, not repeated string copies)."""
    function = {key: "".join(pieces) for key, pieces in call["function"].items()}
    return {**call, "function": function}
