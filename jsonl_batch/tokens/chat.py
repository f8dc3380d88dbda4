"""Chat Completions and Responses requests rendered as the service renders them for the model:
per-message framing, tool calls and results, harmony channels on reasoning models, and the
tool and schema sections appended to the system message."""

from __future__ import annotations

import json
from typing import Any

import orjson

from .context import (
    FLAG_FILE_INPUT,
    FLAG_HIDDEN_TEXT,
    FLAG_HOSTED_TOOL,
    FLAG_NOT_COUNTABLE,
    FLAG_REMOTE_IMAGE,
    FLAG_UNSUPPORTED_ITEM,
    Flags,
    ModelContext,
)
from .images import (
    file_most_tokens,
    image_size_from_data_url,
    image_tokens,
    least_image_tokens,
)
from .model_table import base_model_of
from .rules import token_rules
from .tools import (
    Function,
    function_of,
    render_functions,
    render_response_format,
    tool_choice_tokens,
    tool_search,
    uncommented_functions,
    without_titles,
)


class ChatRequest:
    """Counting state for one chat-like request (Chat Completions or Responses)."""

    __slots__ = (
        "above",
        "below",
        "context",
        "flags",
        "hidden",
        "model",
        "reasoning",
        "responses",
        "rules",
        "stored",
        "text",
    )

    def __init__(self, context: ModelContext, flags: Flags) -> None:
        self.context = context
        self.model = context.model
        self.text = context.text
        self.flags = flags
        self.rules = token_rules()
        self.reasoning = context.reasoning
        self.responses = False
        self.hidden = 0
        """Expected tokens of text the service adds and the request does not show."""
        self.stored = False
        """Whether the request refers to stored responses or items (counted once)."""
        self.below = 0
        self.above = 0
        """How far the least and the most the request can cost lie from the count."""

    def _uncertain(self, expected: int, least: int, most: int) -> None:
        """Hidden text: ``expected`` tokens are counted, the range widens to least..most."""
        self.hidden += expected
        self.below += expected - least
        self.above += most - expected

    # content

    def _content(self, content: Any) -> int:
        if content is None:
            return 0
        if isinstance(content, str):
            return self.text(content)
        if not isinstance(content, list):
            self.flags.add(FLAG_NOT_COUNTABLE)
            return 0
        total = 0
        first = content[0] if content else None
        if (  # fitted, rules: images._leading_image
            self.responses
            and not self.reasoning
            and isinstance(first, dict)
            and first.get("type") == "input_image"
        ):
            total += self.rules["images"]["responses_leading_image"]
        for part in content:
            if isinstance(part, str):
                total += self.text(part)
                continue
            if not isinstance(part, dict):
                self.flags.add(FLAG_NOT_COUNTABLE)
                continue
            kind = part.get("type")
            if kind in ("text", "input_text", "output_text", "refusal"):
                text = part.get("text", part.get("refusal"))
                if isinstance(text, str):
                    total += self.text(text)
                else:
                    self.flags.add(FLAG_NOT_COUNTABLE)
            elif kind in ("image_url", "input_image"):
                total += self._image(part)
            elif kind in ("file", "input_file"):
                # extracted text and page images: not countable offline, a range (rules)
                self.flags.add(FLAG_FILE_INPUT)
                self.above += file_most_tokens(self.model, part)
            else:
                self.flags.add(FLAG_UNSUPPORTED_ITEM)
        return total

    def _image(self, part: dict[str, Any]) -> int:
        image = part.get("image_url")
        detail = part.get("detail")
        if isinstance(image, dict):
            detail = image.get("detail", detail)
            image = image.get("url")
        size = image_size_from_data_url(image) if isinstance(image, str) else None
        if size is None and isinstance(image, str) and self.context.image_size is not None:
            size = self.context.image_size(image)
        detail = detail if isinstance(detail, str) else None
        if size is None:
            # the size is not in the request: counted at the most, the range goes down to
            # the least the model charges for an image
            self.flags.add(FLAG_REMOTE_IMAGE)
            most = image_tokens(self.model, None, None, detail)
            self.below += most - least_image_tokens(self.model, detail)
            return most
        return image_tokens(self.model, size[0], size[1], detail)

    def _tool_calls(self, calls: Any, names: dict[str, str]) -> int:
        """An assistant turn that calls tools, as the service renders it.

        One call is a message to ``functions.<name>`` with the arguments as JSON; several are
        one call to ``multi_tool_use.parallel`` whose JSON lists them. Arguments are
        re-serialised as compact JSON (the service parses them), so spacing does not count.
        """
        if not isinstance(calls, list):
            self.flags.add(FLAG_NOT_COUNTABLE)
            return 0
        parsed: list[tuple[str, Any]] = []
        for call in calls:
            function = call.get("function") if isinstance(call, dict) else None
            if not isinstance(function, dict):
                self.flags.add(FLAG_NOT_COUNTABLE)
                continue
            name = function.get("name")
            name = name if isinstance(name, str) else ""
            if isinstance(call.get("id"), str):
                names[call["id"]] = name
            parsed.append((f"functions.{name}", function.get("arguments")))
        if not self.reasoning or not parsed:
            return self._render_calls(parsed)
        # harmony has no parallel call: each call is an assistant message of its own, and
        # each after the first costs more (fitted, rules file)
        rule = self.rules["tools"]
        extra_messages = (len(parsed) - 1) * (
            self.context.per_message + self.text("assistant") + rule["reasoning_parallel_call"]
        )
        per_call = rule["reasoning_chat_call"]
        return extra_messages + sum(self._render_calls([call]) + per_call for call in parsed)

    def _render_calls(self, calls: list[tuple[str, Any]], *, as_sent: bool = False) -> int:
        """Assistant tool calls, as (recipient, arguments): ``functions.<name>`` normally.

        Arguments are billed re-serialised as compact JSON (the service parses them), or
        ``as_sent`` (Responses on non-reasoning models: ``responses_section._arguments``).
        """
        if not calls:
            return 0
        rule = self.rules["tools"]
        overhead = rule["call_overhead"] + self._channel_framing("call")
        if len(calls) == 1:
            recipient, arguments = calls[0]
            if not (as_sent and isinstance(arguments, str)):
                arguments = _normal_json(arguments)
            return self.text(f" to={recipient}") + self.text(arguments) + overhead
        uses = [
            {"recipient_name": recipient, "parameters": _parsed_json(arguments)}
            for recipient, arguments in calls
        ]
        rendered = json.dumps({"tool_uses": uses}, ensure_ascii=False, separators=(",", ":"))
        return (
            self.text(" to=multi_tool_use.parallel")
            + self.text(rendered)
            + rule["parallel_call_overhead"]
            + self._channel_framing("call")
        )

    def _channel_framing(self, kind: str) -> int:
        """Extra header tokens of tool traffic on reasoning models (harmony channels).

        Reasoning models use the harmony message format (openai/harmony docs/format.md,
        "Function calling"): a call is ``assistant<|channel|>commentary to=functions.x``
        and a result is ``functions.x to=assistant<|channel|>commentary``. Other models
        have no channels, so this is 0 for them.
        """
        if not self.reasoning:
            return 0
        if kind in ("final", "commentary"):  # an assistant message on that channel
            return 1 + self.text(kind)
        channel = 1 + self.text("commentary")  # <|channel|> + its name
        if kind == "call":
            return channel
        return channel + self.text(" to=assistant")

    # messages

    def _messages(self, messages: Any) -> tuple[int, Any]:
        """Tokens of a message list, and its first message."""
        if not isinstance(messages, list):
            self.flags.add(FLAG_NOT_COUNTABLE)
            return 0, None
        per_message, per_name = self.context.per_message, self.context.per_name
        text = self.text
        call_names: dict[str, str] = {}
        parallel_ids: set[str] = set()
        parallel_results: list[Any] = []
        total = 0
        for message in messages:
            if not isinstance(message, dict):
                self.flags.add(FLAG_NOT_COUNTABLE)
                continue
            role = message.get("role")
            content = message.get("content")
            if parallel_ids:
                if role == "tool" and message.get("tool_call_id") in parallel_ids:
                    parallel_results.append(content)
                    continue
                if parallel_results:
                    total += self._parallel_results(parallel_results)
            total += per_message
            if role in ("tool", "function"):
                # A tool result is authored by the function it answers.
                call_id = message.get("tool_call_id")
                name = call_names.get(call_id) if isinstance(call_id, str) else None
                if name is None:
                    name = message.get("name")
                total += text(f"functions.{name}" if isinstance(name, str) else "tool")
                total += self._channel_framing("result")
                total += self._content(content)
                continue
            if isinstance(role, str):
                total += text(role)
            if type(content) is str:
                total += text(content)
            elif role == "assistant" and isinstance(content, list):
                total += self._assistant_content(content)
            else:
                total += self._content(content)
            if self.reasoning and role == "assistant" and content:
                total += self._channel_framing("final")
            if len(message) == 2 and role is not None and content is not None:
                continue  # only role and content: the common case
            name = message.get("name")
            if isinstance(name, str):
                # after the role as ":name" (harmony src/encoding.rs renders the author so);
                # the 0301 format put the name in the role's place
                separator = self.context.name_separator
                total += text(separator + name) if separator else text(name) + per_name
            calls = message.get("tool_calls")
            if calls is not None:
                if content:  # text and calls are two messages (rules: tools._text_with_calls)
                    total += per_message + text("assistant")
                total += self._tool_calls(calls, call_names)
                if isinstance(calls, list) and len(calls) > 1 and not self.reasoning:
                    parallel_ids.update(
                        call["id"] for call in calls if isinstance(call, dict) and "id" in call
                    )
            if isinstance(message.get("function_call"), dict):
                call = message["function_call"]
                name = call.get("name") if isinstance(call.get("name"), str) else ""
                total += self._render_calls([(f"functions.{name}", call.get("arguments"))])
        if parallel_results:
            total += self._parallel_results(parallel_results)
        return total, messages[0] if messages else None

    def _assistant_content(self, content: list[Any]) -> int:
        """An assistant message's content parts: their texts are billed as one string
        (fitted, ``chat._assistant_text_parts`` in the rules file); other parts as usual."""
        texts: list[str] = []
        others: list[Any] = []
        for part in content:
            is_text = isinstance(part, dict) and part.get("type") == "text"
            text = part.get("text") if is_text else None
            if isinstance(text, str):
                texts.append(text)
            else:
                others.append(part)
        return self.text("".join(texts)) + (self._content(others) if others else 0)

    def _parallel_results(self, results: list[Any]) -> int:
        """The results of a parallel call, as the service bills them (and clears ``results``).

        They come back to the model as one message from ``multi_tool_use.parallel`` whose
        content is the JSON list of the results: a result that is JSON text is embedded
        parsed, any other text as a JSON string; ``json.dumps`` defaults (``", "``
        separators, non-ASCII escaped), so non-ASCII results cost several times their plain
        count. Fitted, see ``_parallel_results`` in the rules file.
        """
        if not results:
            return 0
        values: list[Any] = []
        total = 0
        for content in results:
            if isinstance(content, list):  # content parts: their text, other parts counted as such
                texts = [p.get("text") for p in content if isinstance(p, dict)]
                others = [p for p in content if not (isinstance(p, dict) and "text" in p)]
                total += self._content(others) if others else 0
                content = "".join(t for t in texts if isinstance(t, str))
            values.append(_parsed_json(content) if isinstance(content, str) else content)
        results.clear()
        rule = self.rules["tools"]
        try:
            rendered = json.dumps(values)
        except (TypeError, ValueError):
            self.flags.add(FLAG_NOT_COUNTABLE)
            rendered = ""
        return (
            total
            + self.context.per_message
            + self.text("multi_tool_use.parallel")
            + rule["parallel_results_overhead"]
            + self.text(rendered)
        )

    def _appended_to_system(self, system_tail: str | None, new_message: int, section: str) -> int:
        """Cost of the blank line that joins a section to the system message, or of a new one.

        The service appends tool and schema sections to the first system message after a
        blank line; that ``\n\n`` merges with trailing punctuation (``.\n\n`` is one token),
        so its cost depends on how the system text ends. Responses requests put them there
        for fewer tokens than Chat Completions (fitted, ``responses_section`` in the rules).
        """
        deltas = self.rules["responses_section"][section] if self.responses else None
        prefix = "reasoning_" if self.reasoning else ""
        if system_tail is None:
            return new_message + (deltas[prefix + "new_message"] if deltas else 0)
        if self.reasoning:
            # reasoning models: the instructions and the section do not merge
            join = self.rules["tools"]["reasoning_system_join"]
        else:
            join = self.text(system_tail + "\n\n") - self.text(system_tail)
        return join + (deltas[prefix + "system_join"] if deltas else 0)

    def _after_tools_join(self) -> int:
        """Cost of the blank line between the tools section and a following section."""
        end = "} // namespace functions"
        return self.text(end + "\n\n") - self.text(end)

    def _functions_block(self, functions: list[Function], system_tail: str | None) -> int:
        if not functions:
            return 0
        rule = self.rules["tools"]
        if self.context.untitled_schemas:
            functions = [
                (name, description, without_titles(parameters, top=True), strict)
                for name, description, parameters, strict in functions
            ]
        cache = self.context.functions_cache
        key = orjson.dumps(functions, option=orjson.OPT_NON_STR_KEYS)
        rendered_tokens = cache.get(key)
        if rendered_tokens is None:
            rendered_tokens = self.text(render_functions(functions))
            rendered_tokens += rule["uncommented_function"] * uncommented_functions(functions)
            if len(cache) >= 1024:
                del cache[next(iter(cache))]
            cache[key] = rendered_tokens
        join = self._appended_to_system(system_tail, rule["new_system_message"], "tools")
        return rendered_tokens + rule["block_overhead"] + join

    def _chat_functions(self, body: dict[str, Any]) -> list[Function]:
        functions: list[Function] = []
        tools = body.get("tools")
        if isinstance(tools, list):
            for tool in tools:
                function = tool.get("function") if isinstance(tool, dict) else None
                if isinstance(function, dict):
                    functions.append(function_of(function, self.flags, strict_default=False))
                else:
                    self._hosted_tool(tool)
        legacy = body.get("functions")
        if isinstance(legacy, list):
            for function in legacy:
                if isinstance(function, dict):
                    functions.append(function_of(function, self.flags, strict_default=False))
        return functions

    def _response_format(
        self, response_format: Any, system_tail: str | None, after_tools: bool
    ) -> int:
        """A json_schema structured output: a section after the tools, or after the system text."""
        if not _is_json_schema(response_format):
            return 0
        spec = response_format.get("json_schema", response_format)
        if not isinstance(spec, dict):
            self.flags.add(FLAG_NOT_COUNTABLE)
            return 0
        name = spec.get("name")
        name = name if isinstance(name, str) else "response"
        description = spec.get("description")
        rendered = render_response_format(
            name, spec.get("schema"), description if isinstance(description, str) else None
        )
        rule = self.rules["response_format"]
        if after_tools:
            overhead = rule["reasoning_after_tools" if self.reasoning else "after_tools_overhead"]
            return self.text(rendered) + overhead + self._after_tools_join()
        return (
            self.text(rendered)
            + rule["overhead"]
            + self._appended_to_system(system_tail, rule["new_system_message"], "response_format")
        )

    def count_chat(self, body: dict[str, Any]) -> int:
        messages_tokens, first_message = self._messages(body.get("messages"))
        total = messages_tokens + self.context.priming
        response_format = body.get("response_format")
        if "tools" not in body and "functions" not in body and response_format is None:
            return total + self.hidden  # plain chat: no section joins the system message
        system_tail = _system_tail(first_message)
        functions = self._chat_functions(body)
        total += self._functions_block(functions, system_tail)
        if functions and self.reasoning:
            # gpt-5 models get a hidden preamble when Chat Completions carries tools
            preambled = tuple(self.rules["tools"]["reasoning_chat_overhead_models"])
            if base_model_of(self.model).startswith(preambled):
                total += self.rules["tools"]["reasoning_chat_overhead"]
        elif functions:
            total += tool_choice_tokens(
                body.get("tool_choice", body.get("function_call")),
                self.text,
                untitled=self.context.untitled_schemas,
            )
        if _is_json_schema(response_format):
            # earlier answers are billed as structured output (harmony's "<|constrain|>json")
            answers = _assistant_answers(body.get("messages"))
            total += answers * self.rules["response_format"]["assistant_turn"]
        total += self._response_format(response_format, system_tail, bool(functions))
        return total + self.hidden

    # responses

    def count_responses(self, body: dict[str, Any]) -> int:
        """A Responses body: ``instructions`` is a system message, ``input`` the messages."""
        self.responses = True
        if body.get("previous_response_id") or body.get("conversation"):
            self._stored_items()
        per_message = self.context.per_message
        total = self.context.priming
        system_tail: str | None = None
        instructions = body.get("instructions")
        if isinstance(instructions, str) and instructions:
            total += per_message + self.text("system") + self.text(instructions)
            system_tail = instructions[-_TAIL_CHARS:]
        items = body.get("input")
        tools = body.get("tools")
        search = tool_search(tools)
        if isinstance(items, str):
            total += per_message + self.text("user") + self.text(items)
        elif isinstance(items, list):
            total += self._response_items(items, per_message, search)
            if system_tail is None:
                system_tail = _system_tail(items[0] if items else None)
        elif items is not None:
            self.flags.add(FLAG_NOT_COUNTABLE)
        functions = self._response_functions(tools)
        total += self._functions_block(functions, system_tail)
        if search is not None and "parameters" in search:  # counted as a function above
            total += self.rules["tool_search"]["search_tool"]
        if functions and not self.reasoning:
            total += tool_choice_tokens(body.get("tool_choice"), self.text)
        text = body.get("text")
        if isinstance(text, dict) and isinstance(text.get("format"), dict):
            total += self._response_format(text["format"], system_tail, bool(functions))
        return total + self.hidden

    def _response_functions(self, tools: Any, *, loaded: bool = False) -> list[Function]:
        """The function tools of a Responses ``tools`` list; other tools are flagged.

        Deferred tools (``defer_loading``) are left out until ``loaded`` by a tool search.
        """
        functions: list[Function] = []
        if isinstance(tools, list):
            for tool in tools:
                if not isinstance(tool, dict):
                    self.flags.add(FLAG_NOT_COUNTABLE)
                elif tool.get("defer_loading") is True and not loaded:
                    continue
                elif tool.get("type") == "function":
                    functions.append(function_of(tool, self.flags, strict_default=True))
                elif tool.get("type") == "tool_search" and "parameters" in tool:
                    # a client-run tool search is shown to the model as a function
                    functions.append(
                        function_of(
                            {**tool, "name": "tool_search"}, self.flags, strict_default=False
                        )
                    )
                else:
                    self._hosted_tool(tool)
        return functions

    def _hosted_tool(self, tool: Any) -> None:
        """A tool the service runs (web search, file search, ...): its hidden text is
        estimated from recorded requests, and what it fetches widens the range."""
        self.flags.add(FLAG_HOSTED_TOOL)
        rules = self.rules["hosted_tools"]
        kind = tool.get("type") if isinstance(tool, dict) else None
        rule = rules.get(kind) if isinstance(kind, str) and not kind.startswith("_") else None
        rule = rule or rules["other"]
        self._uncertain(rule["tokens"], rule["least"], rule["most"])

    def _response_items(
        self, items: list[Any], per_message: int, search: dict[str, Any] | None
    ) -> int:
        """Responses input items. Every call is an assistant message of its own and every
        output a message of its own: consecutive calls are not one parallel call as in Chat
        Completions (fitted, ``responses_section`` in the rules file)."""
        total = 0
        call_names: dict[str, str] = {}
        section = self.rules["responses_section"]["calls"]
        last_user = max(
            (i for i, x in enumerate(items) if isinstance(x, dict) and x.get("role") == "user"),
            default=-1,
        )
        for index, item in enumerate(items):
            if not isinstance(item, dict):
                self.flags.add(FLAG_NOT_COUNTABLE)
                continue
            kind = item.get("type", "message")
            if kind in ("function_call", "tool_search_call"):
                if kind == "tool_search_call":
                    recipient, extra = "functions.tool_search", 0
                else:
                    name = item.get("name")
                    name = name if isinstance(name, str) else ""
                    namespace = item.get("namespace")  # set on functions a tool search loaded
                    recipient = f"{namespace if isinstance(namespace, str) else 'functions'}.{name}"
                    # a lone call with the id of a stored output is billed as stored (rules)
                    stored = "id" in item and not _next_to_call(items, index)
                    extra = section["call"] + (section["stored_call"] if stored else 0)
                    if isinstance(item.get("call_id"), str):
                        call_names[item["call_id"]] = name
                if self.reasoning and index and _is_call(items[index - 1]):
                    extra += self.rules["tools"]["reasoning_parallel_call"]
                total += per_message + self.text("assistant") + extra
                # reasoning models get the arguments re-serialised, the others as sent
                arguments = item.get("arguments")
                total += self._render_calls([(recipient, arguments)], as_sent=not self.reasoning)
            elif kind == "message":
                total += per_message
                role = item.get("role")
                if isinstance(role, str):
                    total += self.text(role)
                total += self._content(item.get("content"))
                if self.reasoning and role == "assistant" and item.get("content"):
                    phase = "commentary" if item.get("phase") == "commentary" else "final"
                    total += self._channel_framing(phase)
            elif kind == "function_call_output":
                call_id = item.get("call_id")
                name = call_names.get(call_id) if isinstance(call_id, str) else None
                output = item.get("output")
                total += per_message + self.text(f"functions.{name}" if name else "tool")
                total += self._channel_framing("result")
                total += self._content(output) if output is not None else 0
            elif kind in ("additional_tools", "tool_search_output"):
                total += self._loaded_tools(item, per_message, search)
            elif kind == "reasoning":
                self._reasoning_item(item, kept=index > last_user)
            elif kind == "item_reference":
                self._stored_items()
            else:
                self.flags.add(FLAG_UNSUPPORTED_ITEM)
        return total

    def _stored_items(self) -> None:
        """The request continues a stored response or conversation, or names a stored item
        by id: the service adds text the request does not show. Nothing is added to the
        count; the range runs up to the most any model takes (rules: ``stored_items``)."""
        if self.stored:
            return  # one allowance per request: it already spans a whole context window
        self.stored = True
        self.flags.add(FLAG_HIDDEN_TEXT)
        self._uncertain(0, 0, self.rules["stored_items"]["most"])

    def _reasoning_item(self, item: dict[str, Any], *, kept: bool) -> None:
        """A reasoning item sent back: its text is encrypted, so its tokens are estimated
        from the ciphertext's length (fitted, ``reasoning_items`` in the rules file). One
        from before the last user message is dropped by the service (measured once), so it
        counts nothing; the range runs from none to twice the estimate either way."""
        self.flags.add(FLAG_HIDDEN_TEXT)
        encrypted = item.get("encrypted_content")
        if not isinstance(encrypted, str):
            return
        rule = self.rules["reasoning_items"]
        estimate = max(0, round(rule["tokens_per_char"] * (len(encrypted) - rule["empty_chars"])))
        self._uncertain(estimate if kept else 0, 0, 2 * estimate)

    def _loaded_tools(
        self, item: dict[str, Any], per_message: int, search: dict[str, Any] | None
    ) -> int:
        """Tools made available mid-conversation: ``additional_tools`` or a tool search result.

        Each is a tools section of its own plus hidden text the service adds when it loads
        tools; a search result also repeats the search tool's description (fitted constants
        and their evidence: rules file, ``tool_search``).
        """
        rule = self.rules["tool_search"]
        functions = self._response_functions(item.get("tools"), loaded=True)
        total = self._functions_block(functions, None)
        if item["type"] == "additional_tools":
            return total + (rule["additional_tools"] if functions else 0)
        total += per_message + self.text("functions.tool_search") + self._channel_framing("result")
        description = search.get("description") if search else None
        total += self.text(description) if isinstance(description, str) else 0
        total += rule["search_result"]
        return total + (rule["loaded_tools"] if functions else 0)


_TAIL_CHARS = 32


def _assistant_answers(messages: Any) -> int:
    """How many assistant messages of a Chat Completions list have content."""
    if not isinstance(messages, list):
        return 0
    return sum(
        1
        for m in messages
        if isinstance(m, dict) and m.get("role") == "assistant" and m.get("content")
    )


def _is_json_schema(response_format: Any) -> bool:
    return isinstance(response_format, dict) and response_format.get("type") == "json_schema"


def _is_call(item: Any) -> bool:
    return isinstance(item, dict) and item.get("type") == "function_call"


def _next_to_call(items: list[Any], index: int) -> bool:
    """Whether the item at ``index`` has a function call right before or after it."""
    return any(
        0 <= other < len(items) and _is_call(items[other]) for other in (index - 1, index + 1)
    )


def _system_tail(message: Any) -> str | None:
    """The last characters of a leading system/developer message's text; None if there is none."""
    if not isinstance(message, dict) or message.get("role") not in ("system", "developer"):
        return None
    content = message.get("content")
    if isinstance(content, list):
        texts = [p.get("text") for p in content if isinstance(p, dict)]
        content = next((t for t in reversed(texts) if isinstance(t, str)), "")
    return content[-_TAIL_CHARS:] if isinstance(content, str) else ""


def _parsed_json(arguments: Any) -> Any:
    if isinstance(arguments, str):
        try:
            return json.loads(arguments)
        except ValueError:
            return arguments
    return arguments


def _normal_json(arguments: Any) -> str:
    """Call arguments as the service re-serialises them (compact JSON)."""
    if isinstance(arguments, str):
        try:
            return json.dumps(json.loads(arguments), ensure_ascii=False, separators=(",", ":"))
        except ValueError:
            return arguments
    if arguments is None:
        return ""
    return json.dumps(arguments, ensure_ascii=False, separators=(",", ":"))
