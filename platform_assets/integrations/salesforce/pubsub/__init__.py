"""Salesforce's Pub/Sub API (gRPC `eventbus.v1.PubSub`): the vendored contract and the platform's consumer.

`pubsub_api.proto` is Salesforce's public contract, vendored unchanged from github.com/forcedotcom/pub-sub-api
(CC0). `pubsub_api_pb2.py` / `pubsub_api_pb2_grpc.py` are generated from it and committed, so neither
set-up nor the production image needs a protobuf compiler (as forcedotcom's own examples ship them).
Regenerate after updating the .proto (then turn the `_grpc` module's import of `pubsub_api_pb2` into a
relative import, and keep grpcio/protobuf in pyproject.toml at least at the generating versions):

    uv venv /tmp/gen && uv pip install --python /tmp/gen/bin/python grpcio-tools
    cd platform_assets/integrations/salesforce/pubsub && \\
        /tmp/gen/bin/python -m grpc_tools.protoc -I. --python_out=. --grpc_python_out=. pubsub_api.proto

The descriptor keeps the file name `pubsub_api.proto`, as every public client's generated code does, so
those clients load in the same process.
"""
