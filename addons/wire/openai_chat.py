"""OpenAI Chat Completions (`/chat/completions`), the format every OpenAI-compatible provider speaks."""

from __future__ import annotations

import re
from typing import Any

from .base import StreamAssembler, WireFormat, as_dict, index_of, sse_bytes, text_of
from .sse import SseEvent

AZURE_DEPLOYMENT_PATH = re.compile(r"/openai/deployments/[^/]+/chat/completions")


class OpenAIChat(WireFormat):
    name = "openai_chat"
    description = "OpenAI-compatible, any provider"
    gateway_paths = ("/v1/chat/completions", "/chat/completions")
    ratelimit_header_prefixes = ("x-ratelimit-",)
    ratelimit_headers = ("retry-after", "retry-after-ms")
    # Spoken by OpenAI and by other providers' compatible endpoints (Google's among them): their own headers.
    provider_header_prefixes = ("openai-", "x-goog-")
    usage_provider_id = "openai"
    usage_flavor = "chat"
    usage_flavor_shared = True  # every provider's entry in genai-prices calls OpenAI-compatible chat "chat"

    def matches(self, path: str) -> bool:
        return path.endswith("/chat/completions")

    def serves_gateway_path(self, path: str) -> bool:
        # Azure's deployment URLs too, as openai.AzureOpenAI(azure_endpoint=<the gateway>) sends them: the body's
        # `model` is the deployment's name, which a provider's `models` patterns route.
        return super().serves_gateway_path(path) or AZURE_DEPLOYMENT_PATH.fullmatch(path) is not None

    def new_assembler(self) -> StreamAssembler:
        return ChatStreamAssembler()

    def ask_for_stream_usage(self, body: dict[str, Any]) -> bool:
        options = body.get("stream_options")
        if isinstance(options, dict) and options.get("include_usage") is True:
            return False
        body["stream_options"] = {**(options if isinstance(options, dict) else {}), "include_usage": True}
        return True

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
        options = request.get("stream_options")
        if isinstance(options, dict) and options.get("include_usage") and answer.get("usage"):
            events.append(chunk([], usage=answer["usage"]))
        events.append(sse_bytes("[DONE]"))
        return b"".join(events)

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


class ChatStreamAssembler(StreamAssembler):
    def __init__(self) -> None:
        self._head: dict[str, Any] = {}
        self._choices: dict[int, dict[str, Any]] = {}
        self._usage: dict[str, Any] | None = None
        self._error: Any = None

    def add(self, event: SseEvent) -> None:
        if event.data == "[DONE]":
            self.complete = self._error is None
            return
        chunk = event.json
        if chunk is None:
            return
        if "error" in chunk and "choices" not in chunk:
            self._error = chunk["error"]
            self.complete = False
            return
        for key in ("id", "created", "model", "system_fingerprint", "service_tier"):
            if chunk.get(key) is not None:
                self._head[key] = chunk[key]
        if isinstance(chunk.get("usage"), dict):
            self._usage = chunk["usage"]
        choices = chunk.get("choices")
        for choice in choices if isinstance(choices, list) else []:
            if isinstance(choice, dict):
                self._add_choice(choice)

    def _add_choice(self, choice: dict[str, Any]) -> None:
        index = index_of(choice.get("index"))
        slot = self._choices.setdefault(index, {"role": "assistant", "content": [], "tool_calls": {}, "finish": None})
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

    def is_usage_only(self, event: SseEvent) -> bool:
        chunk = event.json
        return chunk is not None and not chunk.get("choices") and isinstance(chunk.get("usage"), dict)

    def result(self) -> dict[str, Any] | None:
        if not self._head and not self._choices:
            return {"error": self._error} if self._error is not None else None
        choices = []
        for index, slot in sorted(self._choices.items()):
            message: dict[str, Any] = {"role": slot["role"], "content": "".join(slot["content"]) or None}
            if slot["tool_calls"]:
                message["tool_calls"] = [_joined_call(slot["tool_calls"][i]) for i in sorted(slot["tool_calls"])]
            choices.append({"index": index, "message": message, "finish_reason": slot["finish"]})
        answer = {**self._head, "object": "chat.completion", "choices": choices}
        if self._usage is not None:
            answer["usage"] = self._usage
        if self._error is not None:
            answer["error"] = self._error
        return answer


def _joined_call(call: dict[str, Any]) -> dict[str, Any]:
    """A tool call whose name and arguments were gathered piece by piece (a list, not repeated string copies)."""
    function = {key: "".join(pieces) for key, pieces in call["function"].items()}
    return {**call, "function": function}
