from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor
PRIORITY_BATCH: Priority
PRIORITY_INTERACTIVE: Priority
PRIORITY_UNSPECIFIED: Priority

class Budget(_message.Message):
    __slots__ = ["max_cost_usd", "max_fanout_depth", "max_steps", "max_tokens"]
    MAX_COST_USD_FIELD_NUMBER: _ClassVar[int]
    MAX_FANOUT_DEPTH_FIELD_NUMBER: _ClassVar[int]
    MAX_STEPS_FIELD_NUMBER: _ClassVar[int]
    MAX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    max_cost_usd: float
    max_fanout_depth: int
    max_steps: int
    max_tokens: int
    def __init__(self, max_tokens: _Optional[int] = ..., max_cost_usd: _Optional[float] = ..., max_steps: _Optional[int] = ..., max_fanout_depth: _Optional[int] = ...) -> None: ...

class Error(_message.Message):
    __slots__ = ["code", "http_status", "message", "retry_after_ms", "retryable"]
    CODE_FIELD_NUMBER: _ClassVar[int]
    HTTP_STATUS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    RETRYABLE_FIELD_NUMBER: _ClassVar[int]
    RETRY_AFTER_MS_FIELD_NUMBER: _ClassVar[int]
    code: str
    http_status: int
    message: str
    retry_after_ms: int
    retryable: bool
    def __init__(self, code: _Optional[str] = ..., message: _Optional[str] = ..., retryable: bool = ..., retry_after_ms: _Optional[int] = ..., http_status: _Optional[int] = ...) -> None: ...

class Usage(_message.Message):
    __slots__ = ["calls", "cost_usd", "input_tokens", "output_tokens"]
    CALLS_FIELD_NUMBER: _ClassVar[int]
    COST_USD_FIELD_NUMBER: _ClassVar[int]
    INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    calls: int
    cost_usd: float
    input_tokens: int
    output_tokens: int
    def __init__(self, input_tokens: _Optional[int] = ..., output_tokens: _Optional[int] = ..., cost_usd: _Optional[float] = ..., calls: _Optional[int] = ...) -> None: ...

class Priority(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []
