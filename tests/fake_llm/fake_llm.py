#!/usr/bin/python3
"""A local model-provider server for tests and benchmarks: speaks the OpenAI
chat-completions and the Anthropic Messages wire formats on 127.0.0.1.

It answers with an output that satisfies the schema sent in the request
(response_format.json_schema.schema, or the forced tool's input_schema), and
misbehaves on request: a directive anywhere in the prompt text,
"fake:NAME" or "fake:NAME=VALUE", picks the behaviour:

  fake:delay=SECONDS   answer after this long (default: --delay)
  fake:status=CODE     answer with this HTTP status and an error body

A model named missing-* is answered 404 model_not_found, as a provider
answers for a model it does not serve.
  fake:retry_after=S   add a Retry-After header (with fake:status)
  fake:echo_key        a 401 whose error quotes the API key it was sent (as real providers do)
  fake:reset           reset the connection (RST) without answering
  fake:truncate        announce a longer body than is sent, then close
  fake:invalid_json    a 200 whose body is not JSON
  fake:not_json        a 200 whose message content is not JSON
  fake:bad_output      a 200 whose output violates the schema ({})
  fake:length          a 200 cut at max_tokens (finish/stop reason)
  fake:tools=N         with tools in the request: call the first one (arguments from
                       its parameters' schema) until N tool answers are in the
                       conversation, then answer
  fake:bad_tool_args   ... with arguments that are not a JSON object
  fake:unknown_tool    ... naming a tool that does not exist

It also "understands" text the way an obedient model would, for the
prompt-injection corpus (tests/injection/): ANSWER:{json} anywhere is the
model's own decision, merged into its output; INJECT:{json} — an injected
instruction, also inside base64 — is obeyed on purpose, merged over it;
INJECT:REVEAL copies the system prompt into the output's first string field.

GET or POST /tool/... is a read-only tool: it answers what PUT /_tool_answers/TAIL
stored for its path after /tool/, else {"tool": PATH, "query", "body", "calls"}.
TOOLARGS:{json} in the prompt gives a tool call's arguments.

POST /v1/traces is an OpenTelemetry collector's OTLP/HTTP JSON endpoint;
GET /_spans returns the spans it received (with their service.name as
"service").
GET /_requests returns the requests received (method, path, headers, body);
GET /_stats returns {"requests", "in_flight", "max_in_flight"}.

/ext/... is a fake external system for actions (issue 19), which honours
Idempotency-Key as payment APIs do: the first request with a key applies the
effect and stores its answer; a later one gets the stored answer ("replayed")
without a second effect; one that arrives while the first is in progress gets
409. A request without the header is refused (400). Directives in the body:

  fake:ext_delay=S     apply after S seconds (applied even if the client goes away)
  fake:ext_hang=S      apply, then answer only after S seconds (the client times out)
  fake:ext_reset       apply, then reset the connection without answering (first request only)
  fake:ext_fail=N      the first N requests with a key answer 503, nothing applied
  fake:ext_status=CODE answer CODE, nothing applied

GET /ext/_status/KEY answers the stored answer (200) if KEY's effect was
applied, 404 if not, 409 while in progress. GET /_effects returns
{"applied", "requests", "replays", "conflicts", "keys": {KEY: requests},
"bodies": {KEY: body}}.
POST /v1/embeddings is OpenAI's embeddings endpoint, with a real sentence-
embedding model (all-MiniLM-L6-v2, tests/fake_llm/embedding.py) when started
with --embedding-model (under the Python of tests/fake_llm/embedding-env.sh);
the directives fake:delay and fake:status work in its input too. Without the
flag it answers 501.

The provider batch APIs: OpenAI's (POST /v1/files with purpose=batch, POST
/v1/batches, GET /v1/batches/ID, GET /v1/files/ID/content) and Anthropic's
Message Batches (POST /v1/messages/batches, GET .../ID, GET .../ID/results),
answered by the same logic as online calls after --batch-delay seconds
(default 0.5). Directives: fake:batch_error in a request's prompt fails that
request; fake:batch_expire in any request expires the whole batch;
fake:batch_delay=S sets its processing time. GET /_batches returns
{"batches", "items", "errored", "expired"}.

Usage: fake_llm.py --port-file FILE [--port N] [--delay S] [--embedding-model] [--batch-delay S]
"""
import argparse
import asyncio
import base64
import binascii
import json
import re
import resource
import socket
import struct

from aiohttp import web

DIRECTIVE = re.compile(r"fake:([a-z_]+)(?:=([0-9.]+))?")
BASE64 = re.compile(r"[A-Za-z0-9+/]{24,}={0,2}")


def understood(text):
    """The text and what an obedient model decodes from it: JSON-escaped quotes
    (a tool's answer inside a message), base64 runs."""
    text = text.replace('\\"', '"')
    out = [text]
    for token in BASE64.findall(text):
        try:
            out.append(base64.b64decode(token + "=" * (-len(token) % 4)).decode("utf-8", "replace"))
        except (binascii.Error, ValueError):
            pass
    return "\n".join(out)


def marker(text, name, last=False):
    """The JSON (or bare word) after NAME: in text; the first, or the last."""
    found = None
    decoder = json.JSONDecoder()
    for m in re.finditer(name + r":", text):
        rest = text[m.end():].lstrip()
        try:
            value, _ = decoder.raw_decode(rest)
        except ValueError:
            word = re.match(r"[A-Z_]+", rest)
            value = word.group(0) if word else None
        if value is not None:
            found = value
            if not last:
                break
    return found


def obey(output, schema, system, text):
    """The model's own decision (ANSWER:), then any injected instruction (INJECT:), obeyed."""
    if not isinstance(output, dict):
        return output
    seen = understood(text)
    answer = marker(seen, "ANSWER")
    if isinstance(answer, dict):
        output.update(answer)
    injected = marker(seen, "INJECT", last=True)
    if isinstance(injected, dict):
        output.update(injected)
    elif injected == "REVEAL":
        props = (schema or {}).get("properties", {})
        field = next((k for k, v in props.items() if v.get("type") == "string" and "enum" not in v), None)
        if field:
            output[field] = system
    return output


def example(schema):
    """A small value satisfying a JSON Schema subset."""
    if not isinstance(schema, dict):
        return "x"
    if "enum" in schema:
        return schema["enum"][0]
    t = schema.get("type")
    if t == "object" or "properties" in schema:
        props = schema.get("properties", {})
        return {k: example(props[k]) for k in schema.get("required", list(props))}
    if t == "array":
        return [example(schema.get("items", {})) for _ in range(max(1, schema.get("minItems", 1)))]
    if t == "string":
        return "a" * max(4, schema.get("minLength", 0))
    if t == "integer":
        return int(schema.get("minimum", 1))
    if t == "number":
        return float(schema.get("minimum", 0.5))
    if t == "boolean":
        return True
    if t == "null":
        return None
    return "x"


def prompt_text(body):
    """The request's prompt text (system and messages), where directives are read."""
    texts = [body.get("system", "")] + [m.get("content", "") for m in body.get("messages", [])]
    return " ".join(t if isinstance(t, str) else json.dumps(t) for t in texts)


def completion(body, anthropic):
    """The answer to a chat request body (OpenAI or Anthropic), as a dict."""
    text = prompt_text(body)
    d = {m.group(1): m.group(2) for m in DIRECTIVE.finditer(text)}
    user_tools = ([t for t in body.get("tools", []) if t.get("name") != "respond"] if anthropic
                  else [t.get("function", {}) for t in body.get("tools", [])])
    answered = 0
    for m in body.get("messages", []):
        if m.get("role") == "tool":
            answered += 1
        elif isinstance(m.get("content"), list):
            answered += sum(1 for b in m["content"] if isinstance(b, dict) and b.get("type") == "tool_result")
    if user_tools and "tools" in d and answered < int(float(d["tools"])):
        t = user_tools[0]
        name = "nope" if "unknown_tool" in d else t.get("name")
        args = example(t.get("input_schema") if anthropic else t.get("parameters"))
        given = marker(text, "TOOLARGS")
        if isinstance(given, dict):
            args.update(given)
        in_tokens = max(1, len(text) // 4)
        call_id = "call_%d" % answered
        if anthropic:
            return ({
                "id": "msg_fake", "type": "message", "role": "assistant", "model": body.get("model", ""),
                "content": [{"type": "tool_use", "id": call_id, "name": name,
                             "input": "x" if "bad_tool_args" in d else args}],
                "stop_reason": "tool_use", "usage": {"input_tokens": in_tokens, "output_tokens": 12}})
        return ({
            "id": "chatcmpl-fake", "object": "chat.completion", "model": body.get("model", ""),
            "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                "role": "assistant", "content": None, "tool_calls": [{
                    "id": call_id, "type": "function", "function": {
                        "name": name, "arguments": "not json" if "bad_tool_args" in d else json.dumps(args)}}]}}],
            "usage": {"prompt_tokens": in_tokens, "completion_tokens": 12, "total_tokens": in_tokens + 12}})

    schema = (body.get("response_format", {}).get("json_schema", {}).get("schema")
              if not anthropic else next((t.get("input_schema") for t in body.get("tools", [])
                                          if t.get("name") == "respond"), None))
    output = {} if "bad_output" in d else (example(schema) if schema else None)
    if output:
        system = body.get("system", "") if anthropic else " ".join(
            m.get("content", "") for m in body.get("messages", []) if m.get("role") == "system")
        output = obey(output, schema, system, text)
    content = "not json at all" if "not_json" in d else (
        json.dumps(output) if output is not None else "plain text answer")
    cut = "length" in d
    input_tokens = max(1, len(text) // 4)
    output_tokens = body.get("max_tokens", 0) if cut else max(1, len(content) // 4)
    model = body.get("model", "")
    if anthropic:
        answer_tool = body.get("tool_choice", {}).get("name") or "respond"
        blocks = ([{"type": "tool_use", "id": "toolu_1", "name": answer_tool, "input": output}]
                  if schema and not cut and "not_json" not in d else [{"type": "text", "text": content}])
        return ({
            "id": "msg_fake", "type": "message", "role": "assistant", "model": model, "content": blocks,
            "stop_reason": "max_tokens" if cut else ("tool_use" if schema else "end_turn"),
            "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens}})
    return ({
        "id": "chatcmpl-fake", "object": "chat.completion", "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                     "finish_reason": "length" if cut else "stop"}],
        "usage": {"prompt_tokens": input_tokens, "completion_tokens": output_tokens,
                  "total_tokens": input_tokens + output_tokens}})



class Server:
    def __init__(self, delay, embedder=None, batch_delay=0.5):
        self.delay = delay
        self.embedder = embedder
        self.embeddings = 0
        self.batch_delay = batch_delay
        self.files = {}    # id -> bytes (OpenAI files: batch input and output)
        self.batches = {}  # id -> the batch object as served
        self.batch_results = {}  # Anthropic batch id -> JSONL bytes
        self.batch_stats = {"batches": 0, "items": 0, "errored": 0, "expired": 0}
        self.requests = []
        self.count = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.spans = []
        self.effects = {}   # Idempotency-Key -> {"state", "response", "body"}
        self.ext = {"applied": 0, "requests": 0, "replays": 0, "conflicts": 0}
        self.ext_keys = {}  # Idempotency-Key -> requests with it

    async def collect(self, request):
        """An OpenTelemetry collector's OTLP/HTTP JSON endpoint: keeps the spans."""
        if request.content_type != "application/json":
            return web.json_response({"error": "expected application/json"}, status=415)
        body = await request.json()
        for rs in body.get("resourceSpans", []):
            service = next((a["value"].get("stringValue") for a in rs.get("resource", {}).get("attributes", [])
                            if a.get("key") == "service.name"), None)
            for ss in rs.get("scopeSpans", []):
                for span in ss.get("spans", []):
                    span["service"] = service
                    self.spans.append(span)
        return web.json_response({})

    async def traces(self, request):
        return web.json_response(self.spans)

    async def stats(self, request):
        return web.json_response({"requests": self.count, "in_flight": self.in_flight,
                                  "max_in_flight": self.max_in_flight, "embeddings": self.embeddings})

    async def recorded(self, request):
        return web.json_response(self.requests)

    async def effects_report(self, request):
        return web.json_response(dict(self.ext, keys=self.ext_keys,
                                      bodies={k: e.get("body") for k, e in self.effects.items()}))

    async def status(self, request):
        e = self.effects.get(request.match_info["key"])
        if e is None:
            return web.json_response({"error": "no such effect"}, status=404)
        if e["state"] != "done":
            return web.json_response({"error": "in progress"}, status=409)
        return web.json_response(e["response"])

    def apply(self, key, request, raw):
        self.ext["applied"] += 1
        body = json.loads(raw) if raw else None
        e = self.effects[key]
        e.update(state="done", body=body,
                 response={"id": "effect-%d" % self.ext["applied"], "key": key,
                           "method": request.method, "path": request.path_qs})

    async def external(self, request):
        raw = await request.read()
        self.ext["requests"] += 1
        if len(self.requests) < 1000:
            self.requests.append({"method": request.method, "path": request.path,
                                  "headers": dict(request.headers), "body": raw.decode("utf-8", "replace")})
        key = request.headers.get("Idempotency-Key")
        if not key:
            return web.json_response({"error": "Idempotency-Key required"}, status=400)
        attempts = self.ext_keys[key] = self.ext_keys.get(key, 0) + 1
        e = self.effects.get(key)
        if e is not None:
            if e["state"] != "done":
                self.ext["conflicts"] += 1
                return web.json_response({"error": "a request with this key is in progress"}, status=409)
            self.ext["replays"] += 1
            return web.json_response(dict(e["response"], replayed=True), status=201)
        d = {m.group(1): m.group(2) for m in DIRECTIVE.finditer(raw.decode("utf-8", "replace"))}
        if "ext_fail" in d and attempts <= int(float(d["ext_fail"])):
            return web.json_response({"error": "unavailable"}, status=503)
        if "ext_status" in d:
            return web.json_response({"error": "fake status"}, status=int(float(d["ext_status"])))
        self.effects[key] = {"state": "in_progress"}

        async def process():
            await asyncio.sleep(float(d.get("ext_delay") or 0))
            self.apply(key, request, raw)
        # Applied even if the client goes away meanwhile (a payment goes through).
        await asyncio.shield(asyncio.ensure_future(process()))
        if "ext_reset" in d and attempts == 1:
            sock = request.transport.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            request.transport.abort()
            return web.Response()
        if "ext_hang" in d and attempts == 1:
            await asyncio.sleep(float(d["ext_hang"]))
        return web.json_response(self.effects[key]["response"], status=201)

    async def set_tool_answer(self, request):
        self.tool_answers = getattr(self, "tool_answers", {})
        self.tool_answers[request.match_info["key"]] = await request.json()
        return web.json_response({})

    async def tool(self, request):
        raw = await request.read()
        stored = getattr(self, "tool_answers", {}).get(request.match_info["tail"])
        self.tool_calls = getattr(self, "tool_calls", 0) + 1
        if len(self.requests) < 1000:
            self.requests.append({"method": request.method, "path": request.path,
                                  "headers": dict(request.headers), "body": raw.decode("utf-8", "replace")})
        if stored is not None:
            return web.json_response(stored)
        return web.json_response({"tool": request.path, "query": dict(request.query),
                                  "body": raw.decode("utf-8", "replace"), "calls": self.tool_calls})

    async def embed(self, request):
        """OpenAI's POST /v1/embeddings, one input string (what agentfleet sends)."""
        raw = await request.read()
        if len(self.requests) < 1000:
            self.requests.append({"method": request.method, "path": request.path,
                                  "headers": dict(request.headers), "body": raw.decode("utf-8", "replace")})
        body = json.loads(raw)
        text = body.get("input")
        if not isinstance(text, str) or not text:
            return web.json_response({"error": {"type": "invalid_request_error", "message": "input must be a string"}},
                                     status=400)
        d = {m.group(1): m.group(2) for m in DIRECTIVE.finditer(text)}
        await asyncio.sleep(float(d.get("delay") or 0))
        if "status" in d:
            return web.json_response({"error": {"type": "fake", "message": "fake status " + d["status"]}},
                                     status=int(d["status"]))
        if self.embedder is None:
            return web.json_response({"error": {"type": "fake", "message": "started without --embedding-model"}},
                                     status=501)
        vector, tokens = await asyncio.get_running_loop().run_in_executor(None, self.embedder.encode_one, text)
        self.embeddings += 1
        return web.json_response({"object": "list", "model": body.get("model", ""),
                                  "data": [{"object": "embedding", "index": 0,
                                            "embedding": [float(x) for x in vector]}],
                                  "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})

    # Provider batch APIs. The answers are completion()'s; directives in a
    # request's prompt: fake:batch_error (that request fails), and, in any
    # request of the batch, fake:batch_expire (the batch expires unprocessed)
    # and fake:batch_delay=S (processing takes S seconds; default --batch-delay).

    def _batch_plan(self, bodies):
        texts = [prompt_text(b) for b in bodies]
        delay = next((float(m.group(2)) for t in texts for m in DIRECTIVE.finditer(t)
                      if m.group(1) == "batch_delay"), self.batch_delay)
        expire = any("fake:batch_expire" in t for t in texts)
        self.batch_stats["batches"] += 1
        self.batch_stats["items"] += len(bodies)
        return texts, delay, expire

    async def upload_file(self, request):
        """OpenAI's POST /v1/files (multipart: purpose, file)."""
        form = await request.post()
        if form.get("purpose") != "batch" or not hasattr(form.get("file"), "file"):
            return web.json_response({"error": {"message": "expected purpose=batch and a file"}}, status=400)
        file_id = "file-%d" % (len(self.files) + 1)
        self.files[file_id] = form["file"].file.read()
        return web.json_response({"id": file_id, "object": "file", "purpose": "batch",
                                  "bytes": len(self.files[file_id])})

    async def file_content(self, request):
        data = self.files.get(request.match_info["id"])
        if data is None:
            return web.json_response({"error": {"message": "no such file"}}, status=404)
        return web.Response(body=data, content_type="application/octet-stream")

    async def create_openai_batch(self, request):
        """OpenAI's POST /v1/batches: the JSONL input file's chat requests."""
        body = await request.json()
        data = self.files.get(body.get("input_file_id"))
        if data is None or body.get("endpoint") != "/v1/chat/completions":
            return web.json_response({"error": {"message": "unknown input_file_id or endpoint"}}, status=400)
        lines = [json.loads(l) for l in data.decode().splitlines() if l.strip()]
        batch_id = "batch_%d" % (len(self.batches) + 1)
        batch = {"id": batch_id, "object": "batch", "endpoint": body["endpoint"], "status": "in_progress",
                 "input_file_id": body["input_file_id"], "completion_window": body.get("completion_window"),
                 "output_file_id": None, "error_file_id": None,
                 "request_counts": {"total": len(lines), "completed": 0, "failed": 0}}
        self.batches[batch_id] = batch
        texts, delay, expire = self._batch_plan([l.get("body", {}) for l in lines])

        async def process():
            await asyncio.sleep(delay)
            if expire:
                batch["status"] = "expired"
                self.batch_stats["expired"] += len(lines)
                return
            out, errors = [], []
            for line, text in zip(lines, texts):
                if "fake:batch_error" in text:
                    errors.append({"id": "req_x", "custom_id": line["custom_id"], "response": None,
                                   "error": {"code": "server_error", "message": "fake batch error"}})
                    continue
                out.append({"id": "req_ok", "custom_id": line["custom_id"], "error": None,
                            "response": {"status_code": 200, "body": completion(line["body"], False)}})
            self.batch_stats["errored"] += len(errors)
            for name, rows in (("output_file_id", out), ("error_file_id", errors)):
                if rows:
                    file_id = "file-%d" % (len(self.files) + 1)
                    self.files[file_id] = "".join(json.dumps(r) + "\n" for r in rows).encode()
                    batch[name] = file_id
            batch["request_counts"].update(completed=len(out), failed=len(errors))
            batch["status"] = "completed"

        asyncio.get_running_loop().create_task(process())
        return web.json_response(batch)

    async def get_openai_batch(self, request):
        batch = self.batches.get(request.match_info["id"])
        if batch is None:
            return web.json_response({"error": {"message": "no such batch"}}, status=404)
        return web.json_response(batch)

    async def create_anthropic_batch(self, request):
        """Anthropic's POST /v1/messages/batches: {"requests": [{custom_id, params}]}."""
        body = await request.json()
        reqs = body.get("requests")
        if not isinstance(reqs, list) or not reqs:
            return web.json_response({"type": "error", "error": {"message": "requests must be a list"}}, status=400)
        batch_id = "msgbatch_%d" % (len(self.batches) + 1)
        batch = {"id": batch_id, "type": "message_batch", "processing_status": "in_progress", "results_url": None,
                 "request_counts": {"processing": len(reqs), "succeeded": 0, "errored": 0, "expired": 0}}
        self.batches[batch_id] = batch
        texts, delay, expire = self._batch_plan([r.get("params", {}) for r in reqs])
        base = "http://%s" % request.host

        async def process():
            await asyncio.sleep(delay)
            rows = []
            for r, text in zip(reqs, texts):
                if expire:
                    result = {"type": "expired"}
                elif "fake:batch_error" in text:
                    result = {"type": "errored", "error": {"type": "error", "error": {
                        "type": "api_error", "message": "fake batch error"}}}
                else:
                    result = {"type": "succeeded", "message": completion(r["params"], True)}
                rows.append({"custom_id": r["custom_id"], "result": result})
            counts = batch["request_counts"]
            counts["processing"] = 0
            for row in rows:
                counts[row["result"]["type"]] = counts.get(row["result"]["type"], 0) + 1
            self.batch_stats["errored"] += counts.get("errored", 0)
            self.batch_stats["expired"] += counts.get("expired", 0)
            self.batch_results[batch_id] = "".join(json.dumps(r) + "\n" for r in rows).encode()
            batch["results_url"] = "%s/v1/messages/batches/%s/results" % (base, batch_id)
            batch["processing_status"] = "ended"

        asyncio.get_running_loop().create_task(process())
        return web.json_response(batch)

    async def get_anthropic_batch(self, request):
        batch = self.batches.get(request.match_info["id"])
        if batch is None:
            return web.json_response({"type": "error", "error": {"message": "no such batch"}}, status=404)
        return web.json_response(batch)

    async def anthropic_batch_results(self, request):
        data = self.batch_results.get(request.match_info["id"])
        if data is None:
            return web.json_response({"type": "error", "error": {"message": "not ended"}}, status=404)
        return web.Response(body=data, content_type="application/x-jsonl")

    async def batch_report(self, request):
        return web.json_response(self.batch_stats)

    async def call(self, request):
        self.count += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await self.answer(request)
        finally:
            self.in_flight -= 1

    async def answer(self, request):
        raw = await request.read()
        anthropic = request.path.endswith("/messages")
        if len(self.requests) < 1000:
            self.requests.append({"method": request.method, "path": request.path,
                                  "headers": dict(request.headers), "body": raw.decode("utf-8", "replace")})
        body = json.loads(raw)
        text = prompt_text(body)
        d = {m.group(1): m.group(2) for m in DIRECTIVE.finditer(text)}
        await asyncio.sleep(float(d.get("delay") or self.delay))

        if "echo_key" in d:
            # What real providers do with a wrong key: quote it back in the error.
            key = request.headers.get("x-api-key") or request.headers.get("Authorization", "").removeprefix("Bearer ")
            return web.json_response({"error": {"type": "invalid_request_error",
                                                "message": "Incorrect API key provided: " + key}}, status=401)
        if body.get("model", "").startswith("missing-"):
            # What real providers answer for a model they do not serve.
            return web.json_response({"error": {"type": "invalid_request_error", "code": "model_not_found",
                                                "message": "The model `%s` does not exist" % body["model"]}},
                                     status=404)
        if "status" in d:
            headers = {"Retry-After": d["retry_after"]} if "retry_after" in d else {}
            return web.json_response({"error": {"type": "fake", "message": "fake status " + d["status"]}},
                                     status=int(d["status"]), headers=headers)
        if "reset" in d:
            sock = request.transport.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            request.transport.abort()
            return web.Response()
        if "truncate" in d:
            response = web.StreamResponse(headers={"Content-Type": "application/json"})
            response.content_length = 1000
            await response.prepare(request)
            await response.write(b'{"id": "cut", "choices": [')
            await asyncio.sleep(0.05)
            request.transport.close()
            return response
        if "invalid_json" in d:
            return web.Response(text="<html>502 upstream</html>", content_type="application/json")

        return web.json_response(completion(body, anthropic))

async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file", required=True)
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--embedding-model", action="store_true")
    parser.add_argument("--batch-delay", type=float, default=0.5)
    args = parser.parse_args()
    embedder = None
    if args.embedding_model:
        from embedding import MiniLM
        embedder = MiniLM()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    server = Server(args.delay, embedder, args.batch_delay)
    app = web.Application(client_max_size=16 << 20)
    app.router.add_get("/_stats", server.stats)
    app.router.add_get("/_requests", server.recorded)
    app.router.add_get("/_spans", server.traces)
    app.router.add_post("/v1/traces", server.collect)
    app.router.add_get("/_effects", server.effects_report)
    app.router.add_get("/ext/_status/{key}", server.status)
    app.router.add_route("*", "/ext/{tail:.*}", server.external)
    app.router.add_route("*", "/tool/{tail:.*}", server.tool)
    app.router.add_put("/_tool_answers/{key:.*}", server.set_tool_answer)
    app.router.add_post("/v1/embeddings", server.embed)
    app.router.add_post("/v1/files", server.upload_file)
    app.router.add_get("/v1/files/{id}/content", server.file_content)
    app.router.add_post("/v1/batches", server.create_openai_batch)
    app.router.add_get("/v1/batches/{id}", server.get_openai_batch)
    app.router.add_post("/v1/messages/batches", server.create_anthropic_batch)
    app.router.add_get("/v1/messages/batches/{id}", server.get_anthropic_batch)
    app.router.add_get("/v1/messages/batches/{id}/results", server.anthropic_batch_results)
    app.router.add_get("/_batches", server.batch_report)
    app.router.add_post("/{tail:.*}", server.call)
    runner = web.AppRunner(app, access_log=None, handle_signals=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", args.port, backlog=4096)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    with open(args.port_file + ".tmp", "w") as f:
        f.write(str(port))
    import os
    os.rename(args.port_file + ".tmp", args.port_file)
    print("fake_llm listening on 127.0.0.1:%d" % port, flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
