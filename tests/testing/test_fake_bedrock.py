"""The fake Bedrock server, judged by the official SDK: boto3's ``bedrock-runtime`` client."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

boto3 = pytest.importorskip("boto3")
import botocore.config  # noqa: E402
from botocore import UNSIGNED  # noqa: E402
from botocore.eventstream import ChecksumMismatch  # noqa: E402
from botocore.exceptions import ClientError, EventStreamError  # noqa: E402

from thrifty.testing.fake_bedrock import (  # noqa: E402
    FAKE_ACCESS_KEY,
    FAKE_SECRET_KEY,
    BedrockFault,
    FakeBedrockServer,
)
from thrifty.testing.faults import FaultSpec  # noqa: E402

CLAUDE = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
ARN = (
    "arn:aws:bedrock:us-east-1:123456789012:inference-profile/"
    "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
)
HI = [{"role": "user", "content": [{"text": "Hello there"}]}]
WEATHER_TOOLS = {
    "tools": [
        {
            "toolSpec": {
                "name": "get_weather",
                "description": "Get the weather",
                "inputSchema": {
                    "json": {
                        "type": "object",
                        "properties": {"city": {"type": "string"}},
                        "required": ["city"],
                    }
                },
            }
        },
        {
            "toolSpec": {
                "name": "get_time",
                "inputSchema": {
                    "json": {"type": "object", "properties": {"tz": {"type": "string"}}}
                },
            }
        },
    ]
}


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeBedrockServer]:
    server = FakeBedrockServer()
    with server:
        yield server


@pytest.fixture(autouse=True)
def _reset(fake: FakeBedrockServer) -> None:
    fake.set_fault(None)
    fake.clear()


def client(fake: FakeBedrockServer, **kw: Any) -> Any:
    args: dict[str, Any] = {
        "region_name": "us-east-1",
        "endpoint_url": fake.base_url,
        "aws_access_key_id": FAKE_ACCESS_KEY,
        "aws_secret_access_key": FAKE_SECRET_KEY,
        "config": botocore.config.Config(retries={"total_max_attempts": 1, "mode": "standard"}),
    }
    args.update(kw)
    return boto3.client("bedrock-runtime", **args)


def error_of(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, int]:
    err = exc.value.response
    return err["Error"]["Code"], err["ResponseMetadata"]["HTTPStatusCode"]


# -- Converse ---------------------------------------------------------------------------------


def test_converse_text(fake: FakeBedrockServer) -> None:
    resp = client(fake).converse(modelId=CLAUDE, messages=HI, system=[{"text": "Be brief."}])
    content = resp["output"]["message"]["content"]
    assert resp["output"]["message"]["role"] == "assistant"
    assert len(content) == 1 and content[0]["text"]
    assert resp["stopReason"] == "end_turn"
    usage = resp["usage"]
    assert usage["inputTokens"] > 0 and usage["outputTokens"] > 0
    assert usage["totalTokens"] == usage["inputTokens"] + usage["outputTokens"]
    assert "cacheReadInputTokens" not in usage
    assert resp["ResponseMetadata"]["RequestId"]
    req = fake.requests[-1]
    assert req["raw_path"] == "/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/converse"
    assert req["model"] == CLAUDE and req["operation"] == "converse"
    assert req["access_key"] == FAKE_ACCESS_KEY
    assert "modelId" not in req["body"]


def test_converse_is_deterministic_and_honours_length_markers(fake: FakeBedrockServer) -> None:
    c = client(fake)
    a = c.converse(modelId=CLAUDE, messages=HI)
    b = c.converse(modelId=CLAUDE, messages=HI)
    assert a["output"] == b["output"] and a["usage"] == b["usage"]
    marked = [{"role": "user", "content": [{"text": "Say it [fake:tokens=7]"}]}]
    assert c.converse(modelId=CLAUDE, messages=marked)["usage"]["outputTokens"] == 7
    cut = c.converse(
        modelId=CLAUDE, messages=marked, inferenceConfig={"maxTokens": 3, "temperature": 0.5}
    )
    assert cut["stopReason"] == "max_tokens" and cut["usage"]["outputTokens"] == 3


def test_converse_stop_sequence(fake: FakeBedrockServer) -> None:
    c = client(fake)
    full = c.converse(modelId=CLAUDE, messages=HI)["output"]["message"]["content"][0]["text"]
    word = full.split()[3]
    resp = c.converse(modelId=CLAUDE, messages=HI, inferenceConfig={"stopSequences": [word]})
    assert resp["stopReason"] == "stop_sequence"
    assert word not in resp["output"]["message"]["content"][0]["text"]


def test_arn_model_ids_arrive_percent_encoded(fake: FakeBedrockServer) -> None:
    client(fake).converse(modelId=ARN, messages=HI)
    req = fake.requests[-1]
    assert "%3A" in req["raw_path"] and "%2F" in req["raw_path"]
    assert req["model"] == ARN


def test_converse_with_tools_then_tool_result(fake: FakeBedrockServer) -> None:
    c = client(fake)
    question = [{"role": "user", "content": [{"text": "Weather in Paris?"}]}]
    resp = c.converse(modelId=CLAUDE, messages=question, toolConfig=WEATHER_TOOLS)
    assert resp["stopReason"] == "tool_use"
    text, use = resp["output"]["message"]["content"]
    assert "get_weather" in text["text"]
    assert use["toolUse"]["name"] == "get_weather"
    assert isinstance(use["toolUse"]["input"]["city"], str)

    forced = c.converse(
        modelId=CLAUDE,
        messages=question,
        toolConfig={**WEATHER_TOOLS, "toolChoice": {"tool": {"name": "get_time"}}},
    )
    (only,) = forced["output"]["message"]["content"]
    assert only["toolUse"]["name"] == "get_time"

    history = [
        *question,
        {"role": "assistant", "content": resp["output"]["message"]["content"]},
        {
            "role": "user",
            "content": [
                {
                    "toolResult": {
                        "toolUseId": use["toolUse"]["toolUseId"],
                        "content": [{"json": {"temp_c": 21}}],
                    }
                }
            ],
        },
    ]
    final = c.converse(modelId=CLAUDE, messages=history, toolConfig=WEATHER_TOOLS)
    assert final["stopReason"] == "end_turn"
    assert "text" in final["output"]["message"]["content"][0]


def test_converse_image_block(fake: FakeBedrockServer) -> None:
    image = {"image": {"format": "png", "source": {"bytes": b"\x89PNG\r\n\x1a\nfake"}}}
    messages = [{"role": "user", "content": [{"text": "What is this?"}, image]}]
    resp = client(fake).converse(modelId=CLAUDE, messages=messages)
    assert resp["stopReason"] == "end_turn"
    sent = fake.requests[-1]["body"]["messages"][0]["content"][1]["image"]
    assert sent["format"] == "png" and isinstance(sent["source"]["bytes"], str)


def test_cache_points_write_then_read(fake: FakeBedrockServer) -> None:
    c = client(fake)
    system = [{"text": "You are a careful assistant. " * 50}, {"cachePoint": {"type": "default"}}]
    first = c.converse(modelId=CLAUDE, messages=HI, system=system)["usage"]
    second = c.converse(modelId=CLAUDE, messages=HI, system=system)["usage"]
    assert first["cacheReadInputTokens"] == 0 and first["cacheWriteInputTokens"] > 200
    assert second["cacheReadInputTokens"] == first["cacheWriteInputTokens"]
    assert second["cacheWriteInputTokens"] == 0
    # inputTokens EXCLUDES the cached prefix; totalTokens includes it
    assert second["inputTokens"] == first["inputTokens"]
    prompt = first["inputTokens"] + first["cacheWriteInputTokens"]
    assert first["totalTokens"] == prompt + first["outputTokens"]


# -- ConverseStream ---------------------------------------------------------------------------


def events(resp: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    stream = resp["stream"]
    try:
        return [next(iter(ev.items())) for ev in stream]
    finally:
        stream.close()


def test_converse_stream_matches_converse(fake: FakeBedrockServer) -> None:
    c = client(fake)
    whole = c.converse(modelId=CLAUDE, messages=HI)
    evs = events(c.converse_stream(modelId=CLAUDE, messages=HI))
    kinds = [k for k, _ in evs]
    assert kinds[0] == "messageStart" and kinds[-2:] == ["messageStop", "metadata"]
    text = "".join(p["delta"]["text"] for k, p in evs if k == "contentBlockDelta")
    assert text == whole["output"]["message"]["content"][0]["text"]
    assert evs[-2][1]["stopReason"] == "end_turn"
    assert evs[-1][1]["usage"] == whole["usage"]
    assert fake.requests[-1]["operation"] == "converse-stream"


def test_converse_stream_tool_use(fake: FakeBedrockServer) -> None:
    messages = [{"role": "user", "content": [{"text": "Weather? [fake:parallel]"}]}]
    evs = events(
        client(fake).converse_stream(modelId=CLAUDE, messages=messages, toolConfig=WEATHER_TOOLS)
    )
    starts = [p for k, p in evs if k == "contentBlockStart"]
    assert [s["contentBlockIndex"] for s in starts] == [1, 2]
    assert [s["start"]["toolUse"]["name"] for s in starts] == ["get_weather", "get_time"]
    args = "".join(
        p["delta"]["toolUse"]["input"]
        for k, p in evs
        if k == "contentBlockDelta" and p["contentBlockIndex"] == 1
    )
    assert "city" in json.loads(args)
    assert evs[-2][1]["stopReason"] == "tool_use"


def test_stream_exception_frames(fake: FakeBedrockServer) -> None:
    c = client(fake)
    fake.set_fault("stream_error=2")
    with pytest.raises(EventStreamError) as exc:
        events(c.converse_stream(modelId=CLAUDE, messages=HI))
    assert exc.value.response["Error"]["Code"] == "throttlingException"
    fake.set_fault("stream_error=1;code=modelStreamErrorException;message=boom")
    with pytest.raises(EventStreamError) as exc:
        events(c.converse_stream(modelId=CLAUDE, messages=HI))
    assert exc.value.response["Error"] == {"Code": "modelStreamErrorException", "Message": "boom"}


def test_stream_bad_crc_is_a_checksum_mismatch(fake: FakeBedrockServer) -> None:
    fake.set_fault("malformed")
    with pytest.raises(ChecksumMismatch):
        events(client(fake).converse_stream(modelId=CLAUDE, messages=HI))


def test_stream_cut_ends_prematurely(fake: FakeBedrockServer) -> None:
    fake.set_fault("cut=3")
    with pytest.raises(Exception, match=r"ended prematurely|Connection broken|IncompleteRead"):
        events(client(fake).converse_stream(modelId=CLAUDE, messages=HI))


# -- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "code", "status"),
    [
        ("status=429", "ThrottlingException", 429),
        ("status=429;code=ModelNotReadyException", "ModelNotReadyException", 429),
        ("status=500", "InternalServerException", 500),
        ("status=503", "ServiceUnavailableException", 503),
        ("status=400", "ValidationException", 400),
        ("status=403", "AccessDeniedException", 403),
        ("status=404", "ResourceNotFoundException", 404),
        ("status=408", "ModelTimeoutException", 408),
        ("status=424", "ModelErrorException", 424),
    ],
)
def test_faults_map_to_client_error_codes(
    fake: FakeBedrockServer, spec: str, code: str, status: int
) -> None:
    fake.set_fault(spec, model=CLAUDE, times=1)
    with pytest.raises(ClientError) as exc:
        client(fake).converse(modelId=CLAUDE, messages=HI)
    assert error_of(exc) == (code, status)
    client(fake).converse(modelId=CLAUDE, messages=HI)  # times=1: the fault is gone


def test_fault_header_and_per_model_config() -> None:
    with FakeBedrockServer(faults={"broken-model": "status=503"}) as fake:
        c = client(fake)
        with pytest.raises(ClientError) as exc:
            c.converse(modelId="broken-model", messages=HI)
        assert error_of(exc) == ("ServiceUnavailableException", 503)
        c.converse(modelId="fine-model", messages=HI)

        def add_fault(request: Any, **_: Any) -> None:
            request.headers["x-fake-fault"] = "status=500;message=kaboom"

        c.meta.events.register("before-sign.bedrock-runtime.Converse", add_fault)
        with pytest.raises(ClientError) as exc:
            c.converse(modelId="fine-model", messages=HI)
        assert error_of(exc) == ("InternalServerException", 500)
        assert "kaboom" in str(exc.value)


@pytest.mark.parametrize(
    ("messages", "kw", "needle"),
    [
        ([{"role": "assistant", "content": [{"text": "hi"}]}], {}, "must start with a user"),
        ([*HI, *HI], {}, "must alternate"),
        ([{"role": "user", "content": [{"text": "  "}]}], {}, "is blank"),
        ([{"role": "user", "content": []}], {}, "is empty"),
        (HI, {"inferenceConfig": {"temperature": 1.5}}, "inferenceConfig.temperature"),
        (
            [
                *HI,
                {
                    "role": "assistant",
                    "content": [
                        {"toolUse": {"toolUseId": "t1", "name": "get_weather", "input": {}}}
                    ],
                },
                {
                    "role": "user",
                    "content": [{"toolResult": {"toolUseId": "t1", "content": [{"text": "21C"}]}}],
                },
            ],
            {},
            "toolConfig field must be defined",
        ),
        (
            [
                *HI,
                {
                    "role": "assistant",
                    "content": [
                        {"toolUse": {"toolUseId": "t1", "name": "get_weather", "input": {}}}
                    ],
                },
                {"role": "user", "content": [{"text": "never mind"}]},
            ],
            {"toolConfig": WEATHER_TOOLS},
            "Expected toolResult blocks",
        ),
        (
            [
                {
                    "role": "user",
                    "content": [{"image": {"format": "bmp", "source": {"bytes": b"xx"}}}],
                }
            ],
            {},
            "image.format",
        ),
        (
            HI,
            {"toolConfig": {**WEATHER_TOOLS, "toolChoice": {"tool": {"name": "nope"}}}},
            "toolChoice",
        ),
    ],
)
def test_validation_exceptions(
    fake: FakeBedrockServer, messages: list[Any], kw: dict[str, Any], needle: str
) -> None:
    with pytest.raises(ClientError) as exc:
        client(fake).converse(modelId=CLAUDE, messages=messages, **kw)
    assert error_of(exc) == ("ValidationException", 400)
    assert needle in exc.value.response["Error"]["Message"]


def test_unknown_model_is_invalid(fake: FakeBedrockServer) -> None:
    with pytest.raises(ClientError) as exc:
        client(fake).converse(modelId="unknown.model-v1:0", messages=HI)
    assert error_of(exc) == ("ValidationException", 400)


# -- auth -------------------------------------------------------------------------------------


def test_signature_is_verified(fake: FakeBedrockServer) -> None:
    with pytest.raises(ClientError) as exc:
        client(fake, aws_secret_access_key="wrong").converse(modelId=CLAUDE, messages=HI)
    assert error_of(exc) == ("InvalidSignatureException", 403)
    with pytest.raises(ClientError) as exc:
        client(fake, region_name="eu-west-1").converse(modelId=CLAUDE, messages=HI)
    assert error_of(exc) == ("InvalidSignatureException", 403)
    unsigned = botocore.config.Config(signature_version=UNSIGNED, retries={"total_max_attempts": 1})
    with pytest.raises(ClientError) as exc:
        client(fake, config=unsigned).converse(modelId=CLAUDE, messages=HI)
    assert error_of(exc) == ("MissingAuthenticationTokenException", 403)


def test_session_token_is_signed(fake: FakeBedrockServer) -> None:
    client(fake, aws_session_token="session-tok").converse(modelId=CLAUDE, messages=HI)
    headers = fake.requests[-1]["headers"]
    assert headers["x-amz-security-token"] == "session-tok"
    assert "x-amz-security-token" in headers["authorization"]


def test_unknown_access_keys_strict_and_lenient() -> None:
    with FakeBedrockServer() as lenient:
        client(lenient, aws_access_key_id="AKIDOTHER").converse(modelId=CLAUDE, messages=HI)
    with FakeBedrockServer(strict_credentials=True) as strict:
        with pytest.raises(ClientError) as exc:
            client(strict, aws_access_key_id="AKIDOTHER").converse(modelId=CLAUDE, messages=HI)
        assert error_of(exc) == ("UnrecognizedClientException", 403)


def test_bedrock_fault_parse() -> None:
    assert BedrockFault.parse("none") is None
    assert BedrockFault.parse("stream_error=2") == BedrockFault(FaultSpec(), 2)
    fault = BedrockFault.parse("stream_error=1;code=internalServerException;message=a;b")
    assert fault == BedrockFault(FaultSpec(code="internalServerException", message="a;b"), 1)
    assert BedrockFault.parse("status=429;retry_after=1") == BedrockFault(
        FaultSpec(status=429, retry_after=1.0)
    )
    with pytest.raises(ValueError):
        BedrockFault.parse("stream_error=x")
