from agentfleet.v1 import common_pb2 as _common_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor
STEP_STATUS_FAILED: StepStatus
STEP_STATUS_PENDING: StepStatus
STEP_STATUS_RUNNING: StepStatus
STEP_STATUS_SKIPPED: StepStatus
STEP_STATUS_SUCCEEDED: StepStatus
STEP_STATUS_UNSPECIFIED: StepStatus
TASK_STATUS_BUDGET_EXHAUSTED: TaskStatus
TASK_STATUS_CANCELLED: TaskStatus
TASK_STATUS_COMPLETED: TaskStatus
TASK_STATUS_FAILED: TaskStatus
TASK_STATUS_PARTIAL: TaskStatus
TASK_STATUS_REJECTED: TaskStatus
TASK_STATUS_UNSPECIFIED: TaskStatus

class AgentQuestion(_message.Message):
    __slots__ = ["answer", "answered", "answered_at", "answered_by", "asked_at", "question", "timed_out"]
    ANSWERED_AT_FIELD_NUMBER: _ClassVar[int]
    ANSWERED_BY_FIELD_NUMBER: _ClassVar[int]
    ANSWERED_FIELD_NUMBER: _ClassVar[int]
    ANSWER_FIELD_NUMBER: _ClassVar[int]
    ASKED_AT_FIELD_NUMBER: _ClassVar[int]
    QUESTION_FIELD_NUMBER: _ClassVar[int]
    TIMED_OUT_FIELD_NUMBER: _ClassVar[int]
    answer: _struct_pb2.Value
    answered: bool
    answered_at: _timestamp_pb2.Timestamp
    answered_by: str
    asked_at: _timestamp_pb2.Timestamp
    question: str
    timed_out: bool
    def __init__(self, question: _Optional[str] = ..., answer: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ..., answered: bool = ..., answered_by: _Optional[str] = ..., timed_out: bool = ..., asked_at: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., answered_at: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CostEntry(_message.Message):
    __slots__ = ["batch_saved_usd", "cache_saved_usd", "finished_at", "lines", "parent_task_id", "status", "task_id", "tenant", "usage", "workflow"]
    BATCH_SAVED_USD_FIELD_NUMBER: _ClassVar[int]
    CACHE_SAVED_USD_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    PARENT_TASK_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_FIELD_NUMBER: _ClassVar[int]
    batch_saved_usd: float
    cache_saved_usd: float
    finished_at: _timestamp_pb2.Timestamp
    lines: _containers.RepeatedCompositeFieldContainer[CostLine]
    parent_task_id: str
    status: TaskStatus
    task_id: str
    tenant: str
    usage: _common_pb2.Usage
    workflow: str
    def __init__(self, task_id: _Optional[str] = ..., tenant: _Optional[str] = ..., workflow: _Optional[str] = ..., status: _Optional[_Union[TaskStatus, str]] = ..., finished_at: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., parent_task_id: _Optional[str] = ..., usage: _Optional[_Union[_common_pb2.Usage, _Mapping]] = ..., lines: _Optional[_Iterable[_Union[CostLine, _Mapping]]] = ..., cache_saved_usd: _Optional[float] = ..., batch_saved_usd: _Optional[float] = ...) -> None: ...

class CostLine(_message.Message):
    __slots__ = ["agent", "batch_saved_usd", "cache_saved_usd", "model", "usage"]
    AGENT_FIELD_NUMBER: _ClassVar[int]
    BATCH_SAVED_USD_FIELD_NUMBER: _ClassVar[int]
    CACHE_SAVED_USD_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    agent: str
    batch_saved_usd: float
    cache_saved_usd: float
    model: str
    usage: _common_pb2.Usage
    def __init__(self, agent: _Optional[str] = ..., model: _Optional[str] = ..., usage: _Optional[_Union[_common_pb2.Usage, _Mapping]] = ..., cache_saved_usd: _Optional[float] = ..., batch_saved_usd: _Optional[float] = ...) -> None: ...

class Fork(_message.Message):
    __slots__ = ["from_step", "models", "reused", "task_id"]
    FROM_STEP_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    REUSED_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    from_step: str
    models: _containers.RepeatedCompositeFieldContainer[ModelOverride]
    reused: _containers.RepeatedCompositeFieldContainer[ReusedOutput]
    task_id: str
    def __init__(self, task_id: _Optional[str] = ..., from_step: _Optional[str] = ..., reused: _Optional[_Iterable[_Union[ReusedOutput, _Mapping]]] = ..., models: _Optional[_Iterable[_Union[ModelOverride, _Mapping]]] = ...) -> None: ...

class ModelOverride(_message.Message):
    __slots__ = ["agent", "model", "tier"]
    AGENT_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    TIER_FIELD_NUMBER: _ClassVar[int]
    agent: str
    model: str
    tier: str
    def __init__(self, agent: _Optional[str] = ..., tier: _Optional[str] = ..., model: _Optional[str] = ...) -> None: ...

class Rescope(_message.Message):
    __slots__ = ["at", "fan_index", "planner", "reason", "step"]
    AT_FIELD_NUMBER: _ClassVar[int]
    FAN_INDEX_FIELD_NUMBER: _ClassVar[int]
    PLANNER_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    at: _timestamp_pb2.Timestamp
    fan_index: int
    planner: str
    reason: str
    step: str
    def __init__(self, step: _Optional[str] = ..., fan_index: _Optional[int] = ..., reason: _Optional[str] = ..., planner: _Optional[str] = ..., at: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ReusedOutput(_message.Message):
    __slots__ = ["fan_index", "model", "output", "step"]
    FAN_INDEX_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    fan_index: int
    model: str
    output: _struct_pb2.Value
    step: str
    def __init__(self, step: _Optional[str] = ..., fan_index: _Optional[int] = ..., output: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ..., model: _Optional[str] = ...) -> None: ...

class StepSummary(_message.Message):
    __slots__ = ["agent", "attempts", "batch_saved_usd", "cached", "error", "explanation", "fan_index", "latency_ms", "model", "questions", "reused", "saved_cost_usd", "semantic_similarity", "status", "step", "usage", "worker"]
    AGENT_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    BATCH_SAVED_USD_FIELD_NUMBER: _ClassVar[int]
    CACHED_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    EXPLANATION_FIELD_NUMBER: _ClassVar[int]
    FAN_INDEX_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    QUESTIONS_FIELD_NUMBER: _ClassVar[int]
    REUSED_FIELD_NUMBER: _ClassVar[int]
    SAVED_COST_USD_FIELD_NUMBER: _ClassVar[int]
    SEMANTIC_SIMILARITY_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    WORKER_FIELD_NUMBER: _ClassVar[int]
    agent: str
    attempts: int
    batch_saved_usd: float
    cached: bool
    error: _common_pb2.Error
    explanation: str
    fan_index: int
    latency_ms: int
    model: str
    questions: _containers.RepeatedCompositeFieldContainer[AgentQuestion]
    reused: bool
    saved_cost_usd: float
    semantic_similarity: float
    status: StepStatus
    step: str
    usage: _common_pb2.Usage
    worker: str
    def __init__(self, step: _Optional[str] = ..., fan_index: _Optional[int] = ..., agent: _Optional[str] = ..., model: _Optional[str] = ..., status: _Optional[_Union[StepStatus, str]] = ..., attempts: _Optional[int] = ..., usage: _Optional[_Union[_common_pb2.Usage, _Mapping]] = ..., latency_ms: _Optional[int] = ..., error: _Optional[_Union[_common_pb2.Error, _Mapping]] = ..., worker: _Optional[str] = ..., explanation: _Optional[str] = ..., cached: bool = ..., questions: _Optional[_Iterable[_Union[AgentQuestion, _Mapping]]] = ..., saved_cost_usd: _Optional[float] = ..., semantic_similarity: _Optional[float] = ..., batch_saved_usd: _Optional[float] = ..., reused: bool = ...) -> None: ...

class TaskResult(_message.Message):
    __slots__ = ["accepted_at", "error", "finished_at", "labels", "output", "parent_task_id", "rescopes", "status", "steps", "submitted_at", "task_id", "tenant", "usage", "workflow"]
    class LabelsEntry(_message.Message):
        __slots__ = ["key", "value"]
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ACCEPTED_AT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    PARENT_TASK_ID_FIELD_NUMBER: _ClassVar[int]
    RESCOPES_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    SUBMITTED_AT_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_FIELD_NUMBER: _ClassVar[int]
    accepted_at: _timestamp_pb2.Timestamp
    error: _common_pb2.Error
    finished_at: _timestamp_pb2.Timestamp
    labels: _containers.ScalarMap[str, str]
    output: _struct_pb2.Value
    parent_task_id: str
    rescopes: _containers.RepeatedCompositeFieldContainer[Rescope]
    status: TaskStatus
    steps: _containers.RepeatedCompositeFieldContainer[StepSummary]
    submitted_at: _timestamp_pb2.Timestamp
    task_id: str
    tenant: str
    usage: _common_pb2.Usage
    workflow: str
    def __init__(self, task_id: _Optional[str] = ..., tenant: _Optional[str] = ..., workflow: _Optional[str] = ..., status: _Optional[_Union[TaskStatus, str]] = ..., output: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ..., steps: _Optional[_Iterable[_Union[StepSummary, _Mapping]]] = ..., usage: _Optional[_Union[_common_pb2.Usage, _Mapping]] = ..., error: _Optional[_Union[_common_pb2.Error, _Mapping]] = ..., submitted_at: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., accepted_at: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., finished_at: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., labels: _Optional[_Mapping[str, str]] = ..., parent_task_id: _Optional[str] = ..., rescopes: _Optional[_Iterable[_Union[Rescope, _Mapping]]] = ...) -> None: ...

class TaskSignal(_message.Message):
    __slots__ = ["cancel", "child_result", "name", "payload", "reason", "sender", "sent_at", "task_id"]
    CANCEL_FIELD_NUMBER: _ClassVar[int]
    CHILD_RESULT_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    SENDER_FIELD_NUMBER: _ClassVar[int]
    SENT_AT_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    cancel: bool
    child_result: TaskResult
    name: str
    payload: _struct_pb2.Value
    reason: str
    sender: str
    sent_at: _timestamp_pb2.Timestamp
    task_id: str
    def __init__(self, task_id: _Optional[str] = ..., name: _Optional[str] = ..., payload: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ..., cancel: bool = ..., reason: _Optional[str] = ..., sender: _Optional[str] = ..., sent_at: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., child_result: _Optional[_Union[TaskResult, _Mapping]] = ...) -> None: ...

class TaskSubmission(_message.Message):
    __slots__ = ["budget", "deadline", "depth", "fork", "input", "labels", "parent_task_id", "priority", "submitted_at", "task_id", "tenant", "workflow"]
    class LabelsEntry(_message.Message):
        __slots__ = ["key", "value"]
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    BUDGET_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_FIELD_NUMBER: _ClassVar[int]
    DEPTH_FIELD_NUMBER: _ClassVar[int]
    FORK_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    PARENT_TASK_ID_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    SUBMITTED_AT_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_FIELD_NUMBER: _ClassVar[int]
    budget: _common_pb2.Budget
    deadline: _timestamp_pb2.Timestamp
    depth: int
    fork: Fork
    input: _struct_pb2.Struct
    labels: _containers.ScalarMap[str, str]
    parent_task_id: str
    priority: _common_pb2.Priority
    submitted_at: _timestamp_pb2.Timestamp
    task_id: str
    tenant: str
    workflow: str
    def __init__(self, task_id: _Optional[str] = ..., tenant: _Optional[str] = ..., workflow: _Optional[str] = ..., input: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., budget: _Optional[_Union[_common_pb2.Budget, _Mapping]] = ..., priority: _Optional[_Union[_common_pb2.Priority, str]] = ..., deadline: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., submitted_at: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., labels: _Optional[_Mapping[str, str]] = ..., parent_task_id: _Optional[str] = ..., depth: _Optional[int] = ..., fork: _Optional[_Union[Fork, _Mapping]] = ...) -> None: ...

class TaskStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []

class StepStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []
