{
  "targets": [
    {
      "target_name": "fan_send",
      "sources": ["fan_send.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
