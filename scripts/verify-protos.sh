#!/usr/bin/env bash
# Regenerates the protobuf code into a scratch tree and fails if it differs
# from what is committed.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
protos=$(find protos -name '*.proto' | sort)
.venv/bin/python -m grpc_tools.protoc -I. --python_out="$tmp" --pyi_out="$tmp" --grpc_python_out="$tmp" $protos
status=0
while IFS= read -r f; do
  rel=${f#"$tmp"/}
  if ! cmp -s "$f" "$rel"; then echo "verify-protos: $rel is stale (run make protos)"; status=1; fi
done < <(find "$tmp" -type f -name '*_pb2*')
while IFS= read -r f; do
  [ -f "$tmp/$f" ] || { echo "verify-protos: $f has no .proto"; status=1; }
done < <(find protos -type f -name '*_pb2*' | sort)
[ $status -eq 0 ] && echo "verify-protos: generated code is current"
exit $status
