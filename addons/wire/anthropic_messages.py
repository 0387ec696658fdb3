"""Anthropic Messages (`/v1/messages`), Anthropic's native API."""

from __future__ import annotations

import json
from typing import Any

from .base import StreamAssembler, WireFormat, as_dict, index_of, sse_bytes, text_of
from .sse import SseEvent

# Anthropic's error types (docs.anthropic.com, "Errors") by HTTP status: its SDK and its users branch on them.
ERROR_TYPES_BY_STATUS = {
    400: "invalid_request_error", 401: "authentication_error", 403: "permission_error", 404: "not_found_error",
    413: "request_too_large", 429: "rate_limit_error", 500: "api_error", 503: "overloaded_error",
    504: "timeout_error", 529: "overloaded_error",
}


class AnthropicMessages(WireFormat):
    name = "anthropic_messages"
    description = "Anthropic"
    gateway_paths = ("/v1/messages", "/messages")
    ratelimit_header_prefixes = ("anthropic-ratelimit-",)
    provider_header_prefixes = ("anthropic-",)
    cache_key_headers = ("anthropic-beta",)  # a beta feature can change the answer to the same body
    usage_provider_id = "anthropic"
    usage_flavor = "default"

    def matches(self, path: str) -> bool:
        return path.endswith("/v1/messages") or path == "/messages"

    def new_assembler(self) -> StreamAssembler:
        return MessagesStreamAssembler()

    def auth_headers(self, key: str) -> dict[str, str]:
        return {"x-api-key": key}

    def error_body(self, status: int, error_type: str, message: str, **extra: Any) -> dict[str, Any]:
        """Anthropic's shape, `{"type": "error", "error": {"type", "message"}}`, with Anthropic's error type for the
        status; llmtap's own type stays findable in `error.llmtap_type`."""
        fallback = "api_error" if status >= 500 else "invalid_request_error"
        anthropic_type = ERROR_TYPES_BY_STATUS.get(status, fallback)
        return {"type": "error",
                "error": {"type": anthropic_type, "message": message, "llmtap_type": error_type, **extra}}

    def replay_stream(self, answer: dict[str, Any], request: dict[str, Any]) -> bytes:
        usage = dict(answer.get("usage") or {})
        start = {**answer, "content": [], "stop_reason": None, "stop_sequence": None,
                 "usage": {**usage, "output_tokens": min(usage.get("output_tokens", 0), 1)}}
        events = [sse_bytes({"type": "message_start", "message": start}, "message_start")]
        for index, block in enumerate(answer.get("content") or []):
            kind = block.get("type")
            empty, delta = dict(block), None
            if kind == "text":
                empty["text"], delta = "", {"type": "text_delta", "text": block.get("text", "")}
            elif kind == "thinking":
                empty["thinking"], delta = "", {"type": "thinking_delta", "thinking": block.get("thinking", "")}
            elif kind in ("tool_use", "server_tool_use"):
                empty["input"] = {}
                delta = {"type": "input_json_delta", "partial_json": json.dumps(block.get("input", {}))}
            events.append(sse_bytes({"type": "content_block_start", "index": index, "content_block": empty},
                                    "content_block_start"))
            if delta is not None:
                events.append(sse_bytes({"type": "content_block_delta", "index": index, "delta": delta},
                                        "content_block_delta"))
            events.append(sse_bytes({"type": "content_block_stop", "index": index}, "content_block_stop"))
        events.append(sse_bytes({
            "type": "message_delta",
            "delta": {"stop_reason": answer.get("stop_reason"), "stop_sequence": answer.get("stop_sequence")},
            "usage": {"output_tokens": usage.get("output_tokens", 0)},
        }, "message_delta"))
        events.append(sse_bytes({"type": "message_stop"}, "message_stop"))
        return b"".join(events)

    def transcript(self, request: Any, response: Any) -> list[tuple[str, str]]:
        turns = []
        if isinstance(request, dict):
            if request.get("system"):
                turns.append(("system", text_of(request["system"])))
            for message in request.get("messages") or []:
                if isinstance(message, dict):
                    turns.append((str(message.get("role", "?")), _blocks_text(message.get("content"))))
        if isinstance(response, dict):
            if response.get("type") == "error" or "error" in response:
                error = response.get("error")
                turns.append(("error", str(error.get("message", error) if isinstance(error, dict) else error)))
            elif "content" in response:
                turns.append((str(response.get("role") or "assistant"), _blocks_text(response.get("content"))))
        return turns


def _blocks_text(content: Any) -> str:
    if not isinstance(content, list):
        return text_of(content)
    lines = []
    for block in content:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text":
            lines.append(block.get("text", ""))
        elif kind == "thinking":
            lines.append(f"(thinking) {block.get('thinking', '')}")
        elif kind == "tool_use":
            lines.append(f"→ {block.get('name')}({json.dumps(block.get('input'))})")
        elif kind == "tool_result":
            lines.append(f"← {text_of(block.get('content'))}")
        else:
            lines.append(f"[{kind}]")
    return "\n".join(lines).strip()


class MessagesStreamAssembler(StreamAssembler):
    def __init__(self) -> None:
        self._message: dict[str, Any] | None = None
        self._blocks: dict[int, dict[str, Any]] = {}
        self._partial_json: dict[int, list[str]] = {}
        self._text: dict[tuple[int, str], list[str]] = {}  # (block index, "text" or "thinking") -> its pieces
        self._error: Any = None

    def add(self, event: SseEvent) -> None:
        data = event.json
        if data is None:
            return
        kind = data.get("type")
        if kind == "message_start" and isinstance(data.get("message"), dict):
            self._message = dict(data["message"])
            self._message["usage"] = dict(as_dict(self._message.get("usage")))
        elif kind == "content_block_start":
            self._blocks[index_of(data.get("index"))] = dict(as_dict(data.get("content_block")))
        elif kind == "content_block_delta":
            self._add_delta(index_of(data.get("index")), data.get("delta"))
        elif kind == "message_delta" and self._message is not None:
            self._message.update({k: v for k, v in as_dict(data.get("delta")).items() if v is not None})
            self._message["usage"].update({k: v for k, v in as_dict(data.get("usage")).items() if v is not None})
        elif kind == "message_stop":
            self.complete = self._message is not None and self._error is None
        elif kind == "error":
            self._error = data.get("error")
            self.complete = False

    def _add_delta(self, index: int, delta: Any) -> None:
        if not isinstance(delta, dict):
            return
        self._blocks.setdefault(index, {"type": "text", "text": ""})
        self.first_token_seen = True
        kind = delta.get("type")
        if kind in ("text_delta", "thinking_delta"):
            field = kind.removesuffix("_delta")
            self._text.setdefault((index, field), []).append(self.keep(delta.get(field)))
        elif kind == "input_json_delta":
            self._partial_json.setdefault(index, []).append(self.keep(delta.get("partial_json")))

    def result(self) -> dict[str, Any] | None:
        if self._message is None:
            return {"type": "error", "error": self._error} if self._error is not None else None
        blocks = {index: dict(block) for index, block in self._blocks.items()}
        for (index, field), pieces in self._text.items():
            before = blocks[index].get(field)
            blocks[index][field] = (before if isinstance(before, str) else "") + "".join(pieces)
        for index, pieces in self._partial_json.items():
            text = "".join(pieces)
            try:
                blocks[index]["input"] = json.loads(text) if text else {}
            except (ValueError, RecursionError):  # cut, or not JSON: keep what came
                blocks[index]["input"] = text
        answer = {**self._message, "content": [blocks[i] for i in sorted(blocks)]}
        if self._error is not None:
            answer["error"] = self._error
        return answer

