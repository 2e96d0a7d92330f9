"""Fake upstream providers: real HTTP servers speaking each provider's wire format."""

from thrifty.testing.fake_openai import FakeOpenAIServer, run_fake_upstream
from thrifty.testing.faults import FaultSpec, Latency

__all__ = ["FakeOpenAIServer", "FaultSpec", "Latency", "run_fake_upstream"]
