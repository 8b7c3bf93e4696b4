"""musespark: run multimodal reasoning models locally, with reasoning modes and a reasoning trace.

Every Engine method releases the GIL while the engine works, so other Python
threads keep running. Every failure raises `Error` (or a subclass) whose
message names the file and field at fault.
"""

import os
from typing import Any, Iterator, KeysView, Literal, NamedTuple, Optional, Sequence, TypedDict, Union

import numpy as np
import numpy.typing as npt

__version__: str
ABI_VERSION: int

Mode = Literal["instant", "thinking", "contemplating", "auto"]
Effort = Literal["minimal", "low", "medium", "high", "xhigh"]
EventKind = Literal["agent_started", "text_delta", "step", "agent_finished", "vote_update", "escalation", "final"]

class Message(TypedDict):
    role: Literal["system", "user", "assistant"]
    content: str

# A path to a PNG/JPEG file, its encoded bytes, or RGB pixels: a uint8 array
# of shape (height, width, 3) (made C-contiguous if it is not).
Image = Union[str, os.PathLike[str], bytes, bytearray, memoryview, npt.NDArray[np.uint8]]

class Error(Exception):
    """An error reported by the engine (bad model files, bad arguments, ...)."""

class InvalidArgument(Error, ValueError):
    """An argument is missing, out of range or malformed (a bad mode, a bad image shape, ...)."""

class IOError(Error, OSError):
    """A file is missing, unreadable or truncated."""

class FormatError(Error):
    """A file or value is malformed."""

class Unsupported(Error):
    """Well-formed but not supported (an architecture; images on a text-only model)."""

class ContextOverflow(Error):
    """The prompt does not fit in the context."""

class OutOfMemory(Error, MemoryError): ...

class InternalError(Error):
    """A bug in musespark."""

class ModelInfo(NamedTuple):
    architecture: str     # "Qwen3ForCausalLM", ...
    vocab_size: int
    hidden_size: int
    num_layers: int
    max_context: int      # the context the engine was loaded with
    parameter_count: int
    vision: bool          # the model takes images
    threads: int

class TraceNode:
    """A JSON object of the trace. Fields are attributes (`node.agents[0].thinking`);
    objects are TraceNodes, arrays are lists, other values plain Python values.
    Keys that are Python keywords are read by index: `escalation["from"]`."""
    def __getattr__(self, name: str) -> Any: ...
    def __getitem__(self, key: str) -> Any: ...
    def __contains__(self, key: object) -> bool: ...
    def __iter__(self) -> Iterator[str]: ...
    def __len__(self) -> int: ...
    def keys(self) -> KeysView[str]: ...
    def get(self, key: str, default: Any = ...) -> Any: ...
    def to_dict(self) -> dict[str, Any]:
        """A deep copy as plain dicts and lists."""

class Trace(TraceNode):
    """The reasoning trace, schema version 1 (docs/trace.md): schema_version,
    request, mode_used, final_answer, final_text, final_agent, agents, votes,
    escalations, visual_actions, early_stop_threshold, workspace, usage."""
    def to_json(self) -> str:
        """The engine's JSON document, unchanged."""

class Result:
    """The answer of an ask."""
    @property
    def answer(self) -> str:
        """The final answer as the winning agent wrote it ("" when none);
        trace.final_answer is its normalised form."""
    @property
    def text(self) -> str:
        """The winning agent's answer text, as written."""
    @property
    def trace(self) -> Trace:
        """The whole reasoning trace (parsed once, on first access)."""

class Event:
    """One streaming event, as it happens."""
    kind: EventKind
    agent: int            # -1 when the event is not about one agent
    round: int
    text: str             # text delta, step, or the final answer
    in_thinking: bool
    tokens: int           # the agent's generated tokens so far
    confidence: float     # the agent's current group confidence
    result: Optional[Result]  # set on the "final" event only

class Stream:
    """Events of an ask running on a background thread; the last one is "final"
    and carries the Result. Leaving early (break, close(), `with` exit, garbage
    collection) cancels the ask and waits for its thread. Errors of the ask
    are raised from the iteration."""
    def __iter__(self) -> Stream: ...
    def __next__(self) -> Event: ...
    def close(self) -> None: ...
    def __enter__(self) -> Stream: ...
    def __exit__(self, *exc: object) -> None: ...

class Engine:
    """A model loaded from an HF-layout folder (config.json, *.safetensors,
    tokenizer.json, tokenizer_config.json). Thread-safe: several threads may
    ask, stream, tokenize or generate on one engine at once."""

    path: str

    def __init__(self, path: Union[str, os.PathLike[str]], threads: int = 0, dtype: Literal["f32", "bf16", "int8", "q4"] = "f32",
                 max_context: int = 0) -> None:
        """threads 0: one per core; max_context 0: min(model's, 4096).
        Raises IOError (missing files), FormatError, Unsupported."""

    @property
    def info(self) -> ModelInfo: ...

    def ask(self, question_or_messages: Union[str, Sequence[Message]], mode: Mode = "auto",
            effort: Effort = "medium", images: Optional[Sequence[Image]] = None, seed: int = 0, agents: int = 0,
            max_thinking_tokens: int = 0, max_answer_tokens: int = 0, deadline_ms: int = 0,
            temperature: Optional[float] = None, early_stop: bool = True, max_zooms: int = 2,
            assistant_prefix: str = "", consensus_share: float = 0.0, scatter_stop: int = 0) -> Result:
        """Answers in `mode` at `effort`. A str is one user message. `images`
        are attached to the last user message, before its text. Budgets of 0
        follow the effort; deadline_ms 0: none; temperature None: the
        engine's defaults (Instant greedy, agents 0.7). early_stop: DeepConf
        early stop (consensus stop stays on). max_zooms: zoom-ins per agent.
        assistant_prefix: text every agent's reply starts with, as if the
        model wrote it (e.g. "<zoom>(0,0),(500,500)</zoom>" drives a zoom).
        consensus_share: DeepConf's adaptive sampling, in [0, 1]; 0: off.
        Once the warm-up agents have voted and the leading answer holds this
        share of the vote, the round ends; until then the other agents start
        one at a time, each only while the votes still disagree.
        scatter_stop: the round also ends once this many agents have voted
        and no two agreed (the leader so far wins); 0: off, else at least 2.
        Raises InvalidArgument (bad mode, effort, role or image),
        Unsupported (images on a text model), ContextOverflow, ..."""

    def stream(self, question_or_messages: Union[str, Sequence[Message]], mode: Mode = "auto",
               effort: Effort = "medium", images: Optional[Sequence[Image]] = None, seed: int = 0, agents: int = 0,
               max_thinking_tokens: int = 0, max_answer_tokens: int = 0, deadline_ms: int = 0,
               temperature: Optional[float] = None, early_stop: bool = True, max_zooms: int = 2,
               assistant_prefix: str = "", consensus_share: float = 0.0, scatter_stop: int = 0) -> Stream:
        """As ask(), streaming events; the ask starts at once on a background thread."""

    def tokenize(self, text: str) -> list[int]:
        """Token ids of `text` (no BOS/EOS added; special tokens recognised)."""

    def detokenize(self, ids: Sequence[int]) -> str:
        """Text of `ids` (invalid UTF-8 becomes U+FFFD)."""

    def generate(self, prompt: str, max_tokens: int = 128, chat: bool = False, thinking: bool = True,
                 temperature: float = 0.0, top_p: float = 1.0, seed: int = 0) -> str:
        """Plain generation from `prompt` until end-of-sequence or max_tokens.
        chat: wrap it in the chat template as one user turn (thinking: Qwen3's
        enable_thinking). temperature 0: greedy."""
