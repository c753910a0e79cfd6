{
  "targets": [
    {
      "target_name": "conn_peek",
      "sources": ["conn_peek.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
