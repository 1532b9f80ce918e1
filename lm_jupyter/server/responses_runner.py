"""One ``/v1/responses`` request from stored history to stored response.

Each generation round is a chat completion (``ModelManager.chat``, ``Turn``) over the whole
conversation re-rendered, so the worker's KV prefix cache serves the shared history. Rounds
repeat while the model calls MCP tools that run without approval (bounded by ``MAX_ROUNDS``);
client function calls, approval requests and answers end the response.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from ..api.completions import Outcome, PromptProgress
from ..api.errors import APIError
from ..api.presets import Preset, parse_with_preset
from ..api.requests import ChatCompletionRequest
from ..api.responses_chat import chat_messages, chat_request, item_json, not_found, rename_param
from ..api.responses_events import ResponseEvents, new_response
from ..api.responses_request import McpApprovalResponseItem, ResponsesRequest, new_item_id
from ..engine.manager import ModelManager
from ..engine.tokenizing import count_chat_tokens
from ..engine.turn import Turn
from . import metrics
from .mcp_tools import McpConnections, McpServer
from .response_store import ResponseStore, StoredResponse

MAX_ROUNDS = 8  # generations per response when MCP tools run automatically

Send = Callable[[list[dict[str, Any]]], Awaitable[None]]


class ResponseRun:
    def __init__(
        self,
        manager: ModelManager,
        store: ResponseStore,
        request: ResponsesRequest,
        raw: dict[str, Any],
        find_preset: Callable[[str], Preset],
        mcp_timeout: float,
        owner: str | None,
    ) -> None:
        self.manager = manager
        self.store = store
        self.request = request
        self.raw = raw
        self.find_preset = find_preset
        self.owner = owner  # the credential whose stored responses this run may see and writes
        self.mcp = McpConnections(request.mcp_tools(), mcp_timeout)
        self.events = ResponseEvents(new_response(request, request.model))
        self.history: list[dict[str, Any]] = []
        self.input_items = [item_json(item) for item in request.items()]
        self.outcomes: list[Outcome] = []
        self.turn: Turn | None = None
        self.instance_id = request.model
        self.cancelled = False
        self.mcp_calls = 0
        # Set by /api/v1/chat: each round asks for prompt progress and hands it here.
        self.on_progress: Callable[[PromptProgress], Awaitable[None]] | None = None

    async def run(self, send: Send | None) -> dict[str, Any]:
        """Generate and store the response. With ``send`` (streaming), events go out as they
        happen; errors before the first event raise (an HTTP error), later ones end the stream
        with ``error`` and ``response.failed``."""
        await self._load_history()
        self.events.start()
        async with self.mcp:
            for server in self.mcp.servers:
                await self._list_tools(server)
            await self._approved_calls()
            await self._start_round(0)  # errors so far are HTTP errors: nothing was sent
            if send is not None:
                await send(self.events.drain())
            try:
                await self._rounds(send)
                self.events.finish(self.outcomes)
            except APIError as exc:
                if send is None:
                    raise
                self.events.fail(exc)
        if send is not None:
            await send(self.events.drain())
        if self.request.store:
            await self.store.put(
                StoredResponse(self.events.response, self.input_items, self.history), self.owner
            )
        return self.events.response

    async def input_tokens(self) -> int:
        """The tokens the first generation round would feed the model (``/v1/responses/input_tokens``).
        MCP servers are asked for their tools, which the prompt lists; approved calls are not run."""
        await self._load_history()
        async with self.mcp:
            for server in self.mcp.servers:
                await self._list_tools(server)
            try:
                _instance, count = await count_chat_tokens(self.manager, self._round_request(0))
            except APIError as exc:
                raise rename_param(exc) from None
        return count

    async def _load_history(self) -> None:
        if self.request.previous_response_id is not None:
            previous = await self.store.get(self.request.previous_response_id, self.owner)
            if previous is None:
                raise not_found(self.request.previous_response_id, "previous_response_id")
            self.history = previous.conversation()

    def cancel(self) -> None:
        """The client went away: stop the running generation and start no other."""
        self.cancelled = True
        if self.turn is not None:
            self._cancelling = asyncio.ensure_future(self.turn.cancel())

    # generation ------------------------------------------------------------------------------

    async def _start_round(self, number: int) -> None:
        try:
            instance, self.turn = await self.manager.chat(self._round_request(number))
        except APIError as exc:
            raise rename_param(exc) from None
        if self.cancelled:  # the client left while the round was starting: stop it at once
            await self.turn.cancel()
        self.events.response["model"] = instance.identifier
        self.instance_id = instance.identifier

    def _round_request(self, number: int) -> ChatCompletionRequest:
        """The chat request of generation round ``number``: the whole conversation so far."""
        taken = {tool.name for tool in self.request.function_tools()}
        mcp_tools = self.mcp.chat_tools(taken)
        self.events.held = {tool["function"]["name"] for tool in mcp_tools}
        conversation = [*self.history, *self.input_items, *self.events.output]
        body = chat_request(
            self.request,
            chat_messages(self.request.instructions, conversation),
            mcp_tools,
            self.raw,
            offer_tools=number < MAX_ROUNDS - 1 and not self._calls_spent(),  # the last round answers
        )
        if self.on_progress is not None:
            body["return_progress"] = True
        try:
            return parse_with_preset(ChatCompletionRequest, json.dumps(body).encode(), self.find_preset)
        except APIError as exc:
            raise rename_param(exc) from None

    def _calls_spent(self) -> bool:
        limit = self.request.max_tool_calls
        return limit is not None and self.mcp_calls >= limit

    async def _rounds(self, send: Send | None) -> None:
        for number in range(MAX_ROUNDS):
            if number > 0:
                await self._start_round(number)
            turn = self.turn
            assert turn is not None
            async for delta in turn:
                if "prompt_progress" in delta:
                    if self.on_progress is not None:
                        await self.on_progress(delta["prompt_progress"])
                    continue
                self.events.delta(delta)
                if send is not None:
                    await send(self.events.drain())
            assert turn.outcome is not None
            self.outcomes.append(turn.outcome)
            metrics.record(self.instance_id, "responses", turn.outcome)
            truncated = turn.outcome.finish_reason == "length"
            calls, held = self.events.end_round(truncated)
            if self.cancelled or turn.outcome.stop_reason == "userStopped":
                return
            ran = False
            waiting = False
            for call in held:
                server = self.mcp.owner(call["name"])
                if not call["complete"]:
                    self.events.add_item(
                        {
                            **self._mcp_item(server, call["name"], call["arguments"], None),
                            "status": "incomplete",
                            "error": {
                                "type": "mcp_protocol_error",
                                "code": -32602,
                                "message": "The call's arguments were cut off by max_output_tokens; not run.",
                            },
                        }
                    )
                elif server.spec.needs_approval(call["name"]):
                    self.events.add_item(
                        {
                            "id": new_item_id("mcpr_"),
                            "type": "mcp_approval_request",
                            "arguments": call["arguments"],
                            "name": call["name"],
                            "server_label": server.spec.server_label,
                        }
                    )
                    waiting = True
                else:
                    await self._mcp_call(server, call["name"], call["arguments"], None, send)
                    ran = True
            if send is not None:
                await send(self.events.drain())
            if not ran or calls or waiting:
                return

    # MCP -------------------------------------------------------------------------------------

    async def _list_tools(self, server: McpServer) -> None:
        item = {
            "id": new_item_id("mcpl_"),
            "type": "mcp_list_tools",
            "server_label": server.spec.server_label,
            "tools": [],
        }
        output_index = self.events.open_item(item)
        self.events.emit("response.mcp_list_tools.in_progress", item_id=item["id"], output_index=output_index)
        await self.mcp.connect(server)
        item["tools"] = server.tools
        if server.error is not None:
            item["error"] = server.error
        outcome = "failed" if server.error is not None else "completed"
        self.events.emit(f"response.mcp_list_tools.{outcome}", item_id=item["id"], output_index=output_index)
        self.events.close_item(item)

    async def _approved_calls(self) -> None:
        """Run the calls this request's ``mcp_approval_response`` items approve."""
        known = [*self.history, *self.input_items]
        for index, item in enumerate(self.request.items()):
            if not isinstance(item, McpApprovalResponseItem) or not item.approve:
                continue
            param = f"input.{index}.approval_request_id"
            asked = next(
                (
                    entry
                    for entry in known
                    if entry["type"] == "mcp_approval_request" and entry["id"] == item.approval_request_id
                ),
                None,
            )
            if asked is None:
                raise APIError(
                    f"No mcp_approval_request with id '{item.approval_request_id}' in this conversation.",
                    param=param,
                    code="approval_request_not_found",
                )
            server = self.mcp.by_label(asked["server_label"])
            if server is None:
                raise APIError(
                    f"The approved call is to MCP server '{asked['server_label']}', which is not in "
                    "'tools'; send the same MCP tool again with the approval.",
                    param=param,
                    code="mcp_server_not_found",
                )
            await self._mcp_call(server, asked["name"], asked["arguments"], asked["id"], None)

    async def _mcp_call(
        self, server: McpServer, name: str, arguments: str, approval: str | None, send: Send | None
    ) -> None:
        item = self._mcp_item(server, name, arguments, approval)
        index = self.events.open_item(item)
        self.events.emit(
            "response.mcp_call_arguments.delta", item_id=item["id"], output_index=index, delta=arguments
        )
        self.events.emit(
            "response.mcp_call_arguments.done", item_id=item["id"], output_index=index, arguments=arguments
        )
        self.events.emit("response.mcp_call.in_progress", item_id=item["id"], output_index=index)
        if send is not None:
            await send(self.events.drain())
        result = await self.mcp.call(server, name, arguments)
        self.mcp_calls += 1
        item["output"], item["error"] = result.output, result.error
        item["status"] = "failed" if result.error is not None else "completed"
        self.events.emit(f"response.mcp_call.{item['status']}", item_id=item["id"], output_index=index)
        self.events.close_item(item)

    @staticmethod
    def _mcp_item(server: McpServer, name: str, arguments: str, approval: str | None) -> dict[str, Any]:
        return {
            "id": new_item_id("mcp_"),
            "type": "mcp_call",
            "status": "in_progress",
            "approval_request_id": approval,
            "arguments": arguments,
            "name": name,
            "server_label": server.spec.server_label,
            "output": None,
            "error": None,
        }
