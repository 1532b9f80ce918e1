"""``%lms`` and ``%%chat``: manage and chat with the server's models from a notebook.

The magics are clients of the server's public HTTP routes (DESIGN §1), through one
:class:`~lm_jupyter.kernel.client.Client` per magics instance, created on first use by
:meth:`Client.discover` (the Jupyter server that started this kernel, then
``LM_JUPYTER_URL``, then a headless server, else a headless server started for this kernel).

Every user-facing failure (a server error, a bad argument, no server) prints one line to
stderr and returns None: no tracebacks for things the user can fix.

``%%chat`` is run by ``kernel/chat_runner.py``: in a kernel as an *async* cell (a cleanup
input transformer turns the cell into ``await ...``) so that the ChatView's stop and tool
buttons are processed while it streams; in a terminal as text. The conversation lives in a
``ChatSession`` (``kernel/chat_session.py``), shown by ``%lms history``.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from dataclasses import dataclass
from typing import Any, NoReturn

from IPython.core.magic import Magics, line_cell_magic, line_magic, magics_class
from IPython.display import display
from IPython.utils.text import DollarFormatter

from .admin import add_preset_commands, preset_command
from .chat_runner import (
    DEFAULT_MAX_ROUNDS,
    ChatRequest,
    Outcome,
    TextView,
    WidgetView,
    run_exchange,
    run_sync,
)
from .chat_session import ChatInputError, ChatSession, interpolate, parse_structured, response_format
from .client import Client, LmError
from .discovery import ServerInfo, find_server
from .download_view import choose_automatically, follow, option_short, progress_line
from .estimate_view import estimate_text
from .log_view import add_log_stream_arguments, stream_events
from .options import gpu_option, load_options
from .pytools import ToolError, tools_from
from .tables import Table, ls_json, ls_table, ps_table

DOWNLOAD_POLL_SECONDS = 0.25  # how often %lms get reads its job's status

RESULT_VAR = "_chat_result"  # every finished %%chat stores its reply (or parsed object) here

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

    get = commands.add_parser("get", help="download a model from Hugging Face (like `lmj get -y`)")
    get.add_argument("query", nargs="+", metavar="QUERY", help="search words, owner/repo or a URL")
    get.add_argument("--quant", metavar="Q", help="quantization, e.g. Q4_K_M (or QUERY@Q)")
    get.add_argument("--mlx", action="store_true", help="search MLX models instead of GGUF")
    get.add_argument("--json", action="store_true", help="return the finished download's status")

    connect = commands.add_parser("connect", help="use another lm_jupyter server from this kernel")
    connect.add_argument("url", metavar="URL", help="the server's base URL, e.g. http://host:8888/")
    connect.add_argument("--token", default="", metavar="T", help="the server's token")

    server = commands.add_parser("server", help="the server this kernel talks to")
    server_commands = server.add_subparsers(dest="server_command", metavar="COMMAND", parser_class=_Parser)
    status = server_commands.add_parser("status", help="which server, where, and how it was found")
    status.add_argument("--json", action="store_true", help="return the status as a dict")

    add_preset_commands(commands.add_parser("preset", help="list, show, save and delete presets"))

    history = commands.add_parser("history", help="the %%chat conversation so far")
    history.add_argument("--json", action="store_true", help="return the messages as Python data")
    log = commands.add_parser("log", help="the server's live log")
    log_commands = log.add_subparsers(dest="log_command", metavar="COMMAND", parser_class=_Parser)
    add_log_stream_arguments(log_commands.add_parser("stream", help="print log events until interrupted"))
    return parser


def _chat_parser() -> _Parser:
    parser = _Parser(prog="%%chat", description="Chat with a model; the cell is your message ({var} is "
                     "replaced by the variable's value, {{ and }} are literal braces).")
    parser.add_argument("model", nargs="?", metavar="MODEL", help="model key or instance identifier")
    parser.add_argument("--model", dest="model_option", metavar="MODEL", help="the same as MODEL")
    parser.add_argument("--new", action="store_true", help="start a new conversation")
    parser.add_argument("--system", metavar="TEXT", help="system prompt (kept until --new)")
    parser.add_argument("--max-tokens", type=int, metavar="N", help="most tokens to generate (-1: no limit)")
    parser.add_argument("--temperature", type=float, metavar="T", help="sampling temperature")
    parser.add_argument("--json-schema", metavar="VAR", help="answer as JSON for this schema (a dict or a "
                        f"pydantic model class); the parsed value goes to {RESULT_VAR} and --out")
    parser.add_argument("--tools", metavar="VAR", help="a function or list of functions the model may call")
    parser.add_argument("--auto-run", action="store_true", help="run tool calls without asking")
    parser.add_argument("--tool-choice", metavar="auto|required|none|NAME",
                        help="for the first request: whether (or which) tool the model must call")
    parser.add_argument("--max-rounds", type=int, default=DEFAULT_MAX_ROUNDS, metavar="N",
                        help=f"most requests in one tool loop (default {DEFAULT_MAX_ROUNDS})")
    parser.add_argument("--draft-model", metavar="MODEL", help="speculative decoding with this draft model")
    parser.add_argument("--reasoning", choices=("show", "hide", "collapse"), default="collapse",
                        help="how to show the model's reasoning (default: collapse)")
    parser.add_argument("--out", metavar="VAR", help=f"also store the reply in VAR (always in {RESULT_VAR})")
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


class _Text(str):
    """Plain text that a display handle shows as is (a progress line)."""

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))


@magics_class
class LmMagics(Magics):
    """``%lms`` (model management) and ``%%chat`` (streamed chat with history)."""

    def __init__(self, shell: Any = None) -> None:
        super().__init__(shell=shell)
        self._client: Client | None = None
        self.started_server = False  # True when discovery had to start a headless server
        self.session = ChatSession()
        self._manager: Any = None  # the ModelManager widget, created by the first bare %lms

    @property
    def last_model(self) -> str | None:
        """The model ``%%chat`` uses when the cell names none (the last one loaded or used)."""
        return self.session.model

    @last_model.setter
    def last_model(self, value: str | None) -> None:
        self.session.model = value

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
        """Manage models: ``%lms ls|load|ps|unload|get|preset|history|log stream|connect|server status``."""
        try:
            args = _lms_parser().parse_args(_split(line))
            if args.command is None:
                if _in_kernel(self.shell):  # the model manager widget; help in a terminal
                    return self._model_manager()
                _lms_parser().print_help()
                return None
            return getattr(self, f"_lms_{args.command}")(args)
        except _HelpShown:
            return None
        except (MagicError, LmError) as exc:
            self._report(exc)
            return None

    def _model_manager(self) -> Any:
        """One ModelManager per kernel (and server): showing it again adds a view, not a poller."""
        from ..widgets import ModelManager

        client = self.client
        if self._manager is None or self._manager.client is not client or self._manager.comm is None:
            if self._manager is not None:
                self._manager.close()  # closing twice is harmless
            self._manager = ModelManager(client=client)
        return self._manager

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

    def _lms_get(self, args: argparse.Namespace) -> dict[str, Any] | None:
        """``lmj get -y`` with a progress line updated from the download's status route."""
        formats = "mlx" if args.mlx else "gguf"
        choice = choose_automatically(self.client, " ".join(args.query), args.quant, formats)
        if choice.note:
            print(choice.note)
        status = job = self.client.download(choice.repo, choice.option["name"])
        if job["status"] != "already_downloaded":
            print(f"Downloading {option_short(choice.option)}")
            live = getattr(self.shell, "kernel", None) is not None
            handle = display(_Text(progress_line(job)), display_id=True) if live else None
            try:
                for status in follow(self.client, job, interval=DOWNLOAD_POLL_SECONDS):
                    if handle is not None:
                        handle.update(_Text(progress_line(status)))
            except KeyboardInterrupt:  # the stop button: pause it (the next %lms get resumes it)
                self.client.pause_download(job["job_id"])
                print("Download paused; run the same %lms get to resume it.")
                return None
            if handle is None:
                print(progress_line(status))
        if status["status"] not in ("completed", "already_downloaded"):
            raise MagicError(f"%lms get: {(status.get('error') or {}).get('message', status['status'])}")
        had = status["status"] == "already_downloaded"
        print(f"{'You already have this model.' if had else 'Download completed.'} ", end="")
        print(f"Load it with: %lms load {status.get('model_key')}")
        return status if args.json else None

    def _lms_preset(self, args: argparse.Namespace) -> Any:
        """Same commands as ``lmj preset``; the listing or preset is the cell's result."""
        outcome = preset_command(self.client, args)
        if outcome.message:
            print(outcome.message)
        return outcome.data

    def _lms_history(self, args: argparse.Namespace) -> Any:
        if args.json:
            system = [{"role": "system", "content": self.session.system}] if self.session.system else []
            return [*system, *self.session.messages]
        return ChatReply(self.session.transcript())

    def _lms_log(self, args: argparse.Namespace) -> None:
        """``%lms log stream``: prints events live until the kernel is interrupted."""
        if args.log_command != "stream":
            raise MagicError("%lms log: the only command is `%lms log stream` (see its --help).")

        def connected() -> None:
            print("Streaming logs from lm_jupyter; interrupt the kernel to stop.", flush=True)

        try:
            stream_events(self.client, args, sys.stdout, colour=False, on_connected=connected)
        except ValueError as exc:
            raise MagicError(f"%lms log stream: {exc}") from None
        except KeyboardInterrupt:
            print("Stopped streaming logs.")
            return
        print("The server closed the log stream.", file=sys.stderr)

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
        conversation; ``%chat MODEL`` / ``%chat --system TEXT`` only set those for later cells.

        In a kernel, ``%%chat`` cells run through :meth:`chat_async` (see the module docstring);
        this synchronous form serves terminals and calls from code."""
        plan = self._chat_plan(line, cell)
        if plan is None:
            return None
        try:
            client, request, view = self.client, plan.request, plan.view
            outcome = run_sync(lambda: run_exchange(client, self.session, request, view), view.request_stop)
        except (MagicError, LmError) as exc:
            self._report(exc)
            return None
        self._chat_done(plan, outcome)
        return None

    async def chat_async(self, line: str, cell: str) -> None:
        """A ``%%chat`` cell in a kernel: awaited, so widget messages arrive while it streams."""
        plan = self._chat_plan(_expand_line(line, self.shell.user_ns), cell)
        if plan is None:
            return
        try:
            outcome = await run_exchange(self.client, self.session, plan.request, plan.view)
        except (MagicError, LmError) as exc:
            self._report(exc)
            return
        self._chat_done(plan, outcome)

    def _chat_plan(self, line: str, cell: str | None) -> _ChatPlan | None:
        """Parse, apply settings and build the request; None when there is nothing to send."""
        try:
            args = _chat_parser().parse_args(_split(line))
            if args.model and args.model_option and args.model != args.model_option:
                raise MagicError("%%chat: give the model once (MODEL or --model).")
            args.model = args.model or args.model_option
            if args.new:
                self.session.reset()
            if args.system is not None:
                self.session.system = args.system
            text = (cell or "").strip("\n")
            if cell is None or not text.strip():
                self._chat_settings(args, cell is None)
                return None
            namespace = self.shell.user_ns if self.shell is not None else {}
            request, schema_class = self._chat_request(args, interpolate(text, namespace), namespace)
            request.model = self._chat_model(args.model)
            if _in_kernel(self.shell):
                view: WidgetView | TextView = WidgetView(request.prompt, request.model, args.reasoning)
            else:
                view = TextView(args.reasoning)
            return _ChatPlan(request, view, args.out, request.options.get("response_format"), schema_class)
        except _HelpShown:
            return None
        except (MagicError, LmError, ChatInputError, ToolError) as exc:
            self._report(exc)
            return None
        except KeyboardInterrupt:  # before the stream began (finding the model, the server)
            print("Interrupted.", file=sys.stderr)
            return None

    def _chat_request(
        self, args: argparse.Namespace, text: str, namespace: dict[str, Any]
    ) -> tuple[ChatRequest, Any]:
        """The request, and the pydantic class of ``--json-schema`` (None for a dict schema)."""
        schema_class = None
        options: dict[str, Any] = {
            "max_tokens": args.max_tokens,
            "temperature": args.temperature,
            "draft_model": args.draft_model,
        }
        if args.json_schema:
            fmt, schema_class = response_format(_lookup(namespace, args.json_schema, "--json-schema"),
                                                     args.json_schema)
            options["response_format"] = fmt
        request = ChatRequest(model="", prompt=text, options=options, max_rounds=max(1, args.max_rounds),
                              auto_run=args.auto_run)
        if args.tools:
            request.tools, request.functions = tools_from(_lookup(namespace, args.tools, "--tools"))
        if args.tool_choice is not None:
            if not args.tools:
                raise MagicError("%%chat: --tool-choice needs --tools.")
            choice = args.tool_choice
            if choice not in ("auto", "required", "none"):
                if choice not in request.functions:
                    raise MagicError(f"%%chat: --tool-choice {choice}: no such tool in --tools {args.tools}.")
                choice = {"type": "function", "function": {"name": choice}}
            request.tool_choice = choice
        return request, schema_class

    def _chat_done(self, plan: _ChatPlan, outcome: Outcome) -> None:
        self.last_model = plan.request.model
        if outcome.stopped:
            return  # an interrupted exchange does not join the history
        self.session.commit(outcome.turn, outcome.text)
        result: Any = outcome.text
        if plan.response_format is not None:
            try:
                result = parse_structured(outcome.text, plan.schema_class)
            except ChatInputError as exc:
                self._report(exc)
                return
        self.session.last_result = result
        if self.shell is not None:
            self.shell.user_ns[RESULT_VAR] = result
            if plan.out:
                self.shell.user_ns[plan.out] = result

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


@dataclass
class _ChatPlan:
    request: ChatRequest
    view: WidgetView | TextView
    out: str | None
    response_format: dict[str, Any] | None
    schema_class: Any


def _lookup(namespace: dict[str, Any], name: str, option: str) -> Any:
    if name not in namespace:
        raise MagicError(f"%%chat {option} {name}: no variable named {name!r} in this notebook.")
    return namespace[name]


def _expand_line(line: str, namespace: dict[str, Any]) -> str:
    """``$var`` and ``{expr}`` in the magic line, as IPython's ``run_cell_magic`` expands them
    (the async path does not go through it). Like IPython, a line that fails to expand is kept."""
    try:
        return DollarFormatter().vformat(line, args=[], kwargs=namespace)
    except Exception:
        return line


def _in_kernel(shell: Any) -> bool:
    """A Jupyter kernel (widgets and display updates reach a frontend), not a terminal."""
    return getattr(shell, "kernel", None) is not None


def _async_chat_cells(lines: list[str]) -> list[str]:
    """Input transformer: a ``%%chat`` cell becomes ``await <magics>.chat_async(line, cell)``.

    ipykernel dispatches comm messages while an async cell awaits (and not while a synchronous
    one runs), so this is what lets the ChatView's buttons reach the kernel mid-stream.
    """
    if not lines or not lines[0].startswith("%%chat"):
        return lines
    first, rest = lines[0], "".join(lines[1:])
    line = first[len("%%chat"):].strip()
    if first[len("%%chat"):][:1] not in ("", " ", "\t", "\n"):
        return lines  # %%chatty: some other magic
    return [
        "await get_ipython().magics_manager.registry['LmMagics']"
        f".chat_async({line!r}, {rest!r})\n"
    ]


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext lm_jupyter``: register ``%lms`` and ``%%chat``."""
    ipython.register_magics(LmMagics)
    if _in_kernel(ipython) and getattr(ipython, "autoawait", False):
        cleanup = ipython.input_transformers_cleanup
        if _async_chat_cells not in cleanup:
            cleanup.append(_async_chat_cells)
