"""The `ResponseCache` addon: Helicone's response cache, switched on per request by `Helicone-Cache-Enabled: true`.

The key is the provider, the API and the upstream path (an Azure deployment and a Gemini model are part of it; what
in a path asks for a stream is not, `WireFormat.cache_path`), the request headers the
API's wire format says change an answer (Anthropic's `anthropic-beta`), the request body in canonical JSON (key order
and white space do not matter; `stream` and `stream_options` do not count, so a streamed answer serves a later
unstreamed request and the other way round; `Helicone-Cache-Ignore-Keys` leaves out more), who the caller is, and
`Helicone-Cache-Seed`. One credential's answers are never served to another. Who the caller is takes two parts: the
fingerprint of the key it presented to llmtap (`state.request.key_hash`: its gateway key, which tells callers apart on
the gateway way in when llmtap injects its own provider key), and the fingerprint of every credential the request
arrived with (`state.request.credential_hash`, taken by Intake before llmtap changes anything: any `Authorization`
scheme — Bearer, Basic, a raw token —, `x-api-key` and the like, `proxy-authorization`, `cookie`, secret query
parameters). Requests without any credential share one "no credential" namespace.

A hit is answered by llmtap in the form the client asked for: JSON, or a stream replayed in the provider's own event
format. Only whole 2xx answers are stored, and none larger than an eighth of `cache.max_bytes`
(`cache_store.MAX_ANSWER_SHARE`): one huge answer would otherwise evict everything else and leave the cache past its
bound until the next eviction.

Identical calls coalesce: while one call with a key is on its way to the provider (the leader), later calls with the
same key wait for it — on the event loop, never blocking it — and are then answered from what it stored. They wait at
most `retries.upstream_timeout_s`; when the leader fails, its answer is not stored (an error, too large, cut short) or
its bucket is not full yet, they go to the provider themselves. Disk work runs on one worker thread, never on
mitmproxy's event loop; buckets used lately also stay in memory, so a repeated hit is answered without waiting for the
disk.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from mitmproxy import exceptions, http

from .cache_store import CacheStore, CacheUnreadable, HotBuckets, Lookup, choose
from .callstate import CallState, get_state
from .options import CacheOptions
from .record import CallRecord
from .settings import Settings
from .streaming import read_answer

logger = logging.getLogger(__name__)

STREAM_KEYS = frozenset({"stream", "stream_options"})
HOT_MAX_BYTES = 32 * 1024 * 1024  # memory for recently used buckets: an eighth of cache.max_bytes, at most this
SYNC_INTERVAL_S = 0.5  # how soon a `llmtap cache clear` from another process reaches a running gateway
LEADER_KEY = "llmtap.cache.leader"  # flow.metadata: the cache key a flow leads, while its answer is on its way


class ResponseCache:
    def __init__(self, settings: Settings, clock: Callable[[], float] = time.time):
        self.settings = settings
        self.clock = clock  # wall-clock seconds, for expiry: injectable so tests age entries without sleeping
        self.store: CacheStore | None = None
        self.hot = HotBuckets(0)
        self._disk = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llmtap-cache")
        self._generation = 0
        self._touched: set[str] = set()  # keys served from memory since the disk last heard of them
        self._watch: asyncio.Task | None = None
        self._in_flight: dict[str, asyncio.Event] = {}  # cache key -> set when its leader's answer is stored or not

    def configure(self, updated: set[str]) -> None:
        config = self.settings.config
        if self.store is None or self.store.path != config.cache_path or self.store.max_bytes != config.cache_max_bytes:
            if self.store is not None:
                self.store.close()
            try:
                self.store = CacheStore(config.cache_path, config.cache_max_bytes, self.clock)
            except CacheUnreadable as e:
                self.store = None
                raise exceptions.OptionsError(f"cache.path: {e}") from None
            self.hot = HotBuckets(min(config.cache_max_bytes // 8, HOT_MAX_BYTES))
            self._generation = self.store.generation()

    def running(self) -> None:
        self._watch = asyncio.get_running_loop().create_task(self._sync_with_disk())

    def request(self, flow: http.HTTPFlow):
        state = get_state(flow)
        if flow.response or flow.error or state is None or not state.request.options.cache.enabled:
            return None
        state.cache.status = "MISS"
        if state.route.wire is None or state.route.provider is None or not isinstance(state.request.body, dict):
            return None  # an API llmtap does not read: never stored, so never a hit
        key = state.cache.key = cache_key(state, flow.request)
        hot = self.hot.get(key)
        if hot is not None and (lookup := choose(hot, state.request.options.cache.bucket_max_size, self.clock())).hit:
            self._touched.add(key)
            self._answer(flow, state, lookup)
            return None
        return self._lookup_on_disk(flow, state, key)  # mitmproxy awaits it; other flows go on meanwhile

    async def _lookup_on_disk(self, flow: http.HTTPFlow, state: CallState, key: str) -> None:
        if key not in self._in_flight:
            lookup = await self._lookup(key, state)
            if lookup.hit or key not in self._in_flight:  # no other call with this key went upstream meanwhile
                if not lookup.hit:
                    self._in_flight[key] = asyncio.Event()
                    flow.metadata[LEADER_KEY] = key
                self._answer(flow, state, lookup)
                return
        try:
            await asyncio.wait_for(self._in_flight[key].wait(), self.settings.config.upstream_timeout_s)
        except TimeoutError:
            pass  # the leader is slow: go upstream rather than wait longer than a call may take
        self._answer(flow, state, await self._lookup(key, state))

    async def _lookup(self, key: str, state: CallState) -> Lookup:
        entries = self.hot.get(key)
        if entries is None:
            entries = await self._on_disk(self._open_store().entries, key)
            if entries:
                self.hot.put(key, entries)
        return choose(entries, state.request.options.cache.bucket_max_size, self.clock())

    def _answer(self, flow: http.HTTPFlow, state: CallState, lookup: Lookup) -> None:
        state.cache.bucket_idx = lookup.bucket_idx
        if lookup.hit and lookup.answer is not None:
            state.cache.status = "HIT"
            state.cache.answer = lookup.answer
            flow.response = cached_response(state, lookup.answer, state.request.client_path or flow.request.path)

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        state = get_state(flow)
        if state is None or state.cache.status is None or flow.response is None:
            return
        flow.response.headers["helicone-cache"] = state.cache.status
        if state.cache.bucket_idx is not None:
            flow.response.headers["helicone-cache-bucket-idx"] = str(state.cache.bucket_idx)

    def response(self, flow: http.HTTPFlow):
        state = get_state(flow)
        answer = self._answer_to_store(flow, state)
        if answer is None:
            return None  # the calls waiting for it are woken when it has finished (call_finished)
        assert state is not None and state.cache.key is not None
        return self._store(flow, state.cache.key, answer, state.request.options.cache)

    def call_finished(self, flow: http.HTTPFlow, record: CallRecord) -> None:
        self._release(flow)  # when its answer was not stored, or the call failed

    def _answer_to_store(self, flow: http.HTTPFlow, state: CallState | None) -> dict[str, Any] | None:
        if state is None or state.cache.status != "MISS" or state.cache.key is None or flow.response is None:
            return None
        if not 200 <= flow.response.status_code < 300:
            return None
        tap, body_tap = state.outcome.tap, state.outcome.body_tap
        if (tap is not None and not tap.assembler.complete) or (body_tap is not None and body_tap.cut):
            return None  # cut short, or larger than what llmtap keeps of an answer: far past what the cache stores
        assert state.route.wire is not None  # a call has a cache key only when its format is known
        return state.route.wire.cacheable_answer(read_answer(flow.response, state))

    async def _store(self, flow: http.HTTPFlow, key: str, answer: dict[str, Any], options: CacheOptions) -> None:
        try:
            store = self._open_store()
            entries = await self._on_disk(store.store, key, answer, options.max_age_s, options.bucket_max_size)
            if entries is not None:
                self.hot.put(key, entries)
        finally:
            self._release(flow)

    def _release(self, flow: http.HTTPFlow) -> None:
        """Wake the calls waiting for this flow's answer, once it is stored or will not be."""
        key = flow.metadata.pop(LEADER_KEY, None)
        if key is not None and (waiting := self._in_flight.pop(key, None)) is not None:
            waiting.set()

    async def _sync_with_disk(self) -> None:
        """Twice a second: tell the disk which keys memory served (its least-recently-used order stays true), and
        drop the in-memory buckets when `llmtap cache clear` has run in another process."""
        while True:
            await asyncio.sleep(SYNC_INTERVAL_S)
            touched, self._touched = self._touched, set()
            try:
                generation = await self._on_disk(self._touch_and_read_generation, touched)
            except Exception as e:  # a disk hiccup must not end the syncing for good
                logger.warning(f"llmtap: cache sync with {self._open_store().path} failed: {e}")
                continue
            if generation != self._generation:
                self._generation = generation
                self.hot.clear()

    def _touch_and_read_generation(self, keys: set[str]) -> int:
        store = self._open_store()
        for key in keys:
            store.entries(key)
        return store.generation()

    def _open_store(self) -> CacheStore:
        assert self.store is not None, "configure() opens the store before any flow or task runs"
        return self.store

    def done(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
        self._disk.shutdown(wait=True)
        if self.store is not None:
            self.store.close()

    async def _on_disk(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self._disk, fn, *args)


def cache_key(state: CallState, request: http.Request) -> str:
    """The cache key of a call routed as `request`: see the module docstring for what counts."""
    provider, wire, asked = state.route.provider, state.route.wire, state.request
    assert provider is not None and wire is not None and isinstance(asked.body, dict)
    ignored = STREAM_KEYS | set(asked.options.cache.ignore_keys)
    relevant = {k: v for k, v in asked.body.items() if k not in ignored}
    canonical = json.dumps(relevant, sort_keys=True, separators=(",", ":"))
    headers = [request.headers.get(name, "") for name in wire.cache_key_headers]
    parts = [provider.name, wire.name, wire.cache_path(request.path), *headers, canonical, asked.key_hash or "",
             asked.credential_hash, asked.options.cache.seed or ""]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def cached_response(state: CallState, answer: dict[str, Any], path: str) -> http.Response:
    """The hit, in the form the client asked for at `path`: JSON, or the provider's stream (its format says how)."""
    assert state.route.wire is not None and isinstance(state.request.body, dict)
    if state.request.stream:
        body, content_type = state.route.wire.replay(answer, state.request.body, path)
        headers = {"content-type": content_type, "cache-control": "no-cache"}
    else:
        body = json.dumps(answer).encode()
        headers = {"content-type": "application/json"}
    response = http.Response.make(200, body, headers)
    response.headers["helicone-id"] = state.request_id
    return response
