from agentfleet.v1 import common_pb2 as _common_pb2
from agentfleet.v1 import task_pb2 as _task_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

BREAKER_STATUS_CLOSED: BreakerStatus
BREAKER_STATUS_HALF_OPEN: BreakerStatus
BREAKER_STATUS_OPEN: BreakerStatus
BREAKER_STATUS_UNSPECIFIED: BreakerStatus
DESCRIPTOR: _descriptor.FileDescriptor

class AbandonedAttempt(_message.Message):
    __slots__ = ["agent", "attempt", "child_task_id", "fan_index", "reservation", "step"]
    AGENT_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    CHILD_TASK_ID_FIELD_NUMBER: _ClassVar[int]
    FAN_INDEX_FIELD_NUMBER: _ClassVar[int]
    RESERVATION_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    agent: str
    attempt: int
    child_task_id: str
    fan_index: int
    reservation: Reservation
    step: str
    def __init__(self, step: _Optional[str] = ..., fan_index: _Optional[int] = ..., attempt: _Optional[int] = ..., agent: _Optional[str] = ..., reservation: _Optional[_Union[Reservation, _Mapping]] = ..., child_task_id: _Optional[str] = ...) -> None: ...

class BreakerState(_message.Message):
    __slots__ = ["name", "reason", "replica", "since", "status"]
    NAME_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REPLICA_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    name: str
    reason: str
    replica: str
    since: _timestamp_pb2.Timestamp
    status: BreakerStatus
    def __init__(self, name: _Optional[str] = ..., status: _Optional[_Union[BreakerStatus, str]] = ..., since: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., replica: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class CacheEntry(_message.Message):
    __slots__ = ["agent", "cost_usd", "embedding", "expires", "input", "model", "output", "scope", "text"]
    AGENT_FIELD_NUMBER: _ClassVar[int]
    COST_USD_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    agent: str
    cost_usd: float
    embedding: _containers.RepeatedScalarFieldContainer[float]
    expires: _timestamp_pb2.Timestamp
    input: str
    model: str
    output: _struct_pb2.Struct
    scope: str
    text: str
    def __init__(self, agent: _Optional[str] = ..., model: _Optional[str] = ..., input: _Optional[str] = ..., output: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., expires: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., cost_usd: _Optional[float] = ..., embedding: _Optional[_Iterable[float]] = ..., scope: _Optional[str] = ..., text: _Optional[str] = ...) -> None: ...

class Reservation(_message.Message):
    __slots__ = ["attempt", "cost_usd", "expires", "tokens"]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    COST_USD_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_FIELD_NUMBER: _ClassVar[int]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    attempt: int
    cost_usd: float
    expires: _timestamp_pb2.Timestamp
    tokens: int
    def __init__(self, attempt: _Optional[int] = ..., tokens: _Optional[int] = ..., cost_usd: _Optional[float] = ..., expires: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class StepState(_message.Message):
    __slots__ = ["ask_agent", "ask_wait", "attempt", "attempt_base", "batch_attempt", "batch_saved_usd", "budget_wait", "cached", "child_cost_usd", "child_task_id", "child_tokens", "close_deadline", "dispatched_at", "embed_attempt", "error", "fallback_agent", "fallback_from", "fallback_tier", "fan_index", "heartbeat_deadline", "latency_ms", "max_tokens", "model", "model_tier", "note", "output", "questions", "rate_epoch", "rate_key", "rate_tag", "rate_wait", "reservations", "retry_at", "reused", "saved_cost_usd", "schedule_deadline", "semantic_similarity", "signal_wait", "spawn_agent", "spawn_input", "status", "step", "tenant_wait", "usage", "worker"]
    ASK_AGENT_FIELD_NUMBER: _ClassVar[int]
    ASK_WAIT_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_BASE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    BATCH_ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    BATCH_SAVED_USD_FIELD_NUMBER: _ClassVar[int]
    BUDGET_WAIT_FIELD_NUMBER: _ClassVar[int]
    CACHED_FIELD_NUMBER: _ClassVar[int]
    CHILD_COST_USD_FIELD_NUMBER: _ClassVar[int]
    CHILD_TASK_ID_FIELD_NUMBER: _ClassVar[int]
    CHILD_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CLOSE_DEADLINE_FIELD_NUMBER: _ClassVar[int]
    DISPATCHED_AT_FIELD_NUMBER: _ClassVar[int]
    EMBED_ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    FALLBACK_AGENT_FIELD_NUMBER: _ClassVar[int]
    FALLBACK_FROM_FIELD_NUMBER: _ClassVar[int]
    FALLBACK_TIER_FIELD_NUMBER: _ClassVar[int]
    FAN_INDEX_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_DEADLINE_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    MAX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    MODEL_TIER_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    QUESTIONS_FIELD_NUMBER: _ClassVar[int]
    RATE_EPOCH_FIELD_NUMBER: _ClassVar[int]
    RATE_KEY_FIELD_NUMBER: _ClassVar[int]
    RATE_TAG_FIELD_NUMBER: _ClassVar[int]
    RATE_WAIT_FIELD_NUMBER: _ClassVar[int]
    RESERVATIONS_FIELD_NUMBER: _ClassVar[int]
    RETRY_AT_FIELD_NUMBER: _ClassVar[int]
    REUSED_FIELD_NUMBER: _ClassVar[int]
    SAVED_COST_USD_FIELD_NUMBER: _ClassVar[int]
    SCHEDULE_DEADLINE_FIELD_NUMBER: _ClassVar[int]
    SEMANTIC_SIMILARITY_FIELD_NUMBER: _ClassVar[int]
    SIGNAL_WAIT_FIELD_NUMBER: _ClassVar[int]
    SPAWN_AGENT_FIELD_NUMBER: _ClassVar[int]
    SPAWN_INPUT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    TENANT_WAIT_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    WORKER_FIELD_NUMBER: _ClassVar[int]
    ask_agent: str
    ask_wait: bool
    attempt: int
    attempt_base: int
    batch_attempt: int
    batch_saved_usd: float
    budget_wait: bool
    cached: bool
    child_cost_usd: float
    child_task_id: str
    child_tokens: int
    close_deadline: _timestamp_pb2.Timestamp
    dispatched_at: _timestamp_pb2.Timestamp
    embed_attempt: int
    error: _common_pb2.Error
    fallback_agent: str
    fallback_from: int
    fallback_tier: str
    fan_index: int
    heartbeat_deadline: _timestamp_pb2.Timestamp
    latency_ms: int
    max_tokens: int
    model: str
    model_tier: str
    note: str
    output: _struct_pb2.Struct
    questions: _containers.RepeatedCompositeFieldContainer[_task_pb2.AgentQuestion]
    rate_epoch: int
    rate_key: str
    rate_tag: float
    rate_wait: bool
    reservations: _containers.RepeatedCompositeFieldContainer[Reservation]
    retry_at: _timestamp_pb2.Timestamp
    reused: bool
    saved_cost_usd: float
    schedule_deadline: _timestamp_pb2.Timestamp
    semantic_similarity: float
    signal_wait: bool
    spawn_agent: str
    spawn_input: _struct_pb2.Struct
    status: _task_pb2.StepStatus
    step: str
    tenant_wait: bool
    usage: _common_pb2.Usage
    worker: str
    def __init__(self, step: _Optional[str] = ..., fan_index: _Optional[int] = ..., status: _Optional[_Union[_task_pb2.StepStatus, str]] = ..., attempt: _Optional[int] = ..., model_tier: _Optional[str] = ..., output: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., error: _Optional[_Union[_common_pb2.Error, _Mapping]] = ..., usage: _Optional[_Union[_common_pb2.Usage, _Mapping]] = ..., latency_ms: _Optional[int] = ..., worker: _Optional[str] = ..., model: _Optional[str] = ..., dispatched_at: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., schedule_deadline: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., heartbeat_deadline: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., close_deadline: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., retry_at: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., reservations: _Optional[_Iterable[_Union[Reservation, _Mapping]]] = ..., budget_wait: bool = ..., max_tokens: _Optional[int] = ..., fallback_from: _Optional[int] = ..., fallback_agent: _Optional[str] = ..., fallback_tier: _Optional[str] = ..., note: _Optional[str] = ..., cached: bool = ..., rate_wait: bool = ..., spawn_agent: _Optional[str] = ..., spawn_input: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., tenant_wait: bool = ..., signal_wait: bool = ..., child_task_id: _Optional[str] = ..., child_tokens: _Optional[int] = ..., child_cost_usd: _Optional[float] = ..., questions: _Optional[_Iterable[_Union[_task_pb2.AgentQuestion, _Mapping]]] = ..., ask_agent: _Optional[str] = ..., ask_wait: bool = ..., attempt_base: _Optional[int] = ..., saved_cost_usd: _Optional[float] = ..., embed_attempt: _Optional[int] = ..., semantic_similarity: _Optional[float] = ..., batch_attempt: _Optional[int] = ..., batch_saved_usd: _Optional[float] = ..., rate_key: _Optional[str] = ..., rate_tag: _Optional[float] = ..., rate_epoch: _Optional[int] = ..., reused: bool = ...) -> None: ...

class TaskState(_message.Message):
    __slots__ = ["abandoned", "accepted_at", "attempt_offset", "cancel_reason", "cancel_requested", "children_usage", "deadline", "fan_out", "finished", "finished_at", "parent_traceparent", "pending_signals", "rescopes", "status", "steps", "submission", "traceparent", "usage"]
    class AttemptOffsetEntry(_message.Message):
        __slots__ = ["key", "value"]
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    class FanOutEntry(_message.Message):
        __slots__ = ["key", "value"]
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    ABANDONED_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_AT_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_OFFSET_FIELD_NUMBER: _ClassVar[int]
    CANCEL_REASON_FIELD_NUMBER: _ClassVar[int]
    CANCEL_REQUESTED_FIELD_NUMBER: _ClassVar[int]
    CHILDREN_USAGE_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_FIELD_NUMBER: _ClassVar[int]
    FAN_OUT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_FIELD_NUMBER: _ClassVar[int]
    PARENT_TRACEPARENT_FIELD_NUMBER: _ClassVar[int]
    PENDING_SIGNALS_FIELD_NUMBER: _ClassVar[int]
    RESCOPES_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    SUBMISSION_FIELD_NUMBER: _ClassVar[int]
    TRACEPARENT_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    abandoned: _containers.RepeatedCompositeFieldContainer[AbandonedAttempt]
    accepted_at: _timestamp_pb2.Timestamp
    attempt_offset: _containers.ScalarMap[str, int]
    cancel_reason: str
    cancel_requested: bool
    children_usage: _common_pb2.Usage
    deadline: _timestamp_pb2.Timestamp
    fan_out: _containers.ScalarMap[str, int]
    finished: bool
    finished_at: _timestamp_pb2.Timestamp
    parent_traceparent: str
    pending_signals: _containers.RepeatedCompositeFieldContainer[_task_pb2.TaskSignal]
    rescopes: _containers.RepeatedCompositeFieldContainer[_task_pb2.Rescope]
    status: _task_pb2.TaskStatus
    steps: _containers.RepeatedCompositeFieldContainer[StepState]
    submission: _task_pb2.TaskSubmission
    traceparent: str
    usage: _common_pb2.Usage
    def __init__(self, submission: _Optional[_Union[_task_pb2.TaskSubmission, _Mapping]] = ..., status: _Optional[_Union[_task_pb2.TaskStatus, str]] = ..., steps: _Optional[_Iterable[_Union[StepState, _Mapping]]] = ..., fan_out: _Optional[_Mapping[str, int]] = ..., accepted_at: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., finished_at: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., usage: _Optional[_Union[_common_pb2.Usage, _Mapping]] = ..., traceparent: _Optional[str] = ..., deadline: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., finished: bool = ..., parent_traceparent: _Optional[str] = ..., pending_signals: _Optional[_Iterable[_Union[_task_pb2.TaskSignal, _Mapping]]] = ..., cancel_requested: bool = ..., cancel_reason: _Optional[str] = ..., rescopes: _Optional[_Iterable[_Union[_task_pb2.Rescope, _Mapping]]] = ..., attempt_offset: _Optional[_Mapping[str, int]] = ..., abandoned: _Optional[_Iterable[_Union[AbandonedAttempt, _Mapping]]] = ..., children_usage: _Optional[_Union[_common_pb2.Usage, _Mapping]] = ...) -> None: ...

class TenantLedger(_message.Message):
    __slots__ = ["cost_usd", "period_start", "tenant", "tokens"]
    COST_USD_FIELD_NUMBER: _ClassVar[int]
    PERIOD_START_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    cost_usd: float
    period_start: _timestamp_pb2.Timestamp
    tenant: str
    tokens: int
    def __init__(self, tenant: _Optional[str] = ..., period_start: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., cost_usd: _Optional[float] = ..., tokens: _Optional[int] = ...) -> None: ...

class BreakerStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []
