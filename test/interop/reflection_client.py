#!/usr/bin/python3
"""Reflection interop check: a Python gRPC client that knows nothing about livemesh.

Run with Debian's interpreter (python3-grpcio, python3-protobuf, python3-grpc-tools, grpc-proto):

    /usr/bin/python3 test/interop/reflection_client.py 127.0.0.1:50051 < calls.json

Through server reflection ALONE it lists the services, and for every livemesh service fetches
FileContainingSymbol, loads the answer into a fresh DescriptorDatabase + DescriptorPool and finds
the service (which fails if a dependency is missing from the answer, as grpcurl or any other
reflection client would), then describes every method. Finally it calls the methods listed on
stdin as a JSON list of

    {"method": "livemesh.room.v1.RoomService/CreateRoom", "request": {...proto3 JSON...},
     "metadata": [["authorization", "Bearer <token>"]]}

and prints ONE JSON document: {"reflection_version", "services", "described", "calls"}.
A call that fails is reported in "calls" (with its code, details and, decoded through reflection
too, its google.rpc.ErrorInfo); a reflection failure exits non-zero.

The reflection stubs are generated at start into a temporary directory from the grpc-proto
package, under names (lm_reflection_*.proto) that cannot clash with the `grpc` module itself.
"""

import importlib
import json
import os
import shutil
import sys
import tempfile

import grpc
from google.protobuf import descriptor, descriptor_database, descriptor_pool, descriptor_pb2, json_format, message_factory

GRPC_PROTO_DIR = "/usr/share/grpc-proto/grpc/reflection"
VERSIONS = ("v1", "v1alpha")
TIMEOUT_S = 10.0
STATUS_DETAILS_KEY = "grpc-status-details-bin"


class ReflectionFailure(Exception):
    """Anything that stops reflection from describing a service: the check has failed."""


def generate_stubs(tmp):
    """Generates and imports the reflection stubs for v1 and v1alpha; returns {version: (pb2, pb2_grpc)}."""
    from grpc_tools import protoc  # pylint: disable=import-outside-toplevel

    stubs = {}
    for version in VERSIONS:
        src = os.path.join(GRPC_PROTO_DIR, version, "reflection.proto")
        if not os.path.exists(src):
            continue
        name = "lm_reflection_%s" % version
        shutil.copyfile(src, os.path.join(tmp, name + ".proto"))
        args = ["grpc_tools.protoc", "-I" + tmp, "--python_out=" + tmp, "--grpc_python_out=" + tmp, name + ".proto"]
        if protoc.main(args) != 0:
            raise ReflectionFailure("protoc could not generate stubs from %s" % src)
    sys.path.insert(0, tmp)
    for version in VERSIONS:
        name = "lm_reflection_%s" % version
        if os.path.exists(os.path.join(tmp, name + "_pb2.py")):
            stubs[version] = (importlib.import_module(name + "_pb2"), importlib.import_module(name + "_pb2_grpc"))
    if not stubs:
        raise ReflectionFailure("no reflection.proto under %s (apt-get install grpc-proto)" % GRPC_PROTO_DIR)
    return stubs


def message_class(pool, desc):
    """The dynamic message class for a descriptor (GetPrototype in protobuf 4.21, GetMessageClass later)."""
    get_class = getattr(message_factory, "GetMessageClass", None)
    if get_class is not None:
        return get_class(desc)
    return message_factory.MessageFactory(pool).GetPrototype(desc)


class Reflector:
    """One channel; each reflection request goes on its own stream, so every answer must be complete."""

    def __init__(self, channel, stubs, forced=None):
        self.channel = channel
        self.stubs = stubs
        self.version = forced
        self.pools = {}

    def _ask_on(self, version, **request):
        pb2, pb2_grpc = self.stubs[version]
        stub = pb2_grpc.ServerReflectionStub(self.channel)
        answers = list(stub.ServerReflectionInfo(iter([pb2.ServerReflectionRequest(**request)]), timeout=TIMEOUT_S))
        if len(answers) != 1:
            raise ReflectionFailure("reflection %s answered %d times to one request" % (version, len(answers)))
        return answers[0]

    def ask(self, **request):
        if self.version:
            answer = self._ask_on(self.version, **request)
        else:
            answer, last = None, None
            for version in [v for v in VERSIONS if v in self.stubs]:
                try:
                    answer = self._ask_on(version, **request)
                    self.version = version
                    break
                except grpc.RpcError as err:
                    if err.code() != grpc.StatusCode.UNIMPLEMENTED:
                        raise
                    last = err
            if answer is None:
                raise ReflectionFailure("server reflection is not available: %s" % (last.details() if last else "no stubs"))
        if answer.HasField("error_response"):
            raise ReflectionFailure(
                "reflection error %d for %s: %s" % (answer.error_response.error_code, request, answer.error_response.error_message)
            )
        return answer

    def list_services(self):
        return sorted(s.name for s in self.ask(list_services="").list_services_response.service)

    def pool_for(self, symbol):
        """A DescriptorPool holding exactly what FileContainingSymbol(symbol) returned."""
        if symbol in self.pools:
            return self.pools[symbol]
        answer = self.ask(file_containing_symbol=symbol)
        if not answer.HasField("file_descriptor_response"):
            raise ReflectionFailure("FileContainingSymbol(%s): no file_descriptor_response" % symbol)
        db = descriptor_database.DescriptorDatabase()
        for raw in answer.file_descriptor_response.file_descriptor_proto:
            db.Add(descriptor_pb2.FileDescriptorProto.FromString(raw))
        pool = descriptor_pool.DescriptorPool(db)
        self.pools[symbol] = pool
        return pool

    def service(self, name):
        pool = self.pool_for(name)
        try:
            return pool, pool.FindServiceByName(name)
        except Exception as err:  # the pool raises KeyError / TypeError when an import is missing
            text = err.args[0] if err.args and isinstance(err.args[0], str) else str(err)
            raise ReflectionFailure("cannot build %s from its reflection answer: %s: %s" % (name, type(err).__name__, text)) from err


SCALAR_NAMES = {
    getattr(descriptor.FieldDescriptor, attr): attr[len("TYPE_"):].lower()
    for attr in dir(descriptor.FieldDescriptor)
    if attr.startswith("TYPE_")
}
LABEL_NAMES = {
    descriptor.FieldDescriptor.LABEL_OPTIONAL: "optional",
    descriptor.FieldDescriptor.LABEL_REPEATED: "repeated",
    descriptor.FieldDescriptor.LABEL_REQUIRED: "required",
}


def describe_field(field):
    out = {"name": field.name, "number": field.number, "label": LABEL_NAMES.get(field.label, str(field.label))}
    if field.message_type is not None:
        # Touching the nested fields proves the imported file really is in the pool.
        out.update(
            type=field.message_type.full_name,
            file=field.message_type.file.name,
            fields=[f.name for f in field.message_type.fields],
        )
    elif field.enum_type is not None:
        out.update(type=field.enum_type.full_name, file=field.enum_type.file.name)
    else:
        out["type"] = SCALAR_NAMES.get(field.type, str(field.type))
    return out


def describe_method(method):
    proto = descriptor_pb2.MethodDescriptorProto()
    method.CopyToProto(proto)
    return {
        "input": method.input_type.full_name,
        "output": method.output_type.full_name,
        "client_streaming": proto.client_streaming,
        "server_streaming": proto.server_streaming,
        "input_fields": [describe_field(f) for f in method.input_type.fields],
    }


def split_method(name):
    name = name.lstrip("/")
    if "/" in name:
        service, method = name.split("/", 1)
    else:
        service, _, method = name.rpartition(".")
    return service, method


def error_info(reflector, trailers):
    """Decodes google.rpc.ErrorInfo from the status trailer, with types learned by reflection."""
    raw = dict(trailers or ()).get(STATUS_DETAILS_KEY)
    if raw is None:
        return None
    pool = reflector.pool_for("google.rpc.Status")
    status = message_class(pool, pool.FindMessageTypeByName("google.rpc.Status")).FromString(raw)
    for detail in status.details:
        if detail.type_url.endswith("/google.rpc.ErrorInfo"):
            info_pool = reflector.pool_for("google.rpc.ErrorInfo")
            info_class = message_class(info_pool, info_pool.FindMessageTypeByName("google.rpc.ErrorInfo"))
            return json_format.MessageToDict(info_class.FromString(detail.value), preserving_proto_field_name=True)
    return None


def call(reflector, spec):
    service_name, method_name = split_method(spec["method"])
    pool, service = reflector.service(service_name)
    method = service.methods_by_name.get(method_name)
    if method is None:
        raise ReflectionFailure("%s has no method %s" % (service_name, method_name))
    request_class = message_class(pool, method.input_type)
    response_class = message_class(pool, method.output_type)
    result = {"method": spec["method"]}
    try:
        request = json_format.ParseDict(spec.get("request", {}), request_class())
    except json_format.ParseError as err:
        result.update(ok=False, code="INVALID_ARGUMENT", details="request does not parse: %s" % err, local=True)
        return result
    rpc = reflector.channel.unary_unary(
        "/%s/%s" % (service.full_name, method.name),
        request_serializer=lambda m: m.SerializeToString(),
        response_deserializer=response_class.FromString,
    )
    metadata = tuple((str(k), str(v)) for k, v in spec.get("metadata", []))
    try:
        response = rpc(request, metadata=metadata, timeout=TIMEOUT_S)
        result.update(ok=True, response=json_format.MessageToDict(response, preserving_proto_field_name=True))
    except grpc.RpcError as err:
        result.update(ok=False, code=err.code().name, details=err.details())
        info = error_info(reflector, err.trailing_metadata())
        if info is not None:
            result["error_info"] = info
    return result


def main(argv):
    args = [a for a in argv[1:] if not a.startswith("--")]
    forced = next((a.split("=", 1)[1] for a in argv[1:] if a.startswith("--reflection=")), None)
    if len(args) != 1 or forced not in (None,) + VERSIONS:
        sys.stderr.write("usage: %s <host:port> [--reflection=v1|v1alpha] < calls.json\n" % argv[0])
        return 2
    raw_calls = sys.stdin.read() if not sys.stdin.isatty() else ""
    calls = json.loads(raw_calls) if raw_calls.strip() else []

    tmp = tempfile.mkdtemp(prefix="lm_reflection_")
    channel = grpc.insecure_channel(args[0])
    try:
        stubs = generate_stubs(tmp)
        grpc.channel_ready_future(channel).result(timeout=TIMEOUT_S)
        reflector = Reflector(channel, stubs, forced)
        services = reflector.list_services()
        described = {}
        for name in services:
            if not name.startswith("livemesh."):
                continue
            _, service = reflector.service(name)
            for method in service.methods:
                described["%s/%s" % (service.full_name, method.name)] = describe_method(method)
        results = [call(reflector, spec) for spec in calls]
        json.dump(
            {"reflection_version": reflector.version, "services": services, "described": described, "calls": results},
            sys.stdout,
            indent=2,
            sort_keys=True,
        )
        sys.stdout.write("\n")
        return 0
    except grpc.FutureTimeoutError:
        sys.stderr.write("reflection failed: could not connect to %s within %.0f s\n" % (args[0], TIMEOUT_S))
        return 1
    except grpc.RpcError as err:
        sys.stderr.write("reflection failed: %s: %s\n" % (err.code().name, err.details()))
        return 1
    except ReflectionFailure as err:
        sys.stderr.write("reflection failed: %s\n" % err)
        return 1
    except Exception as err:  # pylint: disable=broad-except  (descriptor errors, bad stdin): still a failure
        sys.stderr.write("reflection failed: %s: %s\n" % (type(err).__name__, err))
        return 1
    finally:
        channel.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
