"""``%lms`` and ``%%chat``: manage and chat with the server's models from a notebook.

The magics are clients of the server's public HTTP routes (DESIGN §1), through one
:class:`~lm_jupyter.kernel.client.Client` per magics instance, created on first use by
:meth:`Client.discover` (the Jupyter server that started this kernel, then
``LM_JUPYTER_URL``, then a headless server, else a headless server started for this kernel).

Every user-facing failure (a server error, a bad argument, no server) prints one line to
stderr and returns None: no tracebacks for things the user can fix.

``%%chat`` streams on the main thread into a display handle, updated at most ~10 times a
second (reference/jupyter.md §4.3), so Ctrl+C (interrupt) closes the HTTP stream and the
server stops generating.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from collections.abc import Iterator
from typing import Any, NoReturn

from IPython.core.magic import Magics, line_cell_magic, line_magic, magics_class
from IPython.display import DisplayHandle, display

from .admin import add_preset_commands, preset_command
from .client import Client, LmError
from .discovery import ServerInfo, find_server
from .estimate_view import estimate_text
from .options import gpu_option, load_options
from .tables import Table, ls_json, ls_table, ps_table

UPDATE_INTERVAL = 0.1  # seconds between display updates while streaming (~10/s)

SOURCES = {
    "parent": "the Jupyter server that started this kernel (JPY_PARENT_PID)",
    "env": "the LM_JUPYTER_URL environment variable",
    "headless": "the headless server's runtime file (lmj server start)",
    "connect": "%lms connect",
}


class MagicError(Exception):
    """A problem to report to the user as one line on stderr."""


class _HelpShown(Exception):
    """argparse printed help (``-h``); nothing more to do."""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser that raises instead of exiting the kernel."""

    def error(self, message: str) -> NoReturn:
        raise MagicError(f"{self.prog}: {message} (see `{self.prog} --help`)")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        if status:
            raise MagicError(message.strip() if message else f"{self.prog}: invalid arguments")
        raise _HelpShown


def _split(line: str) -> list[str]:
    try:
        return shlex.split(line)
    except ValueError as exc:  # an unclosed quote
        raise MagicError(f"Cannot parse the arguments: {exc}.") from None


def _lms_parser() -> _Parser:
    parser = _Parser(prog="%lms", description="Manage the lm_jupyter server's models (like `lms`).")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    ls = commands.add_parser("ls", help="list downloaded models")
    ls.add_argument("--json", action="store_true", help="return the list as Python data")
    ls.add_argument("--variants", action="store_true", help="a row for every variant (quantization)")

    load = commands.add_parser("load", help="load a model")
    load.add_argument("model", metavar="MODEL", help="model key, e.g. publisher/model")
    load.add_argument("--context-length", type=int, metavar="N", help="context length in tokens")
    load.add_argument("--identifier", metavar="ID", help="identifier to give the loaded instance")
    load.add_argument("--ttl", type=int, metavar="SECONDS", help="unload after this many idle seconds")
    load.add_argument("--gpu", type=gpu_option, metavar="off|max|0-1", help="GPU offload")
    load.add_argument("--parallel", type=int, metavar="N", help="maximum concurrent predictions")
    load.add_argument("--flash-attention", action="store_true", help="use flash attention")
    load.add_argument("--draft-model", metavar="KEY", help="speculative decoding with this draft model")
    load.add_argument("--estimate-only", action="store_true", help="only estimate the memory it needs")
    load.add_argument("--force", action="store_true", help="load even if the memory guardrail refuses")
    load.add_argument("--json", action="store_true", help="with --estimate-only: return the estimate")

    ps = commands.add_parser("ps", help="list loaded models")
    ps.add_argument("--json", action="store_true", help="return the list as Python data")

    unload = commands.add_parser("unload", help="unload a model")
    unload.add_argument("identifier", nargs="?", metavar="ID", help="identifier of the loaded instance")
    unload.add_argument("--all", action="store_true", help="unload every loaded model")

    connect = commands.add_parser("connect", help="use another lm_jupyter server from this kernel")
    connect.add_argument("url", metavar="URL", help="the server's base URL, e.g. http://host:8888/")
    connect.add_argument("--token", default="", metavar="T", help="the server's token")

    server = commands.add_parser("server", help="the server this kernel talks to")
    server_commands = server.add_subparsers(dest="server_command", metavar="COMMAND", parser_class=_Parser)
    status = server_commands.add_parser("status", help="which server, where, and how it was found")
    status.add_argument("--json", action="store_true", help="return the status as a dict")

    add_preset_commands(commands.add_parser("preset", help="list, show, save and delete presets"))
    return parser


def _chat_parser() -> _Parser:
    parser = _Parser(prog="%%chat", description="Chat with a loaded model; the cell is your message.")
    parser.add_argument("model", nargs="?", metavar="MODEL", help="model key or instance identifier")
    parser.add_argument("--new", action="store_true", help="start a new conversation")
    parser.add_argument("--system", metavar="TEXT", help="system prompt (kept until --new)")
    parser.add_argument("--max-tokens", type=int, metavar="N", help="most tokens to generate (-1: no limit)")
    parser.add_argument("--temperature", type=float, metavar="T", help="sampling temperature")
    return parser


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


class ChatReply:
    """A chat answer: Markdown in notebooks, the text itself in plain-text frontends.

    (Not ``IPython.display.Markdown``: that treats text starting with ``http`` or naming an
    existing file as a URL or path to load, and a model may well answer with either.)
    """

    def __init__(self, text: str) -> None:
        self.text = text

    def _repr_markdown_(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return self.text


@magics_class
class LmMagics(Magics):
    """``%lms`` (model management) and ``%%chat`` (streamed chat with history)."""

    def __init__(self, shell: Any = None) -> None:
        super().__init__(shell=shell)
        self._client: Client | None = None
        self.started_server = False  # True when discovery had to start a headless server
        self.history: list[dict[str, str]] = []
        self.system: str | None = None
        self.last_model: str | None = None
        self.last_reply: str | None = None

    # -- the client ----------------------------------------------------------------------

    @property
    def client(self) -> Client:
        if self._client is None:
            starting = find_server() is None
            if starting:
                print("No lm_jupyter server found; starting a headless one for this kernel...")
            try:
                self._client = Client.discover()
            except (RuntimeError, OSError) as exc:
                raise MagicError(f"Could not start an lm_jupyter server: {exc}") from None
            self.started_server = starting
        return self._client

    def _report(self, exc: Exception) -> None:
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(message if isinstance(exc, MagicError) else f"Error: {message}", file=sys.stderr)

    # -- %lms ----------------------------------------------------------------------------

    @line_magic
    def lms(self, line: str) -> Any:
        """Manage models: ``%lms ls|load|ps|unload|preset|connect|server status`` (``%lms --help``)."""
        try:
            args = _lms_parser().parse_args(_split(line))
            if args.command is None:
                _lms_parser().print_help()
                return None
            return getattr(self, f"_lms_{args.command}")(args)
        except _HelpShown:
            return None
        except (MagicError, LmError) as exc:
            self._report(exc)
            return None

    def _lms_ls(self, args: argparse.Namespace) -> Table | list[dict[str, Any]]:
        models = self.client.models()
        return ls_json(models) if args.json else ls_table(models, variants=args.variants)

    def _lms_ps(self, args: argparse.Namespace) -> Table | list[dict[str, Any]]:
        rows = self.client.loaded()
        return rows if args.json else ps_table(rows)

    def _lms_load(self, args: argparse.Namespace) -> dict[str, Any] | None:
        if args.estimate_only:
            estimate = self.client.estimate(
                args.model,
                context_length=args.context_length,
                gpu=args.gpu,
                flash_attention=args.flash_attention or None,
            )
            if args.json:
                return estimate
            print(estimate_text(estimate, context_length=args.context_length, gpu=args.gpu))
            return None
        print(f'Loading model "{args.model}"...')
        result = self.client.load(args.model, **load_options(args))
        identifier = result["instance_id"]
        print(f"Model loaded successfully in {result.get('load_time_seconds', 0.0):.2f}s.")
        if result.get("message"):
            print(result["message"])
        print(f'To use the model in the API/SDK, use the identifier "{identifier}".')
        self.last_model = identifier
        return None

    def _lms_unload(self, args: argparse.Namespace) -> None:
        if args.all and args.identifier:
            raise MagicError("%lms unload: give either an identifier or --all, not both.")
        if args.identifier:
            targets = [args.identifier]
        else:
            targets = [row["identifier"] for row in self.client.loaded()]
            if not targets:
                print("No models to unload.")
                return
            if len(targets) > 1 and not args.all:
                raise MagicError(
                    f"{len(targets)} models are loaded ({', '.join(targets)}): name one with "
                    "`%lms unload ID`, or unload them all with `%lms unload --all`."
                )
        for identifier in targets:
            self.client.unload(identifier)
            if identifier == self.last_model:
                self.last_model = None
        if args.all:
            print(f"Unloaded {_plural(len(targets), 'model')}.")
        else:
            print(f'Model "{targets[0]}" unloaded.')

    def _lms_preset(self, args: argparse.Namespace) -> Any:
        """Same commands as ``lmj preset``; the listing or preset is the cell's result."""
        outcome = preset_command(self.client, args)
        if outcome.message:
            print(outcome.message)
        return outcome.data

    def _lms_connect(self, args: argparse.Namespace) -> None:
        url = args.url if args.url.endswith("/") else args.url + "/"
        if not url.startswith(("http://", "https://")):
            raise MagicError(f"%lms connect: '{args.url}' is not an http(s) URL.")
        client = Client(ServerInfo(url, args.token, None, "connect"))
        try:
            count = len(client.models())
        except LmError:
            client.close()
            raise
        if self._client is not None:
            self._client.close()
        self._client, self.started_server = client, False
        print(f"Connected to {url} ({_plural(count, 'model')} available).")

    def _lms_server(self, args: argparse.Namespace) -> dict[str, Any] | None:
        if args.server_command != "status":
            raise MagicError("%lms server: the only command is `%lms server status [--json]`.")
        client = self.client
        server = client.server
        status: dict[str, Any] = {
            "url": server.url,
            "source": server.source,
            "pid": server.pid,
            "started_by_kernel": self.started_server,
            "running": False,
        }
        try:
            models = client.models()
        except LmError as exc:
            status["error"] = str(exc)
        else:
            status["running"] = True
            status["models"] = len(models)
            status["loaded"] = sum(len(model["loaded_instances"]) for model in models)
        if args.json:
            return status
        how = SOURCES.get(server.source, server.source)
        if self.started_server:
            how = "started by this kernel (no other server was found)"
        pid = f" (pid {server.pid})" if server.pid else ""
        print(f"Server:   lm_jupyter at {server.url}{pid}")
        print(f"Found by: {how}")
        if status["running"]:
            print(
                f"Status:   running; {_plural(status['models'], 'model')} downloaded, "
                f"{status['loaded']} loaded"
            )
        else:
            print(f"Status:   not reachable: {status['error']}")
        return None

    # -- %%chat --------------------------------------------------------------------------

    @line_cell_magic
    def chat(self, line: str, cell: str | None = None) -> None:
        """``%%chat [MODEL] [options]`` sends the cell to a model and streams the answer; the
        conversation continues until ``--new``. ``%chat --new`` (line form) only starts a new
        conversation; ``%chat MODEL`` / ``%chat --system TEXT`` only set those for later cells."""
        try:
            args = _chat_parser().parse_args(_split(line))
            if args.new:
                self.history, self.system = [], None
            if args.system is not None:
                self.system = args.system
            text = (cell or "").strip("\n")
            if cell is None or not text.strip():
                self._chat_settings(args, cell is None)
                return None
            model = self._chat_model(args.model)
            self._chat(model, text, args)
        except _HelpShown:
            pass
        except (MagicError, LmError) as exc:
            self._report(exc)
        except KeyboardInterrupt:  # before the stream began (finding the model, the server)
            print("Interrupted.", file=sys.stderr)
        return None

    def _chat_settings(self, args: argparse.Namespace, line_form: bool) -> None:
        """A ``%chat`` line, or a ``%%chat`` cell with no message: change settings only."""
        if args.max_tokens is not None or args.temperature is not None:
            raise MagicError(
                "%chat: --max-tokens and --temperature apply to one %%chat cell; write a message."
            )
        if args.model:
            self.last_model = args.model
        done = []
        if args.new:
            done.append("Started a new conversation.")
        if args.system is not None:
            done.append("System prompt set.")
        if args.model:
            done.append(f'%%chat cells will use "{args.model}".')
        if not done:
            raise MagicError(
                "%%chat: write your message in the cell under the %%chat line."
                if not line_form
                else "%chat: write your message in a cell that starts with %%chat."
            )
        print(" ".join(done))

    def _chat_model(self, named: str | None) -> str:
        if named:
            return named
        if self.last_model:
            return self.last_model
        loaded = [row["identifier"] for row in self.client.loaded() if row["type"] == "llm"]
        if len(loaded) == 1:
            return loaded[0]
        if not loaded:
            raise MagicError(
                "%%chat: no model is loaded. Load one with `%lms load MODEL`, or name it: `%%chat MODEL`."
            )
        raise MagicError(
            f"%%chat: {len(loaded)} models are loaded ({', '.join(loaded)}); name one: `%%chat MODEL`."
        )

    def _chat(self, model: str, text: str, args: argparse.Namespace) -> None:
        system = [{"role": "system", "content": self.system}] if self.system else []
        user = {"role": "user", "content": text}
        body: dict[str, Any] = {"model": model, "messages": [*system, *self.history, user]}
        if args.max_tokens is not None:
            body["max_tokens"] = args.max_tokens
        if args.temperature is not None:
            body["temperature"] = args.temperature
        live = getattr(self.shell, "kernel", None) is not None  # a kernel: display handles work
        stream = _Stream(self.client.chat_stream(body), live=live)
        try:
            stream.run()
        except KeyboardInterrupt:
            stream.close()  # closes the HTTP stream: the server cancels the generation
            stream.finish("*Interrupted.*")
            self.last_model = model
            return
        except LmError:
            stream.close()
            if stream.started:
                stream.finish("*Stopped by an error.*")
            raise
        finally:
            stream.close()
        stream.finish(stream.footer(model))
        self.history += [user, {"role": "assistant", "content": stream.text}]
        self.last_reply = stream.text
        self.last_model = model


class _Stream:
    """One streamed answer, shown live.

    In a kernel: a display handle, created at the first chunk and updated at most every
    ``UPDATE_INTERVAL`` seconds, then once more with the whole answer and a footer. In a
    plain terminal shell (no display updates): the text is written to stdout as it comes.
    """

    def __init__(self, chunks: Iterator[dict[str, Any]], *, live: bool = True) -> None:
        self.chunks = chunks
        self.live = live
        self.parts: list[str] = []
        self.handle: DisplayHandle | None = None
        self.usage: dict[str, Any] | None = None
        self.finish_reason: str | None = None
        self.requested = time.perf_counter()
        self.first_token: float | None = None
        self.ended: float | None = None
        self.started = False  # the first chunk arrived and is shown

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def run(self) -> None:
        shown = 0  # how many parts the output shows
        last_update = time.perf_counter()
        for chunk in self.chunks:
            if chunk.get("usage"):
                self.usage = chunk["usage"]
            for choice in chunk.get("choices") or []:
                content = (choice.get("delta") or {}).get("content")
                if content:
                    if self.first_token is None:
                        self.first_token = time.perf_counter()
                    self.parts.append(content)
                if choice.get("finish_reason"):
                    self.finish_reason = choice["finish_reason"]
            if not self.live:
                if len(self.parts) > shown:
                    sys.stdout.write("".join(self.parts[shown:]))
                    self.started = True
                    sys.stdout.flush()
                    shown = len(self.parts)
                continue
            now = time.perf_counter()
            if not self.started:
                self.handle = display(ChatReply(self.text or "…"), display_id=True)
                self.started, shown, last_update = True, len(self.parts), now
            elif len(self.parts) > shown and now - last_update >= UPDATE_INTERVAL:
                assert self.handle is not None
                self.handle.update(ChatReply(self.text))
                shown, last_update = len(self.parts), now
        self.ended = time.perf_counter()

    def finish(self, footer: str) -> None:
        """Show the whole text (interrupted or not) with a footer line under it."""
        if not self.live:
            plain = footer.removeprefix("<sub>").removesuffix("</sub>").strip("*")
            print(f"\n\n[{plain}]" if self.parts else f"[{plain}]")
            return
        text = self.text
        reply = ChatReply(f"{text}\n\n{footer}" if text else footer)
        if self.handle is None:
            self.handle = display(reply, display_id=True)
        else:
            self.handle.update(reply)
        self.started = True

    def footer(self, model: str) -> str:
        ended = self.ended or time.perf_counter()
        tokens = int(self.usage["completion_tokens"]) if self.usage else len(self.parts)
        items = [model, _plural(tokens, "token")]
        if self.first_token is not None:
            generating = ended - self.first_token
            if generating > 0 and tokens > 1:
                items.append(f"{tokens / generating:,.1f} tok/s")
            items.append(f"{self.first_token - self.requested:.2f}s to first token")
        if self.finish_reason == "length":
            items.append("stopped at the token limit")
        return "<sub>" + " · ".join(items) + "</sub>"

    def close(self) -> None:
        close = getattr(self.chunks, "close", None)
        if close is not None:
            close()


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext lm_jupyter``: register ``%lms`` and ``%%chat``."""
    ipython.register_magics(LmMagics)
