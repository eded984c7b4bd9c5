"""langchain-tests standard suites for KBLaMLLM.

Unit tests build the model only (nothing is loaded). Integration tests run on the real
default stack (SmolLM2-135M-Instruct + MiniLM, loaded once and shared by every test) with
``max_new_tokens=8`` so the class stays within CI's budget on two CPU cores.

Not applicable, declared through the suite's properties (each such test skips itself with
its own reason): tool calling / tool choice (and everything built on them: agent loop, tool
message histories, few-shot tool examples), structured output, JSON mode, image / PDF /
audio / video inputs and tool messages, Anthropic-format inputs, per-call model override
(one local model per instance), VCR recording (nothing goes over HTTP).
"""

from __future__ import annotations

import pytest
from langchain_tests.integration_tests import ChatModelIntegrationTests
from langchain_tests.unit_tests import ChatModelUnitTests

from kblam_integrations.integrations.langchain import KBLaMLLM

KB = [
    ("Veltrano Dynamics", "founder", "Marisol Okonkwo"),
    ("Veltrano Dynamics", "location", "Port Alvessa"),
    ("Quillmark X2", "price", "42 dollars"),
]


class _Declared:
    """What KBLaMLLM supports (shared by both suites)."""

    @property
    def chat_model_class(self) -> type[KBLaMLLM]:
        return KBLaMLLM

    @property
    def has_tool_calling(self) -> bool:
        return False

    @property
    def has_tool_choice(self) -> bool:
        return False

    @property
    def has_structured_output(self) -> bool:
        return False

    @property
    def supports_json_mode(self) -> bool:
        return False

    @property
    def supports_image_inputs(self) -> bool:
        return False

    @property
    def supports_image_urls(self) -> bool:
        return False

    @property
    def supports_pdf_inputs(self) -> bool:
        return False

    @property
    def supports_audio_inputs(self) -> bool:
        return False

    @property
    def supports_video_inputs(self) -> bool:
        return False

    @property
    def supports_image_tool_message(self) -> bool:
        return False

    @property
    def supports_pdf_tool_message(self) -> bool:
        return False

    @property
    def supports_anthropic_inputs(self) -> bool:
        return False

    @property
    def returns_usage_metadata(self) -> bool:
        return True

    @property
    def supports_model_override(self) -> bool:
        return False


class TestKBLaMLLMUnit(_Declared, ChatModelUnitTests):
    @property
    def chat_model_params(self) -> dict:
        return {"kb": KB}

    @pytest.mark.xfail(reason="the suite loads with allowed_objects='all', which admits only the classes in "
                              "langchain-core's own mapping, so no third-party chat model can pass it; "
                              "tests/test_plumbing.py checks dumpd/loads with KBLaMLLM allowed by name")
    def test_serdes(self, model: KBLaMLLM, snapshot) -> None:
        super().test_serdes(model, snapshot)


@pytest.mark.slow
@pytest.mark.asyncio
@pytest.mark.filterwarnings("ignore:.*is marked with '@pytest.mark.asyncio' but it is not an async function")
class TestKBLaMLLMIntegration(_Declared, ChatModelIntegrationTests):
    @property
    def chat_model_params(self) -> dict:
        return {"kb": KB, "max_new_tokens": 8}
