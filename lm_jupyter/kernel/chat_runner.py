"""Running one ``%%chat`` exchange: stream, show, call tools, repeat until the model answers.

Threads (reference/jupyter.md §4): a :class:`StreamReader` thread reads the HTTP stream and
folds chunks into a :class:`~lm_jupyter.kernel.chat_session.Reply`; the cell's own coroutine
copies that state to the view at most :data:`UPDATE_HZ` times a second and otherwise sleeps.
In a kernel ``%%chat`` runs as an *async* cell, so while it sleeps ipykernel dispatches comm
messages: the ChatView's stop button and tool-approval buttons work while the cell runs.
Stopping (button, Ctrl+C/interrupt) makes the reader close the HTTP stream, and the server
cancels the generation.

Tool calls run here, on the cell's thread, after the user allows them (``--auto-run`` skips
asking); their results go back as ``tool`` messages, for at most ``max_rounds`` requests.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..client.client import Client, LmError
from ..client.notebook_text import for_notebook
from .chat_session import ChatSession, Message, Reply, ToolCall, footer_text
from .pytools import call_tool

UPDATE_HZ = 20
# A prompt this long may take more than one 512-token batch to process (a token is seldom less
# than two characters): only then does a request ask for prompt progress, which the ChatView
# draws as a prefill bar. Short prompts stream exactly as before.
PROGRESS_CHARS = 1024
DEFAULT_MAX_ROUNDS = 8
DENIED = "The user did not allow this tool call."
REPEATED = "The model repeated a tool call it already has the result of (shown above); stopped there."


def repeats_answered_calls(replies: list[Reply]) -> bool:
    """The last reply only makes calls an earlier reply of this exchange made with the same
    arguments (and got results for): running them again would loop until ``--max-rounds``."""
    answered = {
        (call.name, _canonical(call.arguments)) for reply in replies[:-1] for call in reply.tool_calls
    }
    calls = replies[-1].tool_calls
    return bool(calls) and all((call.name, _canonical(call.arguments)) in answered for call in calls)


def _canonical(arguments: str) -> str:
    try:
        return json.dumps(json.loads(arguments), sort_keys=True)
    except ValueError:
        return arguments


class StreamReader(threading.Thread):
    """Reads one streamed request in the background; the cell polls :attr:`version`."""

    def __init__(self, client: Client, body: dict[str, Any]) -> None:
        super().__init__(name="lm_jupyter-chat-reader", daemon=True)
        self.client = client
        self.body = body
        self.reply = Reply(requested_at=time.perf_counter())
        self.lock = threading.Lock()
        self.version = 0  # bumped whenever something visible arrives
        self.error: LmError | None = None
        self.cancelled = threading.Event()
        self.done = threading.Event()

    def run(self) -> None:
        chunks = self.client.chat_stream(self.body)
        try:
            for chunk in chunks:
                if self.cancelled.is_set():
                    break
                with self.lock:
                    if self.reply.fold(chunk, time.perf_counter()):
                        self.version += 1
        except LmError as exc:
            if not self.cancelled.is_set():
                self.error = exc
        except Exception as exc:  # anything else must not die silently in a thread
            self.error = LmError(f"{type(exc).__name__}: {exc}")
        finally:
            chunks.close()  # closes the HTTP stream: the server cancels a running generation
            self.reply.ended_at = time.perf_counter()
            self.done.set()

    def cancel(self) -> None:
        self.cancelled.set()


class ExchangeView(Protocol):
    """Where an exchange is shown: the ChatView widget, or text in a terminal."""

    def render(self, state: Exchange) -> None: ...
    def stop_requested(self) -> bool: ...
    def request_stop(self) -> None: ...
    def decision(self, call: ToolCall) -> bool | None: ...
    def finish(self, state: Exchange) -> None: ...


@dataclass
class ChatRequest:
    """One ``%%chat`` cell: the model, the user's turn, request options and tools."""

    model: str
    prompt: str
    options: dict[str, Any] = field(default_factory=dict)
    tools: list[dict[str, Any]] = field(default_factory=list)
    functions: dict[str, Callable[..., Any]] = field(default_factory=dict)
    tool_choice: Any = None  # first request only; later rounds let the model answer
    auto_run: bool = False
    max_rounds: int = DEFAULT_MAX_ROUNDS


@dataclass
class Exchange:
    """What the view shows: finished replies plus the one streaming now."""

    model: str
    prompt: str
    replies: list[Reply] = field(default_factory=list)
    status: str = "waiting"
    error: str = ""
    footer: str = ""
    stats: dict[str, Any] = field(default_factory=dict)

    def blocks(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for reply in self.replies:
            if reply.reasoning:
                out.append({"type": "reasoning", "text": reply.reasoning})
            if reply.text:
                out.append({"type": "text", "text": reply.text})
            for call in reply.tool_calls:
                out.append(
                    {
                        "type": "tool",
                        "id": call.id,
                        "name": call.name,
                        "arguments": call.arguments,
                        "result": call.result,
                        "status": call.status,
                    }
                )
        return out

    def live_status(self, reply: Reply) -> str:
        if reply.tool_calls:
            return "calling"
        if reply.text:
            return "answering"
        if reply.reasoning:
            return "thinking"
        return "processing" if reply.prompt_progress else "waiting"

    def prefill(self) -> dict[str, int]:
        """The prompt progress while the current request's prompt is still being processed."""
        if not self.replies:
            return {}
        progress = self.replies[-1].prompt_progress
        return progress if progress and progress["processed"] < progress["total"] else {}

    def summarize(self) -> None:
        """Footer from the replies: tokens summed over rounds, speed and TTFT of the answer."""
        if not self.replies:
            return
        last = self.replies[-1]
        stats = last.footer_stats()
        stats["completion_tokens"] = sum(reply.completion_tokens for reply in self.replies)
        if len(self.replies) > 1:
            stats["rounds"] = len(self.replies)
        self.stats = stats
        self.footer = footer_text(self.model, stats) + (
            f" · {len(self.replies)} requests" if len(self.replies) > 1 else ""
        )


@dataclass
class ExchangeResult:
    text: str  # the final answer's text
    turn: list[Message]  # the user message, assistant messages and tool results
    stopped: bool = False
    failed: bool = False  # the server answered an error (the view showed it)


async def run_exchange(
    client: Client, session: ChatSession, request: ChatRequest, view: ExchangeView
) -> ExchangeResult:
    """Stream requests until the model answers without tool calls (or is stopped)."""
    state = Exchange(model=request.model, prompt=request.prompt)
    turn: list[Message] = [{"role": "user", "content": request.prompt}]
    stopped = failed = False
    try:
        for round_index in range(request.max_rounds):
            options = dict(request.options)
            if request.tools:
                options["tools"] = request.tools
                choice = request.tool_choice if round_index == 0 else None
                if choice is not None:
                    options["tool_choice"] = choice
            body = session.request(request.model, turn, options)
            if _prompt_chars(body) >= PROGRESS_CHARS:  # the prefill bar
                body["return_progress"] = True
            reply, stopped = await _stream_one(client, body, state, view)
            turn.append(reply.assistant_message())
            if stopped or not reply.tool_calls:
                break
            if repeats_answered_calls(state.replies):  # small models restate a call instead of answering
                state.replies.pop(), turn.pop()  # not shown, and no unanswered call in the history
                state.error = REPEATED
                break
            stopped = await _run_tools(reply, request, state, view, turn)
            if stopped:
                break
        else:
            state.error = f"Stopped after {request.max_rounds} requests: the model kept calling tools."
    except (KeyboardInterrupt, asyncio.CancelledError):
        stopped, state.error = True, "Interrupted."  # Ctrl+C / the kernel's interrupt
    except LmError as exc:  # shown once, by the view (not also printed by the magic)
        failed, state.error = True, for_notebook(" ".join(str(exc).split()))
        state.replies = [reply for reply in state.replies if reply.text or reply.tool_calls]
    state.summarize()
    state.status = "stopped" if stopped else ("error" if state.error not in ("", REPEATED) else "done")
    if stopped and not state.error:
        state.error = "Stopped."  # the widget's stop button
    view.finish(state)
    final = state.replies[-1].text if state.replies else ""
    return ExchangeResult(text=final, turn=turn, stopped=stopped, failed=failed)


def _prompt_chars(body: dict[str, Any]) -> int:
    return sum(len(m["content"]) for m in body["messages"] if isinstance(m.get("content"), str))


async def _stream_one(
    client: Client, body: dict[str, Any], state: Exchange, view: ExchangeView
) -> tuple[Reply, bool]:
    reader = StreamReader(client, body)
    state.replies.append(reader.reply)
    state.status = "waiting"
    view.render(state)
    reader.start()
    shown = 0
    try:
        while not reader.done.is_set():
            if view.stop_requested():
                reader.cancel()
                await _join(reader)
                return reader.reply, True
            if reader.version != shown:
                with reader.lock:
                    shown = reader.version
                    state.status = state.live_status(reader.reply)
                    view.render(state)
            await asyncio.sleep(1 / UPDATE_HZ)
    except (KeyboardInterrupt, asyncio.CancelledError):
        reader.cancel()
        await _join(reader)
        raise
    if reader.error is not None:
        raise reader.error
    for call in reader.reply.tool_calls:
        call.status = "pending"
    return reader.reply, False


async def _join(reader: StreamReader) -> None:
    """Wait for a cancelled reader (it stops at the next chunk), without hanging the cell."""
    deadline = time.monotonic() + 10
    while not reader.done.is_set() and time.monotonic() < deadline:
        await asyncio.sleep(0.02)


async def _run_tools(
    reply: Reply, request: ChatRequest, state: Exchange, view: ExchangeView, turn: list[Message]
) -> bool:
    """Ask about, run and answer every call of one reply; True when the user stopped."""
    for call in reply.tool_calls:
        allowed: bool | None = True if request.auto_run else None
        if allowed is None:
            state.status = "approval"
            view.render(state)
        while allowed is None:
            if view.stop_requested():
                return True
            allowed = view.decision(call)
            if allowed is None:
                await asyncio.sleep(1 / UPDATE_HZ)
        if allowed:
            call.status, state.status = "running", "running"
            view.render(state)
            call.result = call_tool(request.functions, call.name, call.arguments)
            call.status = "done"
        else:
            call.status, call.result = "denied", None
        turn.append({"role": "tool", "tool_call_id": call.id, "content": call.result or DENIED})
        view.render(state)
    return False


def run_sync(
    make: Callable[[], Coroutine[Any, Any, ExchangeResult]], stop: Callable[[], None]
) -> ExchangeResult:
    """Drive the coroutine from synchronous code (a terminal, or ``run_cell_magic`` from code).

    Without a running event loop on this thread it runs here, and Ctrl+C lands inside it.
    Inside a running loop (a synchronous call in a kernel) it runs on a helper thread; Ctrl+C
    then interrupts the wait here, so ``stop()`` asks the exchange to stop like the Stop button,
    and the helper's outcome (stopped, history untouched) is returned.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make())
    result: list[ExchangeResult] = []
    errors: list[BaseException] = []
    finished = threading.Event()  # not Thread.join: an interrupted join marks the thread stopped

    def target() -> None:
        try:
            result.append(asyncio.run(make()))
        except BaseException as exc:
            errors.append(exc)
        finally:
            finished.set()

    threading.Thread(target=target, name="lm_jupyter-chat", daemon=True).start()
    try:
        finished.wait()
    except KeyboardInterrupt:
        stop()
        finished.wait()
    if errors:
        raise errors[0]
    return result[0]


class TextView:
    """A plain terminal: text as it streams, reasoning dimmed, tools asked with ``input()``."""

    def __init__(self, reasoning_mode: str = "collapse", out: Any = None) -> None:
        self.reasoning_mode = reasoning_mode
        self.out = out or sys.stdout
        self.printed: dict[int, int] = {}  # block index -> characters already written
        self.tools_printed: set[str] = set()
        self.stopping = False
        self.current: str | None = None

    def _write(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()

    def render(self, state: Exchange) -> None:
        for index, block in enumerate(state.blocks()):
            kind = block["type"]
            if kind == "reasoning" and self.reasoning_mode == "hide":
                continue
            if kind in ("reasoning", "text"):
                done = self.printed.get(index, 0)
                new = block["text"][done:]
                if not new:
                    continue
                if done == 0 and kind == "reasoning":
                    self._write("\x1b[2m[thinking] ")
                if done == 0 and kind == "text" and self.current == "reasoning":
                    self._write("\x1b[0m\n")
                self.current = kind
                self._write(new)
                self.printed[index] = len(block["text"])
            elif kind == "tool" and block["status"] != "streaming":
                key = f"{block['id']}:{block['status']}"
                if key in self.tools_printed:
                    continue
                self.tools_printed.add(key)
                if block["status"] == "done":
                    self._write(f"\n[tool {block['name']} -> {block['result']}]\n")
                elif block["status"] == "denied":
                    self._write(f"\n[tool {block['name']}: not run]\n")

    def stop_requested(self) -> bool:
        return self.stopping

    def request_stop(self) -> None:
        self.stopping = True

    def decision(self, call: ToolCall) -> bool | None:
        if self.current == "reasoning":
            self._write("\x1b[0m")
        answer = input(f"\nRun {call.name}({call.arguments})? [y/N] ")
        return answer.strip().lower() in ("y", "yes")

    def finish(self, state: Exchange) -> None:
        self.render(state)
        if self.current == "reasoning":
            self._write("\x1b[0m")
        lines = [line for line in (state.error, state.footer) if line]
        self._write("\n\n" + "\n".join(f"[{line}]" for line in lines) + "\n" if lines else "\n")


class WidgetView:
    """The ChatView widget while the exchange runs; finishing replaces it with its static copy."""

    def __init__(self, prompt: str, model: str, reasoning_mode: str = "collapse") -> None:
        from IPython.display import display

        from .widgets import ChatView

        self.widget = ChatView(prompt=prompt, model=model, reasoning_mode=reasoning_mode)
        self.handle = display(self.widget, display_id=True)

    def _sync(self, state: Exchange) -> None:
        with self.widget.hold_sync():
            self.widget.model = state.model
            self.widget.prompt = state.prompt
            self.widget.blocks = state.blocks()
            self.widget.status = state.status
            self.widget.error = state.error
            self.widget.footer = state.footer
            self.widget.stats = state.stats
            self.widget.prefill = state.prefill()

    def render(self, state: Exchange) -> None:
        self._sync(state)

    def stop_requested(self) -> bool:
        return self.widget.stop_requested.is_set()

    def request_stop(self) -> None:
        self.widget.stop_requested.set()

    def decision(self, call: ToolCall) -> bool | None:
        return self.widget.decision(call.id)

    def finish(self, state: Exchange) -> None:
        self._sync(state)
        if self.handle is not None:
            self.handle.update(self.widget.static())
        self.widget.close()
