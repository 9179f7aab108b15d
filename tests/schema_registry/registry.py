#!/usr/bin/env python3
"""A minimal Schema Registry with the REST shape of Confluent's (and Apicurio's ccompat API), in memory.

For tests only: enough for Confluent's serializers and `agentfleet schemas register`.
It keeps schemas exactly as given (no normalisation, no compatibility checks):
  POST /subjects/{subject}/versions   register -> {"id"}; the same schema again gets the same id and version
  POST /subjects/{subject}            look a schema up -> {"subject", "id", "version", "schema"}; 404 if absent
  GET  /subjects                      -> [subject, ...]
  GET  /subjects/{subject}/versions   -> [1, 2, ...]
  GET  /subjects/{subject}/versions/{version|latest}
  GET  /schemas/ids/{id}              -> {"schema", "schemaType", "references"}

  registry.py --port PORT   (0: a free one; prints "listening on PORT")
"""

import argparse
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
lock = threading.Lock()
schemas = []  # id - 1 -> {"schema", "schemaType", "references"}
subjects = {}  # subject -> [schema id per version]


def key_of(body):
    return {
        "schema": body.get("schema", ""),
        "schemaType": body.get("schemaType", "AVRO"),
        "references": body.get("references", []),
    }


class Handler(BaseHTTPRequestHandler):
    def _send(self, status, obj):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", CONTENT_TYPE)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _parts(self):
        return [unquote(p) for p in self.path.split("?")[0].strip("/").split("/")]

    def do_POST(self):  # noqa: N802
        length = int(self.headers.get("Content-Length", "0"))
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            return self._send(422, {"error_code": 42201, "message": "invalid JSON"})
        parts = self._parts()
        if len(parts) < 2 or parts[0] != "subjects" or not body.get("schema"):
            return self._send(404, {"error_code": 404, "message": "not found"})
        subject, schema = parts[1], key_of(body)
        with lock:
            if schema in schemas:
                schema_id = schemas.index(schema) + 1
            elif len(parts) == 3:
                schemas.append(schema)
                schema_id = len(schemas)
            else:
                return self._send(404, {"error_code": 40403, "message": "Schema not found"})
            versions = subjects.setdefault(subject, []) if len(parts) == 3 else subjects.get(subject, [])
            if len(parts) == 3:
                if schema_id not in versions:
                    versions.append(schema_id)
                return self._send(200, {"id": schema_id})
            if schema_id not in versions:
                return self._send(404, {"error_code": 40403, "message": "Schema not found"})
            version = versions.index(schema_id) + 1
            return self._send(200, {"subject": subject, "id": schema_id, "version": version, **schema})

    def do_GET(self):  # noqa: N802
        parts = self._parts()
        with lock:
            if parts == ["subjects"]:
                return self._send(200, sorted(subjects))
            if len(parts) == 3 and parts[0] == "schemas" and parts[1] == "ids" and parts[2].isdigit():
                i = int(parts[2])
                if 1 <= i <= len(schemas):
                    return self._send(200, schemas[i - 1])
                return self._send(404, {"error_code": 40403, "message": "Schema not found"})
            if len(parts) >= 3 and parts[0] == "subjects" and parts[2] == "versions" and parts[1] in subjects:
                versions = subjects[parts[1]]
                if len(parts) == 3:
                    return self._send(200, list(range(1, len(versions) + 1)))
                v = len(versions) if parts[3] == "latest" else int(parts[3]) if parts[3].isdigit() else 0
                if 1 <= v <= len(versions):
                    i = versions[v - 1]
                    return self._send(200, {"subject": parts[1], "version": v, "id": i, **schemas[i - 1]})
        return self._send(404, {"error_code": 40401, "message": "Subject not found"})

    def log_message(self, *args):
        pass


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print(f"listening on {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
