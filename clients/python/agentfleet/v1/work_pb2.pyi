from agentfleet.v1 import common_pb2 as _common_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor
RESULT_STATUS_ERROR: ResultStatus
RESULT_STATUS_OK: ResultStatus
RESULT_STATUS_UNSPECIFIED: ResultStatus

class ActionCall(_message.Message):
    __slots__ = ["bytes_sent", "effect_id", "host", "http_status", "method", "outcome", "path", "payload", "payload_sha256", "violations"]
    BYTES_SENT_FIELD_NUMBER: _ClassVar[int]
    EFFECT_ID_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    HTTP_STATUS_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_SHA256_FIELD_NUMBER: _ClassVar[int]
    VIOLATIONS_FIELD_NUMBER: _ClassVar[int]
    bytes_sent: int
    effect_id: str
    host: str
    http_status: int
    method: str
    outcome: str
    path: str
    payload: str
    payload_sha256: str
    violations: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, method: _Optional[str] = ..., host: _Optional[str] = ..., path: _Optional[str] = ..., payload_sha256: _Optional[str] = ..., effect_id: _Optional[str] = ..., outcome: _Optional[str] = ..., http_status: _Optional[int] = ..., bytes_sent: _Optional[int] = ..., payload: _Optional[str] = ..., violations: _Optional[_Iterable[str]] = ...) -> None: ...

class Heartbeat(_message.Message):
    __slots__ = ["worker"]
    WORKER_FIELD_NUMBER: _ClassVar[int]
    worker: str
    def __init__(self, worker: _Optional[str] = ...) -> None: ...

class Receipt(_message.Message):
    __slots__ = ["worker"]
    WORKER_FIELD_NUMBER: _ClassVar[int]
    worker: str
    def __init__(self, worker: _Optional[str] = ...) -> None: ...

class ToolCall(_message.Message):
    __slots__ = ["arguments_sha256", "bytes", "latency_ms", "name", "status", "turn"]
    ARGUMENTS_SHA256_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    TURN_FIELD_NUMBER: _ClassVar[int]
    arguments_sha256: str
    bytes: int
    latency_ms: int
    name: str
    status: str
    turn: int
    def __init__(self, name: _Optional[str] = ..., arguments_sha256: _Optional[str] = ..., status: _Optional[str] = ..., latency_ms: _Optional[int] = ..., bytes: _Optional[int] = ..., turn: _Optional[int] = ...) -> None: ...

class WorkEvent(_message.Message):
    __slots__ = ["at", "attempt", "fan_index", "heartbeat", "idempotency_key", "receipt", "result", "step", "task_id"]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    FAN_INDEX_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    RECEIPT_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    at: _timestamp_pb2.Timestamp
    attempt: int
    fan_index: int
    heartbeat: Heartbeat
    idempotency_key: str
    receipt: Receipt
    result: WorkResult
    step: str
    task_id: str
    def __init__(self, task_id: _Optional[str] = ..., step: _Optional[str] = ..., fan_index: _Optional[int] = ..., attempt: _Optional[int] = ..., idempotency_key: _Optional[str] = ..., at: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., receipt: _Optional[_Union[Receipt, _Mapping]] = ..., heartbeat: _Optional[_Union[Heartbeat, _Mapping]] = ..., result: _Optional[_Union[WorkResult, _Mapping]] = ...) -> None: ...

class WorkItem(_message.Message):
    __slots__ = ["agent", "attempt", "batch", "deadline", "dispatched_at", "effect_id", "embed_text", "event_partition", "fan_index", "idempotency_key", "input", "max_tokens", "max_total_tokens", "model", "model_tier", "step", "task_id", "tenant", "untrusted_fields"]
    AGENT_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_FIELD_NUMBER: _ClassVar[int]
    DISPATCHED_AT_FIELD_NUMBER: _ClassVar[int]
    EFFECT_ID_FIELD_NUMBER: _ClassVar[int]
    EMBED_TEXT_FIELD_NUMBER: _ClassVar[int]
    EVENT_PARTITION_FIELD_NUMBER: _ClassVar[int]
    FAN_INDEX_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    MAX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    MAX_TOTAL_TOKENS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    MODEL_TIER_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    UNTRUSTED_FIELDS_FIELD_NUMBER: _ClassVar[int]
    agent: str
    attempt: int
    batch: bool
    deadline: _timestamp_pb2.Timestamp
    dispatched_at: _timestamp_pb2.Timestamp
    effect_id: str
    embed_text: str
    event_partition: int
    fan_index: int
    idempotency_key: str
    input: _struct_pb2.Struct
    max_tokens: int
    max_total_tokens: int
    model: str
    model_tier: str
    step: str
    task_id: str
    tenant: str
    untrusted_fields: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, task_id: _Optional[str] = ..., step: _Optional[str] = ..., fan_index: _Optional[int] = ..., attempt: _Optional[int] = ..., agent: _Optional[str] = ..., model_tier: _Optional[str] = ..., input: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., deadline: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., max_tokens: _Optional[int] = ..., idempotency_key: _Optional[str] = ..., tenant: _Optional[str] = ..., dispatched_at: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., event_partition: _Optional[int] = ..., effect_id: _Optional[str] = ..., max_total_tokens: _Optional[int] = ..., untrusted_fields: _Optional[_Iterable[str]] = ..., embed_text: _Optional[str] = ..., batch: bool = ..., model: _Optional[str] = ...) -> None: ...

class WorkResult(_message.Message):
    __slots__ = ["action", "batch", "embedding", "error", "latency_ms", "model", "model_turns", "output", "status", "tool_calls", "usage", "worker"]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    MODEL_TURNS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    TOOL_CALLS_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    WORKER_FIELD_NUMBER: _ClassVar[int]
    action: ActionCall
    batch: bool
    embedding: _containers.RepeatedScalarFieldContainer[float]
    error: _common_pb2.Error
    latency_ms: int
    model: str
    model_turns: int
    output: _struct_pb2.Struct
    status: ResultStatus
    tool_calls: _containers.RepeatedCompositeFieldContainer[ToolCall]
    usage: _common_pb2.Usage
    worker: str
    def __init__(self, status: _Optional[_Union[ResultStatus, str]] = ..., output: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., error: _Optional[_Union[_common_pb2.Error, _Mapping]] = ..., usage: _Optional[_Union[_common_pb2.Usage, _Mapping]] = ..., model: _Optional[str] = ..., latency_ms: _Optional[int] = ..., worker: _Optional[str] = ..., action: _Optional[_Union[ActionCall, _Mapping]] = ..., tool_calls: _Optional[_Iterable[_Union[ToolCall, _Mapping]]] = ..., model_turns: _Optional[int] = ..., embedding: _Optional[_Iterable[float]] = ..., batch: bool = ...) -> None: ...

class ResultStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []
