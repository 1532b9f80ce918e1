"""``lmj chat`` driven in a real terminal (tmux): typing, streaming, Ctrl+C, slash commands.

What the server did is read from ``lmj log stream --json`` running beside it: the prompts the
model saw (history, /reset, /system) and how each prediction ended (``userStopped``).
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Iterator

import httpx
import pytest

from lm_jupyter.client.log_view import printable
from tests.e2e.isolated_server import IsolatedServer, isolated_server
from tests.e2e.terminal import LMJ, LogCapture, Terminal, wait_until
from tests.tiny_gguf import CHATML_TEMPLATE, write_tiny_model

pytestmark = [
    pytest.mark.timeout(300),
    pytest.mark.skipif(shutil.which("tmux") is None, reason="drives lmj chat in tmux (apt-get install tmux)"),
]


@pytest.fixture(scope="module")
def own(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IsolatedServer]:
    root = tmp_path_factory.mktemp("chat")
    models = root / "models"
    # Seed 1 under greedy sampling (temperature 0) never ends by itself for thousands of tokens.
    write_tiny_model(models / "test" / "tiny-chat-GGUF" / "tiny-chat-F32.gguf", seed=1)
    write_tiny_model(
        models / "test" / "tiny-long-GGUF" / "tiny-long-F32.gguf",
        name="tiny-long",
        context_length=32768,
        seed=1,
        endless=True,  # Ctrl+C must find both rounds still generating
    )
    # A DeepSeek-R1 style template: the prompt opens <think>, so the reply starts in the reasoning.
    write_tiny_model(
        models / "test" / "tiny-reason-GGUF" / "tiny-reason-F32.gguf",
        chat_template=CHATML_TEMPLATE.replace(
            "<|im_start|>assistant\n{% endif %}", "{{ '<|im_start|>assistant\\n<think>\\n' }}{% endif %}"
        ),
        seed=1,
    )
    with isolated_server(root, models) as server:
        yield server


@pytest.fixture
def log(own: IsolatedServer) -> Iterator[LogCapture]:
    capture = LogCapture(own.env, "--json", "--stats")
    yield capture
    capture.stop()


def predictions(log: LogCapture, kind: str, count: int) -> list[dict]:
    def enough() -> list[dict] | None:
        found = [d for d in log.data() if d["type"] == f"llm.prediction.{kind}"]
        return found if len(found) >= count else None

    return list(wait_until(enough, what=f"{count} prediction {kind} events"))


def shown(output: str) -> str:
    """The longest run of the answer's text a terminal shows as is (tabs become spaces)."""
    return max(re.split(r"[\t\n]", printable(output)), key=len).strip()


def squeeze(text: str) -> str:
    """Text without whitespace: a terminal turns tabs into spaces and wraps lines."""
    return re.sub(r"\s", "", text)


def test_answers_stream_with_history_reset_system_and_exit(own: IsolatedServer, log: LogCapture) -> None:
    terminal = Terminal([*LMJ, "chat", "test/tiny-chat", "--max-tokens", "12", "--temperature", "0"], own.env)
    try:
        terminal.wait_for("Chatting with test/tiny-chat. /help for commands")
        terminal.type("first question")
        first = predictions(log, "output", 1)[0]
        assert first["stats"]["predictedTokensCount"] == 12
        answer = shown(first["output"])
        assert len(answer) >= 3, first
        screen = terminal.wait_for(answer)
        assert screen.rstrip().endswith(">")  # streamed, then a fresh prompt

        terminal.type("second question")
        second_input = predictions(log, "input", 2)[1]["input"]
        assert "first question" in second_input and "second question" in second_input  # history kept
        assert answer in printable(second_input)

        terminal.type("/reset")
        terminal.wait_for("Chat history cleared.")
        terminal.type("/system Answer in French.")
        terminal.wait_for("System prompt set.")
        terminal.type("third question")
        third_input = predictions(log, "input", 3)[2]["input"]
        assert "third question" in third_input and "Answer in French." in third_input
        assert "first question" not in third_input and "second question" not in third_input
        predictions(log, "output", 3)

        terminal.type("/exit")
        assert terminal.wait_exit() == 0
    finally:
        terminal.close()


def test_ctrl_c_stops_the_prediction_on_the_server(own: IsolatedServer, log: LogCapture) -> None:
    headers = {"Authorization": f"Bearer {own.info.token}"}
    with httpx.Client(base_url=own.info.url, headers=headers, timeout=120) as http:
        load = {"model": "test/tiny-long", "context_length": 32768}
        assert http.post("api/v1/models/load", json=load).status_code == 200

        def instance() -> dict:
            models = http.get("api/v1/models").json()["models"]
            return next(m for m in models if m["key"] == "test/tiny-long")["loaded_instances"][0]

        terminal = Terminal([*LMJ, "chat", "test/tiny-long", "--temperature", "0"], own.env)
        try:
            terminal.wait_for("Chatting with test/tiny-long.")
            for round_number in (1, 2):
                terminal.type(f"tell me everything, part {round_number}")
                predictions(log, "input", round_number)
                asked = f"> tell me everything, part {round_number}"
                wait_until(
                    lambda: len(terminal.screen().rsplit(asked, 1)[-1].strip()) > 20,  # noqa: B023
                    what="the answer to stream",
                )
                assert instance()["status"] == "generating"
                terminal.send("C-c")
                interrupted = time.monotonic()
                stopped = predictions(log, "output", round_number)[-1]
                assert time.monotonic() - interrupted < 5
                assert stopped["stats"]["stopReason"] == "userStopped"
                assert stopped["stats"]["predictedTokensCount"] > 3
                screen = terminal.wait_for("Prediction aborted by user.")
                assert screen.count("Prediction aborted by user.") == round_number
                # What streamed before Ctrl+C is the start of what the model generated.
                streamed = screen.rsplit(asked, 1)[-1].split("^C")[0]
                assert len(streamed.strip()) > 20
                assert squeeze(printable(stopped["output"])).startswith(squeeze(streamed))
                status = wait_until(lambda: (i := instance())["status"] == "idle" and i, what="idle")
                assert status["queued"] == 0
            # The interrupted answer stays in the conversation, as the user saw it.
            second = predictions(log, "input", 2)[1]["input"]
            assert "part 1" in second and "part 2" in second

            assert terminal.exit_status() is None  # still at the prompt
            terminal.send("C-c")  # Ctrl+C at the prompt quits
            assert terminal.wait_exit() == 0
        finally:
            terminal.close()
            http.post("api/v1/models/unload", json={"instance_id": "test/tiny-long"})


def test_without_a_model_it_uses_the_loaded_one_or_asks(own: IsolatedServer, log: LogCapture) -> None:
    headers = {"Authorization": f"Bearer {own.info.token}"}
    with httpx.Client(base_url=own.info.url, headers=headers, timeout=120) as http:
        for model in http.get("api/v1/models").json()["models"]:
            for instance in model["loaded_instances"]:
                http.post("api/v1/models/unload", json={"instance_id": instance["id"]})
        lonely = own.lmj("chat", "-p", "hi", check=False)
        assert lonely.returncode == 1 and "No model is loaded; name one: `lmj chat MODEL`" in lonely.stderr

        # In a terminal it asks which downloaded model to use.
        terminal = Terminal([*LMJ, "chat", "--max-tokens", "3"], own.env)
        try:
            screen = terminal.wait_for("Which model (1-3)?")
            listed = dict(re.findall(r"^  (\d)\. (\S+)$", screen, re.MULTILINE))
            assert sorted(listed.values()) == ["test/tiny-chat", "test/tiny-long", "test/tiny-reason"]
            terminal.type(next(number for number, key in listed.items() if key == "test/tiny-long"))
            terminal.wait_for("Chatting with test/tiny-long.")
            terminal.type("hello")
            assert predictions(log, "output", 1)[0]["modelIdentifier"] == "test/tiny-long"
            terminal.type("/exit")
            assert terminal.wait_exit() == 0
        finally:
            terminal.close()

        # With a model loaded, it chats with that one.
        loaded = own.lmj("chat", "-p", "hi", "--max-tokens", "2")
        assert loaded.returncode == 0
        assert predictions(log, "input", 2)[1]["modelIdentifier"] == "test/tiny-long"
        http.post("api/v1/models/unload", json={"instance_id": "test/tiny-long"})


def test_reasoning_is_dimmed_in_the_terminal(own: IsolatedServer, log: LogCapture) -> None:
    terminal = Terminal(
        [*LMJ, "chat", "test/tiny-reason", "--max-tokens", "12", "--temperature", "0"], own.env
    )
    try:
        terminal.wait_for("Chatting with test/tiny-reason.")
        terminal.type("think first")
        thought = shown(predictions(log, "output", 1)[0]["output"])
        assert len(thought) >= 3
        wait_until(
            lambda: thought in (screen := terminal.screen()) and screen.rstrip().endswith(">"), what="prompt"
        )
        coloured = terminal.screen(escapes=True)
        answer = coloured.split("think first", 1)[1]
        dim = answer.index("\x1b[2m")  # tmux re-renders the dim attribute it was sent
        assert answer.index(thought[:3]) > dim
        assert dim < answer.index("\x1b[0m", dim) < answer.rindex("> ")  # the prompt is not dimmed
        assert "<think>" not in terminal.screen()  # markers only where there are no colours
        terminal.type("/exit")
        assert terminal.wait_exit() == 0
    finally:
        terminal.close()
    piped = own.lmj("chat", "test/tiny-reason", "-p", "think", "--max-tokens", "4", "--temperature", "0")
    assert piped.stdout.startswith("<think>") and piped.stdout.endswith("</think>\n")
    assert "\x1b[" not in piped.stdout


def test_lms_chat_slash_commands(own: IsolatedServer, log: LogCapture) -> None:
    """``/reasoning off`` hides the thinking, ``/stats`` shows the last answer's numbers,
    ``/system-prompt`` and ``/clear`` shape the next prompt, ``/model`` switches the model."""
    command = [*LMJ, "chat", "test/tiny-reason", "--max-tokens", "6", "--temperature", "0"]
    terminal = Terminal(command, own.env)
    try:
        terminal.wait_for("Chatting with test/tiny-reason.")
        terminal.type("/stats")
        terminal.wait_for("No prediction yet.")
        terminal.type("/reasoning maybe")
        terminal.wait_for("Reasoning is auto; /reasoning auto, on or off changes it.")
        terminal.type("/reasoning off")
        terminal.wait_for("Reasoning set to off.")
        terminal.type("think first")
        thought = shown(predictions(log, "output", 1)[0]["output"])
        assert len(thought) >= 3
        terminal.type("/stats")
        screen = terminal.wait_for("Predicted Tokens: 6")
        assert "Prediction Stats:" in screen and thought not in screen  # all 6 tokens were reasoning

        terminal.type("/system-prompt Answer in French.")
        terminal.wait_for("System prompt set.")
        terminal.type("/clear")
        terminal.wait_for("Chat history cleared.")
        terminal.type("/model nobody/nothing")
        terminal.wait_for("No model 'nobody/nothing'. Models: ")
        terminal.type("/model test/tiny-chat")
        terminal.wait_for("Now chatting with test/tiny-chat.")
        terminal.type("second question")
        second = predictions(log, "input", 2)[1]
        assert second["modelIdentifier"] == "test/tiny-chat"
        assert "Answer in French." in second["input"] and "think first" not in second["input"]
        predictions(log, "output", 2)
        terminal.type("/exit")
        assert terminal.wait_exit() == 0
    finally:
        terminal.close()
    hidden = own.lmj("chat", "test/tiny-reason", "-p", "think", "--max-tokens", "4", "--reasoning", "off")
    assert hidden.returncode == 0 and "<think>" not in hidden.stdout
