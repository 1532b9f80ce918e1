"""``%lms`` and ``%%chat``: manage and chat with the server's models from a notebook.

The magics are clients of the server's public HTTP routes (DESIGN §1), through one
:class:`~lm_jupyter.client.client.Client` per magics instance, created on first use by
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
import sys
from typing import Any

from IPython.core.magic import Magics, line_cell_magic, line_magic, magics_class
from IPython.display import display

from ..client.client import Client, LmError
from ..client.command import CommandError, add_commands, unique_match
from ..client.commands import COMMANDS
from ..client.discovery import ServerInfo, find_server
from ..client.download_view import choose_automatically, follow, option_short, progress_line
from ..client.log_view import add_log_stream_arguments, stream_events
from ..client.notebook_text import for_notebook, localize
from .chat_cell import RESULT_VAR, ChatPlan, async_chat_cells, chat_parser, chat_request, expand_line
from .chat_runner import ExchangeResult, TextView, WidgetView, run_exchange, run_sync
from .chat_session import ChatInputError, ChatSession, interpolate, parse_structured
from .load_display import jit_load_display, load_in_view
from .magic_args import HelpShown, MagicError, MagicParser, split_args
from .pytools import ToolError
from .server_status import plural, server_status
from .widgets._markdown import escape_html

DOWNLOAD_POLL_SECONDS = 0.25  # how often %lms get reads its job's status


def _lms_parser() -> MagicParser:
    parser = MagicParser(prog="%lms", description="Manage the lm_jupyter server's models (like `lms`).")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=MagicParser)

    add_commands(commands, COMMANDS)

    get = commands.add_parser("get", help="download a model from Hugging Face (like `lmj get -y`)")
    get.add_argument("query", nargs="+", metavar="QUERY", help="search words, owner/repo or a URL")
    get.add_argument("--quant", metavar="Q", help="quantization, e.g. Q4_K_M (or QUERY@Q)")
    get.add_argument("--mlx", action="store_true", help="search MLX models instead of GGUF")
    get.add_argument("--json", action="store_true", help="return the finished download's status")

    connect = commands.add_parser("connect", help="use another lm_jupyter server from this kernel")
    connect.add_argument("url", metavar="URL", help="the server's base URL, e.g. http://host:8888/")
    connect.add_argument("--token", default="", metavar="T", help="the server's token")

    server = commands.add_parser("server", help="the server this kernel talks to")
    server_commands = server.add_subparsers(
        dest="server_command", metavar="COMMAND", parser_class=MagicParser
    )
    status = server_commands.add_parser("status", help="which server, where, and how it was found")
    status.add_argument("--json", action="store_true", help="return the status as a dict")

    history = commands.add_parser("history", help="the %%chat conversation so far")
    history.add_argument("--json", action="store_true", help="return the messages as Python data")
    log = commands.add_parser("log", help="the server's live log")
    log_commands = log.add_subparsers(dest="log_command", metavar="COMMAND", parser_class=MagicParser)
    add_log_stream_arguments(log_commands.add_parser("stream", help="print log events until interrupted"))
    return parser


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
        self._manager: Any = None  # the ModelPanel widget, created by the first bare %lms

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
        message = for_notebook(" ".join(str(exc).split())) or type(exc).__name__
        plain = isinstance(exc, (MagicError, CommandError))
        print(message if plain else f"Error: {message}", file=sys.stderr)

    # -- %lms ----------------------------------------------------------------------------

    @line_magic
    def lms(self, line: str) -> Any:
        """Manage models: ``%lms ls|load|ps|unload|get|preset|remote|history|log stream|connect|server``."""
        try:
            args = _lms_parser().parse_args(split_args(line))
            if args.command is None:
                if _in_kernel(self.shell):  # the model manager widget; help in a terminal
                    return self._model_manager()
                _lms_parser().print_help()
                return None
            if hasattr(args, "command_action"):
                return self._shared(args)
            return getattr(self, f"_lms_{args.command}")(args)
        except HelpShown:
            return None
        except (MagicError, LmError) as exc:
            self._report(exc)
            return None

    def _model_manager(self) -> Any:
        """One ModelPanel per kernel (and server): showing it again adds a view, not a poller."""
        from .widgets import ModelPanel

        client = self.client
        if self._manager is None or self._manager.client is not client or self._manager.comm is None:
            if self._manager is not None:
                self._manager.close()  # closing twice is harmless
            self._manager = ModelPanel(client=client)
        return self._manager

    def _shared(self, args: argparse.Namespace) -> Any:
        """A command ``lmj`` shares (``client/commands.py``): print its text, return its data.
        ``load`` in a kernel shows its estimate, progress and measured memory in a LoadView."""
        if args.command == "load" and not (args.estimate_only or args.json) and _in_kernel(self.shell):
            result = load_in_view(self.client, args)
        else:
            result = args.command_action(self.client, args)
        for text in (result.text, result.message):
            if text:
                print(for_notebook(str(text)))
        if result.loaded:
            self.last_model = result.loaded
        if self.last_model in result.unloaded:
            self.last_model = None
        return localize(result.data)

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

    def _lms_history(self, args: argparse.Namespace) -> Any:
        if args.json:
            system = [{"role": "system", "content": self.session.system}] if self.session.system else []
            return [*system, *self.session.messages]
        return ChatReply(escape_html(self.session.transcript()))  # model text may hold HTML

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
        print(f"Connected to {url} ({plural(count, 'model')} available).")

    def _lms_server(self, args: argparse.Namespace) -> dict[str, Any] | None:
        if args.server_command != "status":
            raise MagicError("%lms server: the only command is `%lms server status [--json]`.")
        return server_status(self.client, self.started_server, args.json)

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
        outcome = None
        try:
            client, request, view = self.client, plan.request, plan.view
            outcome = run_sync(lambda: run_exchange(client, self.session, request, view), view.request_stop)
        except (MagicError, LmError) as exc:
            self._report(exc)
            return None
        finally:
            _end_loading(plan, outcome)
        self._chat_done(plan, outcome)
        return None

    async def chat_async(self, line: str, cell: str) -> None:
        """A ``%%chat`` cell in a kernel: awaited, so widget messages arrive while it streams."""
        plan = self._chat_plan(expand_line(line, self.shell.user_ns), cell)
        if plan is None:
            return
        outcome = None
        try:
            outcome = await run_exchange(self.client, self.session, plan.request, plan.view)
        except (MagicError, LmError) as exc:
            self._report(exc)
            return
        finally:
            _end_loading(plan, outcome)
        self._chat_done(plan, outcome)

    def _chat_plan(self, line: str, cell: str | None) -> ChatPlan | None:
        """Parse, apply settings and build the request; None when there is nothing to send."""
        try:
            args = chat_parser().parse_args(split_args(line))
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
            request, schema_class = chat_request(args, interpolate(text, namespace), namespace)
            request.model = self._chat_model(args.model)
            loading = None
            if _in_kernel(self.shell):  # above the chat: the model's just-in-time load, if it needs one
                loading = jit_load_display(self.client, request.model)
                view: WidgetView | TextView = WidgetView(request.prompt, request.model, args.reasoning)
            else:
                view = TextView(args.reasoning)
            form = request.options.get("response_format")
            return ChatPlan(request, view, args.out, form, schema_class, loading)
        except HelpShown:
            return None
        except (MagicError, LmError, ChatInputError, ToolError) as exc:
            self._report(exc)
            return None
        except KeyboardInterrupt:  # before the stream began (finding the model, the server)
            print("Interrupted.", file=sys.stderr)
            return None

    def _chat_done(self, plan: ChatPlan, outcome: ExchangeResult) -> None:
        if outcome.failed:
            return  # the view showed the server's error
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
            return unique_match(named, self.client.models())
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


def _end_loading(plan: ChatPlan, outcome: ExchangeResult | None) -> None:
    """The chat's load view ends with the exchange (its copy stays above the chat's)."""
    if plan.loading is not None:
        plan.loading.end(failed=outcome is None or outcome.failed)


def _in_kernel(shell: Any) -> bool:
    """A Jupyter kernel (widgets and display updates reach a frontend), not a terminal."""
    return getattr(shell, "kernel", None) is not None


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext lm_jupyter``: register ``%lms`` and ``%%chat``."""
    ipython.register_magics(LmMagics)
    if _in_kernel(ipython) and getattr(ipython, "autoawait", False):
        cleanup = ipython.input_transformers_cleanup
        if async_chat_cells not in cleanup:
            cleanup.append(async_chat_cells)
