"""``%%llm``: the data functions of ``lm_jupyter.llm`` as a cell magic, where a prompt reads
better as the cell's text than as a Python string::

    %%llm map reviews --schema Review --out extracted
    Extract the topic of this review: {text}

    %llm classify reviews --labels positive,negative,neutral
    %llm embed reviews --model text-embedding-nomic --out vectors

DATA, ``--schema`` and ``--template`` are Python expressions in the notebook's namespace; the
cell body is the template (a format string over each row). The result is the cell's value
(shown as its output) and, with ``--out NAME``, kept in that variable. Everything else is
``llm.map``/``classify``/``embed``'s own behaviour: concurrency, progress, interrupt, cache.
"""

from __future__ import annotations

import sys
from typing import Any

from IPython.core.magic import Magics, line_cell_magic, magics_class

from .. import llm
from ..client.client import LmError
from .magic_args import HelpShown, MagicError, MagicParser, split_args


def llm_parser() -> MagicParser:
    parser = MagicParser(
        prog="%%llm",
        description="Run a prompt over every row of a DataFrame, Series or list (lm_jupyter.llm).",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", parser_class=MagicParser)
    actions.required = True
    common = MagicParser(add_help=False)
    common.add_argument("data", metavar="DATA", help="a DataFrame, Series or list in the namespace")
    common.add_argument("--model", help="the model (default: the first loaded one of its kind)")
    common.add_argument("--out", metavar="NAME", help="also keep the result in this variable")
    common.add_argument("--concurrency", type=int, help="requests in flight (default: the slots)")
    common.add_argument("--no-cache", action="store_true", help="ask again even for rows seen before")
    common.add_argument("--no-progress", action="store_true", help="no progress bar")
    helps = {
        "map": "the cell is a prompt template; one answer (or record, with --schema) per row",
        "classify": "one of --labels per row, with each label's probability",
        "embed": "one embedding vector per row (a numpy array)",
    }
    for name, text in helps.items():
        action = actions.add_parser(name, parents=[common], help=text, description=text)
        if name != "embed":
            action.add_argument("--system", help="a system prompt for every row")
        if name == "map":
            action.add_argument("--schema", help="a pydantic model or JSON schema: one column per field")
            action.add_argument("--max-tokens", type=int, default=256)
            action.add_argument("--temperature", type=float, default=0.0)
        if name == "classify":
            action.add_argument("--labels", required=True, help="comma-separated labels")
    return parser


@magics_class
class LlmMagics(Magics):
    @line_cell_magic
    def llm(self, line: str, cell: str | None = None) -> Any:
        """``%%llm map|classify|embed DATA [options]``: see ``%llm --help``."""
        try:
            return self._run(line, cell)
        except HelpShown:
            return None
        except (MagicError, LmError, ValueError) as exc:
            print(str(exc), file=sys.stderr)
            return None

    def _run(self, line: str, cell: str | None) -> Any:
        args = llm_parser().parse_args(split_args(line))
        template = (cell or "").strip()
        data = self._value(args.data, "DATA")
        options: dict[str, Any] = {
            "model": args.model,
            "concurrency": args.concurrency,
            "cache": not args.no_cache,
            "progress": not args.no_progress,
        }
        if args.action == "map":
            if not template:
                raise MagicError("%%llm map: the cell holds the prompt template, e.g. `Summarise: {text}`.")
            schema = self._value(args.schema, "--schema") if args.schema else None
            result = llm.map(
                template,
                data,
                schema=schema,
                system=args.system,
                max_tokens=args.max_tokens,
                temperature=args.temperature,
                **options,
            )
        elif args.action == "classify":
            labels = [label.strip() for label in args.labels.split(",") if label.strip()]
            extra = {"template": template} if template else {}
            result = llm.classify(data, labels, system=args.system, **extra, **options)
        else:
            result = llm.embed(data, template=template or None, **options)
        if args.out:
            self.shell.user_ns[args.out] = result
        return result

    def _value(self, expression: str, what: str) -> Any:
        try:
            return eval(expression, self.shell.user_ns)  # the user's own notebook code
        except Exception as exc:
            raise MagicError(f"%%llm: {what} `{expression}` could not be evaluated: {exc}") from None
