"""musespark: run multimodal reasoning models locally, with reasoning modes and a reasoning trace.

    import musespark
    engine = musespark.Engine("models/qwen3-0.6b")
    result = engine.ask("What is 6 times 7?", mode="thinking", effort="low")
    print(result.answer, result.trace.votes[0].share)
    for event in engine.stream("Why is the sky blue?"):
        if event.kind == "text_delta":
            print(event.text, end="")

Every engine call releases the GIL while it works. Errors raise
musespark.Error (or one of its subclasses) with the engine's message.
The API is documented in __init__.pyi.
"""

from __future__ import annotations

import json
import os
from typing import Any, Iterator, NamedTuple, Optional

from . import _musespark
from ._musespark import (  # noqa: F401  (re-exported)
    ContextOverflow,
    Error,
    FormatError,
    InternalError,
    InvalidArgument,
    IOError,
    OutOfMemory,
    Unsupported,
)

__version__ = _musespark.__version__
ABI_VERSION = _musespark.ABI_VERSION

__all__ = [
    "Engine", "Result", "Trace", "TraceNode", "Event", "Stream", "ModelInfo",
    "Error", "InvalidArgument", "IOError", "FormatError", "Unsupported", "ContextOverflow", "OutOfMemory",
    "InternalError",
]


class TraceNode:
    """A JSON object of the trace with attribute access: node.agents[0].thinking, node["from"]."""

    __slots__ = ("_data",)

    def __init__(self, data: dict):
        self._data = data

    def __getattr__(self, name: str) -> Any:
        try:
            return _wrap(self._data[name])
        except KeyError:
            raise AttributeError(f"the trace has no field {name!r} here (fields: {', '.join(self._data)})") from None

    def __getitem__(self, key: str) -> Any:
        return _wrap(self._data[key])

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, TraceNode):
            return self._data == other._data
        return self._data == other

    def __dir__(self):
        return list(self._data)

    def keys(self):
        return self._data.keys()

    def get(self, key: str, default: Any = None) -> Any:
        return _wrap(self._data.get(key, default))

    def to_dict(self) -> dict:
        """A deep copy of this object as plain dicts and lists."""
        return json.loads(json.dumps(self._data))

    def __repr__(self) -> str:
        return f"TraceNode({self._data!r})"


def _wrap(value: Any) -> Any:
    if isinstance(value, dict):
        return TraceNode(value)
    if isinstance(value, list):
        return [_wrap(v) for v in value]
    return value


class Trace(TraceNode):
    """The reasoning trace (docs/trace.md) with attribute access; to_json() is the engine's document."""

    __slots__ = ("_json",)

    def __init__(self, text: str):
        super().__init__(json.loads(text))
        self._json = text

    def to_json(self) -> str:
        return self._json

    def __repr__(self) -> str:
        return f"Trace(mode_used={self._data.get('mode_used')!r}, final_answer={self._data.get('final_answer')!r})"


class Result:
    """What ask() returns: the answer as written, the winning agent's answer text, and the trace."""

    __slots__ = ("_raw", "_trace")

    def __init__(self, raw: "_musespark.RawResult"):
        self._raw = raw
        self._trace: Optional[Trace] = None

    @property
    def answer(self) -> str:
        return self._raw.answer

    @property
    def text(self) -> str:
        return self._raw.text

    @property
    def trace(self) -> Trace:
        if self._trace is None:
            self._trace = Trace(self._raw.trace_json)
        return self._trace

    def __repr__(self) -> str:
        return f"Result(answer={self.answer!r})"


class Event:
    """One streaming event; `result` is set on the final event only."""

    __slots__ = ("kind", "agent", "round", "text", "in_thinking", "tokens", "confidence", "result")

    def __init__(self, kind, agent, round, text, in_thinking, tokens, confidence, result=None):
        self.kind: str = kind
        self.agent: int = agent
        self.round: int = round
        self.text: str = text
        self.in_thinking: bool = in_thinking
        self.tokens: int = tokens
        self.confidence: float = confidence
        self.result: Optional[Result] = result

    def __repr__(self) -> str:
        return (f"Event(kind={self.kind!r}, agent={self.agent}, round={self.round}, text={self.text!r}, "
                f"in_thinking={self.in_thinking}, tokens={self.tokens}, confidence={self.confidence:.3f})")


class Stream:
    """An iterator of Events from an ask running on a background thread.

    The last event is "final" and carries the Result. close() (also on `with`
    exit and on garbage collection) cancels the ask if it still runs and waits
    for its thread.
    """

    def __init__(self, raw: "_musespark.RawStream"):
        self._raw: Optional[_musespark.RawStream] = raw

    def __iter__(self) -> "Stream":
        return self

    def __next__(self) -> Event:
        if self._raw is None:
            raise StopIteration
        try:
            fields = self._raw.next()
        except BaseException:
            self.close()
            raise
        kind, agent, round_, text, in_thinking, tokens, confidence, raw_result = fields
        return Event(kind, agent, round_, text, in_thinking, tokens, confidence,
                     Result(raw_result) if raw_result is not None else None)

    def close(self) -> None:
        raw, self._raw = self._raw, None
        if raw is not None:
            raw.close()

    def __enter__(self) -> "Stream":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()


class ModelInfo(NamedTuple):
    architecture: str
    vocab_size: int
    hidden_size: int
    num_layers: int
    max_context: int
    parameter_count: int
    vision: bool
    threads: int


_ROLES = ("system", "user", "assistant")


def _add_image(request: "_musespark.Request", image: Any) -> None:
    if isinstance(image, (str, os.PathLike)):
        request.add_image_file(os.fspath(image))
    elif isinstance(image, (bytes, bytearray, memoryview)):
        request.add_image_encoded(image)
    elif type(image).__module__ == "numpy" and type(image).__name__ == "ndarray":
        import numpy as np

        if image.dtype != np.uint8:
            raise TypeError(f"image: a numpy array must have dtype uint8, got {image.dtype}")
        if image.ndim != 3 or image.shape[2] != 3:
            raise InvalidArgument(f"image: a numpy array must have shape (height, width, 3), got {image.shape}")
        pixels = np.ascontiguousarray(image)
        request.add_image_rgb(pixels, int(pixels.shape[1]), int(pixels.shape[0]))
    else:
        raise TypeError("image: expected a path (str or os.PathLike), encoded PNG/JPEG bytes, or a numpy uint8 "
                        f"array of shape (height, width, 3); got {type(image).__name__}")


def _messages(question_or_messages: Any) -> list:
    if isinstance(question_or_messages, str):
        return [{"role": "user", "content": question_or_messages}]
    if not isinstance(question_or_messages, (list, tuple)) or not question_or_messages:
        raise TypeError("expected a question (str) or a non-empty list of {'role': ..., 'content': str} dicts")
    for i, m in enumerate(question_or_messages):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
            raise TypeError(f"messages[{i}]: expected a dict with 'role' and 'content' strings, got {m!r}")
        if m["role"] not in _ROLES:
            raise InvalidArgument(f"messages[{i}]: role {m['role']!r} is not one of {', '.join(_ROLES)}")
    return list(question_or_messages)


def _request(question_or_messages, mode="auto", effort="medium", images=None, seed=0, agents=0,
             max_thinking_tokens=0, max_answer_tokens=0, deadline_ms=0, temperature=None, early_stop=True,
             max_zooms=2, assistant_prefix="", consensus_share=0.0, scatter_stop=0) -> "_musespark.Request":
    messages = _messages(question_or_messages)
    images = list(images) if images is not None else []
    users = [i for i, m in enumerate(messages) if m["role"] == "user"]
    if images and not users:
        raise InvalidArgument("images: there is no user message to attach them to")
    request = _musespark.Request()
    request.set_mode(mode)
    request.set_effort(effort)
    request.set_seed(seed)
    request.set_budgets(agents=agents, max_thinking_tokens=max_thinking_tokens,
                        max_answer_tokens=max_answer_tokens, deadline_ms=deadline_ms, max_zooms=max_zooms)
    if temperature is not None:
        request.set_temperature(float(temperature))
    request.set_early_stop(bool(early_stop), True)
    if consensus_share:
        request.set_consensus_share(float(consensus_share))
    if scatter_stop:
        request.set_scatter_stop(int(scatter_stop))
    if assistant_prefix:
        request.set_assistant_prefix(assistant_prefix)
    for i, m in enumerate(messages):
        request.add_message(m["role"])
        if users and i == users[-1]:
            for image in images:
                _add_image(request, image)
        request.add_text(m["content"])
    return request


class Engine:
    """A loaded model (an HF-layout folder). Thread-safe: several threads may ask at once."""

    def __init__(self, path, threads: int = 0, dtype: str = "f32", max_context: int = 0):
        self._raw = _musespark.Engine(os.fspath(path), threads=threads, dtype=dtype, max_context=max_context)
        self.path = os.fspath(path)

    @property
    def info(self) -> ModelInfo:
        return ModelInfo(**self._raw.info())

    def ask(self, question_or_messages, mode="auto", effort="medium", images=None, seed=0, agents=0,
            max_thinking_tokens=0, max_answer_tokens=0, deadline_ms=0, temperature=None, early_stop=True,
            max_zooms=2, assistant_prefix="", consensus_share=0.0, scatter_stop=0) -> Result:
        request = _request(question_or_messages, mode, effort, images, seed, agents, max_thinking_tokens,
                           max_answer_tokens, deadline_ms, temperature, early_stop, max_zooms, assistant_prefix,
                           consensus_share, scatter_stop)
        return Result(self._raw.ask(request))

    def stream(self, question_or_messages, mode="auto", effort="medium", images=None, seed=0, agents=0,
               max_thinking_tokens=0, max_answer_tokens=0, deadline_ms=0, temperature=None, early_stop=True,
               max_zooms=2, assistant_prefix="", consensus_share=0.0, scatter_stop=0) -> Stream:
        request = _request(question_or_messages, mode, effort, images, seed, agents, max_thinking_tokens,
                           max_answer_tokens, deadline_ms, temperature, early_stop, max_zooms, assistant_prefix,
                           consensus_share, scatter_stop)
        return Stream(self._raw.stream(request))

    def tokenize(self, text: str) -> list:
        return self._raw.tokenize(text)

    def detokenize(self, ids) -> str:
        return self._raw.detokenize(list(ids))

    def generate(self, prompt: str, max_tokens: int = 128, chat: bool = False, thinking: bool = True,
                 temperature: float = 0.0, top_p: float = 1.0, seed: int = 0) -> str:
        return self._raw.generate(prompt, max_tokens=max_tokens, chat=chat, thinking=thinking,
                                  temperature=temperature, top_p=top_p, seed=seed).text

    def __repr__(self) -> str:
        return f"Engine({self.path!r})"
