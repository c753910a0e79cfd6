{
  "targets": [
    {
      "target_name": "source_relay",
      "sources": ["source_relay.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
