"""The Gemini and Cohere fakes checked by the official SDKs (``google-genai``, ``cohere``): what
the adapters are tested against must be what those SDKs parse, answers, streams, tool calls,
embeddings and errors included (WIRE_FORMATS.md: point each SDK at the fake)."""

from __future__ import annotations

import asyncio

import cohere
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from tests.support import FAKE_PROVIDER_KEY
from thrifty.testing import FakeCohereServer, FakeGeminiServer

KEY = FAKE_PROVIDER_KEY


def _gemini(server: FakeGeminiServer, key: str = KEY) -> genai.Client:
    return genai.Client(api_key=key, http_options=types.HttpOptions(base_url=server.base_url))


async def test_gemini_sdk_reads_answers_streams_and_usage(gemini_fake: FakeGeminiServer) -> None:
    def run() -> None:
        client = _gemini(gemini_fake)
        answer = client.models.generate_content(model="gemini-2.5-flash", contents="Hello there")
        assert answer.text and answer.candidates[0].finish_reason == types.FinishReason.STOP
        usage = answer.usage_metadata
        assert usage.prompt_token_count > 0 and usage.candidates_token_count > 0
        chunks = list(
            client.models.generate_content_stream(model="gemini-2.5-flash", contents="Hello there")
        )
        assert len(chunks) > 1 and "".join(c.text or "" for c in chunks)
        assert chunks[-1].usage_metadata.total_token_count > 0
        models = list(client.models.list())
        assert models and all(m.name.startswith("models/") for m in models)

    await asyncio.to_thread(run)


async def test_gemini_sdk_reads_tool_calls_embeddings_and_errors(
    gemini_fake: FakeGeminiServer,
) -> None:
    def run() -> None:
        client = _gemini(gemini_fake)
        weather = types.FunctionDeclaration(
            name="get_weather",
            description="The weather in a city",
            parameters={"type": "object", "properties": {"city": {"type": "string"}}},
        )
        config = types.GenerateContentConfig(tools=[types.Tool(function_declarations=[weather])])
        answer = client.models.generate_content(
            model="gemini-2.5-flash", contents="Weather in Paris? Use the tool.", config=config
        )
        (call,) = answer.function_calls
        assert call.name == "get_weather" and isinstance(call.args, dict)
        vectors = client.models.embed_content(model="text-embedding-004", contents=["a", "b"])
        assert len(vectors.embeddings) == 2 and len(vectors.embeddings[0].values) > 0
        bad = _gemini(gemini_fake, key="wrong")
        with pytest.raises(genai_errors.ClientError) as caught:
            bad.models.generate_content(model="gemini-2.5-flash", contents="x")
        assert caught.value.code == 400 and caught.value.status == "INVALID_ARGUMENT"

    await asyncio.to_thread(run)


async def test_cohere_sdk_reads_chat_streams_embeddings_and_errors(
    cohere_fake: FakeCohereServer,
) -> None:
    def run() -> None:
        client = cohere.ClientV2(api_key=KEY, base_url=cohere_fake.base_url)
        messages = [{"role": "user", "content": "Hello there"}]
        answer = client.chat(model="command-r-plus", messages=messages)
        assert answer.message.content[0].text and answer.finish_reason == "COMPLETE"
        assert answer.usage.tokens.output_tokens > 0 and answer.usage.billed_units.input_tokens
        events = list(client.chat_stream(model="command-r-plus", messages=messages))
        kinds = [e.type for e in events]
        assert kinds[0] == "message-start" and kinds[-1] == "message-end"
        assert "content-delta" in kinds
        vectors = client.embed(
            model="embed-english-v3.0",
            texts=["a", "b"],
            input_type="search_document",
            embedding_types=["float"],
        )
        assert len(vectors.embeddings.float_) == 2 and len(vectors.embeddings.float_[0]) > 0
        bad = cohere.ClientV2(api_key="wrong", base_url=cohere_fake.base_url)
        with pytest.raises(cohere.errors.UnauthorizedError):
            bad.chat(model="command-r-plus", messages=messages)

    await asyncio.to_thread(run)
