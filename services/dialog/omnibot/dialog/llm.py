"""The `llm` slot's call: one chat-completions request to the chat's language model.

The provider is `LLM_BASE_URL`, `LLM_API_KEY`, `LLM_MODEL` from the settings, or the channel's
own when it names one (set through management: `llm_base_url`, `llm_model`, `llm_api_key`). The
request goes through the same fetcher as `external_request`, so the same network policy applies
(a private base URL must be allowed in `EXTERNAL_REQUEST_ALLOW_NETWORKS`) and its errors never
carry the key. The body and the reading of the answer are pure (`omnibot.agents.llm`). Logs say
how long and how many tokens, never the key, the prompt or the answer.
"""

from __future__ import annotations

import logging
import time

import msgspec

from omnibot.agents import engine
from omnibot.agents.llm import LLMAnswer, build_body, build_messages, completions_url, parse_response
from omnibot.dialog.fetch import ExternalFetcher
from omnibot.shared.channels import Channel
from omnibot.shared.crypto import SecretBox

log = logging.getLogger(__name__)


class LLMProvider(msgspec.Struct, frozen=True):
    base_url: str
    api_key: str
    model: str

    def __repr__(self) -> str:  # never the key
        return f"LLMProvider(base_url={self.base_url!r}, model={self.model!r})"


class LLMCaller:
    def __init__(self, fetcher: ExternalFetcher, default: LLMProvider, secrets: SecretBox | None) -> None:
        self._fetcher = fetcher
        self._default = default
        self._secrets = secrets

    def provider(self, channel: Channel) -> LLMProvider:
        """The channel's own provider where it sets one, field by field, else the default.

        A key goes only where it was given for: a channel with its own base URL sends its own key
        or none, never LLM_API_KEY (the environment's key is for LLM_BASE_URL).
        """
        if channel.llm_api_key_enc and self._secrets is not None:
            key = self._secrets.decrypt(channel.llm_api_key_enc)
        else:
            key = "" if channel.llm_base_url else self._default.api_key
        return LLMProvider(
            base_url=channel.llm_base_url or self._default.base_url,
            api_key=key,
            model=channel.llm_model or self._default.model,
        )

    async def complete(self, call: engine.CallLLM, channel: Channel) -> engine.LLMResult:
        return await self.ask(call, self.provider(channel))

    async def ask(self, call: engine.CallLLM, provider: LLMProvider) -> engine.LLMResult:
        if not provider.base_url or not provider.model:
            return engine.LLMResult(
                request_id=call.request_id, text=None, error="no language model configured"
            )
        body = build_body(
            provider.model, build_messages(call.system, call.history, call.prompt), call.max_tokens
        )
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if provider.api_key:
            headers["Authorization"] = f"Bearer {provider.api_key}"
        started = time.monotonic()
        result = await self._fetcher.fetch(
            method="POST",
            url=completions_url(provider.base_url),
            headers=headers,
            body=body,
            basic_auth=None,
            timeout_s=call.timeout_s,
            delay_s=0.0,
        )
        elapsed_ms = (time.monotonic() - started) * 1000
        answer = parse_response(result.status, result.body, result.error)
        if isinstance(answer, LLMAnswer):
            log.info(
                "language model answered in %.0f ms (%d + %d tokens)",
                elapsed_ms,
                answer.prompt_tokens,
                answer.completion_tokens,
            )
            return engine.LLMResult(
                request_id=call.request_id,
                text=answer.text,
                prompt_tokens=answer.prompt_tokens,
                completion_tokens=answer.completion_tokens,
                elapsed_ms=elapsed_ms,
            )
        log.warning("language model call failed after %.0f ms: %s", elapsed_ms, answer.reason)
        return engine.LLMResult(
            request_id=call.request_id, text=None, error=answer.reason, elapsed_ms=elapsed_ms
        )
