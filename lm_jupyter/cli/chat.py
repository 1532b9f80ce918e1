"""``lmj chat [MODEL]``: an interactive terminal chat with a model, like ``lms chat``.

Answers stream to stdout as they are generated; reasoning is dimmed in a terminal (between
``<think>`` markers elsewhere, left out with ``--reasoning off``); messages go to stderr. The
conversation is kept until ``/clear``; ``/model``, ``/system-prompt``, ``/stats`` and ``/reasoning``
are ``lms chat``'s slash commands. Ctrl+C during an answer closes its HTTP stream, which makes
the server stop the generation, and returns to the prompt; Ctrl+C (or Ctrl+D, ``/exit``) at the prompt quits.
``-p TEXT`` or piped stdin asks once and exits.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any, TextIO

from ..client.client import Client, LmError
from ..client.log_view import printable

DIM, UNDIM = "\x1b[2m", "\x1b[22m"
HELP = """Commands:
  /model [KEY]          switch to another model (alone: the current one and the choices)
  /system-prompt TEXT   set the system prompt (alone: clear it; /system too)
  /clear                forget the conversation, the system prompt stays (/reset too)
  /stats                prediction statistics of the last answer
  /reasoning auto|on|off  show the model's reasoning (auto, on) or hide it (off)
  /help                 this list
  /exit                 quit (so do Ctrl+C and Ctrl+D at the prompt)
Ctrl+C while the model answers stops that answer."""
REASONING = ("auto", "on", "off")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", nargs="?", metavar="MODEL", help="model key or loaded identifier")
    parser.add_argument("-p", "--prompt", help="ask once, print the answer, exit (piped stdin is appended)")
    parser.add_argument("-s", "--system-prompt", metavar="TEXT", help="system prompt")
    parser.add_argument("--stats", action="store_true", help="print prediction statistics after each answer")
    parser.add_argument(
        "--ttl", type=int, default=3600, help="idle seconds before a model this chat loads unloads"
    )
    parser.add_argument("--max-tokens", type=int, metavar="N", help="most tokens per answer")
    parser.add_argument("--temperature", type=float, metavar="T", help="sampling temperature")
    parser.add_argument(
        "--reasoning",
        choices=REASONING,
        default="auto",
        help="show the model's reasoning (auto, on) or hide it (off); the model's template decides "
        "whether it reasons",
    )


class AnswerPrinter:
    """Writes one answer's deltas as they stream: reasoning dimmed (or in ``<think>`` markers
    when the output is not a terminal), then the answer."""

    def __init__(self, out: TextIO, colour: bool, reasoning: bool = True) -> None:
        self.out = out
        self.colour = colour
        self.reasoning = reasoning  # False: reasoning is left out
        self.thinking = False
        self.content: list[str] = []
        self.line_open = False  # the cursor is not at the start of a line

    def feed(self, delta: dict[str, Any]) -> None:
        reasoning = delta.get("reasoning_content") or delta.get("reasoning")
        if reasoning and self.reasoning:
            if not self.thinking:
                self.thinking = True
                self._write(DIM if self.colour else "<think>")
            self._write(printable(reasoning))
        content = delta.get("content")
        if content:
            self._stop_thinking()
            self.content.append(content)
            self._write(printable(content))

    def end(self) -> None:
        self._stop_thinking()
        if self.line_open:
            self._write("\n")

    @property
    def text(self) -> str:
        return "".join(self.content)

    def _stop_thinking(self) -> None:
        if self.thinking:
            self.thinking = False
            self._write(UNDIM + "\n" if self.colour else "</think>\n")

    def _write(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()
        self.line_open = not text.endswith("\n") if text else self.line_open


def stats_text(stats: dict[str, Any], usage: dict[str, Any] | None) -> str:
    """``lms chat --stats``'s block, from LM Studio's ``stats`` and OpenAI's ``usage``."""
    lines = ["Prediction Stats:", f"  Stop Reason: {stats.get('stop_reason', 'unknown')}"]
    lines.append(f"  Tokens/Second: {stats.get('tokens_per_second', 0.0):.2f}")
    lines.append(f"  Time to First Token: {stats.get('time_to_first_token', 0.0):.3f}s")
    if usage:
        lines.append(f"  Prompt Tokens: {usage['prompt_tokens']}")
        lines.append(f"  Predicted Tokens: {usage['completion_tokens']}")
        lines.append(f"  Total Tokens: {usage['total_tokens']}")
    return "\n".join(lines)


class TerminalChat:
    def __init__(
        self,
        client: Client,
        model: str,
        *,
        system: str | None = None,
        out: TextIO = sys.stdout,
        err: TextIO = sys.stderr,
        colour: bool = False,
        stats: bool = False,
        reasoning: str = "auto",
        options: dict[str, Any] | None = None,
    ) -> None:
        self.client = client
        self.model = model
        self.system = system
        self.out, self.err = out, err
        self.colour = colour
        self.stats = stats
        self.options = {k: v for k, v in (options or {}).items() if v is not None}
        self.reasoning = reasoning
        self.history: list[dict[str, str]] = []
        self.last_stats: str | None = None  # the last answer's, for /stats

    def say(self, message: str) -> None:
        print(message, file=self.err, flush=True)

    def ask(self, text: str) -> bool:
        """Send one message and stream the answer; False if Ctrl+C stopped it."""
        user = {"role": "user", "content": text}
        system = [{"role": "system", "content": self.system}] if self.system else []
        body = {"model": self.model, "messages": [*system, *self.history, user], **self.options}
        printer = AnswerPrinter(self.out, self.colour, reasoning=self.reasoning != "off")
        chunks = self.client.chat_stream(body, stats=True)
        usage: dict[str, Any] | None = None
        stats: dict[str, Any] | None = None
        try:
            for chunk in chunks:
                usage = chunk.get("usage") or usage
                stats = chunk.get("stats") or stats
                for choice in chunk.get("choices") or []:
                    printer.feed(choice.get("delta") or {})
        except KeyboardInterrupt:
            chunks.close()  # closes the HTTP stream: the server stops generating
            printer.end()
            self.say("Prediction aborted by user.")
            self.history += [user, {"role": "assistant", "content": printer.text}]
            return False
        except LmError:
            printer.end()
            raise
        printer.end()
        self.history += [user, {"role": "assistant", "content": printer.text}]
        if stats is not None:
            self.last_stats = stats_text(stats, usage)
            if self.stats:
                self.say(self.last_stats)
        return True

    def command(self, line: str) -> bool:
        """A ``/command``; False when it asks to quit."""
        name, _, rest = line.partition(" ")
        rest = rest.strip()
        if name in ("/exit", "/quit", "exit"):
            return False
        if name in ("/clear", "/reset"):
            self.history = []
            self.say("Chat history cleared.")
        elif name in ("/system-prompt", "/system"):
            self.system = rest or None
            self.say("System prompt set." if self.system else "System prompt cleared.")
        elif name == "/model":
            self._switch(rest)
        elif name == "/stats":
            self.say(self.last_stats or "No prediction yet.")
        elif name == "/reasoning":
            if rest not in REASONING:
                self.say(f"Reasoning is {self.reasoning}; /reasoning auto, on or off changes it.")
            else:
                self.reasoning = rest
                self.say(f"Reasoning set to {rest}.")
        elif name == "/help":
            self.say(HELP)
        else:
            self.say(f"Unknown command {name}; /help lists the commands.")
        return True

    def _switch(self, name: str) -> None:
        """``/model KEY``: later answers come from that model (the conversation goes on)."""
        loaded = [row["identifier"] for row in self.client.loaded() if row["type"] == "llm"]
        keys = [model["key"] for model in self.client.models() if model["type"] == "llm"]
        choices = list(dict.fromkeys([*loaded, *keys]))
        if not name:
            self.say(f"Chatting with {self.model}. Models: {', '.join(choices)}. /model KEY switches.")
        elif name not in choices:
            self.say(f"No model '{name}'. Models: {', '.join(choices)}.")
        else:
            self.model = name
            self.say(f"Now chatting with {name}.")

    def loop(self, read: Callable[[str], str] = input) -> int:
        self.say(f"Chatting with {self.model}. /help for commands; /exit or Ctrl+C to quit.")
        while True:
            try:
                line = read("> ").strip()
            except (KeyboardInterrupt, EOFError):
                self.say("")
                return 0
            if not line:
                continue
            if line.startswith("/") or line == "exit":
                if not self.command(line):
                    return 0
                continue
            try:
                self.ask(line)
            except LmError as exc:  # the conversation goes on: the user may fix it (/reset, ...)
                self.say(f"Error: {exc}")


def pick_model(client: Client, interactive: bool, read: Callable[[str], str] = input) -> str:
    """No model named: a loaded LLM, else (in a terminal) the user picks a downloaded one."""
    loaded = [row["identifier"] for row in client.loaded() if row["type"] == "llm"]
    if loaded:
        return loaded[0]
    keys = [model["key"] for model in client.models() if model["type"] == "llm"]
    if not keys:
        raise LmError("You have no LLMs. Download one with `lmj get`, or add a GGUF with `lmj import`.")
    if not interactive:
        raise LmError("No model is loaded; name one: `lmj chat MODEL` (`lmj ls` lists them).")
    for number, key in enumerate(keys, 1):
        print(f"  {number}. {key}", file=sys.stderr)
    while True:
        answer = read(f"Which model (1-{len(keys)})? ").strip()
        if answer.isdigit() and 1 <= int(answer) <= len(keys):
            return keys[int(answer) - 1]
        if answer in keys:
            return answer


def run(client: Client, args: argparse.Namespace, *, colour: bool) -> int:
    interactive = sys.stdin.isatty()
    prompt = args.prompt
    if not interactive:
        piped = sys.stdin.read()
        if piped.strip():
            prompt = f"{prompt}\n\n{piped}" if prompt else piped
        elif prompt is None:
            raise LmError("Nothing to ask: give -p TEXT or pipe the message into stdin.")
    if interactive and prompt is None:
        import readline  # noqa: F401 (line editing and history for input())
    model = args.model or pick_model(client, interactive)
    session = TerminalChat(
        client,
        model,
        system=args.system_prompt,
        colour=colour,
        stats=args.stats,
        reasoning=args.reasoning,
        options={"ttl": args.ttl, "max_tokens": args.max_tokens, "temperature": args.temperature},
    )
    if prompt is not None:
        return 0 if session.ask(prompt) else 130
    return session.loop()
